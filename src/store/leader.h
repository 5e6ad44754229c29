/*
 * leader.h: leader election and cross-instance notifications over PostgreSQL (issue 14).
 *
 * Several vramd instances share one PostgreSQL database. Exactly one of them, the leader,
 * holds a session-level advisory lock and runs the scheduler, the engine and the GPU
 * policy; the others (followers) accept submissions and serve reads. This module owns one
 * dedicated libpq connection per instance, driven nonblocking on the caller's libevent
 * loop (no threads), and on it:
 *
 *   - tries pg_try_advisory_lock(LEADER_LOCK) on every tick while a follower; the lock
 *     is a session lock, so it is held until the session ends (leader_close, a crash of
 *     this process, a lost connection, pg_terminate_backend, a server restart);
 *   - LISTENs on LEADER_CHANNEL_SUBMITTED and LEADER_CHANNEL_CHANGED (payload: a job id)
 *     and calls on_job_submitted / on_job_changed when one arrives;
 *   - keeps this instance's row of the table vramd_instances (id, address, role,
 *     backend pid, started_at, last_seen) current on every tick, and caches the whole
 *     table for leader_instances() (vramctl cluster, /api/cluster, /api/health).
 *
 * Why polling with pg_try_advisory_lock rather than waiting in pg_advisory_lock: a
 * backend that waits for a lock is inside a statement, and PostgreSQL delivers
 * notifications to a session only between transactions, so a follower blocked on the
 * lock would receive no job_changed notifications (its long-polls would not wake), and
 * its connection could carry no heartbeat. A try every tick (LEADER_TAKEOVER_S / 10)
 * costs one tiny query and bounds the takeover delay by one tick.
 *
 * Timing, with T = takeover_ms (config LEADER_TAKEOVER_S, default 5 s):
 *   tick      T / 10: heartbeat (leader) or lock attempt (follower), plus the row update;
 *   server_drop_ms = 3T/4, whole seconds, at least 2 s: the session asks the server to
 *             drop it after that long without hearing from this instance (SET
 *             tcp_keepalives_idle/interval/count and tcp_user_timeout), so a leader cut off
 *             from the database loses the lock after about 3T/4 and a follower takes it
 *             within T;
 *   check_ms  server_drop_ms / 2: leader_check() is true only while the latest query that
 *             succeeded was sent less than check_ms ago;
 *   dead      a query unanswered for server_drop_ms, or any error, closes the connection:
 *             a leader calls on_demoted at once, then reconnects with backoff (100 ms
 *             doubling to T / 5) as a follower;
 *   hold-off  T / 2: an instance that lost the lock with its session makes no lock
 *             attempt for that long, so a healthy follower takes over rather than the
 *             instance whose connection just failed (it retakes the lock only when no
 *             other instance did).
 *
 * The guarantee of leader_check(), and its limit. The server drops the session (and so
 * releases the lock) no earlier than server_drop_ms after the last packet it received
 * from this instance, and it received the last successful query no earlier than that
 * query was sent. A true leader_check() therefore means: the lock was held when that
 * query ran, and the server cannot yet have released it (check_ms < server_drop_ms, with
 * half of server_drop_ms to spare for scheduling delays between the check and the
 * actions). It rests on the server honouring the TCP settings above (a connection
 * through a pooler such as pgbouncer in transaction mode breaks session locks
 * altogether; connect directly), on the two machines' clocks ticking at the same rate,
 * and on the batch of actions after a check being short compared with check_ms. It is
 * not a fencing token: an action already sent to an Ollama server is not undone when the
 * lock is lost a moment later.
 *
 * Notifications. Prefer sending them from the store's own transaction: run
 * LEADER_SQL_NOTIFY with $1 = LEADER_CHANNEL_SUBMITTED (or _CHANGED) and $2 = the job id
 * inside the transaction that writes the job; PostgreSQL delivers it exactly when the
 * commit becomes visible, and never for a transaction that rolls back. leader_notify_*
 * send one from this module's connection instead (for callers without a transaction);
 * those are lost when the connection is down. Every listener gets every notification,
 * including the ones its own instance sent: the callbacks are wake-ups and must be
 * idempotent.
 *
 * Requirements: PostgreSQL 12 or later (tcp_user_timeout); a direct connection (no
 * pooler); a host name in pg_url is resolved by libpq synchronously, on the loop, at each
 * connect, so give an IP address or a name the local resolver answers at once.
 *
 * Threads: everything here runs on the loop's thread. Callbacks run on the loop; they
 * may call any leader_ function, leader_close included.
 */
