/*
 * leader.c: leader election and cross-instance notifications on one libpq connection
 * (see leader.h for the protocol, the timing and the guarantee of leader_check).
 *
 * The connection goes DOWN -> CONNECTING (PQconnectPoll driven by one-shot events on
 * PQsocket) -> SETUP (one multi-statement query: table, TCP settings, LISTENs, backend
 * pid) -> READY. In READY one query is in flight at most: a tick (lock attempt or
 * heartbeat, row update, listing) or a queued notification. A periodic timer marks ticks
 * due and is the watchdog: a connect or a query that takes longer than server_drop_ms
 * fails the connection. Any failure tears the connection down (the server then releases
 * the lock), demotes a leader at once and retries after a backoff.
 *
 * Invariants: leader is true only in READY; conn is non-NULL exactly outside DOWN; a
 * user callback may call leader_close, so after each one the handler checks closing and
 * touches nothing more (the free happens when the outermost handler returns).
 */
#include "leader.h"

#include "log.h"
#include "util.h"

#include <errno.h>
#include <event2/event.h>
#include <libpq-fe.h>
#include <stdlib.h>
#include <string.h>

#define LEADER_DEFAULT_TAKEOVER_MS 5000
#define LEADER_MIN_TAKEOVER_MS	   3000
#define LEADER_BACKOFF_MIN_MS	   100
#define LEADER_QUEUE_MAX	   10000
#define LEADER_PAYLOAD_MAX	   7999 /* PostgreSQL's limit is 8000 bytes */

/* "The lock is held by this session" (HELD_SELF) and "by the session of row i"
 * (HELD_ROW), as SQL formats taking LEADER_LOCK_SPACE and LEADER_LOCK_LEADER: pg_locks
 * shows a two-int4 advisory lock as classid = first key, objid = second, objsubid = 2. */
#define LEADER_SQL_LOCK_ROW                                                                        \
	"k.locktype = 'advisory' AND k.granted AND (k.classid, k.objid, k.objsubid) = "            \
	"(%d::oid, %d::oid, 2)"
#define LEADER_SQL_HELD_SELF                                                                       \
	"EXISTS (SELECT 1 FROM pg_locks k WHERE " LEADER_SQL_LOCK_ROW                              \
	" AND k.pid = pg_backend_pid())"
#define LEADER_SQL_HELD_ROW                                                                        \
	"EXISTS (SELECT 1 FROM pg_locks k WHERE " LEADER_SQL_LOCK_ROW " AND k.pid = "              \
	"i.backend_pid)"

/* The part of every tick after its first statement: this instance's row (its id and
 * address as SQL literals, then the lock keys), then the whole table with who holds the
 * lock (the lock keys again). */
static const char leader_sql_tick_rest[] =
    "INSERT INTO vramd_instances (id, address, role, backend_pid, last_seen) "
    "VALUES (%s, %s, CASE WHEN " LEADER_SQL_HELD_SELF " THEN 'leader' ELSE 'follower' END, "
    "pg_backend_pid(), now()) "
    "ON CONFLICT (id) DO UPDATE SET address = EXCLUDED.address, role = EXCLUDED.role, "
    "backend_pid = EXCLUDED.backend_pid, last_seen = EXCLUDED.last_seen;"
    "SELECT i.id, i.address, i.role, "
    "(extract(epoch FROM now() - i.last_seen) * 1000)::bigint, " LEADER_SQL_HELD_ROW " "
    "FROM vramd_instances i ORDER BY i.id";

enum leader_state { LEADER_DOWN, LEADER_CONNECTING, LEADER_SETUP, LEADER_READY };

enum leader_op_kind { LEADER_OP_NONE, LEADER_OP_SETUP, LEADER_OP_TICK, LEADER_OP_NOTIFY };

/* A notification waiting for the connection. */
struct leader_note {
	struct leader_note *next;
	const char *channel; /* one of the LEADER_CHANNEL_ constants */
	char *job_id;
};

