"""vramd's HTTP server cannot be stalled, exhausted or steered by one client, and every
error it sends is one JSON object:

- malformed requests (bad request line, HTTP/2 line, unknown method, bad percent-encoding,
  long URL, huge head, no Host, unknown Transfer-Encoding) get {"error": ...};
- a body whose Content-Length is over MAX_BODY_BYTES is refused before it is sent;
- a slowloris client (one byte a second) gets 408 after HTTP_HEAD_TIMEOUT, a silent body
  after HTTP_BODY_TIMEOUT, an idle keep-alive connection is closed;
- connections over MAX_CONNECTIONS get 503; out of descriptors (ulimit -n 256), the
  listener pauses instead of spinning and logging;
- a web page cannot drive the daemon: foreign Host (DNS rebinding) and foreign Origin get
  403, a text/plain body 415; CORS only for CORS_ORIGINS;
- SSE streams are capped (MAX_EVENT_CLIENTS), their heartbeat floored at 1 s, and a
  non-reading client costs a bounded amount of memory;
- a long-poll whose client hangs up is released at once.
"""

import json
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Proc, free_port, http, run_tests, start_sim, wait_http_ready  # noqa: E402
from vramd_harness import nvml_lib_path, start_vramd, vramd_path, wait_ready  # noqa: E402

SIM = V = None


def setup_module():
    global SIM, V
    SIM = start_sim("--gpus", "8GiB", state_file=True, time_scale=200)
    V = start_vramd(SIM, "--max-body-bytes", "4096", "--http-head-timeout", "2",
                    "--http-body-timeout", "2", "--http-idle-timeout", "2",
                    "--max-event-clients", "3", "--allowed-hosts", "vramd.lan",
                    "--cors-origins", "http://app.example:8080")
    wait_ready(V)


def teardown_module():
    V.proc.assert_clean_exit()
    SIM.stop()


def raw(data, port=None, timeout=5, shutdown=False):
    """Sends raw bytes on a new connection; returns (status, headers, body) of the reply."""
    s = socket.create_connection(("127.0.0.1", port or V.port), timeout=timeout)
    try:
        s.sendall(data)
        if shutdown:
            s.shutdown(socket.SHUT_WR)
        return read_reply(s)
    finally:
        s.close()


def read_reply(s):
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            raise AssertionError("connection closed before a reply: %r" % buf[:200])
        buf += chunk
    head, body = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, v = line.split(":", 1)
        headers[k.strip().lower()] = v.strip()
    n = int(headers.get("content-length", "0"))
    while len(body) < n:
        chunk = s.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, headers, body[:n]


def assert_json_error(reply, status, *words):
    got, headers, body = reply
    assert got == status, (got, headers, body)
    assert headers.get("content-type", "").startswith("application/json"), headers
    err = json.loads(body)
    assert isinstance(err, dict) and set(err) == {"error"}, body
    for w in words:
        assert w.lower() in err["error"].lower(), (err, w)
    return headers


def get_health(headers=None):
    status, _, _ = http("GET", V.url + "/api/health", headers=headers)
    return status


def test_every_error_is_json():
    assert_json_error(raw(b"GARBAGE\r\n\r\n"), 400, "request line")
    assert_json_error(raw(b"GET / HTTP/2.0\r\nHost: localhost\r\n\r\n"), 505, "version")
    h = assert_json_error(raw(b"BREW /api/health HTTP/1.1\r\nHost: localhost\r\n\r\n"), 405,
                          "BREW")
    assert "GET" in h["allow"], h
    assert_json_error(raw(b"GET /api/job/%FF HTTP/1.1\r\nHost: localhost\r\n\r\n"), 404)
    assert_json_error(raw(b"GET /api/job/%00x HTTP/1.1\r\nHost: localhost\r\n\r\n"), 400,
                      "percent")
    assert_json_error(raw(b"GET /api/health HTTP/1.1\r\n\r\n"), 400, "Host")
    long_url = b"/api/jobs?" + b"status=complete&" * 6000
    assert_json_error(raw(b"GET " + long_url + b" HTTP/1.1\r\nHost: localhost\r\n\r\n"), 414)
    big_head = b"GET /api/health HTTP/1.1\r\nHost: localhost\r\n" + \
        b"".join(b"X-Pad-%d: %s\r\n" % (i, b"a" * 1000) for i in range(80)) + b"\r\n"
    assert_json_error(raw(big_head), 431)
    assert_json_error(raw(b"POST /api/submit HTTP/1.1\r\nHost: localhost\r\n"
                          b"Transfer-Encoding: gzip\r\n\r\n"), 501, "Transfer-Encoding")
    assert_json_error(raw(b"POST /api/submit HTTP/1.1\r\nHost: localhost\r\n"
                          b"Content-Length: 1\r\nContent-Length: 2\r\n\r\n"), 400)
    assert get_health() == 200


