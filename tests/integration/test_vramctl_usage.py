"""vramctl without the daemon: usage errors, help, an unreachable daemon, and every
command against a tiny fake vramd (an http.server in this process) that answers with
the canned replies of docs/api.md and records what vramctl sent.

Exit statuses under test: 0 success, 1 API error, 2 usage error, 3 unreachable.
"""

import json
import os
import subprocess
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import build_dir, free_port, run_tests  # noqa: E402

COMMANDS = ["submit", "job", "cancel", "jobs", "stats", "models", "health", "bench",
            "gpus", "gpu-watch", "reserve", "release", "events", "force-gpu", "force-cpu",
            "placement", "load", "unload", "vram-report", "lb-stats", "nodes", "top", "cluster"]


def vramctl_path():
    return os.path.join(build_dir(), "cli", "vramctl")


def vramctl(*args, url=None, env=None, timeout=30):
    """Runs vramctl; returns (exit status, stdout, stderr)."""
    argv = [vramctl_path()]
    if url is not None:
        argv += ["--url", url]
    argv += [str(a) for a in args]
    full_env = dict(os.environ)
    full_env.pop("VRAMD_URL", None)
    full_env.update(env or {})
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=full_env,
                       stdin=subprocess.DEVNULL)
    return p.returncode, p.stdout, p.stderr


# ---- the fake vramd ----

class FakeVramd:
    """routes maps (METHOD, path) to a reply (status, json body[, headers]) or to a
    function(request) returning one. Every request is appended to .requests as a dict
    with method, path, query (dict of lists) and body (parsed JSON or None)."""

    def __init__(self):
        self.routes = {}
        self.requests = []
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def handle_any(self):
                u = urllib.parse.urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = None
                if raw:
                    try:
                        body = json.loads(raw)
                    except ValueError:
                        body = raw
                req = {"method": self.command, "path": u.path,
                       "query": urllib.parse.parse_qs(u.query), "body": body}
                with fake.lock:
                    fake.requests.append(req)
                    route = fake.routes.get((self.command, u.path))
                if route is None:
                    reply = (404, {"error": "no such endpoint: %s %s" % (self.command, u.path)})
                elif callable(route):
                    reply = route(req)
                else:
                    reply = route
                if reply[0] == "sse":
                    self.send_sse(reply[1])
                    return
                status, payload = reply[0], reply[1]
                headers = reply[2] if len(reply) > 2 else {}
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", headers.pop("Content-Type",
                                                             "application/json; charset=utf-8"))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def send_sse(self, chunks):
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                for chunk in chunks:
                    self.wfile.write(chunk.encode())
                    self.wfile.flush()
                self.close_connection = True

            do_GET = do_POST = do_PUT = do_DELETE = handle_any

        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def reset(self):
        with self.lock:
            self.routes = {}
            self.requests = []

    def requests_to(self, method, path):
        with self.lock:
            return [r for r in self.requests if r["method"] == method and r["path"] == path]

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


FAKE = None


def setup_module():
    global FAKE
    assert os.path.exists(vramctl_path()), "vramctl not built at " + vramctl_path()
    FAKE = FakeVramd()


def teardown_module():
    FAKE.stop()


def fake():
    FAKE.reset()
    return FAKE


# ---- canned replies from docs/api.md ----

def job_reply(job_id="j-0000000000000001", status="complete", kind="generate", result=None,
              error=None, wait_ms=619):
    j = {"job_id": job_id, "status": status, "model": "qwen2.5:0.5b", "kind": kind,
         "priority": "high",
         "submitted_at": "2025-01-14T09:30:12.401Z",
         "started_at": "2025-01-14T09:30:13.020Z" if status != "queued" else None,
         "completed_at": "2025-01-14T09:30:14.433Z" if status in
         ("complete", "failed", "cancelled") else None,
         "metrics": {"wait_ms": wait_ms, "load_ms": 612, "run_ms": 1413},
         "attempts": 1, "metadata": None}
    if status == "complete":
        j["result"] = result if result is not None else {
            "response": "The sky is blue because of Rayleigh scattering.",
            "done_reason": "stop", "eval_count": 118}
    if error is not None:
        j["error"] = error
    return j


SUBMIT_REPLY = {"job_id": "j-0000000000000001", "status": "queued", "position": 3,
                "eta_s": 4.2}

STATS_REPLY = {
    "uptime_s": 3612, "queue": {"length": 12, "max": 1000},
    "jobs": {"total": 1040,
             "by_status": {"queued": 12, "pending": 1, "running": 2, "complete": 1020,
                           "failed": 3, "cancelled": 2},
             "by_priority": {
                 "high": {"queued": 0, "pending": 0, "running": 1, "complete": 210,
                          "failed": 0, "cancelled": 0},
                 "normal": {"queued": 8, "pending": 1, "running": 1, "complete": 700,
                            "failed": 3, "cancelled": 2},
                 "low": {"queued": 4, "pending": 0, "running": 0, "complete": 110,
                         "failed": 0, "cancelled": 0}}},
    "per_model": [{"model": "qwen2.5:0.5b", "queued": 3, "running": 1, "complete": 400,
                   "failed": 0, "cancelled": 0, "loads": 4},
                  {"model": "phi3:mini", "queued": 9, "running": 1, "complete": 620,
                   "failed": 3, "cancelled": 2, "loads": 7}],
    "loads": 11, "unloads": 9, "load_failures": 0,
    "gpus": [{"index": 0, "name": "NVIDIA GeForce RTX 3070", "state": "OPTIMAL",
              "memory_total_bytes": 8589934592, "memory_used_bytes": 4101000000,
              "memory_free_bytes": 4488934592, "memory_models_bytes": 3800000000,
              "memory_other_bytes": 301000000, "memory_reserved_bytes": 0}],
    "loaded_models": [{"model": "phi3:mini", "server": "http://127.0.0.1:11434", "gpu": 0,
                       "size_vram_bytes": 3162456064, "running": 1, "idle_s": 0}]}