struct leader {
	struct event_base *base;
	char *conninfo;
	char *id;
	char *address;
	struct leader_callbacks cb;
	void *arg;

	int64_t takeover_ms;
	int64_t tick_ms;
	int64_t server_drop_ms;
	int64_t check_ms;
	int64_t backoff_max_ms;
	int64_t backoff_ms;

	enum leader_state state;
	PGconn *conn;
	struct event *conn_ev;	/* one-shot, while CONNECTING */
	struct event *read_ev;	/* persistent, in SETUP and READY */
	struct event *write_ev; /* one-shot, while libpq has output to flush */
	struct event *timer_ev; /* periodic tick_ms: ticks and the watchdog */
	struct event *retry_ev; /* one-shot reconnect after the backoff */
	int64_t connect_started_ms;
	int backend_pid;
	char *tick_sql_follower;
	char *tick_sql_leader;
	char *tick_sql_held_off;
	int64_t holdoff_until_ms; /* no lock attempts before this (after losing the lock) */
	bool leader;

	/* The query in flight. */
	enum leader_op_kind inflight;
	int64_t inflight_sent_ms;
	int inflight_results;
	bool inflight_failed;
	bool inflight_got_lock;
	int inflight_pid;
	char *inflight_error;
	struct leader_instance *inflight_list;
	size_t inflight_nlist;
	bool tick_due;
	int64_t last_ok_sent_ms;

	struct leader_note *notes;
	struct leader_note **notes_tail;
	size_t nnotes;

	struct leader_instance *list;
	size_t nlist;

	int depth; /* nesting of handlers on the stack */
	bool closing;
};

static void leader_connect_start(struct leader *l);
static void leader_send_next(struct leader *l);

static void
leader_list_free(struct leader_instance *list, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free((char *)list[i].id);
		free((char *)list[i].address);
		free((char *)list[i].role);
	}
	free(list);
}

static void
leader_event_clear(struct event **ev)
{
	if (*ev != NULL) {
		event_free(*ev);
		*ev = NULL;
	}
}

static void
leader_timer_arm(struct event *ev, int64_t ms)
{
	struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
	event_add(ev, &tv);
}

/* Drops the query in flight's partial results. */
static void
leader_inflight_reset(struct leader *l)
{
	l->inflight = LEADER_OP_NONE;
	l->inflight_results = 0;
	l->inflight_failed = false;
	l->inflight_got_lock = false;
	l->inflight_pid = 0;
	free(l->inflight_error);
	l->inflight_error = NULL;
	leader_list_free(l->inflight_list, l->inflight_nlist);
	l->inflight_list = NULL;
	l->inflight_nlist = 0;
}

static void
leader_notes_drop(struct leader *l)
{
	while (l->notes != NULL) {
		struct leader_note *n = l->notes;
		l->notes = n->next;
		free(n->job_id);
		free(n);
	}
	l->notes_tail = &l->notes;
	l->nnotes = 0;
}

/* Closes the session (the server releases the lock with it) and forgets its state. */
static void
leader_teardown(struct leader *l)
{
	leader_event_clear(&l->conn_ev);
	leader_event_clear(&l->read_ev);
	leader_event_clear(&l->write_ev);
	if (l->conn != NULL) {
		PQfinish(l->conn);
		l->conn = NULL;
	}
	leader_inflight_reset(l);
	leader_notes_drop(l);
	free(l->tick_sql_follower);
	free(l->tick_sql_leader);
	free(l->tick_sql_held_off);
	l->tick_sql_follower = NULL;
	l->tick_sql_leader = NULL;
	l->tick_sql_held_off = NULL;
	l->state = LEADER_DOWN;
	l->backend_pid = 0;
	l->leader = false;
	l->tick_due = false;
}

