"""Input bounds of the vramd API (issue "Hardening"): a GET /api/jobs whose
status list repeats one value thousands of times answers fast and correct; the
queue caps the bytes of the requests it holds (QUEUE_MAX_BYTES, 429 +
Retry-After) and releases them when jobs finish; unknown top-level fields and
unknown, mistyped or out-of-range job options are refused with a 400 naming
them; num_gpu and main_gpu are vramd's to choose; the database, its WAL files,
the log file and a data directory vramd creates are private to its user."""

import json
import os
import stat
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import http, run_tests, start_sim, wait_until  # noqa: E402
from vramd_harness import start_vramd, wait_ready  # noqa: E402

SIM = V = None
MODEL = "qwen2.5:0.5b"  # trained on 32768 tokens in the sim catalogue


def setup_module():
    global SIM, V
    SIM = start_sim("--gpus", "8GiB", state_file=True, time_scale=500)
    V = start_vramd(SIM)
    wait_ready(V)


def teardown_module():
    V.proc.assert_clean_exit()
    SIM.stop()


def expect_error(status, method, path, body=None, words=(), vd=None):
    vd = vd or V
    got, headers, data = http(method, vd.url + path, json_body=body)
    assert got == status, (method, path, body, got, data[:300])
    err = json.loads(data)
    assert isinstance(err, dict) and set(err) == {"error"}, err
    for w in words:
        assert w.lower() in err["error"].lower(), "%r does not mention %r" % (err["error"], w)
    return headers, err["error"]


def test_repeated_status_list_is_cheap_and_correct():
    ids = {"high": [], "low": []}
    for i in range(60):
        prio = "high" if i % 2 == 0 else "low"
        ids[prio].append(V.submit_ok({"model": MODEL, "prompt": "p%d" % i, "priority": prio}))
    V.wait_all_final(ids["high"] + ids["low"])
    # The tester's 54 KB URL (status repeated 6000 times) is over the request-line cap.
    t0 = time.monotonic()
    expect_error(414, "GET", "/api/jobs?priority=high&limit=1000&status=" +
                 ",".join(["complete"] * 6000), words=["too long"])
    assert time.monotonic() - t0 < 0.5
    # Under the cap, repeats cost nothing: one query whatever the spelling.
    status = ",".join(["complete"] * 800)
    path = "/api/jobs?priority=high&limit=1000&status=" + status
    assert len(path) > 7000
    t0 = time.monotonic()
    code, body = V.get(path)
    elapsed = time.monotonic() - t0
    assert code == 200, (code, body)
    got = [j["job_id"] for j in body["jobs"]]
    assert sorted(got, reverse=True) == got, "not newest first"
    assert set(got) == set(ids["high"]), (len(got), len(ids["high"]))
    assert all(j["priority"] == "high" and j["status"] == "complete" for j in body["jobs"])
    assert elapsed < 0.5, "took %.3fs" % elapsed
    # The limit counts after every filter, and lists of several values work.
    code, body = V.get("/api/jobs?priority=low,high&status=complete,failed&limit=7")
    assert code == 200 and body["count"] == 7, body
    want = sorted(ids["high"] + ids["low"], reverse=True)[:7]
    assert [j["job_id"] for j in body["jobs"]] == want
    # Unknown values are named; an over-long value is refused, not echoed in full.
    expect_error(400, "GET", "/api/jobs?status=complete,done,complete", words=["done"])
    expect_error(400, "GET", "/api/jobs?priority=high,urgent", words=["urgent"])
    expect_error(400, "GET", "/api/jobs?status=complete,,failed", words=["status", "empty"])
    _, msg = expect_error(400, "GET", "/api/jobs?status=" + "x" * 5000, words=["status"])
    assert len(msg) < 400, msg
    expect_error(400, "GET", "/api/jobs?model=" + "m" * 5000, words=["model"])


