/*
 * fuzz-http-request.c: the HTTP/1.1 request parser of src/common/httpd.c on arbitrary bytes.
 * The input is written to one end of a socketpair whose other end the server serves;
 * every complete request gets a small reply. Whatever the bytes, the server must not
 * crash, must answer or close, and must have freed the connection once the peer has
 * gone.
 */
#include "httpd.h"

#include <assert.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct event_base *fuzz_base;
static struct vd_httpd *fuzz_server;

static void
fuzz_handler(struct vd_http_req *req, void *arg)
{
	(void)arg;
	/* Touch what handlers read. */
	(void)vd_http_req_header(req, "Host");
	(void)vd_http_req_query(req);
	size_t n = evbuffer_get_length(vd_http_req_body(req));
	assert(vd_http_req_path(req)[0] == '/' || vd_http_req_path(req)[0] == '*');
	if (n % 2)
		vd_http_req_reply(req, 200, "{}", 2);
	else {
		vd_http_req_start(req, 200);
		vd_http_req_send(req, "a", 1);
		vd_http_req_end(req);
	}
}

static void
fuzz_drain(int fd)
{
	char sink[65536];
	while (read(fd, sink, sizeof(sink)) > 0)
		;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (fuzz_base == NULL) {
		fuzz_base = event_base_new();
		struct vd_httpd_limits lim;
		vd_httpd_limits_default(&lim);
		lim.max_body_bytes = 4096;
		lim.max_head_bytes = 8192;
		lim.max_uri_bytes = 2048;
		fuzz_server = vd_httpd_new(fuzz_base, &lim, fuzz_handler, NULL);
	}
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
		return 0;
	fcntl(sv[1], F_SETFL, O_NONBLOCK);
	vd_httpd_adopt(fuzz_server, sv[0], "127.0.0.1:5001");
	size_t off = 0;
	for (int i = 0; i < 10000 && off < size; i++) {
		ssize_t w = write(sv[1], data + off, size - off);
		if (w > 0)
			off += (size_t)w;
		event_base_loop(fuzz_base, EVLOOP_NONBLOCK);
		fuzz_drain(sv[1]);
	}
	shutdown(sv[1], SHUT_WR);
	for (int i = 0; i < 20; i++) {
		event_base_loop(fuzz_base, EVLOOP_NONBLOCK);
		fuzz_drain(sv[1]);
	}
	close(sv[1]);
	struct vd_httpd_stats st;
	for (int i = 0; i < 100; i++) {
		event_base_loop(fuzz_base, EVLOOP_NONBLOCK);
		vd_httpd_get_stats(fuzz_server, &st);
		if (st.connections == 0)
			break;
	}
	vd_httpd_get_stats(fuzz_server, &st);
	assert(st.connections == 0);
	return 0;
}
