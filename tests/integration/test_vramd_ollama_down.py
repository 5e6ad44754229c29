"""Ollama down: jobs submitted while the server is unreachable wait in the queue
and /api/health says "degraded" with the server's last error; when the server
comes back on the same port they complete. A backend that dies in the middle of
answering (kill -9 of ollama-sim while jobs run) makes vramd retry the jobs:
they complete once it returns, or fail with a clear error after the retry
limit."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import run_tests, start_sim, wait_until  # noqa: E402
from vramd_harness import FINAL, check_result, start_vramd, wait_ready  # noqa: E402

BUDGET = ("--gpu-source", "none", "--vram-budget", "8GiB")


def server_health(v):
    h = v.health()
    assert len(h["servers"]) == 1, h
    return h, h["servers"][0]


def test_jobs_wait_while_ollama_is_down_and_complete_when_it_returns():
    sim = start_sim("--gpus", "8GiB", time_scale=200)
    port = sim.port
    v = start_vramd(sim, *BUDGET)
    try:
        wait_ready(v)
        h, srv = server_health(v)
        assert h["status"] == "ok" and srv["reachable"] is True, h
        sim.proc.kill9()
        wait_until(lambda: server_health(v)[0]["status"] == "degraded", timeout=30,
                   what="health degraded")
        h, srv = server_health(v)
        assert srv["reachable"] is False, h
        assert isinstance(srv["last_error"], str) and srv["last_error"], h
        assert srv["consecutive_failures"] >= 1, h
        ids = [v.submit_ok({"model": m, "prompt": "hi", "priority": p})
               for m, p in (("qwen2.5:0.5b", "high"), ("phi3:mini", "normal"),
                            ("gemma:2b", "low"))]
        ids.append(v.submit_ok({"model": "all-minilm:latest", "input": "x"}))
        time.sleep(2)
        for jid in ids:
            assert v.job(jid)["status"] == "queued", v.job(jid)
        sim = start_sim("--gpus", "8GiB", time_scale=200, port=port)
        jobs = v.wait_all_final(ids, timeout=90)
        for jid in ids:
            assert jobs[jid]["status"] == "complete", jobs[jid]
            check_result(v.job(jid))
        wait_until(lambda: server_health(v)[0]["status"] == "ok", timeout=30,
                   what="health ok again")
        v.proc.assert_clean_exit()
    finally:
        v.stop()
        sim.stop()


def test_backend_dying_mid_answer_retries_jobs():
    # Slow generations (20+ s at time scale 0.01) so the jobs are mid-answer.
    sim_args = ("--gpus", "8GiB", "--load-bw", "1000GB", "--start-cost", "1ms",
                "--num-parallel", "2")
    sim = start_sim(*sim_args, time_scale=0.01)
    port = sim.port
    v = start_vramd(sim, *BUDGET, "--max-concurrent", "2")
    try:
        wait_ready(v)
        ids = [v.submit_ok({"model": "phi3:mini", "prompt": "story %d" % i}) for i in range(2)]
        wait_until(lambda: all(v.job(j)["status"] == "running" for j in ids), timeout=30,
                   what="both jobs running")
        sim.proc.kill9()
        time.sleep(1.5)
        for jid in ids:
            job = v.job(jid)
            assert job["status"] in ("queued", "pending", "running", "failed"), job
        # The sim returns fast this time.
        sim = start_sim(*sim_args, time_scale=200, port=port)
        jobs = v.wait_all_final(ids, timeout=90)
        for jid in ids:
            job = jobs[jid]
            if job["status"] == "complete":
                assert job["attempts"] >= 2, job
                check_result(v.job(jid))
            else:
                assert job["status"] == "failed", job
                err = job.get("error") or ""
                assert "unreachable" in err or "attempt" in err or "connect" in err, job
        # A new job after the recovery runs normally.
        jid = v.submit_ok({"model": "qwen2.5:0.5b", "prompt": "hi"})
        assert v.wait_final(jid, timeout=60)["status"] == "complete"
        v.proc.assert_clean_exit()
    finally:
        v.stop()
        sim.stop()


def test_submit_before_ollama_was_ever_seen():
    """vramd started while Ollama is down cannot check model names: a submit is
    either accepted (202, the job waits) or refused with a clear 503 telling the
    client to retry; either way the daemon keeps serving and is degraded."""
    from harness import free_port
    port = free_port()
    v = start_vramd(None, "--ollama", "http://127.0.0.1:%d" % port, *BUDGET)
    sim = None
    try:
        wait_until(lambda: server_health(v)[0]["status"] == "degraded", timeout=30,
                   what="health degraded")
        status, reply = v.submit({"model": "qwen2.5:0.5b", "prompt": "hi"})
        assert status in (202, 503), (status, reply)
        if status == 503:
            assert "retry" in reply["error"] and str(port) in reply["error"], reply
        sim = start_sim("--gpus", "8GiB", time_scale=200, port=port)
        wait_ready(v)
        jid = v.submit_ok({"model": "qwen2.5:0.5b", "prompt": "hi"})
        assert v.wait_final(jid, timeout=60)["status"] == "complete"
        if status == 202:
            assert v.wait_final(reply["job_id"], timeout=60)["status"] in FINAL
    finally:
        v.stop()
        if sim:
            sim.stop()


if __name__ == "__main__":
    run_tests(globals())