MODELS_REPLY = {"models": [
    {"name": "all-minilm:latest", "server": "http://127.0.0.1:11434", "family": "bert",
     "parameter_size": "23M", "quantization_level": "F16", "capabilities": ["embedding"],
     "file_size_bytes": 45960996, "estimate_bytes": 59749294, "measured_bytes": None,
     "footprint_bytes": 59749294, "footprint_source": "estimate", "loaded": False,
     "loaded_on": [], "queued": 0, "running": 0,
     "load_stats": {"count": 0, "last_ms": None, "mean_ms": None}},
    {"name": "qwen2.5:0.5b", "server": "http://127.0.0.1:11434", "family": "qwen2",
     "parameter_size": "494.03M", "quantization_level": "Q4_K_M",
     "capabilities": ["completion"], "file_size_bytes": 397821319,
     "estimate_bytes": 517167714, "measured_bytes": 637534208, "footprint_bytes": 637534208,
     "footprint_source": "measured", "loaded": True,
     "loaded_on": [{"server": "http://127.0.0.1:11434", "gpu": 0,
                    "size_vram_bytes": 637534208}],
     "queued": 3, "running": 1, "load_stats": {"count": 4, "last_ms": 412, "mean_ms": 430.5}}]}

HEALTH_REPLY = {"status": "ok", "version": "0.1.0", "uptime_s": 3612, "gpu_telemetry": "nvml",
                "gpu_count": 1, "monitoring": True,
                "servers": [{"url": "http://127.0.0.1:11434", "reachable": True,
                             "version": "0.5.7", "consecutive_failures": 0,
                             "last_error": None, "last_ok_at": "2025-01-14T09:30:14.100Z",
                             "next_probe_at": None}]}

GPU_OBJECT = {
    "index": 0, "uuid": "GPU-5f0b8a2c-3e43-7c11-9d1b-2a6c1f0e9b77",
    "name": "NVIDIA GeForce RTX 3070", "pci_bus_id": "00000000:01:00.0", "state": "NORMAL",
    "state_since": "2025-01-14T09:28:03.000Z", "state_reasons": ["temperature 68 C >= 65 C"],
    "speed_multiplier": 0.8, "dispatch_paused": False, "paused_until": None,
    "memory_total_bytes": 8589934592, "memory_used_bytes": 4101000000,
    "memory_free_bytes": 4488934592, "memory_models_bytes": 3800000000,
    "memory_other_bytes": 301000000, "memory_reserved_bytes": 0, "memory_other_percent": 3.5,
    "gpu_util_percent": 87, "memory_util_percent": 41, "temperature_c": 68,
    "slowdown_temp_c": 93, "shutdown_temp_c": 98, "power_w": 182.4, "power_limit_w": 220.0,
    "fan_percent": None, "sm_clock_mhz": 1905, "throttle_reasons": [], "processes": [],
    "source": "nvml", "sampled_at": "2025-01-14T09:30:14.000Z"}

GPU_ALL_REPLY = {"telemetry": "nvml", "monitoring": True,
                 "host": {"memory_total_bytes": 33554432000,
                          "memory_available_bytes": 21474836480, "unified_memory": False},
                 "gpus": [GPU_OBJECT]}

RESERVE_REPLY = {"id": "sd-webui", "gpu": 0, "mb": 2048, "bytes": 2147483648,
                 "status": "satisfied", "ttl_s": 3600,
                 "created_at": "2025-01-14T09:00:00.000Z",
                 "expires_at": "2025-01-14T10:00:00.000Z"}


def table_rows(text):
    """Splits a printed table into rows of cells (runs of 2+ spaces separate cells)."""
    import re
    return [re.split(r"\s{2,}", line.strip()) for line in text.splitlines() if line.strip()]


# ---- tests without any server ----

def test_help_lists_every_command():
    rc, out, err = vramctl("--help")
    assert rc == 0, (rc, err)
    for name in COMMANDS:
        assert ("\n  %s " % name) in out, "command %s missing from --help:\n%s" % (name, out)
    for name in COMMANDS:
        rc, out, err = vramctl(name, "--help")
        assert rc == 0, (name, rc, err)
        assert out.startswith("usage: vramctl %s" % name), (name, out)
    rc, out, _ = vramctl("help", "submit")
    assert rc == 0 and "--priority" in out, out