/*
 * The connection failed (why says how): close it, retry after the backoff, and, if this
 * instance led, tell the daemon at once. The teardown comes first so that leader_check()
 * is already false inside on_demoted.
 */
static void
leader_fail(struct leader *l, const char *why)
{
	bool was_leader = l->leader;
	char *msg = xstrdup(why != NULL ? why : "unknown error");
	size_t len = strlen(msg);

	while (len > 0 && (msg[len - 1] == '\n' || msg[len - 1] == ' '))
		msg[--len] = '\0';
	vd_warn(STORE, "leader %s: database connection lost (%s)%s; retrying in %lld ms", l->id,
		msg, was_leader ? ", stepping down" : "", (long long)l->backoff_ms);
	free(msg);
	leader_teardown(l);
	/* An instance that just lost its session is the likeliest to lose the next one
	 * (its network, its host): it leaves the lock to the others for a while, and takes
	 * it back only if nobody else did. */
	if (was_leader)
		l->holdoff_until_ms = vd_now_mono_ms() + l->takeover_ms / 2;
	leader_timer_arm(l->retry_ev, l->backoff_ms);
	l->backoff_ms *= 2;
	if (l->backoff_ms > l->backoff_max_ms)
		l->backoff_ms = l->backoff_max_ms;
	if (was_leader && l->cb.on_demoted != NULL)
		l->cb.on_demoted(l->arg);
}

static void
leader_free(struct leader *l)
{
	leader_teardown(l);
	leader_event_clear(&l->timer_ev);
	leader_event_clear(&l->retry_ev);
	leader_list_free(l->list, l->nlist);
	free(l->conninfo);
	free(l->id);
	free(l->address);
	free(l);
}

/* Handler bracket: returns false when l was closed inside (and is now freed). */
static void
leader_enter(struct leader *l)
{
	l->depth++;
}

static bool
leader_leave(struct leader *l)
{
	l->depth--;
	if (l->closing && l->depth == 0) {
		leader_free(l);
		return false;
	}
	return true;
}

/* libpq's notices (e.g. "relation already exists, skipping") go to the debug log
 * instead of stderr. */
static void
leader_notice_cb(void *arg, const char *message)
{
	struct leader *l = arg;
	vd_debug(STORE, "leader %s: server notice: %s", l->id, message);
}

/* Flushes libpq's output; arms write_ev while some remains. Returns -1 on failure
 * (after leader_fail). */
static int
leader_flush(struct leader *l)
{
	int rc = PQflush(l->conn);
	if (rc < 0) {
		leader_fail(l, PQerrorMessage(l->conn));
		return -1;
	}
	if (rc > 0 && !event_pending(l->write_ev, EV_WRITE, NULL))
		event_add(l->write_ev, NULL);
	return 0;
}

static void
leader_dispatch_notifies(struct leader *l)
{
	PGnotify *n;

	while (!l->closing && l->conn != NULL && (n = PQnotifies(l->conn)) != NULL) {
		if (strcmp(n->relname, LEADER_CHANNEL_SUBMITTED) == 0) {
			if (l->cb.on_job_submitted != NULL)
				l->cb.on_job_submitted(n->extra, l->arg);
		} else if (strcmp(n->relname, LEADER_CHANNEL_CHANGED) == 0) {
			if (l->cb.on_job_changed != NULL)
				l->cb.on_job_changed(n->extra, l->arg);
		}
		PQfreemem(n);
	}
}

/* Reads the listing (id, address, role, age ms, holds lock) of a tick. */
static void
leader_read_listing(struct leader *l, const PGresult *res)
{
	int n = PQntuples(res);

	if (PQnfields(res) != 5) {
		l->inflight_failed = true;
		return;
	}
	leader_list_free(l->inflight_list, l->inflight_nlist);
	l->inflight_list = xcalloc(n > 0 ? (size_t)n : 1, sizeof(*l->inflight_list));
	l->inflight_nlist = (size_t)n;
	for (int i = 0; i < n; i++) {
		struct leader_instance *inst = &l->inflight_list[i];
		inst->id = xstrdup(PQgetvalue(res, i, 0));
		inst->address = xstrdup(PQgetvalue(res, i, 1));
		inst->role = xstrdup(PQgetvalue(res, i, 2));
		inst->last_seen_age_ms = strtoll(PQgetvalue(res, i, 3), NULL, 10);
		inst->holds_lock = PQgetvalue(res, i, 4)[0] == 't';
	}
}

