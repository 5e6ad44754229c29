"""The seeds' configuration and the operator bugs of issue 13 (parts 5 and 6), end to end:
seed 002's keys through PUT /api/gpu/config, seed values with units in the config file,
seed 004's and seed 001's keys, seed 001's /api/stats fields, /api/models loaded_on,
vramctl showing what the API returns, MEMORY_LIMIT_MB and GPU_MEMORY_FRACTION bounding
model loads, short floats, millisecond timestamps, GPUs known at the first health check,
and malformed start-up settings refused with a message."""

import os
import re
import subprocess
import tempfile
import time

from harness import free_port, http, http_json, run_tests, start_sim, wait_until
from vramd_harness import start_vramd, vramctl_path, vramd_path, wait_ready

sim = None
FAST = ["--monitor-interval", "100", "--loop-interval", "50"]
MS_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def setup_module():
    global sim
    sim = start_sim("--gpus", "8GiB", state_file=True, time_scale=100)


def teardown_module():
    sim.stop()


def unload_all():
    for m in sim.state().get("models", []):
        http_json("POST", sim.url + "/api/generate", json_body={"model": m["name"],
                                                                "keep_alive": 0})


def run_job(v, model):
    jid = v.submit_ok({"model": model, "prompt": "hi", "options": {"num_predict": 2}})
    return v.wait_final(jid, timeout=60)


def start_fails(args, env=None):
    """Runs vramd expecting it to refuse to start; returns its output."""
    data = tempfile.mkdtemp(prefix="vramd-data-")
    argv = [vramd_path(), "--listen", "127.0.0.1:%d" % free_port(), "--data-dir", data]
    full_env = dict(os.environ)
    full_env.pop("CUDA_VISIBLE_DEVICES", None)
    full_env.update(env or {})
    p = subprocess.run(argv + args, env=full_env, capture_output=True, text=True, timeout=30)
    assert p.returncode != 0, (p.returncode, p.stdout, p.stderr)
    return p.stdout + p.stderr


def test_gpus_known_at_first_health():
    # The first answer of /api/health (start_vramd waits for it) already has the GPU: the
    # first sample is taken before vramd listens. It said gpu_count 0 at first.
    v = start_vramd(sim, "--monitor-interval", "5000")
    try:
        h = v.health()
        assert h["gpu_count"] == 1, h
        status, g = v.get("/api/gpu/status")
        assert status == 200 and len(g["gpus"]) == 1, g
        for s in h["servers"]:
            assert s["last_ok_at"] is None or MS_TIME.match(s["last_ok_at"]), s
    finally:
        v.stop()


def test_seed_file_values_start():
    # The report: seed values like these stopped vramd from starting.
    conf = os.path.join(tempfile.mkdtemp(), "seed.conf")
    with open(conf, "w") as f:
        f.write("SCHEDULER_LOOP_INTERVAL = 0.1\nMEMORY_MONITORING_INTERVAL=30\n"
                "MODEL_KEEP_ALIVE = 5m\nSCHEDULER_STRATEGY = demand_based\n"
                "temp_throttle = 80\nmemory_limit_mb = 6GiB\nGPU_MEMORY_FRACTION = 0.9\n")
    v = start_vramd(sim, "--config", conf)
    try:
        status, c = v.get("/api/gpu/config")
        assert status == 200, c
        assert c["monitoring_interval_ms"] == 30000, c
        assert c["temp_throttled_max_c"] == 80 and c["memory_limit_mb"] == 6144, c
    finally:
        v.stop()
    out = start_fails(["--config", conf], env={"VRAMD_SCHEDULER_STRATEGY": "round_robin"})
    assert "SCHEDULER_STRATEGY" in out and "demand_based" in out, out


