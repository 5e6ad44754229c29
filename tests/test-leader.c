/*
 * test-leader.c: src/store/leader.c against a real PostgreSQL (run under
 * tests/pgserver.py, which sets VRAMD_TEST_PG_URL). Two instances on one loop: exactly
 * one is elected; notifications from one reach the other in under 100 ms (printed),
 * also when sent by another session's transaction (delivered at its commit, not
 * before); closing the leader elects the other within the takeover time;
 * pg_terminate_backend on the leader's session demotes it and the other takes over;
 * terminating every session leaves exactly one leader; a leader closed from inside its
 * own on_elected is freed safely. Also the argument checks and an unreachable server.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "leader.h"
#include "util.h"

#include <errno.h>
#include <event2/event.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>

#define TAKEOVER_MS 5000

struct inst {
	struct leader *l;
	char id[64];
	int elected;
	int demoted;
	int64_t elected_at_ms;
	int64_t demoted_at_ms;
	int submitted;
	int changed;
	char last_job[64];
	int64_t last_note_at_us;
	bool close_on_elected;
};

static struct event_base *base;
static const char *pg_url;
static int test_counter;

static int64_t
now_us(void)
{
	return vd_now_mono_ns() / 1000;
}

/* Every leader a test opened, so that a failed test (cmocka jumps out of it) does not
 * leave one holding the lock for the next test. */
static struct leader *opened[16];

static void
opened_forget(struct leader *l)
{
	for (size_t i = 0; i < sizeof(opened) / sizeof(opened[0]); i++) {
		if (opened[i] == l)
			opened[i] = NULL;
	}
}

/* A backend test_frozen_backend stopped, to resume if the test fails midway. */
static int frozen_pid;

static int
close_leftovers(void **state)
{
	(void)state;
	if (frozen_pid > 0)
		kill(frozen_pid, SIGCONT);
	frozen_pid = 0;
	for (size_t i = 0; i < sizeof(opened) / sizeof(opened[0]); i++) {
		leader_close(opened[i]);
		opened[i] = NULL;
	}
	return 0;
}

static void
opened_remember(struct leader *l)
{
	for (size_t i = 0; i < sizeof(opened) / sizeof(opened[0]); i++) {
		if (opened[i] == NULL) {
			opened[i] = l;
			return;
		}
	}
	fail_msg("too many leaders open");
}

static void
inst_elected(void *arg)
{
	struct inst *in = arg;
	in->elected++;
	in->elected_at_ms = vd_now_mono_ms();
	/* The module promises leader_check() is already true here. */
	assert_true(leader_check(in->l));
	if (in->close_on_elected) {
		opened_forget(in->l);
		leader_close(in->l);
		in->l = NULL;
	}
}

static void
inst_demoted(void *arg)
{
	struct inst *in = arg;
	in->demoted++;
	in->demoted_at_ms = vd_now_mono_ms();
	assert_false(leader_check(in->l));
	assert_false(leader_is_leader(in->l));
}

static void
inst_note(struct inst *in, const char *job_id)
{
	vd_strlcpy(in->last_job, job_id, sizeof(in->last_job));
	in->last_note_at_us = now_us();
}

static void
inst_submitted(const char *job_id, void *arg)
{
	struct inst *in = arg;
	in->submitted++;
	inst_note(in, job_id);
}

static void
inst_changed(const char *job_id, void *arg)
{
	struct inst *in = arg;
	in->changed++;
	inst_note(in, job_id);
}

static const struct leader_callbacks inst_cbs = {
    .on_elected = inst_elected,
    .on_demoted = inst_demoted,
    .on_job_submitted = inst_submitted,
    .on_job_changed = inst_changed,
};

static void
inst_open(struct inst *in, const char *name)
{
	struct leader_options opt = {.address = "127.0.0.1:5001", .takeover_ms = TAKEOVER_MS};
	char *cause = NULL;

	memset(in, 0, sizeof(*in));
	snprintf(in->id, sizeof(in->id), "%s-%d", name, ++test_counter);
	assert_int_equal(leader_open(base, pg_url, in->id, &opt, &inst_cbs, in, &in->l, &cause), 0);
	assert_null(cause);
	opened_remember(in->l);
}