/* One result of the query in flight (a multi-statement query gives one per statement). */
static void
leader_take_result(struct leader *l, const PGresult *res)
{
	ExecStatusType st = PQresultStatus(res);
	int index = l->inflight_results++;

	if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
		if (!l->inflight_failed) {
			const char *msg = PQresultErrorMessage(res);
			l->inflight_error = xstrdup(msg[0] != '\0' ? msg : PQresStatus(st));
		}
		l->inflight_failed = true;
		return;
	}
	if (st != PGRES_TUPLES_OK)
		return;
	if (l->inflight == LEADER_OP_SETUP && PQnfields(res) == 1 && PQntuples(res) == 1 &&
	    strcmp(PQfname(res, 0), "pg_backend_pid") == 0) {
		l->inflight_pid = (int)strtol(PQgetvalue(res, 0, 0), NULL, 10);
	} else if (l->inflight == LEADER_OP_TICK && index == 0) {
		l->inflight_got_lock = PQntuples(res) == 1 && PQgetvalue(res, 0, 0)[0] == 't';
	} else if (l->inflight == LEADER_OP_TICK && index == 2) {
		leader_read_listing(l, res);
	}
}

/* Builds the two tick queries once per connection (the literals need the connection
 * for escaping). */
static int
leader_build_ticks(struct leader *l)
{
	char *id = PQescapeLiteral(l->conn, l->id, strlen(l->id));
	char *addr = PQescapeLiteral(l->conn, l->address, strlen(l->address));
	char *rest;

	if (id == NULL || addr == NULL) {
		PQfreemem(id);
		PQfreemem(addr);
		return -1;
	}
	rest = xasprintf(leader_sql_tick_rest, id, addr, LEADER_LOCK_SPACE, LEADER_LOCK_LEADER,
			 LEADER_LOCK_SPACE, LEADER_LOCK_LEADER);
	PQfreemem(id);
	PQfreemem(addr);
	/* A follower tries the lock; a leader checks it still has it (it would lose it only
	 * with the session, or to pg_advisory_unlock_all, but the check is one probe). */
	l->tick_sql_follower = xasprintf("SELECT pg_try_advisory_lock(%d, %d);%s",
					 LEADER_LOCK_SPACE, LEADER_LOCK_LEADER, rest);
	l->tick_sql_leader = xasprintf("SELECT " LEADER_SQL_HELD_SELF ";%s", LEADER_LOCK_SPACE,
				       LEADER_LOCK_LEADER, rest);
	l->tick_sql_held_off = xasprintf("SELECT false;%s", rest);
	free(rest);
	return 0;
}

static void
leader_setup_done(struct leader *l)
{
	if (l->inflight_failed || l->inflight_pid == 0) {
		char *why = xasprintf("setup: %s",
				      l->inflight_error != NULL ? l->inflight_error : "no pid");
		leader_fail(l, why);
		free(why);
		return;
	}
	if (leader_build_ticks(l) < 0) {
		leader_fail(l, PQerrorMessage(l->conn));
		return;
	}
	l->backend_pid = l->inflight_pid;
	l->state = LEADER_READY;
	l->backoff_ms = LEADER_BACKOFF_MIN_MS;
	l->last_ok_sent_ms = l->inflight_sent_ms;
	l->tick_due = true;
	vd_log(STORE, "leader %s: connected (backend pid %d)", l->id, l->backend_pid);
}