def test_chunked_body_is_read():
    body = json.dumps({"model": "qwen2.5:0.5b", "prompt": "hi"}).encode()
    req = (b"POST /api/submit HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
           b"Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
    status, _, reply = raw(req)
    assert status == 202, reply


def test_oversized_body_refused_before_it_is_sent():
    # A 1 GiB body is declared but never sent: the 413 comes at once.
    t0 = time.monotonic()
    reply = raw(b"POST /api/submit HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json"
                b"\r\nContent-Length: 1073741824\r\n\r\n")
    assert_json_error(reply, 413, "4096")
    assert time.monotonic() - t0 < 1.5
    # With Expect: 100-continue the client is told before it sends anything.
    reply = raw(b"POST /api/submit HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json"
                b"\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n")
    assert_json_error(reply, 413)


def test_slow_clients_time_out():
    s = socket.create_connection(("127.0.0.1", V.port), timeout=10)
    t0 = time.monotonic()
    try:
        # Slowloris: one header byte every 0.3 s never finishes a head within 2 s.
        for ch in b"GET /api/health HTTP/1.1\r\nHost: localhost\r\nX-Slow: aaaaaaaaaaaaa":
            try:
                s.send(bytes([ch]))
            except OSError:
                break
            if time.monotonic() - t0 > 2.5:
                break
            time.sleep(0.3)
            assert get_health() == 200  # others are served all along
        assert_json_error(read_reply(s), 408, "head")
        assert time.monotonic() - t0 < 4
    finally:
        s.close()
    # A head whose body never comes.
    s = socket.create_connection(("127.0.0.1", V.port), timeout=10)
    try:
        s.sendall(b"POST /api/submit HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/"
                  b"json\r\nContent-Length: 100\r\n\r\n{")
        assert_json_error(read_reply(s), 408, "body")
    finally:
        s.close()
    # An idle keep-alive connection is closed after HTTP_IDLE_TIMEOUT.
    s = socket.create_connection(("127.0.0.1", V.port), timeout=10)
    try:
        s.sendall(b"GET /api/health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert read_reply(s)[0] == 200
        t0 = time.monotonic()
        assert s.recv(100) == b""
        assert 1.5 < time.monotonic() - t0 < 4
    finally:
        s.close()


def test_browser_pages_cannot_drive_the_daemon():
    job = json.dumps({"model": "qwen2.5:0.5b", "prompt": "hi"})
    # DNS rebinding: the page's own name reaches 127.0.0.1.
    status, _, body = http("POST", V.url + "/api/submit", raw_body=job,
                           headers={"Host": "evil.example:%d" % V.port})
    assert_json_error((status, {"content-type": "application/json"}, body), 403, "Host")
    assert get_health({"Host": "vramd.lan:%d" % V.port}) == 200  # ALLOWED_HOSTS
    assert get_health({"Host": "[::1]:%d" % V.port}) == 200
    # Cross-site requests, simple (text/plain) or not.
    for path, method, payload in (("/api/submit", "POST", job),
                                  ("/api/gpu/monitoring/stop", "POST", None),
                                  ("/api/gpu/config", "PUT", '{"VRAM_SAFETY_MARGIN_MB": 0}')):
        status, h, body = http(method, V.url + path, raw_body=payload,
                               headers={"Origin": "http://evil.example",
                                        "Content-Type": "text/plain"})
        assert_json_error((status, h, body), 403, "origin")
    status, h, body = http("POST", V.url + "/api/submit", raw_body=job,
                           headers={"Content-Type": "text/plain"})
    assert_json_error((status, h, body), 415, "application/json")
    # Monitoring is still on and the margin unchanged.
    status, _, body = http("GET", V.url + "/api/gpu/status")
    assert json.loads(body)["monitoring"] is True
    # A localhost page may call; CORS headers only for CORS_ORIGINS.
    status, h, _ = http("POST", V.url + "/api/submit", raw_body=job,
                        headers={"Origin": "http://localhost:3000"})
    assert status == 202 and "access-control-allow-origin" not in h, h
    origin = "http://app.example:8080"
    status, h, _ = http("OPTIONS", V.url + "/api/submit",
                        headers={"Origin": origin, "Access-Control-Request-Method": "POST",
                                 "Access-Control-Request-Headers": "content-type"})
    assert status == 204 and h["access-control-allow-origin"] == origin, (status, h)
    assert "POST" in h["access-control-allow-methods"], h
    status, h, _ = http("POST", V.url + "/api/submit", raw_body=job, headers={"Origin": origin})
    assert status == 202 and h["access-control-allow-origin"] == origin, h


def test_connection_cap_and_descriptor_exhaustion():
    # Under ulimit -n 256 the default cap (1024) is lowered to the limit less a reserve:
    # connections beyond it get 503 and the daemon keeps answering.
    port = free_port()
    data = V.data_dir + "-fd"
    argv = ["bash", "-c", 'ulimit -n 256 && exec "$@"', "vramd", vramd_path(),
            "--listen", "127.0.0.1:%d" % port, "--data-dir", data, "--ollama", SIM.url,
            "--nvml-lib", nvml_lib_path()]
    for env, label in (({}, "cap"), ({"VRAMD_HTTP_FD_RESERVE": "0"}, "emfile")):
        env = dict(env, OLLAMA_SIM_STATE=SIM.state_file)
        proc = Proc(argv, env=env, name="vramd-" + label)
        try:
            wait_http_ready("http://127.0.0.1:%d/api/health" % port, 20, proc=proc)
            socks = []
            busy = 0
            for _ in range(400):
                try:
                    socks.append(socket.create_connection(("127.0.0.1", port), timeout=2))
                except OSError:
                    break
            time.sleep(0.5)
            cpu0 = proc_cpu_s(proc.pid)
            time.sleep(2)
            spent = proc_cpu_s(proc.pid) - cpu0
            for s in socks:
                s.setblocking(False)
                try:
                    if b"503" in s.recv(200):
                        busy += 1
                except OSError:
                    pass
            for s in socks:
                s.close()
            assert spent < 0.5, "vramd spun for %.2f s of CPU with %d connections" % (
                spent, len(socks))
            wait_until_health(port)
            log = proc.log_text()
            if label == "cap":
                assert busy >= 150, busy
                assert "MAX_CONNECTIONS lowered" in log, log[-2000:]
            else:
                assert log.count("accept failed") <= 2, log.count("accept failed")
                assert "accept failed" in log, log[-2000:]
        finally:
            proc.stop()


def proc_cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_until_health(port, timeout=10):
    deadline = time.monotonic() + timeout
    while True:
        try:
            status, _, _ = http("GET", "http://127.0.0.1:%d/api/health" % port, timeout=2)
            if status == 200:
                return
        except OSError:
            pass
        assert time.monotonic() < deadline, "no answer after the flood"
        time.sleep(0.2)


def test_sse_limits():
    status, h, body = http("GET", V.url + "/api/events?heartbeat_ms=1")
    assert_json_error((status, h, body), 400, "heartbeat_ms")
    streams = []
    try:
        for _ in range(3):
            s = socket.create_connection(("127.0.0.1", V.port), timeout=5)
            s.sendall(b"GET /api/events HTTP/1.1\r\nHost: localhost\r\n\r\n")
            assert s.recv(100).startswith(b"HTTP/1.1 200"), "stream refused"
            streams.append(s)
        status, h, body = http("GET", V.url + "/api/events")
        assert_json_error((status, h, body), 503, "MAX_EVENT_CLIENTS")
        assert h.get("retry-after"), h
    finally:
        for s in streams:
            s.close()
    # The slots free as the clients leave.
    deadline = time.monotonic() + 5
    while True:
        s = socket.create_connection(("127.0.0.1", V.port), timeout=5)
        s.sendall(b"GET /api/events HTTP/1.1\r\nHost: localhost\r\n\r\n")
        ok = s.recv(100).startswith(b"HTTP/1.1 200")
        s.close()
        if ok:
            break
        assert time.monotonic() < deadline, "SSE slots not freed"
        time.sleep(0.2)


def test_stalled_sse_clients_cost_bounded_memory():
    # 40 clients that never read, each with a 1 ms heartbeat (allowed by a test knob):
    # each may cost about the backlog cap (64 KiB here), not the 57 times as much that
    # evhttp's per-chunk buffer chains took (14.7 MiB at the 256 KiB default).
    sim_port = SIM.url.rsplit(":", 1)[1]
    v = start_vramd(SIM, "--max-event-clients", "100",
                    env={"VRAMD_SSE_MIN_HEARTBEAT_MS": "1", "VRAMD_SSE_MAX_BACKLOG": "65536",
                         # ASan keeps freed memory in quarantine: RSS would count churn.
                         "ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", "") +
                         ":quarantine_size_mb=0:thread_local_quarantine_size_kb=0"})
    socks = []
    try:
        rss0 = rss_kib(v.proc.pid)
        for _ in range(40):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.connect(("127.0.0.1", v.port))
            s.sendall(b"GET /api/events?heartbeat_ms=1 HTTP/1.1\r\nHost: localhost\r\n\r\n")
            socks.append(s)
        deadline = time.monotonic() + 30
        while v.proc.log_text().count("SSE client disconnected") < 40:
            assert time.monotonic() < deadline, v.proc.log_text()[-1500:]
            time.sleep(0.2)
        grown = rss_kib(v.proc.pid) - rss0
        assert grown < 32 * 1024, "RSS grew by %d KiB for 40 stalled clients" % grown
        assert v.health()["status"] is not None and sim_port
    finally:
        for s in socks:
            s.close()
        v.proc.stop()


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def test_departed_long_poll_is_released():
    status, _, body = http("POST", V.url + "/api/submit",
                           json_body={"model": "phi3:mini", "prompt": "hi",
                                      "options": {"num_predict": 2000}})
    assert status == 202, body
    job = json.loads(body)["job_id"]
    s = socket.create_connection(("127.0.0.1", V.port), timeout=5)
    client_port = s.getsockname()[1]
    s.sendall(b"GET /api/job/%s?wait=120 HTTP/1.1\r\nHost: localhost\r\n\r\n" % job.encode())
    time.sleep(0.3)
    assert tcp_state(V.port, client_port) == "01"  # ESTABLISHED: the poll is parked
    s.close()
    # vramd closes its end at once instead of sitting in CLOSE_WAIT until the wait ends.
    deadline = time.monotonic() + 3
    while tcp_state(V.port, client_port) == "08":
        assert time.monotonic() < deadline, "the long-poll's socket stays in CLOSE_WAIT"
        time.sleep(0.05)
    http("DELETE", V.url + "/api/job/" + job)


def tcp_state(local_port, remote_port):
    """The state (hex, as /proc/net/tcp shows it) of the loopback connection between
    these ports, seen from local_port's side; None when there is none."""
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            lport = int(fields[1].split(":")[1], 16)
            rport = int(fields[2].split(":")[1], 16)
            if lport == local_port and rport == remote_port:
                return fields[3]
    return None


if __name__ == "__main__":
    run_tests(globals())
