"""vramd against an Ollama that fails, driven by ollama-sim's faults on demand
(POST /sim/fault). vramd runs jobs with "stream": false, so a crash "mid-stream"
is a crash while the reply is being generated. Each fault must end with the job
retried and complete, or failed with a clear message, never stuck:

  - a crash during the reply and a crash during the load (the sim is restarted on
    the same port): the job is retried and completes;
  - a hang beyond --request-timeout: the run fails with "did not answer within",
    work is held until the server answers, then the next job completes;
  - an error 500: the job fails with Ollama's message; a 503 ("server busy") is
    retried and completes;
  - a reset mid-reply: the job is retried and completes.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import http_json, run_tests, start_sim, wait_until  # noqa: E402
from vramd_harness import check_result, start_vramd, wait_ready  # noqa: E402

BUDGET = ("--gpu-source", "none", "--vram-budget", "8GiB")
MODEL = "qwen2.5:0.5b"


def job_body(model=MODEL, n=8):
    return {"model": model, "prompt": "hi", "options": {"num_predict": n}}


def add_fault(sim, **spec):
    status, reply = http_json("POST", sim.url + "/sim/fault", json_body=spec)
    assert status == 200, (status, reply)
    return reply


def fault_counters(sim):
    status, reply = http_json("GET", sim.url + "/sim/faults")
    assert status == 200, (status, reply)
    return reply["counters"]


def warm(v):
    """Runs one job so that MODEL is loaded and later faults hit runs, not loads."""
    jid = v.submit_ok(job_body())
    job = v.wait_final(jid, timeout=60)
    assert job["status"] == "complete", job


def assert_completed_after_retry(v, jid, timeout=90):
    job = v.wait_final(jid, timeout=timeout)
    assert job["status"] == "complete", job
    assert job["attempts"] >= 2, job
    check_result(v.job(jid))
    return job


def test_crash_during_reply_is_retried():
    sim_args = ("--gpus", "8GiB")
    sim = start_sim(*sim_args, time_scale=20)
    v = start_vramd(sim, *BUDGET)
    try:
        wait_ready(v)
        warm(v)
        add_fault(sim, type="crash", after_chunks=3, model=MODEL, endpoint="/api/generate")
        jid = v.submit_ok(job_body(n=30))
        wait_until(lambda: not sim.proc.alive(), timeout=30, what="the sim to crash")
        assert "fault: crash (mid-reply)" in sim.proc.log_text()
        sim = start_sim(*sim_args, time_scale=20, port=sim.port)
        assert_completed_after_retry(v, jid)
        v.proc.assert_clean_exit()
    finally:
        v.stop()
        sim.stop()


def test_crash_during_load_is_retried():
    sim_args = ("--gpus", "8GiB", "--start-cost", "20s")
    sim = start_sim(*sim_args, time_scale=20)
    v = start_vramd(sim, *BUDGET)
    try:
        wait_ready(v)
        add_fault(sim, type="crash", model=MODEL)
        jid = v.submit_ok(job_body())
        wait_until(lambda: not sim.proc.alive(), timeout=30, what="the sim to crash")
        assert "crash during the load of " + MODEL in sim.proc.log_text()
        sim = start_sim(*sim_args, time_scale=20, port=sim.port)
        job = v.wait_final(jid, timeout=90)
        assert job["status"] == "complete", job
        check_result(v.job(jid))
        assert v.stats()["load_failures"] >= 1
        v.proc.assert_clean_exit()
    finally:
        v.stop()
        sim.stop()


def test_hang_beyond_request_timeout_fails_one_and_holds_the_rest():
    sim = start_sim("--gpus", "8GiB", time_scale=20)
    v = start_vramd(sim, *BUDGET, "--request-timeout", "1")
    try:
        wait_ready(v)
        warm(v)
        add_fault(sim, type="hang", seconds=4, model=MODEL, endpoint="/api/generate")
        t0 = time.monotonic()
        first = v.submit_ok(job_body())
        job = v.wait_final(first, timeout=30)
        assert job["status"] == "failed", job
        assert "did not answer within 1 s" in job["error"], job
        assert time.monotonic() - t0 < 4, "the run was not bounded by the request timeout"
        # The server still hangs: the next job is held, not dispatched and failed.
        second = v.submit_ok(job_body())
        time.sleep(1.5)
        assert v.job(second)["status"] != "failed", v.job(second)
        job = v.wait_final(second, timeout=60)
        assert job["status"] == "complete", job
        check_result(v.job(second))
        assert "holding work for ollama" in v.proc.log_text()
        assert fault_counters(sim)["hang"] == 1
        v.proc.assert_clean_exit()
    finally:
        v.stop()
        sim.stop()


def test_error_500_fails_with_ollamas_message_and_503_is_retried():
    sim = start_sim("--gpus", "8GiB", time_scale=20)
    v = start_vramd(sim, *BUDGET)
    try:
        wait_ready(v)
        warm(v)
        add_fault(sim, type="error", status=500, model=MODEL, endpoint="/api/generate",
                  body="llama runner process has terminated: signal: killed")
        jid = v.submit_ok(job_body())
        job = v.wait_final(jid, timeout=60)
        assert job["status"] == "failed", job
        assert "llama runner process has terminated" in job["error"], job
        add_fault(sim, type="error", status=503, model=MODEL, endpoint="/api/generate")
        jid = v.submit_ok(job_body())
        assert_completed_after_retry(v, jid, timeout=60)
        assert fault_counters(sim)["error"] == 2
        v.proc.assert_clean_exit()
    finally:
        v.stop()
        sim.stop()


def test_reset_mid_reply_is_retried():
    sim = start_sim("--gpus", "8GiB", time_scale=20)
    v = start_vramd(sim, *BUDGET)
    try:
        wait_ready(v)
        warm(v)
        add_fault(sim, type="reset", after_chunks=3, model=MODEL, endpoint="/api/generate")
        jid = v.submit_ok(job_body(n=20))
        assert_completed_after_retry(v, jid, timeout=60)
        assert fault_counters(sim)["reset"] == 1
        assert "reply cut off" in v.proc.log_text()
        v.proc.assert_clean_exit()
    finally:
        v.stop()
        sim.stop()


run_tests(globals())
