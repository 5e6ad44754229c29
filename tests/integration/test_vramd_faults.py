"""Faults in the engine that used to end in wrong answers, each against ollama-sim:

  - a load planned on a GPU sample up to one monitoring interval old ran out of
    memory when another program had just taken memory: loads now wait for a fresh
    sample and the scheduler decides again on it;
  - a hung Ollama (SIGSTOP) made every job dispatched into the hang fail by timeout:
    after one timeout, work is held until the server answers a probe;
  - a hung load waited 10 minutes and blocked every other load: LOAD_TIMEOUT
    abandons it and asks Ollama to unload the model;
  - a hung nvidia-smi made every job fail as "more than any GPU can give it": jobs
    wait until GPU memory is known, and an explicit --gpu-source that cannot be used
    stops vramd at start.
"""

import os
import signal
import stat
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import http_json, run_tests, start_sim, wait_until  # noqa: E402
from vramd_harness import (check_result, start_vramd, vramd_path,  # noqa: E402
                           wait_models_known, wait_ready)

BUDGET = ("--gpu-source", "none", "--vram-budget", "8GiB")
# Memory taken by another program must not pause the GPU (policy states), only
# shrink what fits: these tests are about the fit.
NO_MEMORY_STATES = ("--memory-normal-pct", "98", "--memory-throttled-pct", "99",
                    "--memory-critical-pct", "100")
SHORT = {"options": {"num_predict": 4}}


def job_body(model, **extra):
    body = {"model": model, "prompt": "hi"}
    body.update(SHORT)
    body.update(extra)
    return body


def set_other_memory(sim, gpu, nbytes):
    status, reply = http_json("POST", "%s/sim/gpu/%d" % (sim.url, gpu),
                              json_body={"other_bytes": nbytes})
    assert status == 200, (status, reply)


def test_load_waits_for_fresh_gpu_sample():
    """Another program takes nearly all free memory just before a load: the load
    must be planned on a sample taken after that, not on one up to 5 s old."""
    sim = start_sim("--gpus", "8GiB", state_file=True, time_scale=100)
    v = start_vramd(sim, "--monitor-interval", "5000", *NO_MEMORY_STATES)
    try:
        wait_ready(v, timeout=30)
        # One model resident, so Ollama trusts its old view of free memory and
        # places the next model on the GPU, where only a physical check catches it.
        first = v.submit_ok(job_body("qwen2.5:0.5b"))
        assert v.wait_final(first, timeout=30)["status"] == "complete"
        wait_until(lambda: not any(m["state"] == "loading"
                                   for m in v.stats()["loaded_models"]),
                   timeout=10, what="load finished")
        free = sim.state()["gpus"][0]["free"]
        set_other_memory(sim, 0, free - 64 * 1024 * 1024)
        jid = v.submit_ok(job_body("gemma:2b"))
        time.sleep(1.5)
        st = sim.state()
        assert st["counters"]["oom_failures"] == 0, st["counters"]
        job = v.job(jid)
        assert job["status"] == "queued", job
        # The memory comes back: the job runs after the next sample.
        set_other_memory(sim, 0, 0)
        job = v.wait_final(jid, timeout=30)
        assert job["status"] == "complete", job
        assert sim.state()["counters"]["oom_failures"] == 0
        v.proc.assert_clean_exit()
    finally:
        v.stop()
        sim.stop()


def test_hung_ollama_holds_jobs_until_it_answers():
    """SIGSTOP the server mid-run: one run may time out, the jobs still queued
    must not be dispatched into the hang and failed; after SIGCONT they complete."""
    sim = start_sim("--gpus", "8GiB", time_scale=1)
    v = start_vramd(sim, *BUDGET, "--request-timeout", "1")
    stopped = False
    try:
        wait_ready(v)
        body = {"model": "qwen2.5:0.5b", "prompt": "count", "options": {"num_predict": 40}}
        ids = [v.submit_ok(body) for _ in range(8)]
        wait_until(lambda: v.job(ids[0])["status"] == "complete", timeout=30,
                   what="the first job complete")
        os.kill(sim.proc.pid, signal.SIGSTOP)
        stopped = True
        queued = [j for j in ids if v.job(j)["status"] == "queued"]
        assert len(queued) >= 3, [v.job(j)["status"] for j in ids]
        # Long enough for several timeouts, short of the 10 s health probe timeout.
        time.sleep(5)
        for jid in queued:
            job = v.job(jid)
            assert job["status"] in ("queued", "pending", "running"), job
        failed = [j for j in ids if v.job(j)["status"] == "failed"]
        assert len(failed) <= 1, [v.job(j) for j in failed]
        os.kill(sim.proc.pid, signal.SIGCONT)
        stopped = False
        jobs = v.wait_all_final(ids, timeout=60)
        for jid in queued:
            assert jobs[jid]["status"] == "complete", jobs[jid]
            check_result(v.job(jid))
        assert "holding work for ollama" in v.proc.log_text()
        v.proc.assert_clean_exit()
    finally:
        if stopped:
            os.kill(sim.proc.pid, signal.SIGCONT)
        v.stop()
        sim.stop()


