"""GET /api/job/{id}?wait=S long-polls: it answers as soon as the job becomes
final (well before S) and, when the job cannot finish (Ollama down), answers
with the job as it is (not final) after S seconds. Several polls wait at once
without blocking the daemon."""

import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import run_tests, start_sim, wait_until  # noqa: E402
from vramd_harness import start_vramd, wait_ready  # noqa: E402

BUDGET = ("--gpu-source", "none", "--vram-budget", "8GiB")


def test_wait_returns_when_the_job_completes():
    # A generation of 20-120 tokens at 100 tokens/s and time scale 0.5: 0.4-2.4 s.
    sim = start_sim("--gpus", "8GiB", "--load-bw", "1000GB", "--start-cost", "1ms",
                    time_scale=0.5)
    v = start_vramd(sim, *BUDGET)
    try:
        wait_ready(v)
        jid = v.submit_ok({"model": "phi3:mini", "prompt": "hello"})
        t0 = time.monotonic()
        job = v.job(jid, wait=30)
        elapsed = time.monotonic() - t0
        assert job["status"] == "complete", job
        assert elapsed < 15, "the long-poll held the reply %.1f s after the job ended" % elapsed
        # A poll on a final job answers at once.
        t0 = time.monotonic()
        assert v.job(jid, wait=30)["status"] == "complete"
        assert time.monotonic() - t0 < 5
        v.proc.assert_clean_exit()
    finally:
        v.stop()
        sim.stop()


def test_wait_times_out_with_the_job_not_final():
    sim = start_sim("--gpus", "8GiB", time_scale=200)
    v = start_vramd(sim, *BUDGET)
    try:
        wait_ready(v)
        sim.proc.kill9()
        wait_until(lambda: v.health()["status"] == "degraded", timeout=30, what="degraded")
        jid = v.submit_ok({"model": "qwen2.5:0.5b", "prompt": "hi"})
        results = {}

        def poll(i):
            t0 = time.monotonic()
            results[i] = (v.job(jid, wait=2), time.monotonic() - t0)

        threads = [threading.Thread(target=poll, args=(i,)) for i in range(5)]
        for t in threads:
            t.start()
        # The daemon keeps answering while the polls wait.
        time.sleep(0.3)
        t0 = time.monotonic()
        v.health()
        assert time.monotonic() - t0 < 1.5, "a long-poll blocked the daemon"
        for t in threads:
            t.join(30)
        assert len(results) == 5, results
        for job, elapsed in results.values():
            assert job["status"] == "queued", job
            # A timed-out poll says where the job stands, as a plain GET does.
            assert job["queue_position"] == 1 and "eta_s" in job, job
            assert job["waiting_reason"], job
            assert 1.8 <= elapsed < 10, elapsed
        t0 = time.monotonic()
        job = v.job(jid, wait=0)
        assert job["status"] == "queued" and time.monotonic() - t0 < 1.5
        v.proc.assert_clean_exit()
    finally:
        v.stop()


if __name__ == "__main__":
    run_tests(globals())