def test_put_seed_keys():
    v = start_vramd(sim, *FAST)
    try:
        # The PUT, refused with "unknown key" before.
        status, c = http_json("PUT", v.url + "/api/gpu/config",
                              json_body={"temp_throttle": 80, "memory_limit_mb": 7168})
        assert status == 200, c
        assert c["temp_throttled_max_c"] == 80 and c["memory_limit_mb"] == 7168, c
        status, c = http_json("PUT", v.url + "/api/gpu/config",
                              json_body={"temp_optimal": 60, "temp_normal": 70,
                                         "memory_optimal": 60, "memory_normal": 80,
                                         "memory_critical": 90, "temp_critical": 90,
                                         "throttle_cooldown_seconds": 20,
                                         "critical_pause_seconds": 40,
                                         "memory_reserve_mb": 128})
        assert status == 200, c
        assert (c["temp_optimal_max_c"], c["temp_normal_max_c"]) == (60, 70), c
        assert (c["memory_optimal_max_percent"], c["memory_normal_max_percent"],
                c["memory_throttled_max_percent"]) == (60, 80, 90), c
        assert c["throttle_cooldown_seconds"] == 20 and c["critical_pause_seconds"] == 40, c
        # monitor_interval is in seconds, and really changes the sampling period.
        status, c = http_json("PUT", v.url + "/api/gpu/config",
                              json_body={"monitor_interval": 0.2})
        assert status == 200 and c["monitoring_interval_ms"] == 200, c
        # history_size resizes the ring.
        status, c = http_json("PUT", v.url + "/api/gpu/config", json_body={"history_size": 10})
        assert status == 200 and c["history_size"] == 10, c
        time.sleep(3)
        status, h = v.get("/api/gpu/metrics/history")
        assert status == 200 and h["capacity"] == 10, h
        assert len(h["gpus"][0]["samples"]) == 10, h
        assert all(MS_TIME.match(s["t"]) for s in h["gpus"][0]["samples"]), h
        # A key that exists but is fixed at start is named as such.
        for body in ({"LISTEN": "0.0.0.0:1"}, {"SCHEDULER_STRATEGY": "demand_based"}):
            status, e = http_json("PUT", v.url + "/api/gpu/config", json_body=body)
            assert status == 400 and "cannot be changed at run time" in e["error"], e
        status, e = http_json("PUT", v.url + "/api/gpu/config", json_body={"temp_max": 1})
        assert status == 400 and "unknown key 'temp_max'" in e["error"], e
        # Floats in their short form, on the wire.
        status, _, raw = http("GET", v.url + "/api/gpu/config")
        assert b'"speed_normal":0.8,' in raw or b'"speed_normal": 0.8,' in raw, raw
        assert b"0000000" not in raw, raw
    finally:
        v.stop()


def test_stats_models_and_vramctl():
    unload_all()
    v = start_vramd(sim, *FAST)
    try:
        wait_ready(v)
        job = run_job(v, "qwen2.5:0.5b")
        assert job["status"] == "complete", job
        assert MS_TIME.match(job["submitted_at"]), job
        s = v.stats()
        # Seed 001's fields next to vramd's own.
        assert s["queue"]["total_jobs"] == s["jobs"]["total"] >= 1, s
        assert s["queue"]["by_status"]["complete"] >= 1, s
        assert s["running"] == 0, s
        vram = s["resources"]["vram"]
        assert vram["total"] == s["gpus"][0]["memory_total_bytes"] > 0, s
        assert vram["used"] + vram["free"] <= vram["total"], s
        assert "qwen2.5:0.5b" in s["resources"]["loaded_models"], s
        assert s["gpus"][0]["memory_reserved_bytes"] == 0, s
        status, m = v.get("/api/models")
        q = [x for x in m["models"] if x["name"] == "qwen2.5:0.5b"][0]
        assert q["loaded_on"] and q["loaded_on"][0]["gpu"] == 0, q
        other = [x for x in m["models"] if x["name"] == "gemma:2b"][0]
        assert other["loaded_on"] == [], other
        out = subprocess.run([vramctl_path(), "--url", v.url, "stats"], capture_output=True,
                             text=True, timeout=30).stdout
        gpu_rows = [l for l in out.splitlines() if "simulated" in l]
        assert gpu_rows and " - " not in gpu_rows[0] + " ", out
        prio = [l for l in out.splitlines() if l.startswith(("high", "normal", "low", "all"))]
        assert len(prio) == 4 and all("-" not in l for l in prio), out
        out = subprocess.run([vramctl_path(), "--url", v.url, "models"], capture_output=True,
                             text=True, timeout=30).stdout
        row = [l for l in out.splitlines() if l.startswith("qwen2.5:0.5b")][0]
        assert "gpu0" in row, out
        # The GPU index is in the scheduler's log line for GPU 0.
        log = v.proc.log_text()
        assert "load qwen2.5:0.5b on GPU 0 (" in log, log[-2000:]
    finally:
        v.stop()