static void
leader_tick_done(struct leader *l)
{
	if (l->inflight_failed) {
		char *why = xasprintf("tick: %s",
				      l->inflight_error != NULL ? l->inflight_error : "bad reply");
		leader_fail(l, why);
		free(why);
		return;
	}
	l->last_ok_sent_ms = l->inflight_sent_ms;
	leader_list_free(l->list, l->nlist);
	l->list = l->inflight_list;
	l->nlist = l->inflight_nlist;
	l->inflight_list = NULL;
	l->inflight_nlist = 0;
	if (!l->leader && l->inflight_got_lock) {
		l->leader = true;
		vd_log(STORE, "leader %s: elected (holds the leader lock)", l->id);
		if (l->cb.on_elected != NULL)
			l->cb.on_elected(l->arg);
	} else if (l->leader && !l->inflight_got_lock) {
		/* The session lives but the lock is gone (someone ran pg_advisory_unlock_all
		 * on it?): stop leading; the next tick competes again. */
		l->leader = false;
		l->holdoff_until_ms = vd_now_mono_ms() + l->takeover_ms / 2;
		vd_warn(STORE, "leader %s: the leader lock is no longer held; stepping down",
			l->id);
		if (l->cb.on_demoted != NULL)
			l->cb.on_demoted(l->arg);
	}
}

/* The query in flight has returned all its results. */
static void
leader_op_done(struct leader *l)
{
	enum leader_op_kind kind = l->inflight;

	if (kind == LEADER_OP_SETUP) {
		leader_setup_done(l);
	} else if (kind == LEADER_OP_TICK) {
		leader_tick_done(l);
	} else if (kind == LEADER_OP_NOTIFY) {
		if (l->inflight_failed)
			vd_warn(STORE, "leader %s: notification failed: %s", l->id,
				l->inflight_error != NULL ? l->inflight_error : "?");
		else
			l->last_ok_sent_ms = l->inflight_sent_ms;
	}
	if (l->conn != NULL && !l->closing)
		leader_inflight_reset(l);
}

/* Reads what the server sent: results of the query in flight, then notifications. */
static void
leader_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct leader *l = arg;
	(void)fd;
	(void)what;

	leader_enter(l);
	if (!PQconsumeInput(l->conn)) {
		leader_fail(l, PQerrorMessage(l->conn));
		goto out;
	}
	while (l->conn != NULL && !l->closing && l->inflight != LEADER_OP_NONE &&
	       !PQisBusy(l->conn)) {
		PGresult *res = PQgetResult(l->conn);
		if (res == NULL) {
			leader_op_done(l);
			continue;
		}
		leader_take_result(l, res);
		PQclear(res);
	}
	if (l->conn != NULL && !l->closing)
		leader_dispatch_notifies(l);
	if (l->conn != NULL && !l->closing)
		leader_send_next(l);
out:
	leader_leave(l);
}

static void
leader_write_cb(evutil_socket_t fd, short what, void *arg)
{
	struct leader *l = arg;
	(void)fd;
	(void)what;

	leader_enter(l);
	leader_flush(l);
	leader_leave(l);
}

/* Sends the next query if none is in flight: queued notifications first (they carry
 * latency), then a due tick. */
static void
leader_send_next(struct leader *l)
{
	int ok;

	if (l->state != LEADER_READY || l->inflight != LEADER_OP_NONE)
		return;
	if (l->notes != NULL) {
		struct leader_note *n = l->notes;
		const char *values[2] = {n->channel, n->job_id};
		l->notes = n->next;
		if (l->notes == NULL)
			l->notes_tail = &l->notes;
		l->nnotes--;
		ok = PQsendQueryParams(l->conn, LEADER_SQL_NOTIFY, 2, NULL, values, NULL, NULL, 0);
		free(n->job_id);
		free(n);
		l->inflight = LEADER_OP_NOTIFY;
	} else if (l->tick_due) {
		const char *sql = l->tick_sql_follower;
		if (l->leader)
			sql = l->tick_sql_leader;
		else if (vd_now_mono_ms() < l->holdoff_until_ms)
			sql = l->tick_sql_held_off;
		ok = PQsendQuery(l->conn, sql);
		l->tick_due = false;
		l->inflight = LEADER_OP_TICK;
	} else {
		return;
	}
	if (!ok) {
		leader_fail(l, PQerrorMessage(l->conn));
		return;
	}
	l->inflight_sent_ms = vd_now_mono_ms();
	leader_flush(l);
}