def test_usage_errors_exit_2_with_a_message_and_send_nothing():
    f = fake()
    cases = [
        ((), "no command given"),
        (("frobnicate",), 'unknown command "frobnicate"'),
        (("--bogus", "stats"), "unknown option --bogus"),
        (("stats", "--bogus"), "unknown option --bogus"),
        (("stats", "extra"), 'unexpected argument "extra"'),
        (("submit", "--prompt", "hi"), "--model is required"),
        (("submit", "--model", "m"), "one of --prompt, --messages-json or --input"),
        (("submit", "--model", "m", "--prompt", "a", "--input", "b"), "only one of"),
        (("submit", "--model", "m", "--prompt", "a", "--priority", "urgent"),
         '--priority must be high, normal or low (got "urgent")'),
        (("submit", "--model", "m", "--prompt", "a", "--kind", "image"), "--kind must be"),
        (("submit", "--model", "m", "--messages-json", "{oops"), "--messages-json is not valid"),
        (("submit", "--model", "m", "--prompt", "a", "--option", "noequals"), "KEY=VALUE"),
        (("submit", "--model"), "option --model needs a value"),
        (("job",), "a job id is required"),
        (("job", "--wait", "soon", "j-1"), "--wait"),
        (("cancel", "a", "b"), "exactly one job id"),
        (("jobs", "--limit", "0"), "--limit"),
        (("reserve", "--id", "x"), "--mb is required"),
        (("reserve", "--mb", "100"), "--id is required"),
        (("reserve", "--id", "x", "--mb", "-5"), "--mb"),
        (("release",), "--id is required"),
        (("bench",), "one of --batch, --random N, --spam N is required"),
        (("bench", "--batch", "--random", "3"), "only one of"),
        (("bench", "--random", "many"), "--random"),
        (("gpu-watch", "--interval", "x"), "--interval"),
        (("top", "--interval", "x"), "--interval"),
        (("top", "extra"), "unexpected argument"),
        (("events", "--count", "0"), "--count"),
        (("force-gpu",), "a model is required"),
        (("force-cpu", "--node", "local"), "a model is required"),
        (("force-gpu", "m", "extra"), 'unexpected argument "extra"'),
        (("force-cpu", "m", "--gpu", "0"), "unknown option --gpu"),
        (("force-gpu", "m", "--node"), "option --node needs a value"),
        (("force-gpu", "m", "--node", ""), "--node needs a node name"),
        (("force-gpu", "m", "--timeout", "soon"), "--timeout"),
        (("force-gpu", "m", "--timeout", "3601"), "--timeout"),
        (("placement",), "a model is required"),
        (("placement", "m"), "a placement is required: gpu, cpu or auto"),
        (("placement", "m", "tpu"), 'the placement must be gpu, cpu or auto (got "tpu")'),
        (("placement", "m", "gpu", "cpu"), 'unexpected argument "cpu"'),
        (("load",), "a model is required"),
        (("load", "m", "--gpu", "first"), "--gpu"),
        (("load", "m", "--gpu", "-1"), "--gpu"),
        (("unload",), "a model is required"),
        (("unload", "m", "--gpu", "0"), "unknown option --gpu"),
        (("vram-report", "m"), 'unexpected argument "m"'),
        (("lb-stats", "--node", "x"), "unknown option --node"),
        (("nodes", "all"), 'unexpected argument "all"'),
        (("cluster", "all"), 'unexpected argument "all"'),
    ]
    for args, message in cases:
        rc, out, err = vramctl(*args, url=f.url)
        assert rc == 2, (args, rc, out, err)
        assert message in err, (args, err)
    assert f.requests == [], f.requests


def test_unreachable_daemon_exits_3_with_a_clear_message():
    port = free_port()
    url = "http://127.0.0.1:%d" % port
    for args in (("health",), ("stats",), ("submit", "--model", "m", "--prompt", "p"),
                 ("load", "m"), ("nodes",), ("vram-report",), ("lb-stats",),
                 ("job", "j-0000000000000001"), ("gpus",), ("events", "--count", "1"),
                 ("bench", "--random", "2")):
        rc, out, err = vramctl(*args, url=url)
        assert rc == 3, (args, rc, out, err)
        assert ("vramctl: cannot reach vramd at %s: " % url) in err, (args, err)
    # VRAMD_URL is the default, and a bare host:port gets http://.
    rc, _, err = vramctl("health", env={"VRAMD_URL": "127.0.0.1:%d" % port})
    assert rc == 3 and ("cannot reach vramd at %s" % url) in err, err


# ---- against the fake vramd ----

def test_submit_sends_the_documented_body_and_prints_the_job():
    f = fake()
    f.routes[("POST", "/api/submit")] = (202, SUBMIT_REPLY)
    rc, out, err = vramctl("submit", "--model", "qwen2.5:0.5b", "--prompt", "Why?",
                           "--priority", "high", "--option", "temperature=0.5",
                           "--option", "stop=[\"\\n\"]", "--option", "mirostat_mode=off",
                           "--metadata-json", '{"ticket": 42}', url=f.url)
    assert rc == 0, (rc, err)
    body = f.requests_to("POST", "/api/submit")[0]["body"]
    assert body == {"model": "qwen2.5:0.5b", "prompt": "Why?", "priority": "high",
                    "options": {"temperature": 0.5, "stop": ["\n"], "mirostat_mode": "off"},
                    "metadata": {"ticket": 42}}, body
    assert "j-0000000000000001" in out and "queued" in out, out
    assert any(r[0] == "position:" and r[-1] == "3" for r in
               [line.split() for line in out.splitlines()]), out

    f.requests.clear()
    rc, out, _ = vramctl("submit", "-m", "all-minilm:latest", "--input", "a", "--input", "b",
                         "--json", url=f.url)
    assert rc == 0
    assert json.loads(out) == SUBMIT_REPLY, out
    assert f.requests_to("POST", "/api/submit")[0]["body"] == {
        "model": "all-minilm:latest", "input": ["a", "b"]}

    f.requests.clear()
    rc, out, _ = vramctl("submit", "-m", "llama3.2:1b", "--kind", "chat", "--messages-json",
                         '[{"role": "user", "content": "Hi"}]', url=f.url)
    assert rc == 0
    assert f.requests_to("POST", "/api/submit")[0]["body"] == {
        "model": "llama3.2:1b", "messages": [{"role": "user", "content": "Hi"}],
        "kind": "chat"}


def test_submit_wait_prints_the_result_or_the_failure():
    f = fake()
    f.routes[("POST", "/api/submit")] = (202, SUBMIT_REPLY)
    f.routes[("GET", "/api/job/j-0000000000000001")] = (200, job_reply())
    rc, out, err = vramctl("submit", "-m", "qwen2.5:0.5b", "-p", "Why?", "--wait=20",
                           url=f.url)
    assert rc == 0, (rc, err)
    assert out.strip() == "The sky is blue because of Rayleigh scattering.", out
    polls = f.requests_to("GET", "/api/job/j-0000000000000001")
    assert polls and float(polls[0]["query"]["wait"][0]) > 0, polls

    f.routes[("GET", "/api/job/j-0000000000000001")] = (200, job_reply(
        status="failed", error="model requires more system memory (5.2 GiB) than is "
        "available (3.1 GiB)"))
    rc, out, err = vramctl("submit", "-m", "qwen2.5:0.5b", "-p", "Why?", "--wait", url=f.url)
    assert rc == 1, (rc, out, err)
    assert "j-0000000000000001 failed: model requires more system memory" in err, err

    # A job that stays queued: --wait=S gives up after S seconds with exit 1.
    f.routes[("GET", "/api/job/j-0000000000000001")] = (200, job_reply(status="queued"))
    rc, out, err = vramctl("submit", "-m", "qwen2.5:0.5b", "-p", "Why?", "--wait=0.2",
                           url=f.url)
    assert rc == 1 and "still queued" in err, (rc, err)


