/*
 * leader-node.c: one instance's leader election (src/store/leader.c) and nothing else,
 * for tests/integration/test_leader_failover.py, which runs several and kills the leader.
 *
 *   leader-node PG_URL INSTANCE_ID [TAKEOVER_MS]
 *
 * Prints one line per event on stdout, with the wall clock in Unix milliseconds (the
 * test compares it with the time it sent SIGKILL): "CONNECTED <ms>" once the session is
 * set up, "ELECTED <ms>", "DEMOTED <ms>". Runs until SIGTERM or SIGINT.
 */
#include "leader.h"
#include "util.h"

#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

struct node {
	struct event_base *base;
	struct leader *l;
	bool connected;
};

static void
node_elected(void *arg)
{
	(void)arg;
	printf("ELECTED %lld\n", (long long)vd_now_wall_ms());
}

static void
node_demoted(void *arg)
{
	struct node *n = arg;
	n->connected = false;
	printf("DEMOTED %lld\n", (long long)vd_now_wall_ms());
}

static void
node_poll_cb(evutil_socket_t fd, short what, void *arg)
{
	struct node *n = arg;
	(void)fd;
	(void)what;
	if (leader_is_connected(n->l) != n->connected) {
		n->connected = !n->connected;
		if (n->connected)
			printf("CONNECTED %lld\n", (long long)vd_now_wall_ms());
	}
}

static void
node_stop_cb(evutil_socket_t fd, short what, void *arg)
{
	struct node *n = arg;
	(void)fd;
	(void)what;
	event_base_loopbreak(n->base);
}

int
main(int argc, char **argv)
{
	static const struct leader_callbacks cbs = {.on_elected = node_elected,
						    .on_demoted = node_demoted};
	struct leader_options opt = {0};
	struct node n = {0};
	struct event *poll_ev, *term_ev, *int_ev;
	struct timeval tick = {0, 20000};
	char *cause = NULL;

	if (argc < 3 || argc > 4) {
		fprintf(stderr, "usage: leader-node PG_URL INSTANCE_ID [TAKEOVER_MS]\n");
		return 2;
	}
	if (argc == 4)
		opt.takeover_ms = strtoll(argv[3], NULL, 10);
	setvbuf(stdout, NULL, _IOLBF, 0);
	n.base = event_base_new();
	if (leader_open(n.base, argv[1], argv[2], &opt, &cbs, &n, &n.l, &cause) < 0) {
		fprintf(stderr, "leader-node: %s\n", cause);
		free(cause);
		return 1;
	}
	poll_ev = event_new(n.base, -1, EV_PERSIST, node_poll_cb, &n);
	event_add(poll_ev, &tick);
	term_ev = evsignal_new(n.base, SIGTERM, node_stop_cb, &n);
	int_ev = evsignal_new(n.base, SIGINT, node_stop_cb, &n);
	event_add(term_ev, NULL);
	event_add(int_ev, NULL);
	event_base_dispatch(n.base);
	leader_close(n.l);
	event_free(poll_ev);
	event_free(term_ev);
	event_free(int_ev);
	event_base_free(n.base);
	return 0;
}
