"""Deadlines (issue 11) through the real daemon: deadline_s on POST /api/submit and
X-Vramd-Deadline on the front doors; best_effort (the default) accepts a deadline it
cannot meet and reports deadline_missed (status field and event); DEADLINE_POLICY=reject
answers 429 with the ETA and Retry-After and stores nothing, and accepts a feasible
deadline; a job with a deadline overtakes an earlier job of its class without one; the
deadline survives a restart of vramd.

The world is start_slow(): phi3:mini makes about one token a second, one job of a model
runs at a time, so jobs queue behind a running one.
"""

import json
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import http, http_json, run_tests, start_sim, wait_until  # noqa: E402
from vramd_harness import start_slow, start_vramd, wait_ready  # noqa: E402

MODEL = "phi3:mini"


def body(n, **extra):
    b = {"model": MODEL, "prompt": "hi", "options": {"num_predict": n}}
    b.update(extra)
    return b


def hold(v, n=4):
    """A first job that keeps the model busy for about n seconds; returns its id once it
    runs."""
    first = v.submit_ok(body(n))
    wait_until(lambda: v.job(first)["status"] == "running", timeout=30, what="first job running")
    return first


class Events:
    """GET /api/events read raw on a thread: .text holds what came."""

    def __init__(self, v):
        self.sock = socket.create_connection(("127.0.0.1", v.port))
        self.sock.sendall(b"GET /api/events HTTP/1.1\r\nHost: localhost\r\n\r\n")
        self.text = ""
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    return
                self.text += data.decode("utf-8", "replace")
        except OSError:
            return

    def close(self):
        self.sock.close()


def test_bad_deadlines_are_400():
    sim, v = start_slow()
    try:
        for bad in ("5", 0, -1, 1e12, True, [1]):
            status, reply = v.submit(body(1, deadline_s=bad))
            assert status == 400 and "deadline_s" in reply["error"], (bad, status, reply)
        for bad in ("abc", "0", "-3", "nan", "inf", "5s"):
            status, hdrs, data = http("POST", v.url + "/api/generate",
                                      json_body=body(1, stream=False),
                                      headers={"X-Vramd-Deadline": bad})
            assert status == 400 and b"X-Vramd-Deadline" in data, (bad, status, data)
            status, hdrs, data = http(
                "POST", v.url + "/v1/chat/completions",
                json_body={"model": MODEL, "messages": [{"role": "user", "content": "hi"}]},
                headers={"X-Vramd-Deadline": bad})
            assert status == 400 and b"X-Vramd-Deadline" in data, (bad, status, data)
        assert v.stats()["jobs"]["total"] == 0
        v.proc.assert_clean_exit()
    finally:
        v.stop()
        sim.stop()


def test_best_effort_accepts_and_reports_missed():
    sim, v = start_slow()
    ev = Events(v)
    try:
        first = hold(v, 4)
        late = v.submit_ok(body(1, deadline_s=0.5))
        plain = v.submit_ok(body(1))
        job = v.job(late)
        assert job["status"] == "queued" and isinstance(job["deadline_at"], int), job
        jobs = v.wait_all_final([first, late, plain], timeout=120)
        for j in jobs.values():
            assert j["status"] == "complete", j
        assert jobs[late]["deadline_missed"] is True, jobs[late]
        assert jobs[plain]["deadline_missed"] is False and jobs[plain]["deadline_at"] is None
        assert jobs[first]["deadline_missed"] is False
        wait_until(lambda: "event: deadline_missed" in ev.text and late in ev.text, timeout=10,
                   what="a deadline_missed event for the late job")
        # A deadline that holds is not missed.
        ok = v.submit_ok(body(1, deadline_s=600))
        done = v.wait_final(ok, timeout=60)
        assert done["status"] == "complete" and done["deadline_missed"] is False, done
        assert ev.text.count("event: deadline_missed") == 1, ev.text
        v.proc.assert_clean_exit()
    finally:
        ev.close()
        v.stop()
        sim.stop()