#ifndef VRAMD_LEADER_H
#define VRAMD_LEADER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct leader;

/* The notification channels; the payload of each is one job id. */
#define LEADER_CHANNEL_SUBMITTED "vramd_job_submitted"
#define LEADER_CHANNEL_CHANGED	 "vramd_job_changed"
/* For the store's transaction: $1 the channel, $2 the job id (both text). */
#define LEADER_SQL_NOTIFY "SELECT pg_notify($1, $2)"

/* The advisory lock, in the two-int4 form (pg_locks: classid, objid, objsubid = 2). */
#define LEADER_LOCK_SPACE  1987207533 /* "vram" */
#define LEADER_LOCK_LEADER 1
#define LEADER_LOCK_SCHEMA 2 /* held while creating vramd_instances */

/* Called on the loop. Any may be NULL. job_id is borrowed for the call. */
struct leader_callbacks {
	/* This instance took the lock: it now leads (start the scheduler, reconcile). */
	void (*on_elected)(void *arg);
	/* This instance lost the lock (connection lost, backend terminated, server restart,
	 * heartbeat timeout, leader_close is NOT reported): stop acting at once. */
	void (*on_demoted)(void *arg);
	void (*on_job_submitted)(const char *job_id, void *arg);
	void (*on_job_changed)(const char *job_id, void *arg);
};

struct leader_options {
	const char *address; /* where vramctl reaches this instance (HOST:PORT); may be NULL */
	int64_t takeover_ms; /* T above; 0: 5000. At least 3000 (whole-second TCP settings). */
};

/* One row of vramd_instances as of the latest tick. */
struct leader_instance {
	const char *id;
	const char *address;	  /* "" when the instance gave none */
	const char *role;	  /* "leader" or "follower", as the instance last reported itself */
	bool holds_lock;	  /* its backend holds the leader lock now (from pg_locks) */
	int64_t last_seen_age_ms; /* since its last heartbeat; > takeover_ms: likely gone */
};

/*
 * Starts connecting to pg_url (a libpq connection string or postgresql:// URL) and
 * returns at once; the connection, the table, the LISTENs and the first lock attempt
 * follow on the loop. instance_id names this instance in vramd_instances and must be
 * unique among the instances (e.g. "host:port"). opt may be NULL. cb and arg are kept
 * (cb is copied). On success *out is the leader (free with leader_close). Returns 0, or
 * -EINVAL with *cause naming the bad argument (empty id, takeover_ms below 3000) or the
 * unparsable connection string. A server that is down is not an error: the module keeps
 * trying with backoff.
 */
int leader_open(struct event_base *base, const char *pg_url, const char *instance_id,
		const struct leader_options *opt, const struct leader_callbacks *cb, void *arg,
		struct leader **out, char **cause);
/* Closes the session (releasing the lock if held; on_demoted is not called) and frees l.
 * Called from inside a callback, the free happens when the callback returns. NULL is a
 * no-op. */
void leader_close(struct leader *l);

/* Whether this instance holds the lock as far as it knows (between on_elected and
 * on_demoted). Use leader_check() before acting. */
bool leader_is_leader(const struct leader *l);
/* Whether this instance leads and the server cannot yet have released its lock (see the
 * guarantee above). Cheap: no I/O. Call before each batch of actions; false means do
 * nothing now. */
bool leader_check(const struct leader *l);
/* Whether the connection is up and set up (table, LISTENs). */
bool leader_is_connected(const struct leader *l);
/* The id of the instance holding the lock as of the latest tick, or NULL if none is
 * known. Borrowed until the next loop iteration. */
const char *leader_current(const struct leader *l);
/* This instance's backend process id on the server (0 while disconnected). */
int leader_backend_pid(const struct leader *l);

/*
 * Sends a notification on LEADER_CHANNEL_SUBMITTED / _CHANGED from this module's
 * connection (queued behind the query in flight). Returns 0, -ENOTCONN while the
 * connection is down, -ENOBUFS when too many are queued, -EINVAL for an empty or too
 * long (> 7999 bytes) id; *cause (may be NULL) says which.
 */
int leader_notify_submitted(struct leader *l, const char *job_id, char **cause);
int leader_notify_changed(struct leader *l, const char *job_id, char **cause);

/* Calls cb once per instance of the latest tick's listing, ordered by id; the strings are
 * borrowed for the call. Returns the number of instances (0 before the first tick). */
size_t leader_instances(const struct leader *l,
			void (*cb)(const struct leader_instance *inst, void *arg), void *arg);

#endif
