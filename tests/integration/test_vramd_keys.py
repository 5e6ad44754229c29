"""API keys (API_KEYS_FILE): 401 without a key or with an unknown or malformed one on
every route of the route table but the public ones, 403 on every admin route with a
key that is not admin; a submission's priority, model and queue length held to its
key; jobs carry their key (also after a restart) and a key that is not admin sees only
its own; fair share: one key flooding the queue cannot make another key's jobs of
the same model and priority wait behind its backlog; stats per key; vramctl's
--api-key and VRAMD_API_KEY; a bad key file stops vramd with a message naming the
entry and field.

The routes are read from the table in src/api/api.c, so a route added there is
checked here without editing this file."""

import datetime
import http.client
import json
import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Proc, free_port, run_tests, source_dir, start_sim, wait_until  # noqa: E402
from vramd_harness import start_vramd, vramctl_path, vramd_path  # noqa: E402

ADMIN = "sk-test-admin-9c1f0e7a5b3d2c4e"
ALPHA = "sk-test-alpha-1b2c3d4e5f6a7b8c"  # the flooder
BRAVO = "sk-test-bravo-8a7b6c5d4e3f2a1b"
LIMITED = "sk-test-limit-0f9e8d7c6b5a4f3e"
UNKNOWN = "sk-test-nobody-000000000000000"

FLOOD_MODEL = "qwen2.5:0.5b"
SLOW_MODEL = "phi3:mini"
KEYS = [
    {"key": ADMIN, "name": "ops", "admin": True, "max_priority": "high"},
    {"key": ALPHA, "name": "alpha", "max_priority": "high"},
    {"key": BRAVO, "name": "bravo", "default_priority": "low", "max_priority": "normal"},
    {"key": LIMITED, "name": "limited", "models": [SLOW_MODEL], "max_queued": 2},
]
FLOOD_A, FLOOD_B = 500, 20

SIM = V = None
KEYS_FILE = None


def call(method, path, key=None, body=None, headers=None, timeout=30, read=True):
    """One request to V; returns (status, headers, parsed JSON or None). With read
    false and a 2xx status, the body is not read (event streams)."""
    hdrs = dict(headers or {})
    if key is not None:
        hdrs["Authorization"] = "Bearer " + key
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        hdrs["Content-Type"] = "application/json"
    conn = http.client.HTTPConnection("127.0.0.1", V.port, timeout=timeout)
    try:
        conn.request(method, path, body=data, headers=hdrs)
        resp = conn.getresponse()
        rh = {k.lower(): v for k, v in resp.getheaders()}
        if not read and 200 <= resp.status < 300:
            return resp.status, rh, None
        raw = resp.read()
        try:
            value = json.loads(raw) if raw else None
        except ValueError:
            value = raw
        return resp.status, rh, value
    finally:
        conn.close()


def submit(key, body):
    status, headers, reply = call("POST", "/api/submit", key, body)
    return status, headers, reply


def submit_ok(key, body):
    status, _, reply = submit(key, body)
    assert status == 202, (status, reply, body)
    return reply["job_id"]


def job(jid, key=ADMIN, wait=None):
    path = "/api/job/" + jid + ("?wait=%s" % wait if wait else "")
    status, _, body = call("GET", path, key, timeout=(wait or 0) + 30)
    assert status == 200, (status, body)
    return body


def wait_final(jid, key=ADMIN, timeout=120):
    deadline = time.monotonic() + timeout
    while True:
        j = job(jid, key, wait=5)
        if j["status"] in ("complete", "failed", "cancelled"):
            return j
        assert time.monotonic() < deadline, "job %s not final: %r" % (jid, j)


def routes():
    """(methods, path, prefix, flags) of every row of the route table in api.c."""
    text = open(os.path.join(source_dir(), "src", "api", "api.c")).read()
    table = text[text.index("api_routes[] = {"):]
    table = table[:table.index("\n};")]
    rows = re.findall(r'\{\s*(VD_HTTP_[A-Z_| ]+?),\s*"([^"]+)",\s*(true|false),\s*\w+,'
                      r'\s*([A-Z_| ]+|0)\s*\}', table)
    assert len(rows) >= 25, rows
    out = []
    for methods, path, prefix, flags in rows:
        names = [m.strip()[len("VD_HTTP_"):] for m in methods.split("|")]
        out.append((names, path, prefix == "true", flags))
    return out


def requests_of_table():
    """(method, path, flags) to try for every route and method."""
    for names, path, prefix, flags in routes():
        target = path + "j-00000000000fffff" if prefix else path
        for method in names:
            yield method, target, flags