/* Connected: switch to nonblocking mode, watch the socket, send the setup query. */
static void
leader_connected(struct leader *l)
{
	evutil_socket_t fd = PQsocket(l->conn);
	int64_t drop_s = l->server_drop_ms / 1000;
	char *sql;

	leader_event_clear(&l->conn_ev);
	if (PQsetnonblocking(l->conn, 1) != 0) {
		leader_fail(l, PQerrorMessage(l->conn));
		return;
	}
	PQsetNoticeProcessor(l->conn, leader_notice_cb, l);
	l->read_ev = event_new(l->base, fd, EV_READ | EV_PERSIST, leader_read_cb, l);
	l->write_ev = event_new(l->base, fd, EV_WRITE, leader_write_cb, l);
	event_add(l->read_ev, NULL);
	l->state = LEADER_SETUP;
	/* One implicit transaction; the transaction lock keeps two instances from
	 * creating the table at once (CREATE TABLE IF NOT EXISTS races otherwise). The TCP
	 * settings make the server drop this session after drop_s without word from us. */
	sql = xasprintf(
	    "SELECT pg_advisory_xact_lock(%d, %d);"
	    "CREATE TABLE IF NOT EXISTS vramd_instances (id text PRIMARY KEY, address text NOT "
	    "NULL DEFAULT '', role text NOT NULL, backend_pid integer NOT NULL, last_seen "
	    "timestamptz NOT NULL);"
	    "DELETE FROM vramd_instances WHERE last_seen < now() - interval '1 day';"
	    "SET tcp_keepalives_idle = 1; SET tcp_keepalives_interval = 1;"
	    "SET tcp_keepalives_count = %lld; SET tcp_user_timeout = %lld;"
	    "LISTEN " LEADER_CHANNEL_SUBMITTED "; LISTEN " LEADER_CHANNEL_CHANGED ";"
	    "SELECT pg_backend_pid()",
	    LEADER_LOCK_SPACE, LEADER_LOCK_SCHEMA, (long long)(drop_s - 1),
	    (long long)l->server_drop_ms);
	if (!PQsendQuery(l->conn, sql)) {
		free(sql);
		leader_fail(l, PQerrorMessage(l->conn));
		return;
	}
	free(sql);
	l->inflight = LEADER_OP_SETUP;
	l->inflight_sent_ms = vd_now_mono_ms();
	leader_flush(l);
}

static void leader_connect_cb(evutil_socket_t fd, short what, void *arg);

/* One step of PQconnectPoll done: waits on the socket for what it asks for next (the
 * socket may change between steps, when libpq tries another address). */
static void
leader_connect_wait(struct leader *l, PostgresPollingStatusType poll)
{
	leader_event_clear(&l->conn_ev);
	if (poll == PGRES_POLLING_OK) {
		leader_connected(l);
		return;
	}
	if (poll == PGRES_POLLING_FAILED || PQsocket(l->conn) < 0) {
		leader_fail(l, PQerrorMessage(l->conn));
		return;
	}
	l->conn_ev =
	    event_new(l->base, PQsocket(l->conn),
		      poll == PGRES_POLLING_READING ? EV_READ : EV_WRITE, leader_connect_cb, l);
	event_add(l->conn_ev, NULL);
}