static void
inst_close(struct inst *in)
{
	opened_forget(in->l);
	leader_close(in->l);
	in->l = NULL;
}

static void
wake_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
}

/* Runs the loop until pred(ctx) holds or ms pass; returns whether it held. */
static bool
run_until(bool (*pred)(void *ctx), void *ctx, int64_t ms)
{
	struct event *wake = event_new(base, -1, EV_PERSIST, wake_cb, NULL);
	struct timeval tv = {0, 2000};
	int64_t end = vd_now_mono_ms() + ms;
	bool held;

	event_add(wake, &tv);
	while (!(held = pred(ctx)) && vd_now_mono_ms() < end)
		event_base_loop(base, EVLOOP_ONCE);
	event_free(wake);
	return held;
}

static bool
never(void *ctx)
{
	(void)ctx;
	return false;
}

static void
run_for(int64_t ms)
{
	run_until(never, NULL, ms);
}

static bool
inst_connected(void *ctx)
{
	struct inst *in = ctx;
	return leader_is_connected(in->l);
}

static bool
inst_was_elected(void *ctx)
{
	struct inst *in = ctx;
	return in->elected > 0;
}

struct pair {
	struct inst *a;
	struct inst *b;
};

static int
leaders(const struct pair *p)
{
	return (p->a->l != NULL && leader_is_leader(p->a->l)) +
	       (p->b->l != NULL && leader_is_leader(p->b->l));
}

static bool
pair_settled(void *ctx)
{
	struct pair *p = ctx;
	return leader_is_connected(p->a->l) && leader_is_connected(p->b->l) && leaders(p) == 1;
}

static struct inst *
pair_leader(struct pair *p)
{
	return leader_is_leader(p->a->l) ? p->a : p->b;
}

static struct inst *
pair_follower(struct pair *p)
{
	return leader_is_leader(p->a->l) ? p->b : p->a;
}

/* A blocking admin session beside the loop (the loop does not run while it waits). */
static PGconn *
admin_open(void)
{
	PGconn *c = PQconnectdb(pg_url);
	assert_int_equal(PQstatus(c), CONNECTION_OK);
	return c;
}

static void
admin_exec(PGconn *c, const char *sql)
{
	PGresult *r = PQexec(c, sql);
	ExecStatusType st = PQresultStatus(r);
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
		fail_msg("%s: %s", sql, PQerrorMessage(c));
	PQclear(r);
}

static void
terminate_backend(PGconn *c, int pid)
{
	char sql[128];
	snprintf(sql, sizeof(sql), "SELECT pg_terminate_backend(%d)", pid);
	admin_exec(c, sql);
}

struct listing {
	const char *want_a;
	const char *want_b;
	int seen;
	int holders;
};

static void
listing_cb(const struct leader_instance *inst, void *arg)
{
	struct listing *ls = arg;
	if (strcmp(inst->id, ls->want_a) != 0 && strcmp(inst->id, ls->want_b) != 0)
		return; /* rows of earlier tests */
	ls->seen++;
	ls->holders += inst->holds_lock;
	assert_string_equal(inst->address, "127.0.0.1:5001");
	assert_string_equal(inst->role, inst->holds_lock ? "leader" : "follower");
	assert_true(inst->last_seen_age_ms < TAKEOVER_MS);
}

static bool
listing_complete(void *ctx)
{
	struct pair *p = ctx;
	struct listing ls = {p->a->id, p->b->id, 0, 0};
	leader_instances(p->b->l, listing_cb, &ls);
	return ls.seen == 2 && ls.holders == 1;
}