def test_job_shows_fields_and_each_result_kind():
    f = fake()
    path = "/api/job/j-0000000000000001"
    f.routes[("GET", path)] = (200, job_reply())
    rc, out, err = vramctl("job", "j-0000000000000001", url=f.url)
    assert rc == 0, err
    assert "status:" in out and "complete" in out and "qwen2.5:0.5b" in out, out
    assert "619 / 612 / 1413 ms" in out, out
    assert "2025-01-14 09:30:12" in out, out
    assert out.rstrip().endswith("Rayleigh scattering."), out

    f.routes[("GET", path)] = (200, job_reply(kind="chat", result={
        "message": {"role": "assistant", "content": "Hello there!"}, "done_reason": "stop"}))
    rc, out, _ = vramctl("job", "j-0000000000000001", url=f.url)
    assert rc == 0 and out.rstrip().endswith("Hello there!"), out

    f.routes[("GET", path)] = (200, job_reply(kind="embed", result={
        "embeddings": [[0.5, -0.25, 0.125], [1, 2, 3]]}))
    rc, out, _ = vramctl("job", "j-0000000000000001", url=f.url)
    assert rc == 0 and "2 embeddings of dimension 3: [0.5, -0.25, 0.125]" in out, out

    rc, out, _ = vramctl("--json", "job", "j-0000000000000001", url=f.url)
    assert json.loads(out)["result"]["embeddings"][1] == [1, 2, 3], out

    f.routes[("GET", path)] = (200, job_reply(status="cancelled", error="cancelled by client"))
    rc, out, _ = vramctl("job", "j-0000000000000001", url=f.url)
    assert rc == 0 and "cancelled by client" in out, out
    rc, _, _ = vramctl("job", "--wait", "1", "j-0000000000000001", url=f.url)
    assert rc == 1, "job --wait exits 1 unless the job completed"


def test_api_error_prints_the_server_message_and_exits_1():
    f = fake()
    f.routes[("POST", "/api/submit")] = (404, {
        "error": "model \"llama9:70b\" not found; GET /api/models lists the installed models"})
    rc, out, err = vramctl("submit", "-m", "llama9:70b", "-p", "x", url=f.url)
    assert rc == 1, (rc, out, err)
    assert err.strip() == ("vramctl: model \"llama9:70b\" not found; GET /api/models lists "
                           "the installed models"), err
    assert out == ""

    f.routes[("POST", "/api/submit")] = (429, {"error": "queue is full (1000 jobs); retry later"},
                                         {"Retry-After": "5"})
    rc, _, err = vramctl("submit", "-m", "m", "-p", "x", url=f.url)
    assert rc == 1 and "queue is full (1000 jobs); retry later (retry after 5 s)" in err, err

    rc, _, err = vramctl("job", "j-00000000000000ff", url=f.url)  # the fake's own 404
    assert rc == 1 and "no such endpoint: GET /api/job/j-00000000000000ff" in err, err

    f.routes[("DELETE", "/api/job/j-0000000000000001")] = (409, {
        "error": "job j-0000000000000001 is already complete"})
    rc, _, err = vramctl("cancel", "j-0000000000000001", url=f.url)
    assert rc == 1 and "is already complete" in err, err

    # A reply that is not JSON is an error too, with the status in the message.
    f.routes[("GET", "/api/stats")] = (502, b"<html>Bad Gateway</html>",
                                       {"Content-Type": "text/html"})
    rc, _, err = vramctl("stats", url=f.url)
    assert rc == 1 and "HTTP 502" in err and "Bad Gateway" in err, err
    f.routes[("GET", "/api/stats")] = (200, b"not json", {"Content-Type": "text/plain"})
    rc, _, err = vramctl("stats", url=f.url)
    assert rc == 1 and "not JSON" in err, err


def test_cancel():
    f = fake()
    f.routes[("DELETE", "/api/job/j-0000000000000002")] = (200, job_reply(
        job_id="j-0000000000000002", status="cancelled", error="cancelled by client"))
    rc, out, err = vramctl("cancel", "j-0000000000000002", url=f.url)
    assert rc == 0, err
    assert out.strip() == "j-0000000000000002 cancelled", out
    assert len(f.requests_to("DELETE", "/api/job/j-0000000000000002")) == 1


def test_jobs_passes_filters_and_prints_a_table():
    f = fake()
    running = job_reply(job_id="j-0000000000000002", status="running")
    failed = job_reply(job_id="j-0000000000000001", status="failed", error="boom")
    for j in (running, failed):
        j.pop("result", None)
    f.routes[("GET", "/api/jobs")] = (200, {"jobs": [running, failed], "count": 2})
    rc, out, err = vramctl("jobs", "--status", "running,failed", "--model", "qwen2.5:0.5b",
                           "--limit", "20", url=f.url)
    assert rc == 0, err
    q = f.requests_to("GET", "/api/jobs")[0]["query"]
    assert q == {"status": ["running,failed"], "model": ["qwen2.5:0.5b"], "limit": ["20"]}, q
    rows = table_rows(out)
    assert rows[0][:3] == ["JOB", "STATUS", "MODEL"], rows
    assert rows[1][:3] == ["j-0000000000000002", "running", "qwen2.5:0.5b"], rows
    assert rows[2][1] == "failed" and rows[2][-1] == "boom", rows

    f.routes[("GET", "/api/jobs")] = (200, {"jobs": [], "count": 0})
    rc, out, _ = vramctl("jobs", url=f.url)
    assert rc == 0 and out.strip() == "no jobs", out
    rc, out, _ = vramctl("jobs", "--json", url=f.url)
    assert json.loads(out) == {"jobs": [], "count": 0}


