/*
 * test-httpd.c: unit tests for src/common/httpd.c. Every accepted connection has
 * TCP_NODELAY set: without it, a reply larger than a few segments (over 16 KiB) can sit
 * about 40 ms behind Nagle's algorithm and the client's delayed ACK on a keep-alive
 * connection. Timing that stall would make a flaky test, so this one checks the socket
 * option on the server's side of the connection while a request is served, and that a
 * 64 KiB reply arrives whole twice on the same connection.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "httpd.h"
#include "util.h"

#include <event2/event.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define BIG_REPLY (64 * 1024)

struct served {
	uint16_t port;
	int client_fd;
	int requests;
	int accepted_sockets; /* server-side sockets of the connection found */
	int nodelay;	      /* how many of them had TCP_NODELAY */
};

/* The server's end of our connection: a TCP socket of this process, bound to the
 * server's port, with a peer, that is not the client's end. */
static void
check_server_sockets(struct served *sv)
{
	DIR *dir = opendir("/proc/self/fd");
	assert_non_null(dir);
	struct dirent *de;
	while ((de = readdir(dir)) != NULL) {
		char *end;
		long fd = strtol(de->d_name, &end, 10);
		if (*end != '\0' || fd == sv->client_fd || fd == dirfd(dir))
			continue;
		struct sockaddr_in local, peer;
		socklen_t len = sizeof(local), plen = sizeof(peer);
		if (getsockname((int)fd, (struct sockaddr *)&local, &len) < 0 ||
		    local.sin_family != AF_INET || ntohs(local.sin_port) != sv->port ||
		    getpeername((int)fd, (struct sockaddr *)&peer, &plen) < 0)
			continue;
		int on = 0;
		socklen_t olen = sizeof(on);
		assert_int_equal(getsockopt((int)fd, IPPROTO_TCP, TCP_NODELAY, &on, &olen), 0);
		sv->accepted_sockets++;
		sv->nodelay += on != 0;
	}
	closedir(dir);
}

static void
request_cb(struct vd_http_req *req, void *arg)
{
	struct served *sv = arg;
	sv->requests++;
	check_server_sockets(sv);
	char *body = xmalloc(BIG_REPLY);
	memset(body, '#', BIG_REPLY);
	vd_http_req_reply(req, 200, body, BIG_REPLY);
	free(body);
}

/* Runs the loop until want bytes (headers and body) are read from the client side. */
static void
read_reply(struct event_base *base, int fd)
{
	size_t got = 0;
	char buf[8192];
	while (got < BIG_REPLY) {
		event_base_loop(base, EVLOOP_NONBLOCK);
		ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n > 0) {
			/* Count body bytes only: '#' never appears in the head we expect. */
			for (ssize_t i = 0; i < n; i++)
				got += buf[i] == '#';
		} else if (n == 0) {
			fail_msg("server closed the keep-alive connection");
		} else {
			usleep(1000);
		}
	}
	assert_int_equal(got, BIG_REPLY);
}

static void
test_accepted_sockets_have_nodelay(void **state)
{
	(void)state;
	struct event_base *base = event_base_new();
	struct vd_httpd_limits lim;
	vd_httpd_limits_default(&lim);
	struct served sv = {.client_fd = -1};
	struct vd_httpd *s = vd_httpd_new(base, &lim, request_cb, &sv);
	char *cause = NULL;
	if (vd_httpd_listen(s, "127.0.0.1", 0, &cause) < 0)
		fail_msg("listen: %s", cause);
	sv.port = vd_httpd_port(s);

	int fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	sv.client_fd = fd;
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(sv.port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	static const char get[] = "GET /big HTTP/1.1\r\nHost: t\r\n\r\n";
	for (int round = 1; round <= 2; round++) {
		assert_int_equal(send(fd, get, sizeof(get) - 1, 0), (ssize_t)(sizeof(get) - 1));
		read_reply(base, fd);
		assert_int_equal(sv.requests, round);
	}
	assert_int_equal(sv.accepted_sockets, 2);
	assert_int_equal(sv.nodelay, 2);
	close(fd);
	vd_httpd_free(s);
	event_base_free(base);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_accepted_sockets_have_nodelay),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