static void
test_one_leader(void **state)
{
	struct inst a, b;
	struct pair p = {&a, &b};
	(void)state;

	inst_open(&a, "one-a");
	inst_open(&b, "one-b");
	assert_true(run_until(pair_settled, &p, TAKEOVER_MS));
	/* Several ticks later still exactly one, elected once, never demoted. */
	run_for(TAKEOVER_MS / 3);
	assert_int_equal(leaders(&p), 1);
	assert_int_equal(a.elected + b.elected, 1);
	assert_int_equal(a.demoted + b.demoted, 0);
	assert_true(leader_check(pair_leader(&p)->l));
	assert_false(leader_check(pair_follower(&p)->l));
	/* Both see the same listing: both rows, one holder, and who it is. */
	assert_true(run_until(listing_complete, &p, TAKEOVER_MS));
	assert_non_null(leader_current(a.l));
	assert_string_equal(leader_current(a.l), pair_leader(&p)->id);
	assert_string_equal(leader_current(b.l), pair_leader(&p)->id);
	assert_true(leader_backend_pid(a.l) > 0);
	assert_int_not_equal(leader_backend_pid(a.l), leader_backend_pid(b.l));
	inst_close(&a);
	inst_close(&b);
}

struct wait_note {
	struct inst *in;
	int count_before;
	bool changed;
};

static bool
note_arrived(void *ctx)
{
	struct wait_note *w = ctx;
	return (w->changed ? w->in->changed : w->in->submitted) > w->count_before;
}

static int
cmp_i64(const void *x, const void *y)
{
	int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;
	return (a > b) - (a < b);
}

/* Sends n notifications from `from` to `to` through the module; returns the worst
 * latency in microseconds and prints the median. */
static int64_t
notify_round(struct inst *from, struct inst *to, bool changed, int n)
{
	int64_t lat[32];
	char job[32];
	char *cause = NULL;

	assert_true(n <= 32);
	for (int i = 0; i < n; i++) {
		struct wait_note w = {to, changed ? to->changed : to->submitted, changed};
		int64_t t0;
		snprintf(job, sizeof(job), "job-%d-%d", test_counter, i);
		t0 = now_us();
		if (changed)
			assert_int_equal(leader_notify_changed(from->l, job, &cause), 0);
		else
			assert_int_equal(leader_notify_submitted(from->l, job, &cause), 0);
		assert_true(run_until(note_arrived, &w, 1000));
		assert_string_equal(to->last_job, job);
		lat[i] = to->last_note_at_us - t0;
	}
	qsort(lat, (size_t)n, sizeof(lat[0]), cmp_i64);
	printf("notification %s -> %s (%s): median %.2f ms, max %.2f ms over %d\n", from->id,
	       to->id, changed ? "changed" : "submitted", lat[n / 2] / 1000.0, lat[n - 1] / 1000.0,
	       n);
	return lat[n - 1];
}

static void
test_notify_latency(void **state)
{
	struct inst a, b;
	struct pair p = {&a, &b};
	(void)state;

	inst_open(&a, "note-a");
	inst_open(&b, "note-b");
	assert_true(run_until(pair_settled, &p, TAKEOVER_MS));
	/* Follower -> leader (a submission) and leader -> follower (a result). */
	assert_true(notify_round(pair_follower(&p), pair_leader(&p), false, 20) < 100000);
	assert_true(notify_round(pair_leader(&p), pair_follower(&p), true, 20) < 100000);
	inst_close(&a);
	inst_close(&b);
}