def test_stats_models_health_tables():
    f = fake()
    f.routes[("GET", "/api/stats")] = (200, STATS_REPLY)
    f.routes[("GET", "/api/models")] = (200, MODELS_REPLY)
    f.routes[("GET", "/api/health")] = (200, HEALTH_REPLY)

    rc, out, err = vramctl("stats", url=f.url)
    assert rc == 0, err
    rows = table_rows(out)
    assert ["normal", "8", "1", "1", "700", "3", "2"] in rows, rows
    assert ["all", "12", "1", "2", "1020", "3", "2"] in rows, rows
    assert any(r[0] == "phi3:mini" and r[-1] == "7" for r in rows), rows
    assert "queue 12/1000" in out and "loads 11" in out, out
    assert "8.00 GiB" in out, out

    rc, out, err = vramctl("models", url=f.url)
    assert rc == 0, err
    rows = table_rows(out)
    assert rows[0][0] == "NAME", rows
    qwen = [r for r in rows if r[0] == "qwen2.5:0.5b"][0]
    assert "gpu0" in qwen and "608.00 MiB" in qwen, qwen
    minilm = [r for r in rows if r[0] == "all-minilm:latest"][0]
    assert minilm[3] == "-", minilm  # not measured yet: unknown, not 0

    rc, out, err = vramctl("health", url=f.url)
    assert rc == 0, err
    assert "status:" in out and "ok" in out and "nvml" in out, out
    assert any(r[0] == "http://127.0.0.1:11434" and r[1] == "yes" for r in table_rows(out))

    degraded = dict(HEALTH_REPLY, status="degraded")
    degraded["servers"] = [dict(HEALTH_REPLY["servers"][0], reachable=False,
                                consecutive_failures=3,
                                last_error="connect to 127.0.0.1:11434: Connection refused")]
    f.routes[("GET", "/api/health")] = (200, degraded)
    rc, out, err = vramctl("health", url=f.url)
    assert rc == 1 and "Connection refused" in out and "degraded" in err, (rc, out, err)

    # The shapes vramd's first API cut sends: per_model keyed by name with only the
    # non-zero counts; file_bytes and residency in the registry.
    f.routes[("GET", "/api/stats")] = (200, dict(STATS_REPLY, per_model={
        "gemma:2b": {"complete": 3}}))
    rc, out, _ = vramctl("stats", url=f.url)
    assert rc == 0 and ["gemma:2b", "0", "0", "3", "0", "0", "0"] in table_rows(out), out
    m = dict(MODELS_REPLY["models"][1], file_bytes=397821319, gpu=0,
             residency={"loaded": True, "on": "gpu", "size_vram_bytes": 637534208})
    del m["file_size_bytes"], m["loaded_on"]
    f.routes[("GET", "/api/models")] = (200, {"models": [m]})
    rc, out, _ = vramctl("models", url=f.url)
    assert rc == 0 and table_rows(out)[1][:2] == ["qwen2.5:0.5b", "379.39 MiB"], out
    assert "gpu0" in table_rows(out)[1], out
    f.routes[("GET", "/api/stats")] = (200, STATS_REPLY)
    f.routes[("GET", "/api/models")] = (200, MODELS_REPLY)

    for cmd, reply in (("stats", STATS_REPLY), ("models", MODELS_REPLY)):
        rc, out, _ = vramctl(cmd, "--json", url=f.url)
        assert rc == 0 and json.loads(out) == reply, cmd


def test_gpus_and_gpu_watch():
    f = fake()
    f.routes[("GET", "/api/gpu/status/all")] = (200, GPU_ALL_REPLY)
    rc, out, err = vramctl("gpus", url=f.url)
    assert rc == 0, err
    rows = table_rows(out)
    header = rows[1]
    assert header[:3] == ["GPU", "NAME", "STATE"], rows
    row = dict(zip(header, rows[2]))
    assert row["STATE"] == "NORMAL" and row["TEMP"] == "68 C", row
    assert row["MEM_TOTAL"] == "8.00 GiB" and row["UTIL"] == "87%", row
    assert row["SPEED"] == "0.80" and row["POWER"] == "182.4 W", row

    rc, out, _ = vramctl("gpu-watch", "--interval", "0.05", "--count", "3", url=f.url)
    assert rc == 0
    assert out.count("\x1b[H\x1b[2J") == 3, repr(out[:200])
    assert len(f.requests_to("GET", "/api/gpu/status/all")) == 4

    f.routes[("GET", "/api/gpu/status/all")] = (200, {"telemetry": "none", "monitoring": True,
                                                      "gpus": []})
    rc, out, _ = vramctl("gpus", url=f.url)
    assert rc == 0 and "no GPUs" in out and "telemetry: none" in out, out


def test_reserve_and_release():
    f = fake()
    f.routes[("POST", "/api/gpu/memory/allocate")] = (200, RESERVE_REPLY)
    rc, out, err = vramctl("reserve", "--id", "sd-webui", "--mb", "2048", "--gpu", "0",
                           "--ttl", "3600", url=f.url)
    assert rc == 0, err
    assert f.requests_to("POST", "/api/gpu/memory/allocate")[0]["body"] == {
        "id": "sd-webui", "mb": 2048, "gpu": 0, "ttl_s": 3600}
    assert "satisfied" in out and "2048 MiB" in out, out

    f.requests.clear()
    rc, out, _ = vramctl("reserve", "--id", "sd-webui", "--renew", "--json", url=f.url)
    assert rc == 0 and json.loads(out) == RESERVE_REPLY
    assert f.requests_to("POST", "/api/gpu/memory/allocate")[0]["body"] == {
        "id": "sd-webui", "renew": True}

    f.routes[("POST", "/api/gpu/memory/allocate")] = (409, {
        "error": "reservation \"sd-webui\" already exists (2048 MiB on GPU 0); deallocate it "
        "first or renew it"})
    rc, _, err = vramctl("reserve", "--id", "sd-webui", "--mb", "2048", url=f.url)
    assert rc == 1 and "already exists" in err, err

    f.routes[("POST", "/api/gpu/memory/deallocate")] = (200, {
        "id": "sd-webui", "gpu": 0, "mb": 2048, "released": True})
    rc, out, err = vramctl("release", "--id", "sd-webui", url=f.url)
    assert rc == 0 and out.strip() == "released sd-webui (2048 MiB on GPU 0)", (out, err)
    assert f.requests_to("POST", "/api/gpu/memory/deallocate")[0]["body"] == {"id": "sd-webui"}