static void
leader_connect_cb(evutil_socket_t fd, short what, void *arg)
{
	struct leader *l = arg;
	(void)fd;
	(void)what;

	leader_enter(l);
	leader_connect_wait(l, PQconnectPoll(l->conn));
	leader_leave(l);
}

static void
leader_connect_start(struct leader *l)
{
	const char *keys[] = {"dbname", "fallback_application_name", NULL};
	const char *values[] = {l->conninfo, "vramd leader", NULL};

	l->conn = PQconnectStartParams(keys, values, 1);
	if (l->conn == NULL) {
		vd_error(STORE, "leader %s: out of memory starting a connection", l->id);
		abort();
	}
	l->state = LEADER_CONNECTING;
	l->connect_started_ms = vd_now_mono_ms();
	if (PQstatus(l->conn) == CONNECTION_BAD) {
		leader_fail(l, PQerrorMessage(l->conn));
		return;
	}
	/* libpq: behave as if PQconnectPoll had returned PGRES_POLLING_WRITING. */
	leader_connect_wait(l, PGRES_POLLING_WRITING);
}

static void
leader_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	struct leader *l = arg;
	(void)fd;
	(void)what;

	leader_enter(l);
	if (l->state == LEADER_DOWN)
		leader_connect_start(l);
	leader_leave(l);
}

/* Every tick_ms: the watchdog (a connect or a query older than server_drop_ms fails the
 * connection), then the next tick. */
static void
leader_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct leader *l = arg;
	int64_t now = vd_now_mono_ms();
	(void)fd;
	(void)what;

	leader_enter(l);
	if ((l->state == LEADER_CONNECTING || l->state == LEADER_SETUP) &&
	    now - l->connect_started_ms > l->server_drop_ms) {
		leader_fail(l, "connecting took too long");
	} else if (l->state == LEADER_READY && l->inflight != LEADER_OP_NONE &&
		   now - l->inflight_sent_ms > l->server_drop_ms) {
		char *why =
		    xasprintf("no reply for %lld ms", (long long)(now - l->inflight_sent_ms));
		leader_fail(l, why);
		free(why);
	} else if (l->state == LEADER_READY) {
		l->tick_due = true;
		leader_send_next(l);
	}
	leader_leave(l);
}

int
leader_open(struct event_base *base, const char *pg_url, const char *instance_id,
	    const struct leader_options *opt, const struct leader_callbacks *cb, void *arg,
	    struct leader **out, char **cause)
{
	struct leader *l;
	char *err = NULL;
	PQconninfoOption *parsed;
	int64_t takeover_ms =
	    opt != NULL && opt->takeover_ms > 0 ? opt->takeover_ms : LEADER_DEFAULT_TAKEOVER_MS;

	*out = NULL;
	if (instance_id == NULL || instance_id[0] == '\0')
		return vd_fail(cause, -EINVAL, "leader: the instance id is empty");
	if (takeover_ms < LEADER_MIN_TAKEOVER_MS)
		return vd_fail(cause, -EINVAL, "leader: takeover time %lld ms is below %d ms",
			       (long long)takeover_ms, LEADER_MIN_TAKEOVER_MS);
	if (pg_url == NULL || pg_url[0] == '\0')
		return vd_fail(cause, -EINVAL, "leader: the PostgreSQL URL is empty");
	parsed = PQconninfoParse(pg_url, &err);
	if (parsed == NULL) {
		char *redacted = vd_url_redact(pg_url);
		int rc = vd_fail(cause, -EINVAL, "leader: bad PostgreSQL URL %s: %s", redacted,
				 err != NULL ? err : "out of memory");
		free(redacted);
		PQfreemem(err);
		return rc;
	}
	PQconninfoFree(parsed);

