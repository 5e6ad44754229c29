"""Per-request placement and "say why a job waits" (issue 11): a job's placement
(gpu, cpu, any) from the job API, the X-Vramd-Placement header and MODEL_PLACEMENT;
cpu runs on the CPU (ollama-sim /api/ps size_vram 0), gpu on a model too large for any
GPU fails at once with the model's size and the largest GPU room (other jobs of that
model still run), any falls back to the CPU after WAIT_WARN_S while another program
holds the memory, with a job_waiting event, and the placement survives a restart.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import http, http_json, run_tests, start_sim, wait_until  # noqa: E402
from vramd_harness import start_vramd, wait_ready  # noqa: E402

ARGS = ["--monitor-interval", "100", "--loop-interval", "50"]


def world(gpus="8GiB", *vramd_args, data_dir=None):
    sim = start_sim("--gpus", gpus, state_file=True, time_scale=200)
    v = start_vramd(sim, *ARGS, *vramd_args, data_dir=data_dir)
    wait_ready(v)
    return sim, v


def ps_entry(sim, model):
    status, body = http_json("GET", sim.url + "/api/ps")
    assert status == 200, (status, body)
    for m in body.get("models", []):
        if m["name"] == model or m.get("model") == model:
            return m
    return None


def submit(v, model, placement=None, num_predict=2):
    body = {"model": model, "prompt": "hi", "options": {"num_predict": num_predict}}
    if placement is not None:
        body["placement"] = placement
    return v.submit_ok(body)


def hold_other_memory(sim, v, mb):
    status, reply = http_json("POST", sim.url + "/sim/gpu/0", json_body={"other_mb": mb})
    assert status == 200, (status, reply)
    total = v.get("/api/stats")[1]["gpus"][0]["memory_total_bytes"]
    wait_until(lambda: v.get("/api/stats")[1]["gpus"][0]["memory_free_bytes"] <
               total - (mb - 256) * (1 << 20), what="vramd to see the other program's memory")


def test_bad_placement_is_refused():
    sim, v = world()
    try:
        status, reply = v.submit({"model": "llama3.2:1b", "prompt": "hi", "placement": "tpu"})
        assert status == 400, (status, reply)
        assert "placement" in reply["error"] and "gpu, cpu, any" in reply["error"], reply
        status, _, body = http("POST", v.url + "/api/generate",
                               json_body={"model": "llama3.2:1b", "prompt": "hi",
                                          "stream": False},
                               headers={"X-Vramd-Placement": "fast"})
        assert status == 400, (status, body)
        assert b"X-Vramd-Placement" in body and b"gpu, cpu or any" in body, body
    finally:
        v.stop()
        sim.stop()


def test_cpu_request_runs_on_cpu():
    sim, v = world()
    try:
        jid = submit(v, "llama3.2:1b", "cpu")
        job = v.wait_final(jid, timeout=60)
        assert job["status"] == "complete", job
        assert job["placement"] == "cpu", job
        entry = ps_entry(sim, "llama3.2:1b")
        assert entry is not None and entry["size_vram"] == 0, entry
        # The front door's header takes the same path; the model is on the CPU already.
        status, _, body = http("POST", v.url + "/api/generate",
                               json_body={"model": "qwen2.5:0.5b", "prompt": "hi",
                                          "stream": False, "options": {"num_predict": 2}},
                               headers={"X-Vramd-Placement": "cpu"})
        assert status == 200, (status, body)
        entry = ps_entry(sim, "qwen2.5:0.5b")
        assert entry is not None and entry["size_vram"] == 0, entry
        # A job with no placement (ALLOW_CPU off: gpu) loads on the GPU.
        jid = submit(v, "gemma:2b")
        job = v.wait_final(jid, timeout=60)
        assert job["status"] == "complete" and job["placement"] == "gpu", job
        assert ps_entry(sim, "gemma:2b")["size_vram"] > 0
    finally:
        v.stop()
        sim.stop()


def test_gpu_too_large_fails_fast_others_run():
    # A 2 GiB GPU (1 GiB margin) can never hold phi3:mini: placement gpu fails at once,
    # naming the model's size and the largest room; its job of placement any runs on
    # the CPU instead (it can never fit a GPU), though ALLOW_CPU is off.
    sim, v = world("2GiB")
    try:
        t0 = time.monotonic()
        gpu_job = submit(v, "phi3:mini", "gpu")
        any_job = submit(v, "phi3:mini", "any")
        job = v.wait_final(gpu_job, timeout=30)
        assert job["status"] == "failed", job
        assert time.monotonic() - t0 < 10, "placement gpu should fail fast"
        assert "phi3:mini needs about" in job["error"], job
        assert "the largest can give" in job["error"], job
        assert "placement gpu" in job["error"], job
        job = v.wait_final(any_job, timeout=60)
        assert job["status"] == "complete", job
        assert ps_entry(sim, "phi3:mini")["size_vram"] == 0
    finally:
        v.stop()
        sim.stop()


def test_any_falls_back_to_cpu_after_wait_warn():
    # Another program keeps 3 GiB of an 8 GiB GPU: phi3:mini never fits (the
    # trace-seed 3 / 7 case). Placement any waits WAIT_WARN_S, then gets a job_waiting
    # event and runs on the CPU; placement gpu keeps waiting (it gets the event too).
    sim, v = world("8GiB", "--wait-warn", "2")
    try:
        hold_other_memory(sim, v, 3072)
        gpu_job = submit(v, "phi3:mini", "gpu")
        time.sleep(1.0)
        status = v.job(gpu_job)
        assert status["status"] == "queued", status
        assert "other programs" in (status.get("waiting_reason") or ""), status
        wait_until(lambda: "job_waiting" in v.proc.log_text() and gpu_job in v.proc.log_text(),
                   timeout=15, what="the job_waiting event of the gpu job")
        assert v.job(gpu_job)["status"] == "queued"
        v.cancel(gpu_job)

        t0 = time.monotonic()
        any_job = submit(v, "phi3:mini", "any")
        time.sleep(1.0)
        assert v.job(any_job)["status"] == "queued", v.job(any_job)
        job = v.wait_final(any_job, timeout=60)
        assert job["status"] == "complete", job
        assert time.monotonic() - t0 >= 2.0, "it should have waited WAIT_WARN_S first"
        log = v.proc.log_text()
        assert any("job_waiting" in line and any_job in line for line in log.splitlines()), \
            v.proc.log_tail(60)
        assert ps_entry(sim, "phi3:mini")["size_vram"] == 0
        assert sim.state()["counters"]["oom_failures"] == 0
    finally:
        v.stop()
        sim.stop()


def test_model_default_and_restart():
    # MODEL_PLACEMENT gives a model's jobs their placement; ALLOW_CPU makes the others
    # any. A queued job keeps its placement over a restart.
    sim, v = world("8GiB", "--model-placement", "llama3.2:1b=cpu", "--allow-cpu")
    data_dir = v.data_dir
    try:
        jid = submit(v, "llama3.2:1b")
        job = v.wait_final(jid, timeout=60)
        assert job["status"] == "complete" and job["placement"] == "cpu", job
        assert ps_entry(sim, "llama3.2:1b")["size_vram"] == 0
        jid = submit(v, "gemma:2b", num_predict=1)
        assert v.job(jid)["placement"] == "any"
        assert v.wait_final(jid, timeout=60)["status"] == "complete"

        hold_other_memory(sim, v, 3072)
        waiting = submit(v, "phi3:mini", "gpu")
        time.sleep(0.5)
        assert v.job(waiting)["status"] == "queued"
        v.stop()
        v = start_vramd(sim, *ARGS, "--allow-cpu", data_dir=data_dir)
        wait_ready(v)
        job = v.job(waiting)
        assert job["placement"] == "gpu", job
        time.sleep(1.0)
        job = v.job(waiting)
        assert job["status"] == "queued", (job, v.proc.log_tail(40))  # never on the CPU
        status, reply = http_json("POST", sim.url + "/sim/gpu/0", json_body={"other_mb": 0})
        assert status == 200, (status, reply)
        job = v.wait_final(waiting, timeout=60)
        assert job["status"] == "complete", job
        assert ps_entry(sim, "phi3:mini")["size_vram"] > 0
    finally:
        v.stop()
        sim.stop()


def test_bad_model_placement_config_refused():
    sim = start_sim("--gpus", "8GiB", state_file=True, time_scale=200)
    try:
        from vramd_harness import vramd_path
        import subprocess
        r = subprocess.run([vramd_path(), "--ollama", sim.url, "--model-placement",
                            "phi3:mini=fast", "--listen", "127.0.0.1:1"],
                           capture_output=True, timeout=30)
        assert r.returncode != 0
        assert b"MODEL_PLACEMENT" in r.stderr + r.stdout and b"phi3:mini=fast" in (
            r.stderr + r.stdout), r
    finally:
        sim.stop()


if __name__ == "__main__":
    run_tests(globals())