def test_events_prints_one_line_per_event():
    f = fake()
    ev1 = {"id": 1, "type": "state_change", "time": "2025-01-14T09:29:40.000Z", "gpu": 0,
           "message": "GPU 0 NORMAL -> THROTTLED: temperature 77 C >= 75 C",
           "from": "NORMAL", "to": "THROTTLED"}
    ev2 = {"id": 2, "type": "model_on_cpu", "time": "2025-01-14T09:29:41.000Z", "gpu": None,
           "message": "phi3:mini was placed on the CPU", "model": "phi3:mini"}
    ev3 = {"id": 3, "type": "resume", "time": "2025-01-14T09:30:41.000Z", "gpu": 0,
           "message": "never shown"}
    chunks = [": heartbeat\n\n",
              "id: 1\nevent: state_change\ndata: %s\n\n" % json.dumps(ev1),
              "id: 2\r\nevent: model_on_cpu\r\ndata: %s\r\n\r\n" % json.dumps(ev2),
              "id: 3\nevent: resume\ndata: %s\n\n" % json.dumps(ev3)]
    f.routes[("GET", "/api/events")] = ("sse", chunks)
    rc, out, err = vramctl("events", "--count", "2", "--types", "state_change,model_on_cpu",
                           url=f.url)
    assert rc == 0, (rc, err)
    lines = out.splitlines()
    assert len(lines) == 2, lines
    assert "state_change" in lines[0] and "gpu 0" in lines[0] and \
        "NORMAL -> THROTTLED" in lines[0], lines
    assert "model_on_cpu" in lines[1] and "placed on the CPU" in lines[1], lines
    q = f.requests_to("GET", "/api/events")[0]["query"]
    assert q == {"types": ["state_change,model_on_cpu"]}, q

    rc, out, _ = vramctl("events", "--json", url=f.url)  # to the end of the stream
    assert rc == 0
    assert [json.loads(line) for line in out.splitlines()] == [ev1, ev2, ev3], out

    rc, _, err = vramctl("events", "--count", "5", url=f.url)
    assert rc == 1 and "ended after 3 of 5 events" in err, err

    f.routes[("GET", "/api/events")] = (400, {
        "error": "parameter 'types' has an unknown event type 'hot'"})
    rc, _, err = vramctl("events", "--types", "hot", url=f.url)
    assert rc == 1 and "unknown event type 'hot'" in err, err


FLEET_NODE = "http://127.0.0.1:11434"

MODEL_OP_REPLY = {"model": "llama3.2:1b", "node": FLEET_NODE, "state": "loaded",
                  "location": "gpu", "gpu": 0, "size_bytes": 1503238553,
                  "size_vram_bytes": 1503238553, "placement": "gpu", "pinned": False,
                  "gpu_priority": True, "running": 0, "pending": False,
                  "operation": "force_gpu", "done": True}

VRAM_REPORT_REPLY = {"nodes": [{"node": FLEET_NODE, "url": FLEET_NODE, "models": [
    {"model": "gemma:2b", "node": FLEET_NODE, "state": "loaded", "location": "gpu", "gpu": 0,
     "size_bytes": 2147483648, "size_vram_bytes": 2147483648, "placement": "auto",
     "pinned": True, "gpu_priority": False, "running": 2, "pending": False},
    {"model": "phi3:mini", "node": FLEET_NODE, "state": "loaded", "location": "gpu+cpu",
     "gpu": 0, "size_bytes": 4294967296, "size_vram_bytes": 1073741824, "placement": "auto",
     "pinned": False, "gpu_priority": False, "running": 0, "pending": True},
    {"model": "all-minilm:latest", "node": FLEET_NODE, "state": "loaded", "location": "cpu",
     "gpu": None, "size_bytes": 59749294, "size_vram_bytes": 0, "placement": "cpu",
     "pinned": False, "gpu_priority": False, "running": 0, "pending": False}],
    "gpus": [{"index": 0, "name": "NVIDIA GeForce RTX 3070", "state": "available",
              "total_bytes": 8589934592, "used_bytes": 3221225472,
              "free_bytes": 5368709120},
             {"index": 1, "name": "NVIDIA GeForce RTX 3070", "state": "lost",
              "total_bytes": None, "used_bytes": None, "free_bytes": None}]}]}

LB_STATS_REPLY = {"nodes": [{"node": FLEET_NODE, "url": FLEET_NODE, "requests": 12,
                             "completed": 11, "failures": 1, "mean_latency_ms": 812.5,
                             "running": 0, "queued": 3, "breaker": "open"}]}

NODES_REPLY = {"nodes": [{"node": FLEET_NODE, "url": FLEET_NODE, "state": "up",
                          "version": "0.33.0",
                          "gpus": [{"index": 0, "total_bytes": 8589934592},
                                   {"index": 1, "total_bytes": 8589934592}],
                          "models": ["gemma:2b", "phi3:mini"]}]}