/* The store's way: pg_notify inside its own transaction, on another session. */
static void
test_notify_in_transaction(void **state)
{
	struct inst a;
	PGconn *c;
	PGresult *r;
	const char *values[2] = {LEADER_CHANNEL_SUBMITTED, "job-tx"};
	struct wait_note w;
	int64_t t0;
	(void)state;

	inst_open(&a, "tx-a");
	assert_true(run_until(inst_connected, &a, TAKEOVER_MS));
	c = admin_open();
	admin_exec(c, "BEGIN");
	r = PQexecParams(c, LEADER_SQL_NOTIFY, 2, NULL, values, NULL, NULL, 0);
	assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
	PQclear(r);
	/* Not before the commit. */
	w = (struct wait_note){&a, a.submitted, false};
	assert_false(run_until(note_arrived, &w, 300));
	t0 = now_us();
	admin_exec(c, "COMMIT");
	assert_true(run_until(note_arrived, &w, 1000));
	assert_string_equal(a.last_job, "job-tx");
	printf("notification from a committed transaction: %.2f ms after COMMIT returned\n",
	       (a.last_note_at_us - t0) / 1000.0);
	assert_true(a.last_note_at_us - t0 < 100000);
	/* A rolled-back transaction sends nothing. */
	admin_exec(c, "BEGIN");
	r = PQexecParams(c, LEADER_SQL_NOTIFY, 2, NULL, values, NULL, NULL, 0);
	PQclear(r);
	admin_exec(c, "ROLLBACK");
	w = (struct wait_note){&a, a.submitted, false};
	assert_false(run_until(note_arrived, &w, 300));
	PQfinish(c);
	inst_close(&a);
}

struct takeover {
	struct inst *in;
	int elected_before;
};

static bool
took_over(void *ctx)
{
	struct takeover *t = ctx;
	return t->in->elected > t->elected_before && leader_is_leader(t->in->l);
}

static void
test_close_elects_other(void **state)
{
	struct inst a, b;
	struct pair p = {&a, &b};
	struct inst *lead, *other;
	struct takeover t;
	int64_t t0;
	(void)state;

	inst_open(&a, "close-a");
	inst_open(&b, "close-b");
	assert_true(run_until(pair_settled, &p, TAKEOVER_MS));
	lead = pair_leader(&p);
	other = pair_follower(&p);
	t = (struct takeover){other, other->elected};
	t0 = vd_now_mono_ms();
	inst_close(lead);
	assert_true(run_until(took_over, &t, TAKEOVER_MS));
	printf("closed leader: the other took over after %lld ms\n",
	       (long long)(other->elected_at_ms - t0));
	assert_true(other->elected_at_ms - t0 < TAKEOVER_MS);
	assert_int_equal(lead->demoted, 0); /* leader_close is not a demotion */
	inst_close(other);
}

struct demotion {
	struct inst *killed;
	struct takeover t;
};

static bool
demoted_and_taken(void *ctx)
{
	struct demotion *d = ctx;
	return d->killed->demoted == 1 && took_over(&d->t);
}

static void
test_terminate_backend(void **state)
{
	struct inst a, b;
	struct pair p = {&a, &b};
	struct inst *lead, *other;
	struct demotion d;
	PGconn *c;
	int64_t t0;
	(void)state;

	inst_open(&a, "term-a");
	inst_open(&b, "term-b");
	assert_true(run_until(pair_settled, &p, TAKEOVER_MS));
	lead = pair_leader(&p);
	other = pair_follower(&p);
	d = (struct demotion){lead, {other, other->elected}};
	c = admin_open();
	t0 = vd_now_mono_ms();
	terminate_backend(c, leader_backend_pid(lead->l));
	assert_true(run_until(demoted_and_taken, &d, TAKEOVER_MS));
	printf("terminated the leader's backend: demoted after %lld ms, the other elected after "
	       "%lld ms\n",
	       (long long)(lead->demoted_at_ms - t0), (long long)(other->elected_at_ms - t0));
	assert_true(other->elected_at_ms - t0 < TAKEOVER_MS);
	assert_false(leader_check(lead->l));
	/* The old leader comes back as a follower; still exactly one leader. */
	assert_true(run_until(pair_settled, &p, TAKEOVER_MS));
	run_for(TAKEOVER_MS / 3);
	assert_true(pair_settled(&p));
	assert_true(leader_is_leader(other->l));
	assert_int_equal(lead->elected, 1);
	PQfinish(c);
	inst_close(&a);
	inst_close(&b);
}

/* What a server restart does to the sessions: all of them end at once. */
struct freeze {
	struct pair *p;
	struct inst *lead;
	bool two_leaders; /* ever seen both leading */
	bool check_off;	  /* wait for !leader_check(lead) rather than the demotion */
};