def setup_module():
    global SIM, V, KEYS_FILE
    # qwen2.5:0.5b at time scale 2: a job of 8 tokens takes tens of milliseconds, so
    # 500 of them take tens of seconds, one at a time (--max-concurrent 1).
    SIM = start_sim("--gpus", "8GiB", "--load-bw", "1000GB", "--start-cost", "1ms",
                    "--num-parallel", "2", state_file=True, time_scale=2)
    KEYS_FILE = os.path.join(tempfile.mkdtemp(prefix="vramd-keys-"), "keys.json")
    with open(KEYS_FILE, "w") as f:
        json.dump(KEYS, f)
    os.chmod(KEYS_FILE, 0o600)
    V = start_vramd(SIM, "--api-keys-file", KEYS_FILE, "--max-concurrent", "1",
                    "--sync", "normal")
    deadline = time.monotonic() + 30
    while True:
        status, _, body = call("GET", "/api/models", ADMIN)
        if status == 200 and len(body["models"]) >= 10:
            break
        assert time.monotonic() < deadline, (status, body)
        time.sleep(0.1)


def teardown_module():
    V.proc.assert_clean_exit()
    SIM.stop()


def test_every_protected_route_needs_a_key():
    checked = 0
    for method, path, flags in requests_of_table():
        body = {} if method in ("POST", "PUT") else None
        # API_ROUTE_METRICS: public unless METRICS_REQUIRE_KEY (test_vramd_prometheus.py)
        public = "API_ROUTE_PUBLIC" in flags or "API_ROUTE_METRICS" in flags
        for what, headers in (("no key", {}),
                              ("unknown key", {"Authorization": "Bearer " + UNKNOWN}),
                              ("not Bearer", {"Authorization": "Basic " + ALPHA}),
                              ("two spaces", {"Authorization": "Bearer  " + ALPHA})):
            status, rh, reply = call(method, path, body=body, headers=headers, read=False)
            if public:
                assert status not in (401, 403), (method, path, what, status, reply)
                continue
            assert status == 401, (method, path, what, status, reply)
            assert rh.get("www-authenticate", "").startswith("Bearer"), (method, path, rh)
            if method != "HEAD":
                assert isinstance(reply, dict) and reply.get("error"), (method, path, reply)
                # The key sent is never repeated back.
                assert "sk-test" not in reply["error"], reply
            checked += 1
    assert checked >= 4 * 25, checked


def test_admin_routes_need_an_admin_key():
    admin_routes = 0
    for method, path, flags in requests_of_table():
        body = {} if method in ("POST", "PUT") else None
        status, _, reply = call(method, path, ALPHA, body=body, read=False)
        if "API_ROUTE_ADMIN" in flags:
            admin_routes += 1
            assert status == 403, (method, path, status, reply)
            assert "alpha" in reply["error"] and "admin" in reply["error"], reply
            # An admin key passes the door (the empty body may still be refused).
            status, _, reply = call(method, path, ADMIN, body=body, read=False)
            assert status not in (401, 403), (method, path, status, reply)
        else:
            assert status not in (401, 403), (method, path, status, reply)
    # config PUT, two reservation routes, monitoring start and stop, five model routes.
    assert admin_routes >= 10, admin_routes
    # The sweep stopped monitoring last (stop comes after start in the table).
    status, _, reply = call("POST", "/api/gpu/monitoring/start", ADMIN, body={})
    assert status == 200, (status, reply)


def test_submit_follows_the_key():
    # bravo: default low, may ask normal, not high.
    jid = submit_ok(BRAVO, {"model": FLOOD_MODEL, "prompt": "hi", "options": {"num_predict": 1}})
    j = job(jid, BRAVO)
    assert j["priority"] == "low" and j["key"] == "bravo", j
    jid = submit_ok(BRAVO, {"model": FLOOD_MODEL, "prompt": "hi", "priority": "normal",
                            "options": {"num_predict": 1}})
    assert job(jid, BRAVO)["priority"] == "normal"
    status, _, reply = submit(BRAVO, {"model": FLOOD_MODEL, "prompt": "hi", "priority": "high"})
    assert status == 403, (status, reply)
    assert "max_priority" in reply["error"] and "high" in reply["error"], reply

    # limited: one model only, at most two jobs queued.
    status, _, reply = submit(LIMITED, {"model": FLOOD_MODEL, "prompt": "hi"})
    assert status == 403, (status, reply)
    assert FLOOD_MODEL in reply["error"], reply
    long_job = {"model": SLOW_MODEL, "prompt": "a long story",
                "options": {"num_predict": 4000}}
    running = submit_ok(LIMITED, long_job)
    wait_until(lambda: job(running, LIMITED)["status"] == "running", timeout=60,
               what="the long job running")
    queued = [submit_ok(LIMITED, long_job) for _ in range(2)]
    status, headers, reply = submit(LIMITED, long_job)
    assert status == 429, (status, reply)
    assert "max_queued" in reply["error"], reply
    assert int(headers["retry-after"]) >= 1, headers
    # Its own jobs it may cancel; then there is room again.
    for jid in [running] + queued:
        status, _, reply = call("DELETE", "/api/job/" + jid, LIMITED)
        assert status == 200, (status, reply)
    jid = submit_ok(LIMITED, {"model": SLOW_MODEL, "prompt": "hi", "options": {"num_predict": 1}})
    assert wait_final(jid)["status"] == "complete"