def test_hung_load_is_abandoned_after_load_timeout():
    """SIGSTOP the server during a load: after LOAD_TIMEOUT the load is abandoned
    (not after the old fixed 10 minutes), the job stays queued, and after SIGCONT
    it and a job of another model complete."""
    sim = start_sim("--gpus", "8GiB", "--start-cost", "1500ms", time_scale=1)
    v = start_vramd(sim, *BUDGET, "--load-timeout", "3")
    stopped = False
    try:
        wait_ready(v)
        jid = v.submit_ok(job_body("qwen2.5:0.5b"))
        wait_until(lambda: any(m["model"] == "qwen2.5:0.5b" and m["state"] == "loading"
                               for m in v.stats()["loaded_models"]),
                   timeout=10, interval=0.02, what="qwen2.5:0.5b loading")
        os.kill(sim.proc.pid, signal.SIGSTOP)
        stopped = True
        t0 = time.monotonic()
        wait_until(lambda: "did not finish within 3 s" in v.proc.log_text(), timeout=8,
                   what="the load timeout in the log")
        assert time.monotonic() - t0 < 5
        assert "asked ollama to unload it" in v.proc.log_text()
        assert "load_timeout: loading qwen2.5:0.5b" in v.proc.log_text()  # the event
        other = v.submit_ok(job_body("tinyllama:1.1b"))
        time.sleep(0.5)
        assert v.job(jid)["status"] == "queued", v.job(jid)
        assert v.job(other)["status"] == "queued", v.job(other)
        os.kill(sim.proc.pid, signal.SIGCONT)
        stopped = False
        for j in (jid, other):
            job = v.wait_final(j, timeout=60)
            assert job["status"] == "complete", job
        assert v.stats()["load_failures"] >= 1
        v.proc.assert_clean_exit()
    finally:
        if stopped:
            os.kill(sim.proc.pid, signal.SIGCONT)
        v.stop()
        sim.stop()


def hung_smi_dir():
    """A folder with an nvidia-smi that never answers."""
    d = tempfile.mkdtemp(prefix="vramd-hung-smi-")
    path = os.path.join(d, "nvidia-smi")
    with open(path, "w") as f:
        f.write("#!/bin/sh\nexec sleep 600\n")
    os.chmod(path, stat.S_IRWXU)
    return d


def test_hung_nvidia_smi_holds_jobs():
    """nvidia-smi hangs from the start (killed after 5 s each time): GPU memory
    is unknown, so the job waits instead of failing as too big for every GPU."""
    sim = start_sim("--gpus", "8GiB", time_scale=100)
    env = {"PATH": hung_smi_dir() + os.pathsep + os.environ.get("PATH", "")}
    v = start_vramd(sim, "--gpu-source", "nvidia-smi", "--monitor-interval", "100",
                    nvml=False, env=env)
    try:
        wait_models_known(v)
        assert v.health()["gpu_telemetry"] == "nvidia-smi"
        jid = v.submit_ok(job_body("qwen2.5:0.5b"))
        # Past the first nvidia-smi timeout (5 s), when the sample fails.
        wait_until(lambda: "did not answer within" in v.proc.log_text(), timeout=15,
                   what="the nvidia-smi timeout in the log")
        time.sleep(1)
        job = v.job(jid)
        assert job["status"] == "queued", job
        assert not job.get("error"), job
        assert "more than any GPU" not in v.proc.log_text()
        v.proc.assert_clean_exit()
    finally:
        v.stop()
        sim.stop()


def test_explicit_gpu_source_that_cannot_be_used_stops_vramd():
    data = tempfile.mkdtemp(prefix="vramd-data-")
    r = subprocess.run([vramd_path(), "--listen", "127.0.0.1:1", "--data-dir", data,
                        "--gpu-source", "nvml", "--nvml-lib", "/nonexistent/libnvidia-ml.so.1"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0, (r.returncode, r.stderr)
    assert "GPU_SOURCE is nvml" in r.stderr and "/nonexistent" in r.stderr, r.stderr
    assert "--gpu-source auto" in r.stderr, r.stderr


def test_auto_gpu_source_still_falls_back():
    sim = start_sim("--gpus", "8GiB", time_scale=100)
    v = start_vramd(sim, "--gpu-source", "auto", "--nvml-lib", "/nonexistent/libnvidia-ml.so.1",
                    "--vram-budget", "8GiB", nvml=False,
                    env={"PATH": tempfile.mkdtemp(prefix="vramd-no-smi-")})
    try:
        wait_models_known(v)
        assert v.health()["gpu_telemetry"] == "budget"
        jid = v.submit_ok(job_body("qwen2.5:0.5b"))
        assert v.wait_final(jid, timeout=30)["status"] == "complete"
    finally:
        v.stop()
        sim.stop()


if __name__ == "__main__":
    run_tests(globals())