static bool
frozen_step(void *ctx)
{
	struct freeze *f = ctx;
	if (leaders(f->p) > 1)
		f->two_leaders = true;
	return f->check_off ? !leader_check(f->lead->l) : f->lead->demoted > 0;
}

/*
 * What a network cut looks like from the leader's side: its backend stops answering
 * (SIGSTOP) while the lock stays held. leader_check turns false first (no reply to a
 * query sent within check_ms), then the watchdog gives up the connection (on_demoted)
 * after server_drop_ms; the follower cannot take the lock meanwhile, so nobody leads
 * for a while, never two. Once the backend runs again it sees the closed socket and
 * exits, and the follower takes over.
 */
static void
test_frozen_backend(void **state)
{
	struct inst a, b;
	struct pair p = {&a, &b};
	struct freeze f;
	struct takeover t;
	int pid;
	int64_t t0, t_check, t_demoted, t_cont;
	(void)state;

	inst_open(&a, "freeze-a");
	inst_open(&b, "freeze-b");
	assert_true(run_until(pair_settled, &p, TAKEOVER_MS));
	f = (struct freeze){&p, pair_leader(&p), false, true};
	t = (struct takeover){pair_follower(&p), pair_follower(&p)->elected};
	pid = leader_backend_pid(f.lead->l);
	assert_true(leader_check(f.lead->l));
	t0 = vd_now_mono_ms();
	frozen_pid = pid;
	assert_int_equal(kill(pid, SIGSTOP), 0);
	/* check_ms is 1.5 s with a 5 s takeover; one tick (0.5 s) late at worst, plus
	 * slack for a loaded machine. */
	assert_true(run_until(frozen_step, &f, 4000));
	t_check = vd_now_mono_ms() - t0;
	f.check_off = false;
	assert_true(run_until(frozen_step, &f, 6000));
	t_demoted = f.lead->demoted_at_ms - t0;
	run_for(300);
	assert_false(leader_is_leader(t.in->l)); /* the frozen backend still holds the lock */
	assert_false(f.two_leaders);
	t_cont = vd_now_mono_ms();
	assert_int_equal(kill(pid, SIGCONT), 0);
	frozen_pid = 0;
	assert_true(run_until(took_over, &t, TAKEOVER_MS));
	printf("frozen leader backend: leader_check false after %lld ms, demoted after %lld ms, "
	       "the other elected %lld ms after SIGCONT\n",
	       (long long)t_check, (long long)t_demoted, (long long)(t.in->elected_at_ms - t_cont));
	/* The bound: check first, demotion no earlier than the server could drop us. */
	assert_true(t_check >= 1500 - 500 && t_check < t_demoted);
	assert_true(t_demoted >= 3000);
	assert_true(run_until(pair_settled, &p, TAKEOVER_MS));
	inst_close(&a);
	inst_close(&b);
}

struct demote_count {
	struct inst *in;
	int want;
};

static bool
demoted_enough(void *ctx)
{
	struct demote_count *w = ctx;
	return w->in->demoted >= w->want;
}

static void
test_terminate_all(void **state)
{
	struct inst a, b;
	struct pair p = {&a, &b};
	PGconn *c;
	(void)state;

	inst_open(&a, "all-a");
	inst_open(&b, "all-b");
	assert_true(run_until(pair_settled, &p, TAKEOVER_MS));
	c = admin_open();
	for (int round = 0; round < 3; round++) {
		struct inst *lead = pair_leader(&p);
		struct demote_count w = {lead, lead->demoted + 1};
		admin_exec(c, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid <> "
			      "pg_backend_pid() AND datname = current_database()");
		/* Both lose the session; the leader is demoted at once, then both reconnect
		 * and exactly one leads again, and stays so. */
		assert_true(run_until(demoted_enough, &w, TAKEOVER_MS));
		assert_true(run_until(pair_settled, &p, TAKEOVER_MS));
		run_for(TAKEOVER_MS / 3);
		assert_true(pair_settled(&p));
	}
	assert_int_equal(a.elected - a.demoted + b.elected - b.demoted, 1);
	PQfinish(c);
	inst_close(&a);
	inst_close(&b);
}

