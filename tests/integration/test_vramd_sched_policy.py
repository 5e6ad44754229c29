"""The scheduling policy of issue 11 through the real daemon: PREWARM reloads the model
most asked for once nothing waits (and not again after a pre-warm went unused), and is
off by default; PRIORITY_AGING_S lets an old low-priority job run before newer high
ones of its model; a job whose model cannot fit says why in its status, with its place
and ETA.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import http_json, run_tests, start_sim, wait_until  # noqa: E402
from vramd_harness import start_vramd, wait_models_known  # noqa: E402

MODEL = "llama3.2:1b"
ARGS = ["--monitor-interval", "100", "--loop-interval", "50"]


def loaded(v):
    status, body = v.get("/api/stats")
    assert status == 200, body
    return [m["model"] for m in body["loaded_models"]]


def log_text(v):
    with open(v.proc.log_path, "rb") as f:
        return f.read().decode("utf-8", "replace")


def run_burst(v, n):
    ids = [v.submit_ok({"model": MODEL, "prompt": "hi", "options": {"num_predict": 1}})
           for _ in range(n)]
    for job in v.wait_all_final(ids, timeout=120).values():
        assert job["status"] == "complete", job


def prewarm_world(prewarm):
    sim = start_sim("--gpus", "16GiB", state_file=True, time_scale=100)
    # keep-alive 3 s: a model needs a rate of 1/3 per second to be worth a pre-warm,
    # which 60 jobs in a burst give (the rate decays with a 120 s time constant).
    v = start_vramd(sim, *ARGS, "--keep-alive", "3", "--prewarm", prewarm)
    wait_models_known(v)
    return sim, v


def test_prewarm_reloads_likely_model_once():
    sim, v = prewarm_world("true")
    try:
        run_burst(v, 60)
        assert MODEL in loaded(v)
        # Keep-alive unloads it, then pre-warm loads it again (nothing waits).
        wait_until(lambda: "unload %s (keep_alive)" % MODEL in log_text(v), timeout=20,
                   what="keep-alive unload")
        wait_until(lambda: "load %s on GPU 0 (prewarm" % MODEL in log_text(v), timeout=20,
                   what="pre-warm load")
        wait_until(lambda: MODEL in loaded(v), timeout=20, what="pre-warmed model resident")
        # Unused, it is unloaded by keep-alive and not pre-warmed a second time.
        wait_until(lambda: log_text(v).count("unload %s (keep_alive)" % MODEL) == 2,
                   timeout=20, what="second keep-alive unload")
        time.sleep(2)
        assert log_text(v).count("(prewarm") == 1, log_text(v)
        assert MODEL not in loaded(v)
        # A new job clears that: the model runs, and pre-warm may guess it again.
        run_burst(v, 1)
    finally:
        v.stop()
        sim.stop()


def test_prewarm_off_by_default():
    sim = start_sim("--gpus", "16GiB", state_file=True, time_scale=100)
    v = start_vramd(sim, *ARGS, "--keep-alive", "3")
    try:
        wait_models_known(v)
        run_burst(v, 60)
        wait_until(lambda: "unload %s (keep_alive)" % MODEL in log_text(v), timeout=20,
                   what="keep-alive unload")
        time.sleep(2)
        assert "(prewarm" not in log_text(v)
        assert MODEL not in loaded(v)
    finally:
        v.stop()
        sim.stop()


def test_aging_runs_old_low_job_first():
    """One job at a time (MAX_CONCURRENT_PER_MODEL, default 1): a low job that has waited two
    aging intervals runs before high jobs submitted after it."""
    # The sim 33 times slower: the first job's 20 to 120 tokens take 4 to 25 s.
    sim = start_sim("--gpus", "16GiB", "--load-bw", "1000GB", "--start-cost", "1ms",
                    state_file=True, time_scale=0.03)
    v = start_vramd(sim, *ARGS, "--priority-aging", "1")
    try:
        wait_models_known(v)
        # A long first job holds the model while the others queue.
        first = v.submit_ok({"model": MODEL, "prompt": "hi", "priority": "high",
                             "options": {}})
        wait_until(lambda: v.job(first)["status"] == "running", timeout=30,
                   what="first job running")
        low = v.submit_ok({"model": MODEL, "prompt": "hi", "priority": "low",
                           "options": {"num_predict": 1}})
        time.sleep(2.2)  # two aging intervals: low counts as high, and is older
        highs = [v.submit_ok({"model": MODEL, "prompt": "hi", "priority": "high",
                              "options": {"num_predict": 1}}) for _ in range(3)]
        # The test means something only while the low job still waits behind the first.
        assert v.job(low)["status"] == "queued", v.job(low)
        assert v.job(first)["status"] == "running", v.job(first)
        jobs = v.wait_all_final([first, low] + highs, timeout=120)
        for job in jobs.values():
            assert job["status"] == "complete", job
        started_low = jobs[low]["started_at"]
        for h in highs:
            assert started_low <= jobs[h]["started_at"], (jobs[low], jobs[h])
    finally:
        v.stop()
        sim.stop()


def test_waiting_job_says_why():
    # Another program holds most of the GPU: phi3:mini cannot be loaded, and its job's
    # status says what it needs, what is free and what holds the rest.
    sim = start_sim("--gpus", "8GiB", state_file=True, time_scale=100)
    v = start_vramd(sim, *ARGS)
    try:
        wait_models_known(v)
        run_burst(v, 1)  # something ran: the ETA has a run time to go by
        status, _ = http_json("POST", sim.url + "/sim/gpu/0", {"other_mb": 6000})
        assert status == 200
        wait_until(lambda: v.stats()["gpus"][0]["memory_free_bytes"] < 3 << 30, timeout=10,
                   what="vramd to see the other program")
        jid = v.submit_ok({"model": "phi3:mini", "prompt": "hi", "options": {"num_predict": 1}})
        job = wait_until(lambda: (lambda j: j if j.get("waiting_reason") else None)(v.job(jid)),
                         timeout=10, what="a waiting_reason")
        assert job["status"] == "queued" and job["queue_position"] == 1, job
        why = job["waiting_reason"]
        assert why.startswith("phi3:mini needs about") and "held by other programs" in why, why
        assert "eta_s" in job, job
        # Memory back: it runs, and a finished job carries no such fields.
        status, _ = http_json("POST", sim.url + "/sim/gpu/0", {"other_mb": 0})
        assert status == 200
        done = v.wait_final(jid, timeout=60)
        assert done["status"] == "complete" and "waiting_reason" not in done, done
        v.proc.assert_clean_exit()
    finally:
        v.stop()
        sim.stop()


if __name__ == "__main__":
    run_tests(globals())