def test_unknown_fields_are_named():
    expect_error(400, "POST", "/api/submit",
                 {"model": MODEL, "prompt": "hi", "promt": "typo"}, words=["promt"])
    expect_error(400, "PUT", "/api/gpu/config", {"speed_normal": 0.7, "bogus_key": 1},
                 words=["bogus_key"])
    expect_error(400, "POST", "/api/gpu/memory/allocate",
                 {"id": "t1", "mb": 1, "colour": "red"}, words=["colour"])
    expect_error(400, "POST", "/api/gpu/memory/deallocate",
                 {"id": "t1", "force": True}, words=["force"])


def test_options_are_checked():
    def bad(options, *words):
        expect_error(400, "POST", "/api/submit",
                     {"model": MODEL, "prompt": "hi", "options": options}, words=words)
    bad({"temprature": 0.5}, "temprature")
    bad({"temperature": "hot"}, "temperature", "number")
    bad({"num_predict": 1.5}, "num_predict", "integer")
    bad({"stop": "x"}, "stop", "array")
    bad({"stop": [1]}, "stop")
    bad({"use_mmap": 1}, "use_mmap", "boolean")
    bad({"num_ctx": 0}, "num_ctx")
    bad({"num_ctx": -4}, "num_ctx")
    bad({"num_ctx": 1 << 40}, "num_ctx")
    # Beyond the model's training context, once /api/show told vramd about it.
    wait_until(lambda: any(m["name"] == MODEL and m.get("kv_cache_bytes")
                           for m in V.get("/api/models")[1]["models"]),
               what="the architecture of %s" % MODEL)
    bad({"num_ctx": 65536}, "num_ctx", "32768")
    bad({"num_gpu": 99}, "num_gpu")
    bad({"main_gpu": 1}, "main_gpu")
    jid = V.submit_ok({"model": MODEL, "prompt": "hi",
                       "options": {"num_ctx": 8192, "temperature": 0.2, "seed": 7,
                                   "stop": ["\n"], "top_p": 1, "num_predict": 8}})
    assert V.wait_final(jid)["status"] == "complete"


def test_queue_max_bytes():
    sim = start_sim("--gpus", "8GiB", state_file=True, time_scale=1)
    vd = start_vramd(sim, "--queue-max-bytes", "64KiB", "--max-body-bytes", "1MiB")
    try:
        wait_ready(vd)
        prompt = "z" * (20 * 1024)
        accepted = []
        for _ in range(3):
            accepted.append(vd.submit_ok({"model": MODEL, "prompt": prompt}))
        headers, msg = expect_error(429, "POST", "/api/submit",
                                    {"model": MODEL, "prompt": prompt},
                                    words=["bytes", "retry"], vd=vd)
        assert int(headers["retry-after"]) >= 1, headers
        # A small job still fits next to them.
        accepted.append(vd.submit_ok({"model": MODEL, "prompt": "small"}))
        for jid in accepted:
            assert vd.cancel(jid)[0] == 200
        for jid in accepted:
            assert vd.wait_final(jid)["status"] == "cancelled"
        # Final jobs release their bytes.
        vd.submit_ok({"model": MODEL, "prompt": prompt})
    finally:
        vd.stop()
        sim.stop()


def test_files_are_private():
    parent = tempfile.mkdtemp(prefix="vramd-perm-")
    os.chmod(parent, 0o755)
    data_dir = os.path.join(parent, "data")
    log_file = os.path.join(parent, "vramd.log")
    vd = start_vramd(SIM, "--log-file", log_file, data_dir=data_dir)
    try:
        wait_ready(vd)
        vd.submit_ok({"model": MODEL, "prompt": "hi"})
        assert stat.S_IMODE(os.stat(data_dir).st_mode) == 0o700
        db = os.path.join(data_dir, "vramd.db")
        for path in (db, db + "-wal", db + "-shm", log_file):
            mode = stat.S_IMODE(os.stat(path).st_mode)
            assert mode == 0o600, "%s is %o" % (path, mode)
    finally:
        vd.stop()
    # A directory that exists already keeps its mode.
    os.chmod(data_dir, 0o750)
    vd = start_vramd(SIM, data_dir=data_dir)
    try:
        assert stat.S_IMODE(os.stat(data_dir).st_mode) == 0o750
    finally:
        vd.stop()


if __name__ == "__main__":
    run_tests(globals())
