/*
 * cluster.h: several vramd instances on one PostgreSQL job store (issue 14).
 *
 * With STORE=postgresql://... every instance takes part in a leader election
 * (store/leader.c). One instance, the leader, runs the fleet: the scheduler, the engine
 * and the nodes' monitors, with every unfinished job of the store in its queue. The others,
 * followers, accept submissions (committed to the shared store before their 202, then
 * left to the leader, which the commit's notification wakes), answer job status and
 * long-polls from the store (a job's change of status wakes them the same way) and the
 * read-only views, and send what only the leader can do (front-door requests, cancels,
 * model and GPU operations) to the leader with a 307 redirect.
 *
 * A leader that loses its lock (its database connection failed, the server restarted,
 * the lock's session was terminated) stops at once, as a crash would, without writing
 * anything more: the process exits with status 75 (EX_TEMPFAIL), so two leaders never
 * act, and systemd's Restart= brings it back as a follower. The new leader re-queues
 * what was in flight (at least once; attempts count).
 *
 * With SQLite (the default) there is no cluster: cluster_open leaves *out NULL, and every
 * function here treats a NULL cluster as the one instance that always leads.
 */
#ifndef VRAMD_CLUSTER_H
#define VRAMD_CLUSTER_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

struct cluster;
struct daemon;
struct vd_http_req;

/* Exit status of a leader that lost its lock (EX_TEMPFAIL: start it again). */
#define CLUSTER_EXIT_DEMOTED 75

/*
 * Joins the election when STORE is a PostgreSQL URL (else *out = NULL and 0). The
 * instance starts as a follower; on election it calls daemon_lead(). Returns 0, or
 * -errno with *cause (a bad INSTANCE_ID).
 */
int cluster_open(struct daemon *d, struct cluster **out, char **cause);
void cluster_free(struct cluster *c);

/* Whether this instance is a follower now (false without a cluster). */
bool cluster_is_follower(const struct cluster *c);
/* On a follower: the jobs queued in the whole cluster as the shared store counts them
 * (read at most every 200 ms), so QUEUE_MAX_SIZE holds for submissions through any
 * instance; -1 on the leader (its own queue is the cluster's), without a cluster, or when
 * the count cannot be read. */
int64_t cluster_queued(struct cluster *c);
/* Whether this instance may act on the fleet now: no cluster, or it leads and the
 * database cannot yet have given its lock to another (leader_check). */
bool cluster_may_act(const struct cluster *c);

/* Applies the run-time configuration kept in the shared store (changes made through the
 * API on any leader): when an instance starts to lead, and on a follower before it shows
 * the configuration. No-op without a cluster. */
void cluster_refresh_config(struct cluster *c);

/* {"instance", "role", "leader", "leader_address"} for GET /api/health; NULL without a
 * cluster. */
json_t *cluster_health_json(const struct cluster *c);
/* GET /api/cluster's body: this instance and every instance of the last listing. */
json_t *cluster_json(const struct cluster *c);

/* On a follower: http://HOST:PORT of the leader as of the last listing (caller frees);
 * NULL on the leader, without a cluster, or while no leader is known. */
char *cluster_leader_url(const struct cluster *c);

/*
 * On a follower: answers req with 307 to the same path on the leader (503 with
 * Retry-After when no leader is known) and returns true. False on the leader, or without
 * a cluster: the caller serves the request itself.
 */
bool cluster_redirect_to_leader(const struct cluster *c, struct vd_http_req *req);

#endif