def test_model_operations_send_the_documented_bodies():
    f = fake()
    for path in ("force_gpu", "force_cpu", "placement", "load", "unload"):
        f.routes[("POST", "/api/models/" + path)] = (200, MODEL_OP_REPLY)
    cases = [
        (("force-gpu", "llama3.2:1b"), "force_gpu",
         {"model": "llama3.2:1b", "timeout": 120}),
        (("force-cpu", "llama3.2:1b", "--node", "local", "--timeout", "5"), "force_cpu",
         {"model": "llama3.2:1b", "node": "local", "timeout": 5}),
        (("placement", "llama3.2:1b", "auto"), "placement",
         {"model": "llama3.2:1b", "placement": "auto", "timeout": 120}),
        (("load", "--gpu", "1", "llama3.2:1b", "-t", "0.5"), "load",
         {"model": "llama3.2:1b", "gpu": 1, "timeout": 0.5}),
        (("unload", "llama3.2:1b", "--node", FLEET_NODE), "unload",
         {"model": "llama3.2:1b", "node": FLEET_NODE, "timeout": 120}),
    ]
    for args, path, body in cases:
        f.requests.clear()
        rc, out, err = vramctl(*args, url=f.url)
        assert rc == 0, (args, rc, err)
        sent = f.requests_to("POST", "/api/models/" + path)
        assert [r["body"] for r in sent] == [body], (args, sent)
        kv = dict(line.split(":", 1) for line in out.splitlines())
        kv = {k: v.strip() for k, v in kv.items()}
        assert kv["model"] == "llama3.2:1b" and kv["node"] == FLEET_NODE, (args, out)
        assert kv["location"] == "gpu 0" and kv["state"] == "loaded", (args, out)
        assert kv["vram"] == "1.40 GiB of 1.40 GiB", (args, out)
        assert kv["placement"] == "gpu" and kv["flags"] == "gpu-priority", (args, out)

    rc, out, _ = vramctl("force-gpu", "llama3.2:1b", "--json", url=f.url)
    assert rc == 0 and json.loads(out) == MODEL_OP_REPLY, out

    # 202: the move is not done within the timeout; print where it is and exit 1.
    pending = dict(MODEL_OP_REPLY, location="cpu", gpu=None, size_vram_bytes=0,
                   pending=True, done=False, poll="/api/vram_report")
    f.routes[("POST", "/api/models/force_gpu")] = (202, pending)
    rc, out, err = vramctl("force-gpu", "llama3.2:1b", "--timeout", "1", url=f.url)
    assert rc == 1, (rc, out, err)
    assert "loaded (not done yet)" in out and "location:  cpu" in out, out
    assert "force-gpu of llama3.2:1b is not done after 1 s" in err, err
    rc, out, err = vramctl("force-gpu", "llama3.2:1b", "--json", url=f.url)
    assert rc == 1 and json.loads(out) == pending, (rc, out, err)

    # vramd's errors are printed as they came, exit 1.
    f.routes[("POST", "/api/models/unload")] = (409, {
        "error": "model 'gemma:2b' is pinned (PIN_MODELS); it cannot be unloaded"})
    rc, out, err = vramctl("unload", "gemma:2b", url=f.url)
    assert rc == 1 and out == "", (rc, out)
    assert err.strip() == ("vramctl: model 'gemma:2b' is pinned (PIN_MODELS); it cannot be "
                           "unloaded"), err


def test_vram_report_lb_stats_and_nodes_tables():
    f = fake()
    f.routes[("GET", "/api/vram_report")] = (200, VRAM_REPORT_REPLY)
    f.routes[("GET", "/api/lb_stats")] = (200, LB_STATS_REPLY)
    f.routes[("GET", "/api/nodes")] = (200, NODES_REPLY)

    rc, out, err = vramctl("vram-report", url=f.url)
    assert rc == 0, err
    rows = table_rows(out)
    assert rows[0] == ["node " + FLEET_NODE], rows
    gpus = {r[0]: r for r in rows if r[0] in ("0", "1")}
    assert gpus["0"][2:] == ["available", "8.00 GiB", "3.00 GiB", "5.00 GiB"], gpus
    assert gpus["1"][2:] == ["lost", "-", "-", "-"], gpus
    header = next(r for r in rows if r[0] == "MODEL")
    models = {r[0]: dict(zip(header, r)) for r in rows if ":" in r[0]}
    assert models["gemma:2b"]["LOCATION"] == "gpu 0", models
    assert models["gemma:2b"]["VRAM"] == "2.00 GiB" and models["gemma:2b"]["RUNNING"] == "2"
    assert models["gemma:2b"]["FLAGS"] == "pinned", models
    assert models["phi3:mini"]["LOCATION"] == "gpu 0 + cpu", models
    assert models["phi3:mini"]["VRAM"] == "1.00 GiB", models
    assert models["phi3:mini"]["SIZE"] == "4.00 GiB", models
    assert models["phi3:mini"]["FLAGS"] == "moving", models
    assert models["all-minilm:latest"]["LOCATION"] == "cpu", models
    assert models["all-minilm:latest"]["PLACEMENT"] == "cpu", models

    rc, out, err = vramctl("lb-stats", url=f.url)
    assert rc == 0, err
    rows = table_rows(out)
    assert rows[0] == ["NODE", "REQUESTS", "COMPLETED", "FAILURES", "MEAN_LATENCY_MS",
                       "RUNNING", "QUEUED", "BREAKER"], rows
    assert rows[1] == [FLEET_NODE, "12", "11", "1", "812.5", "0", "3", "open"], rows

    rc, out, err = vramctl("nodes", url=f.url)
    assert rc == 0, err
    rows = table_rows(out)
    assert rows[0] == ["NODE", "URL", "STATE", "VERSION", "GPUS", "VRAM", "MODELS"], rows
    assert rows[1] == [FLEET_NODE, FLEET_NODE, "up", "0.33.0", "2", "16.00 GiB",
                       "gemma:2b,phi3:mini"], rows

    for cmd, reply in (("vram-report", VRAM_REPORT_REPLY), ("lb-stats", LB_STATS_REPLY),
                       ("nodes", NODES_REPLY)):
        rc, out, _ = vramctl(cmd, "--json", url=f.url)
        assert rc == 0 and json.loads(out) == reply, (cmd, out)

    # Before the first run and the first sample: "-" rather than 0 or a crash.
    f.routes[("GET", "/api/lb_stats")] = (200, {"nodes": [dict(
        LB_STATS_REPLY["nodes"][0], mean_latency_ms=None)]})
    rc, out, _ = vramctl("lb-stats", url=f.url)
    assert rc == 0 and table_rows(out)[1][4] == "-", out
    f.routes[("GET", "/api/nodes")] = (200, {"nodes": [dict(
        NODES_REPLY["nodes"][0], version=None, models=[],
        gpus=[{"index": 0, "total_bytes": None}])]})
    rc, out, _ = vramctl("nodes", url=f.url)
    assert rc == 0 and table_rows(out)[1][3:] == ["-", "1", "-", "-"], out
    f.routes[("GET", "/api/vram_report")] = (200, {"nodes": [dict(
        VRAM_REPORT_REPLY["nodes"][0], models=[], gpus=[])]})
    rc, out, _ = vramctl("vram-report", url=f.url)
    assert rc == 0 and "no GPUs" in out and "no models loaded" in out, out
    f.routes[("GET", "/api/nodes")] = (200, {"nodes": []})
    rc, out, _ = vramctl("nodes", url=f.url)
    assert rc == 0 and out.strip() == "no nodes", out