	l = xcalloc(1, sizeof(*l));
	l->base = base;
	l->conninfo = xstrdup(pg_url);
	l->id = xstrdup(instance_id);
	l->address = xstrdup(opt != NULL && opt->address != NULL ? opt->address : "");
	if (cb != NULL)
		l->cb = *cb;
	l->arg = arg;
	l->takeover_ms = takeover_ms;
	l->tick_ms = takeover_ms / 10;
	/* Whole seconds: the server's keepalive settings take seconds. */
	l->server_drop_ms = takeover_ms * 3 / 4 / 1000 * 1000;
	if (l->server_drop_ms < 2000)
		l->server_drop_ms = 2000;
	l->check_ms = l->server_drop_ms / 2;
	l->backoff_max_ms = takeover_ms / 5;
	l->backoff_ms = LEADER_BACKOFF_MIN_MS;
	l->notes_tail = &l->notes;
	l->timer_ev = event_new(base, -1, EV_PERSIST, leader_timer_cb, l);
	l->retry_ev = event_new(base, -1, 0, leader_retry_cb, l);
	leader_timer_arm(l->timer_ev, l->tick_ms);
	leader_connect_start(l);
	*out = l;
	return 0;
}

void
leader_close(struct leader *l)
{
	if (l == NULL)
		return;
	if (l->depth > 0) {
		/* Inside one of our handlers: it frees l on its way out. Stop acting now. */
		l->closing = true;
		l->leader = false;
		return;
	}
	leader_free(l);
}

bool
leader_is_leader(const struct leader *l)
{
	return l != NULL && l->leader;
}

bool
leader_check(const struct leader *l)
{
	return l != NULL && l->leader && !l->closing && l->state == LEADER_READY &&
	       vd_now_mono_ms() - l->last_ok_sent_ms < l->check_ms;
}

bool
leader_is_connected(const struct leader *l)
{
	return l != NULL && l->state == LEADER_READY;
}

const char *
leader_current(const struct leader *l)
{
	for (size_t i = 0; l != NULL && i < l->nlist; i++) {
		if (l->list[i].holds_lock)
			return l->list[i].id;
	}
	return NULL;
}

int
leader_backend_pid(const struct leader *l)
{
	return l != NULL ? l->backend_pid : 0;
}

static int
leader_notify(struct leader *l, const char *channel, const char *job_id, char **cause)
{
	struct leader_note *n;
	size_t len = job_id != NULL ? strlen(job_id) : 0;

	if (len == 0 || len > LEADER_PAYLOAD_MAX)
		return vd_fail(cause, -EINVAL,
			       "leader: job id for %s is empty or too long (%zu bytes)", channel,
			       len);
	if (l->state != LEADER_READY)
		return vd_fail(
		    cause, -ENOTCONN,
		    "leader: not connected to the database; %s notification for %s dropped",
		    channel, job_id);
	if (l->nnotes >= LEADER_QUEUE_MAX)
		return vd_fail(cause, -ENOBUFS, "leader: %zu notifications already queued",
			       l->nnotes);
	n = xcalloc(1, sizeof(*n));
	n->channel = channel;
	n->job_id = xstrdup(job_id);
	*l->notes_tail = n;
	l->notes_tail = &n->next;
	l->nnotes++;
	/* Sending may find the connection dead and call on_demoted, which may close l. */
	leader_enter(l);
	leader_send_next(l);
	leader_leave(l);
	return 0;
}

int
leader_notify_submitted(struct leader *l, const char *job_id, char **cause)
{
	return leader_notify(l, LEADER_CHANNEL_SUBMITTED, job_id, cause);
}

int
leader_notify_changed(struct leader *l, const char *job_id, char **cause)
{
	return leader_notify(l, LEADER_CHANNEL_CHANGED, job_id, cause);
}

size_t
leader_instances(const struct leader *l, void (*cb)(const struct leader_instance *inst, void *arg),
		 void *arg)
{
	if (l == NULL)
		return 0;
	for (size_t i = 0; cb != NULL && i < l->nlist; i++)
		cb(&l->list[i], arg);
	return l->nlist;
}
