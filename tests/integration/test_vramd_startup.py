"""vramd right after start: jobs submitted before the first GPU sample wait for it
instead of being judged against unknown memory (they used to fail with "needs more
VRAM than any GPU can give it"), and the budget and CPU-only modes run jobs too."""

import http.client
import json
import time

from harness import run_tests, start_sim, wait_until
from vramd_harness import start_vramd, wait_models_known

sim = None


def setup_module():
    global sim
    sim = start_sim("--gpus", "8GiB", state_file=True, time_scale=100)


def teardown_module():
    sim.stop()


def test_jobs_before_first_gpu_sample_wait_for_it():
    # A slow GPU sample interval leaves a window where memory is not known yet.
    v = start_vramd(sim, "--monitor-interval", "3000")
    try:
        wait_models_known(v)
        ids = [v.submit_ok({"model": m, "prompt": "hi", "options": {"num_predict": 4}})
               for m in ("qwen2.5:0.5b", "phi3:mini")]
        for jid in ids:
            job = v.wait_final(jid, timeout=60)
            assert job["status"] == "complete", job
    finally:
        v.stop()


def test_budget_mode_runs_jobs():
    v = start_vramd(sim, "--gpu-source", "none", "--vram-budget", "6GiB", nvml=False)
    try:
        wait_models_known(v)
        assert v.health()["gpu_telemetry"] == "budget"
        jid = v.submit_ok({"model": "gemma:2b", "prompt": "hi", "options": {"num_predict": 4}})
        assert v.wait_final(jid)["status"] == "complete"
        gpus = v.stats()["gpus"]
        assert len(gpus) == 1 and gpus[0]["name"] == "budget", gpus
    finally:
        v.stop()


def test_cpu_only_mode_runs_jobs_on_cpu():
    v = start_vramd(sim, "--gpu-source", "none", nvml=False)
    try:
        wait_models_known(v)
        assert v.health()["gpu_telemetry"] == "none"
        # Follow the event stream, then submit: the load on CPU is announced.
        conn = http.client.HTTPConnection("127.0.0.1", v.port, timeout=10)
        conn.request("GET", "/api/events")
        stream = conn.getresponse()
        assert stream.status == 200
        jid = v.submit_ok({"model": "smollm:360m", "prompt": "hi", "options": {"num_predict": 4}})
        assert v.wait_final(jid)["status"] == "complete"
        deadline = time.monotonic() + 10
        event = None
        while event is None and time.monotonic() < deadline:
            line = stream.fp.readline().decode()
            if line.startswith("data:") and "model_on_cpu" in line:
                event = json.loads(line[5:])
        conn.close()
        assert event is not None and event["model"] == "smollm:360m", event
        placed = {m["name"]: m for m in sim.state()["models"]}
        assert placed["smollm:360m"]["placement"] == "cpu", placed
    finally:
        v.stop()


if __name__ == "__main__":
    run_tests(globals())