def test_reject_answers_429_with_eta():
    sim, v = start_slow("--deadline-policy", "reject")
    try:
        # One run measured (about 3 s): the ETA can say a job needs that long.
        warm = v.submit_ok(body(3))
        assert v.wait_final(warm, timeout=60)["status"] == "complete"
        total = v.stats()["jobs"]["total"]

        status, hdrs, data = http("POST", v.url + "/api/submit",
                                  json_body=body(1, deadline_s=0.5))
        assert status == 429, (status, data)
        reply = json.loads(data)
        assert "deadline" in reply["error"], reply
        assert isinstance(reply["eta_s"], (int, float)) and reply["eta_s"] >= 0, reply
        assert int(hdrs["retry-after"]) >= 1, hdrs

        # The Ollama door: 429 in Ollama's shape, with Retry-After and X-Vramd-ETA.
        status, hdrs, data = http("POST", v.url + "/api/generate",
                                  json_body=body(1, stream=False),
                                  headers={"X-Vramd-Deadline": "0.5"})
        assert status == 429, (status, data)
        assert "error" in json.loads(data), data
        assert int(hdrs["retry-after"]) >= 1 and float(hdrs["x-vramd-eta"]) >= 0, hdrs
        # The OpenAI door: its error object.
        status, hdrs, data = http(
            "POST", v.url + "/v1/chat/completions",
            json_body={"model": MODEL, "messages": [{"role": "user", "content": "hi"}],
                       "max_tokens": 1},
            headers={"X-Vramd-Deadline": "0.5"})
        assert status == 429, (status, data)
        assert "message" in json.loads(data)["error"], data
        assert "retry-after" in hdrs and "x-vramd-eta" in hdrs, hdrs

        # Nothing stored for the rejected jobs.
        assert v.stats()["jobs"]["total"] == total, v.stats()["jobs"]
        status, listing = v.get("/api/jobs")
        assert status == 200 and len(listing["jobs"]) == total, listing

        # A feasible deadline is accepted, on both entries.
        ok = v.submit_ok(body(1, deadline_s=600))
        status, hdrs, data = http("POST", v.url + "/api/generate",
                                  json_body=body(1, stream=False),
                                  headers={"X-Vramd-Deadline": "600"})
        assert status == 200, (status, data)
        assert v.wait_final(ok, timeout=60)["status"] == "complete"
        v.proc.assert_clean_exit()
    finally:
        v.stop()
        sim.stop()


def test_deadline_overtakes_same_class():
    sim, v = start_slow()
    try:
        first = hold(v, 4)
        plain = v.submit_ok(body(1))
        urgent = v.submit_ok(body(1, deadline_s=300))
        low_urgent = v.submit_ok(body(1, deadline_s=200, priority="low"))
        # Meaningful only while both still wait behind the first.
        assert v.job(plain)["status"] == "queued" and v.job(urgent)["status"] == "queued"
        assert v.job(urgent)["queue_position"] >= 1
        jobs = v.wait_all_final([first, plain, urgent, low_urgent], timeout=120)
        for j in jobs.values():
            assert j["status"] == "complete", j
        assert jobs[urgent]["started_at"] < jobs[plain]["started_at"], (jobs[urgent],
                                                                        jobs[plain])
        # A deadline does not lift a job above its class.
        assert jobs[plain]["started_at"] < jobs[low_urgent]["started_at"], jobs
        v.proc.assert_clean_exit()
    finally:
        v.stop()
        sim.stop()


def test_deadline_survives_restart():
    sim = start_sim("--gpus", "8GiB", "--load-bw", "1000GB", "--start-cost", "1ms",
                    "--num-parallel", "2", state_file=True, time_scale=0.01)
    v = start_vramd(sim, "--max-concurrent", "1")
    try:
        wait_ready(v)
        first = hold(v, 4)
        # The deadline job between two without one, so that neither submission order
        # nor its reverse puts it first.
        plain = v.submit_ok(body(1))
        urgent = v.submit_ok(body(1, deadline_s=300))
        plain2 = v.submit_ok(body(1))
        before = v.job(urgent)
        assert before["status"] == "queued" and isinstance(before["deadline_at"], int), before
        data_dir, port = v.data_dir, v.port
        v.proc.kill9()
        time.sleep(0.3)
        v = start_vramd(sim, "--max-concurrent", "1", data_dir=data_dir, port=port)
        wait_ready(v)
        after = v.job(urgent)
        assert after["deadline_at"] == before["deadline_at"], (before, after)
        assert v.job(plain)["deadline_at"] is None
        jobs = v.wait_all_final([first, plain, urgent, plain2], timeout=120)
        for j in jobs.values():
            assert j["status"] == "complete", j
        # Recovered, it is still ordered by its deadline: before both plain jobs.
        for p in (plain, plain2):
            assert jobs[urgent]["started_at"] < jobs[p]["started_at"], (jobs[urgent], jobs[p])
        assert jobs[urgent]["deadline_missed"] is False
        v.proc.assert_clean_exit()
    finally:
        v.stop()
        sim.stop()


if __name__ == "__main__":
    run_tests(globals())