def test_memory_limit_bounds_loads():
    # phi3:mini (about 4.5 GiB) loaded under a 3000 MiB limit before; now it does not fit
    # the GPU and, with no CPU allowed, fails, while a small model still runs.
    unload_all()
    for args in (["--memory-limit-mb", "3000"], ["--gpu-memory-fraction", "0.35"]):
        v = start_vramd(sim, *FAST, *args)
        try:
            wait_ready(v)
            job = run_job(v, "phi3:mini")
            assert job["status"] == "failed", (args, job)
            assert "phi3" not in str([m["name"] for m in sim.state().get("models", [])]), args
            assert run_job(v, "qwen2.5:0.5b")["status"] == "complete", args
        finally:
            v.stop()
        unload_all()
    # The limit also counts what is resident: qwen2.5:0.5b (1.2 GiB with its CUDA context)
    # and gemma:2b (2.3 GiB) do not fit 3600 MiB less the 1 GiB fit reserve together, so
    # one of them is unloaded. Which one depends on what vramd knew when it planned
    # gemma:2b's load: with the CUDA context measured, qwen2.5:0.5b makes room first;
    # planned on the estimates (1.8 GiB for gemma:2b, the context not measured yet) both
    # load, and once measured the one the eviction policy values least goes. (Under
    # 3000 MiB gemma:2b never fits at all once vramd has measured the CUDA context.)
    v = start_vramd(sim, *FAST, "--memory-limit-mb", "3600", "--min-swap-batch", "0")
    try:
        wait_ready(v)
        job = run_job(v, "qwen2.5:0.5b")
        assert job["status"] == "complete", job
        job = run_job(v, "gemma:2b")
        assert job["status"] == "complete", (job, v.proc.log_tail(30))
        wait_until(lambda: len(sim.state().get("models", [])) == 1, timeout=30,
                   what="one of qwen2.5:0.5b and gemma:2b unloaded under the limit")
        time.sleep(1)  # and it stays so: the other is not loaded back beside it
        assert len(sim.state().get("models", [])) == 1, sim.state().get("models")
    finally:
        v.stop()
    unload_all()


def test_dynamic_loading_and_cache_size():
    unload_all()
    env = {"DYNAMIC_LOADING_ENABLED": "false", "VRAMD_PIN_MODELS": "qwen2.5:0.5b"}
    v = start_vramd(sim, *FAST, env=env)
    try:
        wait_ready(v)
        status, e = v.submit({"model": "smollm:360m", "prompt": "hi"})
        assert status == 409 and "DYNAMIC_LOADING_ENABLED" in e["error"], (status, e)
        assert "qwen2.5:0.5b" in e["error"], e
        status, _, body = http("POST", v.url + "/api/generate",
                               json_body={"model": "smollm:360m", "prompt": "hi",
                                          "stream": False})
        assert status == 409 and b"DYNAMIC_LOADING_ENABLED" in body, (status, body)
        assert run_job(v, "qwen2.5:0.5b")["status"] == "complete"
    finally:
        v.stop()
    unload_all()
    # MODEL_CACHE_SIZE 1 on one GPU: the second model replaces the first.
    v = start_vramd(sim, *FAST, "--min-swap-batch", "0", env={"MODEL_CACHE_SIZE": "1"})
    try:
        wait_ready(v)
        assert run_job(v, "qwen2.5:0.5b")["status"] == "complete"
        assert run_job(v, "smollm:360m")["status"] == "complete"
        names = [m["name"] for m in sim.state().get("models", [])]
        assert names == ["smollm:360m"], names
    finally:
        v.stop()
    unload_all()


def test_refused_at_start():
    out = start_fails(["--ollama", "http://127.0.0.1:abc"])
    assert "--ollama" in out and "port" in out, out
    out = start_fails([], env={"OLLAMA_BASE_URL": "gpu-box:11434"})
    assert "OLLAMA_BASE_URL" in out and "http://" in out, out
    out = start_fails(["--ollama", sim.url], env={"CUDA_VISIBLE_DEVICES": ""})
    assert "CUDA_VISIBLE_DEVICES is empty" in out, out
    # With the CPU allowed, an empty CUDA_VISIBLE_DEVICES is a CPU-only vramd.
    v = start_vramd(sim, env={"CUDA_VISIBLE_DEVICES": "", "CPU_FALLBACK_ENABLED": "true"},
                    nvml=False)
    try:
        assert v.health()["gpu_telemetry"] == "none"
    finally:
        v.stop()


if __name__ == "__main__":
    run_tests(globals())