def test_jobs_belong_to_their_key():
    mine = submit_ok(BRAVO, {"model": SLOW_MODEL, "prompt": "a long story", "priority": "low",
                             "options": {"num_predict": 4000}})
    # Another key that is not admin may neither read nor cancel it, nor list it.
    status, _, reply = call("GET", "/api/job/" + mine, ALPHA)
    assert status == 403 and "another API key" in reply["error"], (status, reply)
    status, _, reply = call("DELETE", "/api/job/" + mine, ALPHA)
    assert status == 403 and "cancel" in reply["error"], (status, reply)
    status, _, listing = call("GET", "/api/jobs?limit=1000", ALPHA)
    assert status == 200, listing
    assert all(j["key"] == "alpha" for j in listing["jobs"]), listing
    assert mine not in [j["job_id"] for j in listing["jobs"]]
    # Its owner lists it; an admin sees every key's jobs and may cancel it.
    status, _, listing = call("GET", "/api/jobs?limit=1000", BRAVO)
    assert mine in [j["job_id"] for j in listing["jobs"]], listing
    assert {j["key"] for j in listing["jobs"]} == {"bravo"}, listing
    status, _, listing = call("GET", "/api/jobs?limit=1000", ADMIN)
    assert {"bravo", "limited"} <= {j["key"] for j in listing["jobs"]}, listing
    status, _, reply = call("DELETE", "/api/job/" + mine, ADMIN)
    assert status == 200 and reply["status"] == "cancelled", (status, reply)


def parse_time(text):
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_flood_does_not_starve_another_key():
    """alpha queues 500 short jobs, then bravo 20 of the same model and priority.
    In FIFO order bravo's jobs would all finish after alpha's 500; with fair share
    they take turns with alpha's, so bravo's last job ends before alpha's
    100th-from-last, and while bravo's jobs wait, alpha gets about as many turns."""
    short = {"model": FLOOD_MODEL, "prompt": "hi", "priority": "normal",
             "options": {"num_predict": 8}}
    a_ids = [submit_ok(ALPHA, short) for _ in range(FLOOD_A)]
    status, _, stats = call("GET", "/api/stats", ADMIN)
    alpha = next(k for k in stats["keys"] if k["name"] == "alpha")
    assert alpha["queued"] + alpha["running"] >= 200, alpha  # the backlog is still there
    b_start = time.time()
    b_ids = [submit_ok(BRAVO, short) for _ in range(FLOOD_B)]
    for jid in b_ids:
        j = wait_final(jid, BRAVO, timeout=300)
        assert j["status"] == "complete", j
    status, _, listing = call("GET", "/api/jobs?limit=1000", ADMIN)
    assert status == 200, listing
    by_id = {j["job_id"]: j for j in listing["jobs"]}
    b_last = max(parse_time(by_id[j]["completed_at"]) for j in b_ids)
    a_done = [parse_time(by_id[j]["completed_at"]) for j in a_ids
              if by_id[j]["status"] == "complete"]
    a_before = sum(1 for t in a_done if t <= b_last)
    a_during = sum(1 for t in a_done if b_start <= t <= b_last)
    print("alpha: %d of %d done when bravo's last job ended (%d of them while bravo's "
          "jobs waited); bravo's 20 took %.1f s" %
          (a_before, FLOOD_A, a_during, b_last - b_start))
    assert a_before <= FLOOD_A - 100, (a_before, "bravo's jobs waited behind alpha's backlog")
    # Fair share, not priority: alpha kept about half the turns meanwhile (20 each,
    # plus a few for jobs in flight and the timing of the first charges).
    assert a_during <= FLOOD_B + 10, a_during


