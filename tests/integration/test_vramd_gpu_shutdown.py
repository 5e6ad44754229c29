"""TEMP_SHUTDOWN_C (seed 002's temp_critical) end to end: a GPU at or above it is
SHUTDOWN. The job running there is stopped and queued again (not failed, the stopped run
not counted as an attempt), vramd's model there is unloaded, the job runs again on the
other GPU, nothing is placed on the hot GPU, and the state shows in /api/gpu/status,
/metrics and a gpu_shutdown event; once the GPU falls below the CRITICAL bound it leaves
SHUTDOWN and takes work again.

ollama-sim runs two 8 GiB GPUs at time scale 0.1 (30 tokens take about 3 s, so a job is
still running when the GPU heats up) with nearly free loads; temperatures are set through
POST /sim/gpu/{index}, read by vramd through the simulated NVML every 100 ms."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import http, http_json, run_tests, start_sim, wait_until  # noqa: E402
from vramd_harness import start_vramd, wait_ready  # noqa: E402

MODEL = "phi3:mini"
JOB = {"model": MODEL, "prompt": "tell me a story", "options": {"num_predict": 30}}
SIM = V = None


def setup_module():
    global SIM, V
    SIM = start_sim("--gpus", "8GiB,8GiB", "--load-bw", "1000GB", "--start-cost", "1ms",
                    state_file=True, time_scale=0.1)
    V = start_vramd(SIM, "--monitor-interval", "100", "--loop-interval", "50",
                    "--critical-pause", "1", "--throttle-cooldown", "0",
                    "--temp-shutdown", "90", "--max-concurrent", "1")
    wait_ready(V)


def teardown_module():
    V.proc.assert_clean_exit()
    SIM.stop()


def sim_gpu(index, **fields):
    status, body = http_json("POST", SIM.url + "/sim/gpu/%d" % index, json_body=fields)
    assert status == 200, (status, body)


def gpu_state(index):
    status, body = http_json("GET", V.url + "/api/gpu/status?gpu=%d" % index)
    assert status == 200, (status, body)
    return body["state"]


def placed():
    """(model, gpu) of every model the sim holds."""
    return [(m["name"], m["gpu"]) for m in SIM.state()["models"]]


def test_config_shows_and_changes_it():
    status, c = http_json("GET", V.url + "/api/gpu/config")
    assert status == 200 and c["temp_shutdown_c"] == 90, c
    # Seed 002's name for it, through PUT; it must stay above the CRITICAL bound.
    status, c = http_json("PUT", V.url + "/api/gpu/config", json_body={"temp_critical": 95})
    assert status == 200 and c["temp_shutdown_c"] == 95, c
    status, e = http_json("PUT", V.url + "/api/gpu/config", json_body={"temp_shutdown_c": 80})
    assert status == 400 and "temp_shutdown_c" in e["error"], e
    status, c = http_json("PUT", V.url + "/api/gpu/config", json_body={"temp_shutdown_c": 90})
    assert status == 200 and c["temp_shutdown_c"] == 90, c


def test_shutdown_requeues_unloads_and_reruns_elsewhere():
    job_id = V.submit_ok(JOB)
    wait_until(lambda: V.job(job_id)["status"] == "running", timeout=60, what="job running")
    hot = [g for name, g in placed() if name == MODEL]
    assert len(hot) == 1, placed()
    hot, cool = hot[0], 1 - hot[0]
    assert V.job(job_id)["attempts"] == 1

    sim_gpu(hot, temperature_c=93)
    try:
        wait_until(lambda: gpu_state(hot) == "SHUTDOWN", timeout=10, what="GPU SHUTDOWN")
        # The model leaves the hot GPU and the job runs again on the other one.
        wait_until(lambda: (MODEL, cool) in placed() and (MODEL, hot) not in placed(),
                   timeout=30, what="%s moved from GPU %d to GPU %d" % (MODEL, hot, cool))
        job = V.wait_final(job_id, timeout=120)
        assert job["status"] == "complete", job
        assert job["attempts"] == 1, job  # the stopped run is not counted
        assert all(g != hot for _, g in placed()), placed()
        log = V.proc.log_text()
        assert "reached TEMP_SHUTDOWN_C" in log and "requeued" in log, V.proc.log_tail()
        assert "SHUTDOWN" in log, V.proc.log_tail()

        # /api/gpu/status: the state and why; the overall state is the worst.
        status, g = http_json("GET", V.url + "/api/gpu/status?gpu=%d" % hot)
        assert any("TEMP_SHUTDOWN_C" in r for r in g["state_reasons"]), g
        status, s = http_json("GET", V.url + "/api/gpu/status")
        assert s["overall_state"] == "SHUTDOWN", s
        # /metrics: the state enum gauge.
        status, _, body = http("GET", V.url + "/metrics")
        text = body.decode()
        assert status == 200
        assert any(ln.startswith("vramd_gpu_state{") and 'state="shutdown"' in ln and
                   'index="%d"' % hot in ln and ln.endswith(" 1")
                   for ln in text.splitlines()), text

        # Nothing is placed there while it is hot, even when the other GPU is busy.
        second = V.submit_ok(dict(JOB, model="qwen2.5:0.5b"))
        done = V.wait_final(second, timeout=120)
        assert done["status"] == "complete", done
        assert all(g != hot for _, g in placed()), placed()
    finally:
        sim_gpu(hot, temperature_c=40)
    wait_until(lambda: gpu_state(hot) == "OPTIMAL", timeout=15, what="GPU back to OPTIMAL")


def test_shutdown_held_until_below_critical():
    # Held while at or above the CRITICAL bound (85 C), left below it; the entry is a
    # gpu_shutdown event (the event bus logs every event as "#id type: message").
    before = V.proc.log_text().count("gpu_shutdown: GPU 0 reached TEMP_SHUTDOWN_C 90 C")
    sim_gpu(0, temperature_c=91)
    try:
        wait_until(lambda: gpu_state(0) == "SHUTDOWN", timeout=10, what="GPU 0 SHUTDOWN")
        wait_until(lambda: V.proc.log_text().count(
            "gpu_shutdown: GPU 0 reached TEMP_SHUTDOWN_C 90 C") == before + 1, timeout=5,
            what="the gpu_shutdown event")
        sim_gpu(0, temperature_c=86)
        time.sleep(1.0)  # ten samples at 86 C
        assert gpu_state(0) == "SHUTDOWN"
        status, g = http_json("GET", V.url + "/api/gpu/status?gpu=0")
        assert any("falls below 85 C" in r for r in g["state_reasons"]), g
        sim_gpu(0, temperature_c=84)
        wait_until(lambda: gpu_state(0) != "SHUTDOWN", timeout=10,
                   what="GPU 0 leaves SHUTDOWN")
        assert gpu_state(0) in ("CRITICAL", "THROTTLED"), gpu_state(0)
    finally:
        sim_gpu(0, temperature_c=40)
    wait_until(lambda: gpu_state(0) == "OPTIMAL", timeout=15, what="GPU 0 OPTIMAL")
    # The GPU takes work again.
    job = V.wait_final(V.submit_ok(JOB), timeout=120)
    assert job["status"] == "complete", job

if __name__ == "__main__":
    run_tests(globals())
