"""ollama-sim's faults on demand (POST /sim/fault, GET/DELETE /sim/faults,
--fault-rate/--fault-seed/--fault-kinds): each fault kind against its own sim,
the 400s for bad fault JSON, and the pending list and counters."""

import http.client as httpclient
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import http, http_json, ndjson, run_tests, start_sim, wait_until  # noqa: E402

MODEL = "qwen2.5:0.5b"
OTHER = "tinyllama:1.1b"
RUNTIME_OOM = "an error was encountered while running the model: CUDA error: out of memory"
BUSY = "server busy, please try again.  maximum pending requests exceeded"


def add_fault(sim, **spec):
    status, reply = http_json("POST", sim.url + "/sim/fault", json_body=spec)
    assert status == 200, (status, reply)
    return reply


def faults(sim):
    status, reply = http_json("GET", sim.url + "/sim/faults")
    assert status == 200, (status, reply)
    return reply


def generate(sim, model=MODEL, stream=False, num_predict=20, timeout=30):
    return http("POST", sim.url + "/api/generate", timeout=timeout,
                json_body={"model": model, "prompt": "hi", "stream": stream,
                           "options": {"num_predict": num_predict}})


def raw_post(sim, path, body, timeout=10):
    """POSTs over a bare socket and reads until the server closes: returns the raw
    bytes, so a reply cut off mid-way can be inspected."""
    import json
    data = json.dumps(body).encode()
    s = socket.create_connection(("127.0.0.1", sim.port), timeout=timeout)
    s.sendall(b"POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
              b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (path.encode(), len(data),
                                                                     data))
    out = b""
    while True:
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        out += chunk
    s.close()
    return out


def test_bad_fault_json_gets_400_naming_the_field():
    sim = start_sim()
    try:
        cases = [
            ({}, '"type"'),
            ({"type": "meteor"}, '"type"'),
            ({"type": "hang"}, '"seconds"'),
            ({"type": "hang", "seconds": 0}, '"seconds"'),
            ({"type": "hang", "seconds": "1"}, '"seconds"'),
            ({"type": "slow", "factor": -2}, '"factor"'),
            ({"type": "error", "status": 200}, '"status"'),
            ({"type": "error", "body": 5}, '"body"'),
            ({"type": "crash", "count": 0}, '"count"'),
            ({"type": "crash", "after_chunks": 1.5}, '"after_chunks"'),
            ({"type": "reset", "seconds": 1}, '"seconds"'),
            ({"type": "error", "model": ""}, '"model"'),
            ({"type": "error", "endpoint": "/api/pull"}, '"endpoint"'),
            ({"type": "slow", "factor": 2, "endpoint": "/api/tags"}, '"endpoint"'),
            ({"type": "crash", "endpoint": "/api/generate"}, '"endpoint"'),
            ({"type": "error", "colour": "red"}, '"colour"'),
        ]
        for spec, field in cases:
            status, reply = http_json("POST", sim.url + "/sim/fault", json_body=spec)
            assert status == 400, (spec, status, reply)
            assert field in reply["error"], (spec, reply)
        status, reply = http_json("POST", sim.url + "/sim/fault", raw_body="[1]")
        assert status == 400 and "object" in reply["error"], reply
        assert faults(sim)["pending"] == []
        sim.proc.assert_clean_exit()
    finally:
        sim.stop()


