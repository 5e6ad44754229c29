/*
 * cluster.c: the daemon's side of several instances on one PostgreSQL store (see
 * cluster.h). store/leader.c holds the lock and hears the notifications; this file turns
 * them into the daemon's actions: lead (daemon_lead), take a job another instance
 * accepted (daemon_take_job), wake long-polls for a job the leader changed
 * (daemon_job_changed_elsewhere), stop when demoted.
 */
#include "cluster.h"

#include "config.h"
#include "daemon.h"
#include "http-util.h"
#include "httpd.h"
#include "job.h"
#include "leader.h"
#include "log.h"
#include "store.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct cluster {
	struct daemon *d;
	struct leader *leader;
	char *instance;
	char *address; /* http://HOST:PORT where the others reach this instance */
	bool leading;  /* between on_elected and the exit on demotion */
	/* A follower's view of the jobs queued in the whole cluster (store counts), read
	 * at most every CLUSTER_QUEUED_MAX_AGE_MS. */
	int64_t queued;
	int64_t queued_read_ms;
};

#define CLUSTER_QUEUED_MAX_AGE_MS 200

#define CLUSTER_CONFIG_SETTING "runtime-config"

/* config_set_many_kept's keeper: a change made through the API (on the leader) goes to
 * the shared store before it is applied, so the next leader applies it too. */
static int
cluster_keep_config_cb(const char *doc, void *arg, char **cause)
{
	struct cluster *c = arg;
	return store_setting_put(c->d->store, CLUSTER_CONFIG_SETTING, doc, cause);
}

void
cluster_refresh_config(struct cluster *c)
{
	if (c == NULL)
		return;
	struct daemon *d = c->d;
	char *doc = NULL, *cause = NULL;
	if (store_setting_get(d->store, CLUSTER_CONFIG_SETTING, &doc, &cause) < 0) {
		vd_warn(CONFIG, "cannot read the cluster's run-time configuration: %s", cause);
		free(cause);
		return;
	}
	if (doc == NULL)
		return; /* never changed through the API */
	json_t *changed = NULL, *skipped = json_array();
	if (config_apply_runtime_doc(d->config, doc, "the cluster's run-time configuration",
				     &changed, skipped, &cause) < 0) {
		vd_warn(CONFIG, "%s", cause);
		free(cause);
	} else if (json_object_size(changed) > 0) {
		daemon_config_changed(d, changed, "the cluster's shared store");
	}
	size_t i;
	json_t *why;
	json_array_foreach(skipped, i, why) vd_warn(
	    CONFIG, "the cluster's run-time configuration: %s skipped", json_string_value(why));
	json_decref(changed);
	json_decref(skipped);
	free(doc);
}

static void
cluster_elected_cb(void *arg)
{
	struct cluster *c = arg;
	c->leading = true;
	vd_log(SYSTEM, "instance %s leads: taking over the fleet and the queue", c->instance);
	cluster_refresh_config(c); /* changes made through the previous leader */
	daemon_lead(c->d);
}

static void
cluster_demoted_cb(void *arg)
{
	struct cluster *c = arg;
	if (!c->leading)
		return;
	c->leading = false;
	/* Stopping at once, as a crash would, is the one way to be sure nothing of this
	 * process acts again while another instance leads: an orderly stop would still put
	 * its runs back to queued in the store, over what the new leader writes. What was
	 * accepted is committed already; what ran here, the next leader re-queues. */
	vd_error(SYSTEM,
		 "instance %s lost the leader lock (its database session ended): stopping now "
		 "so that two leaders never act; start it again to rejoin as a follower",
		 c->instance);
	fflush(NULL);
	_exit(CLUSTER_EXIT_DEMOTED);
}

static void
cluster_submitted_cb(const char *job_id, void *arg)
{
	struct cluster *c = arg;
	if (c->leading)
		daemon_take_job(c->d, job_id);
}

static void
cluster_changed_cb(const char *job_id, void *arg)
{
	struct cluster *c = arg;
	if (!c->leading)
		daemon_job_changed_elsewhere(c->d, job_id);
}

/* HOST:PORT of LISTEN as the others can reach it: a wildcard address is replaced by this
 * host's name. */
static char *
cluster_address(const char *listen)
{
	const char *colon = strrchr(listen, ':');
	if (colon == NULL)
		return xasprintf("http://%s", listen);
	size_t hostlen = (size_t)(colon - listen);
	if ((hostlen == 7 && strncmp(listen, "0.0.0.0", 7) == 0) || hostlen == 0 ||
	    (hostlen == 4 && strncmp(listen, "[::]", 4) == 0)) {
		char host[256] = "localhost";
		gethostname(host, sizeof(host) - 1);
		return xasprintf("http://%s%s", host, colon);
	}
	return xasprintf("http://%s", listen);
}

