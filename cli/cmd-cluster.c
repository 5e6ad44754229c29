/*
 * cmd-cluster.c: `vramctl cluster` prints GET /api/cluster: the instances that share one
 * PostgreSQL store (docs/operations.md "Several instances"), which one leads, and when
 * each was last heard of. Any instance answers it itself (followers too), so it works
 * whichever instance --url names. Against a vramd on SQLite it says there is no cluster
 * and exits 0: that is an answer, not an error.
 */
#include <stdio.h>

#include "table.h"
#include "vramctl.h"

/* "0.4 s", "12 s", "3 min", "2 h": how long ago an instance's row was written. */
static const char *
cmd_cluster_fmt_age(const json_t *ms, char *buf, size_t size)
{
	if (!json_is_integer(ms) || json_integer_value(ms) < 0) {
		snprintf(buf, size, "-");
		return buf;
	}
	double s = (double)json_integer_value(ms) / 1000.0;
	if (s < 10)
		snprintf(buf, size, "%.1f s ago", s);
	else if (s < 120)
		snprintf(buf, size, "%.0f s ago", s);
	else if (s < 7200)
		snprintf(buf, size, "%.0f min ago", s / 60);
	else
		snprintf(buf, size, "%.0f h ago", s / 3600);
	return buf;
}

static void
cmd_cluster_print(const json_t *c)
{
	const char *self = ctl_json_str(c, "instance");
	const char *role = ctl_json_str(c, "role");
	const char *leader = ctl_json_str(c, "leader");
	const char *leader_address = ctl_json_str(c, "leader_address");
	struct ctl_kv *kv = ctl_kv_new();
	ctl_kv_add(kv, "this instance", "%s (%s)", self != NULL ? self : "-",
		   role != NULL ? role : "-");
	if (leader != NULL)
		ctl_kv_add(kv, "leader", "%s at %s", leader,
			   leader_address != NULL ? leader_address : "an unknown address");
	else
		ctl_kv_add(kv, "leader", "none known yet");
	ctl_kv_print(kv, stdout);
	ctl_kv_free(kv);

	const json_t *instances = json_object_get(c, "instances");
	if (json_array_size(instances) == 0) {
		/* The first listing comes with the first tick on the database. */
		printf("\nno instances listed yet\n");
		return;
	}
	struct ctl_table *t = ctl_table_new(5, "INSTANCE", "ADDRESS", "ROLE", "LOCK", "LAST SEEN");
	size_t i;
	json_t *inst;
	json_array_foreach(instances, i, inst)
	{
		char age[32];
		const char *address = ctl_json_str(inst, "address");
		ctl_table_cell(t, ctl_json_str(inst, "instance"));
		ctl_table_cell(t, address != NULL && address[0] != '\0' ? address : NULL);
		ctl_table_cell(t, ctl_json_str(inst, "role"));
		/* The lock, as PostgreSQL's pg_locks says, is the truth; ROLE is what the
		 * instance last wrote of itself, which lags behind a takeover by a tick. */
		ctl_table_cell(t,
			       json_is_true(json_object_get(inst, "holds_lock")) ? "held" : NULL);
		ctl_table_cell(t, cmd_cluster_fmt_age(json_object_get(inst, "last_seen_ms_ago"),
						      age, sizeof(age)));
	}
	printf("\n");
	ctl_table_print(t, stdout);
	ctl_table_free(t);
}

static void
cmd_cluster_show(const json_t *reply)
{
	if (!json_is_true(json_object_get(reply, "clustered")))
		printf("not clustered (SQLite store)\n");
	else
		cmd_cluster_print(reply);
}

static int
cmd_cluster_exec(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv)
{
	return ctl_view_exec(ctl, cmd, argc, argv, "/api/cluster", cmd_cluster_show);
}

const struct ctl_cmd ctl_cmd_cluster = {
    .name = "cluster",
    .usage = "",
    .help = "the instances sharing vramd's PostgreSQL store, and which one leads",
    .details = "Any instance answers (GET /api/cluster). LOCK is \"held\" for the instance\n"
	       "whose database session holds the leader lock now; ROLE is what each instance\n"
	       "last wrote of itself. LAST SEEN is its last heartbeat (every tenth of\n"
	       "LEADER_TAKEOVER_S); a stopped instance stays listed for a day or more.\n"
	       "Against a vramd on SQLite it prints \"not clustered (SQLite store)\", exit 0.\n",
    .exec = cmd_cluster_exec,
};