def test_error_fault_pending_list_and_counters():
    sim = start_sim()
    try:
        added = add_fault(sim, type="error", status=503, count=2, model=MODEL,
                          endpoint="/api/generate")
        assert added["body"] == {"error": BUSY}, added
        pending = faults(sim)["pending"]
        assert len(pending) == 1 and pending[0]["count"] == 2, pending
        assert sim.state()["faults"]["pending"] == pending
        # Another model and another endpoint are not matched.
        status, _, _ = generate(sim, model=OTHER)
        assert status == 200
        status, _, _ = http("POST", sim.url + "/api/show", json_body={"model": MODEL})
        assert status == 200
        for left in (1, 0):
            status, _, body = generate(sim)
            assert status == 503 and body == b'{"error":"' + BUSY.encode() + b'"}', body
            assert len(faults(sim)["pending"]) == left
        status, _, _ = generate(sim)
        assert status == 200
        assert faults(sim)["counters"]["error"] == 2
        # Default 500 body, and a message of one's own.
        add_fault(sim, type="error")
        status, reply = http_json("GET", sim.url + "/api/tags")
        assert status == 500 and "unexpectedly stopped" in reply["error"], reply
        add_fault(sim, type="error", status=429, body="slow down")
        status, reply = http_json("GET", sim.url + "/api/ps")
        assert (status, reply) == (429, {"error": "slow down"})
        # DELETE drops pending faults but keeps the counters; /sim/reset zeroes them.
        add_fault(sim, type="error", count=5)
        status, reply = http_json("DELETE", sim.url + "/sim/faults")
        assert status == 200 and reply["pending"] == [] and reply["counters"]["error"] == 4
        assert http("GET", sim.url + "/api/tags")[0] == 200
        http_json("POST", sim.url + "/sim/reset")
        assert faults(sim)["counters"]["error"] == 0
        sim.proc.assert_clean_exit()
    finally:
        sim.stop()


def test_crash_after_chunks_kills_mid_stream():
    sim = start_sim()
    try:
        add_fault(sim, type="crash", after_chunks=3)
        raw = raw_post(sim, "/api/generate", {"model": MODEL, "prompt": "hi"})
        head, _, got = raw.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), raw
        wait_until(lambda: not sim.proc.alive(), timeout=10, what="the sim to die")
        assert sim.proc.popen.returncode == -9, sim.proc.popen.returncode
        assert "fault: crash (mid-reply)" in sim.proc.log_text()
        assert got.count(b'"done":false') == 3 and b'"done":true' not in got, got
    finally:
        sim.stop()


def test_crash_during_load():
    sim = start_sim("--start-cost", "2s")
    try:
        add_fault(sim, type="crash", model=OTHER)
        # A loaded model of another name is not affected.
        assert generate(sim)[0] == 200
        assert faults(sim)["pending"][0]["during"] == "load"
        t0 = time.monotonic()
        try:
            status, _, body = generate(sim, model=OTHER)
            raise AssertionError("answered %d %r" % (status, body))
        except (httpclient.RemoteDisconnected, ConnectionError):
            pass
        wait_until(lambda: not sim.proc.alive(), timeout=10, what="the sim to die")
        assert sim.proc.popen.returncode == -9
        assert "crash during the load of %s" % OTHER in sim.proc.log_text()
        assert time.monotonic() - t0 < 5
    finally:
        sim.stop()


def test_hang_accepts_but_answers_nothing_until_it_ends():
    sim = start_sim()
    try:
        assert generate(sim)[0] == 200
        add_fault(sim, type="hang", seconds=1.5, endpoint="/api/ps")
        assert http("GET", sim.url + "/api/tags")[0] == 200  # not the endpoint
        t0 = time.monotonic()
        try:
            http("GET", sim.url + "/api/ps", timeout=0.5)
            raise AssertionError("answered during the hang")
        except socket.timeout:
            pass
        # Every Ollama request hangs now (connections are accepted); /sim/* answers.
        assert faults(sim)["hanging_s"] > 0
        s = socket.create_connection(("127.0.0.1", sim.port), timeout=2)
        s.close()
        status, _, body = generate(sim, timeout=10)
        waited = time.monotonic() - t0
        assert status == 200 and waited >= 1.4, (status, waited)
        assert faults(sim)["counters"]["hang"] == 1
        assert http("GET", sim.url + "/api/ps", timeout=2)[0] == 200
        sim.proc.assert_clean_exit()
    finally:
        sim.stop()


def test_slow_divides_tokens_per_second():
    sim = start_sim(time_scale=1)
    try:
        generate(sim, num_predict=1)  # loaded
        status, _, body = generate(sim, num_predict=10)
        import json
        normal = json.loads(body)
        add_fault(sim, type="slow", factor=0.25, model=MODEL)
        t0 = time.monotonic()
        status, _, body = generate(sim, num_predict=10)
        slow_s = time.monotonic() - t0
        slow = json.loads(body)
        assert status == 200 and slow["eval_count"] == normal["eval_count"]
        ratio = slow["eval_duration"] / normal["eval_duration"]
        assert abs(ratio - 4.0) < 0.05, ratio
        assert slow_s * 1e9 >= 0.9 * (slow["eval_duration"]), (slow_s, slow)
        assert faults(sim)["counters"]["slow"] == 1
        sim.proc.assert_clean_exit()
    finally:
        sim.stop()