static void
test_close_inside_callback(void **state)
{
	struct inst a, b;
	struct takeover t;
	(void)state;

	inst_open(&a, "cb-a");
	a.close_on_elected = true;
	assert_true(run_until(inst_was_elected, &a, TAKEOVER_MS));
	assert_null(a.l);
	assert_int_equal(a.elected, 1);
	/* Its session is closed, so the lock is free for the next one. */
	inst_open(&b, "cb-b");
	t = (struct takeover){&b, 0};
	assert_true(run_until(took_over, &t, TAKEOVER_MS));
	inst_close(&b);
}

static void
test_bad_arguments(void **state)
{
	struct leader *l = (struct leader *)1;
	struct leader_options opt = {.takeover_ms = 1000};
	char *cause = NULL;
	(void)state;

	assert_int_equal(leader_open(base, pg_url, "", NULL, &inst_cbs, NULL, &l, &cause), -EINVAL);
	assert_null(l);
	assert_non_null(strstr(cause, "instance id"));
	free(cause);
	cause = NULL;
	assert_int_equal(leader_open(base, pg_url, "x", &opt, &inst_cbs, NULL, &l, &cause),
			 -EINVAL);
	assert_non_null(strstr(cause, "1000 ms"));
	free(cause);
	cause = NULL;
	assert_int_equal(
	    leader_open(base, "host=127.0.0.1 port", "x", NULL, &inst_cbs, NULL, &l, &cause),
	    -EINVAL);
	assert_non_null(strstr(cause, "bad PostgreSQL URL"));
	free(cause);
}

/* A server that does not answer is not an error: no leader, notifications refused,
 * and it keeps retrying (the loop stays responsive meanwhile). */
static void
test_unreachable(void **state)
{
	struct inst a = {0};
	char *cause = NULL;
	(void)state;

	snprintf(a.id, sizeof(a.id), "down-%d", ++test_counter);
	/* Port 1 on loopback: connection refused at once. */
	assert_int_equal(leader_open(base, "postgresql://vramd@127.0.0.1:1/vramd", a.id, NULL,
				     &inst_cbs, &a, &a.l, &cause),
			 0);
	run_for(500);
	assert_false(leader_is_connected(a.l));
	assert_false(leader_is_leader(a.l));
	assert_false(leader_check(a.l));
	assert_int_equal(leader_notify_submitted(a.l, "job-x", &cause), -ENOTCONN);
	assert_non_null(strstr(cause, "not connected"));
	free(cause);
	assert_int_equal(a.elected + a.submitted, 0);
	inst_close(&a);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(test_bad_arguments, close_leftovers),
	    cmocka_unit_test_teardown(test_unreachable, close_leftovers),
	    cmocka_unit_test_teardown(test_one_leader, close_leftovers),
	    cmocka_unit_test_teardown(test_notify_latency, close_leftovers),
	    cmocka_unit_test_teardown(test_notify_in_transaction, close_leftovers),
	    cmocka_unit_test_teardown(test_close_elects_other, close_leftovers),
	    cmocka_unit_test_teardown(test_terminate_backend, close_leftovers),
	    cmocka_unit_test_teardown(test_terminate_all, close_leftovers),
	    cmocka_unit_test_teardown(test_close_inside_callback, close_leftovers),
	    cmocka_unit_test_teardown(test_frozen_backend, close_leftovers),
	};
	int rc;

	pg_url = getenv("VRAMD_TEST_PG_URL");
	if (pg_url == NULL || pg_url[0] == '\0') {
		fprintf(stderr, "test-leader: VRAMD_TEST_PG_URL is not set; run it under "
				"python3 tests/pgserver.py -- (as ctest does)\n");
		return 1;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	base = event_base_new();
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	event_base_free(base);
	return rc;
}