def test_stats_per_key():
    status, _, stats = call("GET", "/api/stats", ADMIN)
    assert status == 200, stats
    keys = {k["name"]: k for k in stats["keys"]}
    assert set(keys) == {"ops", "alpha", "bravo", "limited"}, keys
    a, b = keys["alpha"], keys["bravo"]
    assert a["submitted"] == FLOOD_A, a
    assert a["queued"] + a["running"] + a["completed"] + a["failed"] == FLOOD_A, a
    assert b["completed"] >= FLOOD_B + 2, b
    assert b["cancelled"] == 1, b
    assert a["tokens_served"] > 0 and b["tokens_served"] > 0, (a, b)
    assert keys["limited"]["cancelled"] == 3, keys["limited"]
    for k in keys.values():
        assert set(k) >= {"submitted", "queued", "running", "completed", "failed",
                          "tokens_served", "weight"}, k
    # A key that is not admin sees its own line only.
    status, _, stats = call("GET", "/api/stats", BRAVO)
    assert [k["name"] for k in stats["keys"]] == ["bravo"], stats["keys"]


def run_vramctl(args, env_key=None):
    env = dict(os.environ)
    env.pop("VRAMD_API_KEY", None)
    if env_key is not None:
        env["VRAMD_API_KEY"] = env_key
    return subprocess.run([vramctl_path(), "--url", V.url] + args, env=env,
                          capture_output=True, text=True, timeout=60)


def test_vramctl_sends_the_key():
    r = run_vramctl(["stats", "--json"])
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert "API key" in r.stderr, r.stderr
    r = run_vramctl(["--api-key", BRAVO, "stats", "--json"])
    assert r.returncode == 0, r.stderr
    assert [k["name"] for k in json.loads(r.stdout)["keys"]] == ["bravo"], r.stdout
    r = run_vramctl(["stats", "--json", "--api-key", ADMIN])
    assert r.returncode == 0, r.stderr
    r = run_vramctl(["stats", "--json"], env_key=BRAVO)
    assert r.returncode == 0, r.stderr
    r = run_vramctl(["submit", "--model", FLOOD_MODEL, "--prompt", "hi"], env_key=UNKNOWN)
    assert r.returncode == 1 and "unknown API key" in r.stderr, (r.returncode, r.stderr)
    assert UNKNOWN not in r.stderr
    r = run_vramctl(["--json", "force-gpu", FLOOD_MODEL], env_key=BRAVO)
    assert r.returncode == 1 and "admin" in r.stderr, (r.returncode, r.stderr)
    r = run_vramctl(["events", "--count", "1"], env_key=UNKNOWN)
    assert r.returncode == 1 and "unknown API key" in r.stderr, (r.returncode, r.stderr)
    r = run_vramctl(["stats"], env_key="has space")
    assert r.returncode == 2 and "has space" not in r.stderr, (r.returncode, r.stderr)


def test_key_survives_restart():
    global V
    status, _, listing = call("GET", "/api/jobs?limit=1&model=" + FLOOD_MODEL, BRAVO)
    jid = listing["jobs"][0]["job_id"]
    V.proc.assert_clean_exit()
    V = start_vramd(SIM, "--api-keys-file", KEYS_FILE, "--max-concurrent", "1",
                    "--sync", "normal", data_dir=V.data_dir)
    j = job(jid, BRAVO)
    assert j["key"] == "bravo", j
    # Recovered queued jobs keep theirs too.
    status, _, listing = call("GET", "/api/jobs?status=queued&limit=5", ALPHA)
    assert all(j["key"] == "alpha" for j in listing["jobs"]), listing


def test_bad_keys_file_stops_vramd():
    bad = os.path.join(tempfile.mkdtemp(prefix="vramd-keys-"), "keys.json")
    with open(bad, "w") as f:
        json.dump([{"key": ADMIN, "name": "ops"},
                   {"key": ALPHA, "name": "alpha", "max_priorty": "high"}], f)
    proc = Proc([vramd_path(), "--listen", "127.0.0.1:%d" % free_port(), "--data-dir",
                 tempfile.mkdtemp(prefix="vramd-data-"), "--ollama", SIM.url,
                 "--api-keys-file", bad], name="vramd-bad-keys")
    try:
        proc.popen.wait(30)
    finally:
        proc.stop()
    assert proc.popen.returncode != 0
    log = proc.log_text()
    assert bad in log and "key 1 (\"alpha\")" in log and "max_priorty" in log, log
    assert ALPHA not in log and ADMIN not in log, log


if __name__ == "__main__":
    run_tests(globals())