def test_oom_runtime_fails_generation_and_expires_every_runner():
    sim = start_sim("--gpus", "24GiB")
    try:
        assert generate(sim, model=OTHER)[0] == 200
        assert generate(sim)[0] == 200
        _, ps = http_json("GET", sim.url + "/api/ps")
        assert len(ps["models"]) == 2
        add_fault(sim, type="oom_runtime", model=MODEL)
        status, reply = http_json("POST", sim.url + "/api/generate",
                                  json_body={"model": MODEL, "prompt": "x", "stream": False})
        assert (status, reply) == (500, {"error": RUNTIME_OOM})
        wait_until(lambda: http_json("GET", sim.url + "/api/ps")[1]["models"] == [],
                   timeout=10, what="every runner to expire")
        st = sim.state()
        assert st["counters"]["runtime_ooms"] == 1
        assert st["faults"]["counters"]["oom_runtime"] == 1
        # Streamed, after two chunks: an error line in a 200 reply.
        add_fault(sim, type="oom_runtime", after_chunks=2)
        status, _, body = generate(sim, stream=True)
        lines = ndjson(body)
        assert status == 200 and len(lines) == 3, lines
        assert lines[-1] == {"error": RUNTIME_OOM}, lines
        assert sim.state()["counters"]["runtime_ooms"] == 2
        sim.proc.assert_clean_exit()
    finally:
        sim.stop()


def test_reset_closes_mid_reply():
    sim = start_sim()
    try:
        add_fault(sim, type="reset", after_chunks=2, count=2)
        raw = raw_post(sim, "/api/generate", {"model": MODEL, "prompt": "hi"})
        head, _, body = raw.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), raw
        assert body.count(b'"done":false') == 2 and b'"done":true' not in body, body
        assert not body.endswith(b"0\r\n\r\n"), body  # no last chunk
        raw = raw_post(sim, "/api/generate", {"model": MODEL, "prompt": "hi", "stream": False})
        head, _, body = raw.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200") and b'{"model":"' + MODEL.encode() in body, raw
        assert b'"done"' not in body, body
        # Off a generation a reset closes before any byte.
        add_fault(sim, type="reset", endpoint="/api/tags")
        assert raw_post(sim, "/api/tags", {}) == b""
        assert faults(sim)["counters"]["reset"] == 3
        assert generate(sim)[0] == 200
        sim.proc.assert_clean_exit()
    finally:
        sim.stop()


def random_statuses(seed, n=200):
    sim = start_sim("--fault-rate", "0.3", "--fault-seed", str(seed), "--fault-kinds", "error")
    try:
        out = [http("GET", sim.url + "/api/version")[0] for _ in range(n)]
        counters = faults(sim)["counters"]
        assert counters["error"] == sum(1 for s in out if s != 200), (counters, out)
        assert sum(counters.values()) == counters["error"]
        sim.proc.assert_clean_exit()
        return out
    finally:
        sim.stop()


def test_random_faults_follow_rate_and_seed():
    a = random_statuses(7)
    b = random_statuses(7)
    c = random_statuses(8)
    assert a == b
    assert a != c
    errors = sum(1 for s in a if s != 200)
    assert 30 <= errors <= 90, errors  # 0.3 of 200, far beyond 4 sigma either side
    assert set(a) <= {200, 500, 503} and 500 in a and 503 in a
    sim = start_sim("--fault-rate", "0.1")
    sim.stop()
    for bad in (("--fault-rate", "2"), ("--fault-kinds", "error,meteor")):
        import subprocess
        from harness import sim_path
        out = subprocess.run([sim_path(), *bad], capture_output=True, text=True, timeout=10)
        assert out.returncode == 2 and bad[0] in out.stderr, (bad, out.stderr)


run_tests(globals())