def bench_routes(f, fail_ids=()):
    """Submit hands out ids in order; each job completes with wait_ms = 10 * n,
    or fails when its id is in fail_ids."""
    state = {"n": 0}

    def submit(req):
        with f.lock:
            state["n"] += 1
            n = state["n"]
        jid = "j-%016x" % n
        wait = 10 * n
        status = "failed" if jid in fail_ids else "complete"
        f.routes[("GET", "/api/job/" + jid)] = (200, dict(
            job_reply(job_id=jid, status=status, wait_ms=wait,
                      error="ollama: out of memory" if status == "failed" else None),
            priority=req["body"]["priority"], model=req["body"]["model"]))
        return (202, {"job_id": jid, "status": "queued", "position": n, "eta_s": 0})

    f.routes[("POST", "/api/submit")] = submit
    f.routes[("GET", "/api/models")] = (200, MODELS_REPLY)


def test_bench_batch_waits_and_summarises():
    f = fake()
    bench_routes(f)
    rc, out, err = vramctl("bench", "--batch", url=f.url)
    assert rc == 0, (rc, out, err)
    bodies = [r["body"] for r in f.requests_to("POST", "/api/submit")]
    assert len(bodies) == 4, bodies
    assert [b["priority"] for b in bodies] == ["high", "normal", "low", "normal"], bodies
    assert "prompt" in bodies[0] and "messages" in bodies[1] and "input" in bodies[2]
    rows = {r[0]: r for r in table_rows(out) if r[0] in ("high", "normal", "low", "all")}
    # PRIORITY SUBMITTED REJECTED COMPLETED FAILED CANCELLED UNFINISHED P50 P99
    assert rows["all"][1:7] == ["4", "0", "4", "0", "0", "0"], rows
    assert rows["normal"][7:] == ["20", "40"], rows  # jobs 2 and 4 wait 20 and 40 ms
    assert rows["high"][7:] == ["10", "10"], rows

    f = fake()
    bench_routes(f, fail_ids=("j-0000000000000003",))
    rc, out, err = vramctl("bench", "--batch", "--json", url=f.url)
    assert rc == 1, (rc, err)
    summary = json.loads(out)
    assert summary["complete"] == 3 and summary["failed"] == 1, summary
    assert summary["by_priority"]["low"]["failed"] == 1, summary
    assert "ollama: out of memory" in err, err


def test_bench_random_uses_the_registry_and_the_seed():
    f = fake()
    bench_routes(f)
    rc, out, err = vramctl("bench", "--random", "30", "--seed", "7", "--no-check", url=f.url)
    assert rc == 0, (rc, err)
    first = [r["body"] for r in f.requests_to("POST", "/api/submit")]
    assert len(first) == 30
    assert not [r for r in f.requests if r["path"].startswith("/api/job/")], "--no-check polled"
    models = {b["model"] for b in first}
    assert models <= {"all-minilm:latest", "qwen2.5:0.5b"} and len(models) == 2, models
    for b in first:  # the embedding-only model only ever gets embed jobs
        assert ("input" in b) == (b["model"] == "all-minilm:latest"), b
    assert len({b["priority"] for b in first}) == 3, first

    f = fake()
    bench_routes(f)
    rc, _, _ = vramctl("bench", "--spam", "30", "--seed", "7", url=f.url)
    assert rc == 0
    again = [r["body"] for r in f.requests_to("POST", "/api/submit")]
    assert again == first, "the same seed must give the same jobs"

    f = fake()
    bench_routes(f)
    rc, out, err = vramctl("bench", "--random", "6", "--models", "qwen2.5:0.5b", url=f.url)
    assert rc == 0, err
    assert {r["body"]["model"] for r in f.requests_to("POST", "/api/submit")} == {
        "qwen2.5:0.5b"}
    assert len([r for r in f.requests if r["path"].startswith("/api/job/")]) >= 6

    # Rejected submissions are counted and make the exit status 1.
    f = fake()
    f.routes[("GET", "/api/models")] = (200, MODELS_REPLY)
    f.routes[("POST", "/api/submit")] = (429, {"error": "queue is full (1000 jobs); retry "
                                               "later"}, {"Retry-After": "1"})
    rc, out, err = vramctl("bench", "--spam", "3", "--json", url=f.url)
    assert rc == 1 and json.loads(out)["rejected"] == 3, (rc, out)
    assert "queue is full" in err, err


if __name__ == "__main__":
    run_tests(globals())