int
cluster_open(struct daemon *d, struct cluster **out, char **cause)
{
	*out = NULL;
	const char *store = config_str(d->config, CONFIG_STORE);
	if (!vd_str_has_prefix(store, "postgresql://") && !vd_str_has_prefix(store, "postgres://"))
		return 0;
	struct cluster *c = xcalloc(1, sizeof(*c));
	c->d = d;
	c->address = cluster_address(config_str(d->config, CONFIG_LISTEN));
	const char *id = config_str(d->config, CONFIG_INSTANCE_ID);
	/* The default names the host and port, unique among instances that can reach
	 * each other. */
	c->instance = id[0] != '\0' ? xstrdup(id) : xstrdup(c->address + strlen("http://"));
	struct leader_callbacks cb = {
	    .on_elected = cluster_elected_cb,
	    .on_demoted = cluster_demoted_cb,
	    .on_job_submitted = cluster_submitted_cb,
	    .on_job_changed = cluster_changed_cb,
	};
	struct leader_options opt = {
	    .address = c->address + strlen("http://"),
	    .takeover_ms = config_int(d->config, CONFIG_LEADER_TAKEOVER_S) * 1000,
	};
	int rc = leader_open(d->base, store, c->instance, &opt, &cb, c, &c->leader, cause);
	if (rc < 0) {
		cluster_free(c);
		return rc;
	}
	config_set_keeper(d->config, cluster_keep_config_cb, c);
	vd_log(SYSTEM, "instance %s joins the cluster on %s as a follower", c->instance,
	       store_path(d->store));
	*out = c;
	return 0;
}

void
cluster_free(struct cluster *c)
{
	if (c == NULL)
		return;
	config_set_keeper(c->d->config, NULL, NULL);
	leader_close(c->leader);
	free(c->instance);
	free(c->address);
	free(c);
}

bool
cluster_is_follower(const struct cluster *c)
{
	return c != NULL && !c->leading;
}

int64_t
cluster_queued(struct cluster *c)
{
	if (!cluster_is_follower(c))
		return -1;
	int64_t now = vd_now_mono_ms();
	if (c->queued_read_ms == 0 || now - c->queued_read_ms > CLUSTER_QUEUED_MAX_AGE_MS) {
		struct store_counts counts;
		char *cause = NULL;
		if (store_counts(c->d->store, &counts, &cause) < 0) {
			vd_warn(STORE, "cannot count the cluster's queued jobs: %s", cause);
			free(cause);
			return c->queued_read_ms != 0 ? c->queued : -1;
		}
		c->queued = counts.by_status[JOB_QUEUED];
		c->queued_read_ms = now;
		json_decref(counts.per_model);
		json_decref(counts.per_key);
	}
	return c->queued;
}

bool
cluster_may_act(const struct cluster *c)
{
	return c == NULL || (c->leading && leader_check(c->leader));
}

struct cluster_find {
	const char *id;
	char *address;
};

static void
cluster_find_cb(const struct leader_instance *inst, void *arg)
{
	struct cluster_find *f = arg;
	if (f->address == NULL && strcmp(inst->id, f->id) == 0 && inst->address[0] != '\0')
		f->address = xstrdup(inst->address);
}

/* The leader's HOST:PORT as of the last listing (caller frees), or NULL. */
static char *
cluster_leader_address(const struct cluster *c)
{
	const char *id = leader_current(c->leader);
	if (id == NULL)
		return NULL;
	struct cluster_find f = {id, NULL};
	leader_instances(c->leader, cluster_find_cb, &f);
	return f.address;
}

char *
cluster_leader_url(const struct cluster *c)
{
	if (!cluster_is_follower(c))
		return NULL;
	char *address = cluster_leader_address(c);
	if (address == NULL)
		return NULL;
	char *url = xasprintf("http://%s", address);
	free(address);
	return url;
}

json_t *
cluster_health_json(const struct cluster *c)
{
	if (c == NULL)
		return NULL;
	const char *leader = leader_current(c->leader);
	char *address = cluster_leader_address(c);
	json_t *o = json_pack("{s:s,s:s,s:o,s:o}", "instance", c->instance, "role",
			      c->leading ? "leader" : "follower", "leader",
			      leader != NULL ? json_string(leader) : json_null(), "leader_address",
			      address != NULL ? json_string(address) : json_null());
	free(address);
	return o;
}

static void
cluster_instance_cb(const struct leader_instance *inst, void *arg)
{
	json_array_append_new(arg, json_pack("{s:s,s:s,s:s,s:b,s:I}", "instance", inst->id,
					     "address", inst->address, "role", inst->role,
					     "holds_lock", inst->holds_lock, "last_seen_ms_ago",
					     (json_int_t)inst->last_seen_age_ms));
}

json_t *
cluster_json(const struct cluster *c)
{
	json_t *instances = json_array();
	if (c == NULL)
		return json_pack("{s:b,s:o}", "clustered", false, "instances", instances);
	leader_instances(c->leader, cluster_instance_cb, instances);
	json_t *o = cluster_health_json(c);
	json_object_set_new(o, "clustered", json_true());
	json_object_set_new(o, "instances", instances);
	return o;
}

bool
cluster_redirect_to_leader(const struct cluster *c, struct vd_http_req *req)
{
	if (!cluster_is_follower(c))
		return false;
	char *address = cluster_leader_address(c);
	if (address == NULL) {
		vd_http_req_set_header(req, "Retry-After", "1");
		vd_http_reply_error(req, 503,
				    "instance %s is a follower and no leader is known yet; retry "
				    "shortly",
				    c->instance);
		return true;
	}
	const char *query = vd_http_req_query(req);
	vd_http_set_header(req, "Location", "http://%s%s%s%s", address, vd_http_req_path(req),
			   query != NULL ? "?" : "", query != NULL ? query : "");
	vd_http_reply_error(
	    req, 307, "instance %s is a follower: %s %s is served by the leader at http://%s",
	    c->instance, vd_http_req_method_name(req), vd_http_req_path(req), address);
	free(address);
	return true;
}
