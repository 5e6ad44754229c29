"""ollama-sim's simulated scheduler and hardware through HTTP: eviction when full,
503 when the pending queue is full, out-of-memory loads after /sim/gpu raises
other-process memory, CPU placement with num_gpu 0, /sim/state and /sim/gpu, and
the shared state file read back with ctypes per sim/sim-shm.h."""

import ctypes
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import http, http_json, run_tests, start_sim, wait_until  # noqa: E402

OOM = "llama-server reported out-of-memory during startup: cudaMalloc failed: out of memory"
GIB = 1 << 30
CUDA_CTX = 400 << 20


class ShmProc(ctypes.Structure):
    _fields_ = [("pid", ctypes.c_uint32), ("is_model_runner", ctypes.c_uint32),
                ("used_bytes", ctypes.c_uint64), ("name", ctypes.c_char * 64)]


class ShmGpu(ctypes.Structure):
    _fields_ = [("lost", ctypes.c_uint32), ("unsupported", ctypes.c_uint32),
                ("name", ctypes.c_char * 96), ("uuid", ctypes.c_char * 96),
                ("pci_bus_id", ctypes.c_char * 32),
                ("pci_domain", ctypes.c_uint32), ("pci_bus", ctypes.c_uint32),
                ("pci_device", ctypes.c_uint32), ("pci_device_id", ctypes.c_uint32),
                ("total_bytes", ctypes.c_uint64), ("reserved_bytes", ctypes.c_uint64),
                ("used_by_models_bytes", ctypes.c_uint64),
                ("used_by_others_bytes", ctypes.c_uint64),
                ("temperature_c", ctypes.c_uint32), ("slowdown_c", ctypes.c_uint32),
                ("shutdown_c", ctypes.c_uint32), ("gpu_max_c", ctypes.c_uint32),
                ("util_gpu_pct", ctypes.c_uint32), ("util_mem_pct", ctypes.c_uint32),
                ("power_mw", ctypes.c_uint32), ("power_limit_mw", ctypes.c_uint32),
                ("fan_pct", ctypes.c_uint32), ("sm_clock_mhz", ctypes.c_uint32),
                ("sm_clock_max_mhz", ctypes.c_uint32),
                ("clock_event_reasons", ctypes.c_uint64), ("nprocs", ctypes.c_uint32),
                ("procs", ShmProc * 32)]


class Shm(ctypes.Structure):
    _fields_ = [("magic", ctypes.c_uint32), ("version", ctypes.c_uint32),
                ("seq", ctypes.c_uint32), ("ngpus", ctypes.c_uint32),
                ("writer_pid", ctypes.c_uint32), ("driver_version", ctypes.c_char * 80),
                ("cuda_driver_version", ctypes.c_int32), ("gpus", ShmGpu * 16)]


def read_shm(path):
    for _ in range(100):
        with open(path, "rb") as f:
            data = f.read()
        # The NVML view comes first; the machine record (sim/sim-machine.h) follows.
        assert len(data) >= ctypes.sizeof(Shm), (len(data), ctypes.sizeof(Shm))
        shm = Shm.from_buffer_copy(data[:ctypes.sizeof(Shm)])
        if shm.seq % 2 == 0:
            return shm
        time.sleep(0.01)
    raise AssertionError("state file stayed mid-write")


def gen(sim, model, **extra):
    body = {"model": model}
    body.update(extra)
    return http_json("POST", sim.url + "/api/generate", body)


def loaded(sim):
    return sorted(m["name"] for m in sim.state()["models"])


def test_eviction_when_full():
    sim = start_sim("--gpus", "24GiB", env={"OLLAMA_MAX_LOADED_MODELS": "2"})
    try:
        assert gen(sim, "smollm:360m", keep_alive="1h")[0] == 200
        assert gen(sim, "tinyllama:1.1b", keep_alive="10m")[0] == 200
        assert gen(sim, "gemma:2b", keep_alive="1h")[0] == 200
        # The runner with the shortest keep_alive went.
        assert loaded(sim) == ["gemma:2b", "smollm:360m"]
        c = sim.state()["counters"]
        assert c["evictions"] == 1 and c["loads"] == 3 and c["unloads"] == 1
    finally:
        sim.proc.assert_clean_exit()


def test_eviction_when_memory_is_short():
    sim = start_sim("--gpus", "4GiB", "--context-length", "4096")
    try:
        assert gen(sim, "qwen2.5:1.5b")[0] == 200
        assert gen(sim, "phi3:mini")[0] == 200
        assert loaded(sim) == ["phi3:mini"]
        assert sim.state()["counters"]["evictions"] == 1
    finally:
        sim.proc.assert_clean_exit()


def test_503_when_pending_queue_full():
    # Real-time loads of 1 s each; a queue of 2.
    sim = start_sim("--gpus", "24GiB", "--start-cost", "1s", time_scale=1,
                    env={"OLLAMA_MAX_QUEUE": "2"})
    results = {}

    def bg(name):
        results[name] = gen(sim, name)[0]

    try:
        t1 = threading.Thread(target=bg, args=("smollm:360m",))
        t1.start()
        wait_until(lambda: any(m["loading"] for m in sim.state()["models"]), 5)
        others = [threading.Thread(target=bg, args=(m,)) for m in ("tinyllama:1.1b", "gemma:2b")]
        for t in others:
            t.start()
        wait_until(lambda: sim.state()["pending"] == 2, 5)
        status, _, raw = http("POST", sim.url + "/api/generate", {"model": "phi3:mini"})
        assert status == 503
        assert raw == (b'{"error":"server busy, please try again.  '
                       b'maximum pending requests exceeded"}'), raw
        # A loaded model's requests never touch the pending queue.
        for t in [t1] + others:
            t.join(30)
        assert results == {"smollm:360m": 200, "tinyllama:1.1b": 200, "gemma:2b": 200}
        assert sim.state()["counters"]["rejected_503"] == 1
    finally:
        sim.proc.assert_clean_exit()


def test_oom_after_other_process_memory():
    # Ollama 0.12's rule: a real footprint that does not fit the GPU is a 500. The 0.33
    # twin is test_v033_spill_after_other_process_memory.
    sim = start_sim("--gpus", "8GiB", "--context-length", "4096", "--ollama-version", "0.12",
                    state_file=True)
    try:
        assert gen(sim, "smollm:360m")[0] == 200
        status, gpu = http_json("POST", sim.url + "/sim/gpu/0",
                                {"other_mb": 5 * 1024, "process_name": "blender"})
        assert status == 200 and gpu["used_by_others"] == 5 * GIB, gpu
        status, body = gen(sim, "phi3:mini", prompt="hi")
        assert status == 500 and body == {"error": OOM}, (status, body)
        st = sim.state()
        assert st["counters"]["oom_failures"] == 1
        assert loaded(sim) == ["smollm:360m"]
        shm = read_shm(sim.state_file)
        g = shm.gpus[0]
        names = sorted(g.procs[i].name.decode() for i in range(g.nprocs))
        assert names == ["blender", "llama-server"], names
        assert g.used_by_others_bytes == 5 * GIB
        # Freeing the memory lets the load through.
        http_json("POST", sim.url + "/sim/gpu/0", {"other_mb": 0})
        assert gen(sim, "phi3:mini", prompt="hi", stream=False)[0] == 200
    finally:
        sim.proc.assert_clean_exit()


def test_cpu_placement_with_num_gpu_zero():
    sim = start_sim("--gpus", "24GiB")
    try:
        status, body = gen(sim, "qwen2.5:0.5b", prompt="x", stream=False,
                           options={"num_gpu": 0, "num_predict": 10})
        assert status == 200
        # CPU speed: 50 tok/s.
        assert abs(body["eval_duration"] - 10 / 50 * 1e9) < 1e6, body
        _, ps = http_json("GET", sim.url + "/api/ps")
        assert ps["models"][0]["size_vram"] == 0 and ps["models"][0]["size"] > 0
        m = sim.state()["models"][0]
        assert m["placement"] == "cpu" and m["gpu"] is None
        assert sim.state()["gpus"][0]["used_by_models"] == 0
        # Changing num_gpu reloads onto the GPU.
        gen(sim, "qwen2.5:0.5b", options={"num_gpu": 99})
        assert sim.state()["models"][0]["placement"] == "gpu"
        assert sim.state()["counters"]["loads"] == 2
    finally:
        sim.proc.assert_clean_exit()


def test_cpu_only_node():
    sim = start_sim("--gpus", "none", "--ram", "8GiB")
    try:
        assert gen(sim, "llama3.2:1b")[0] == 200
        st = sim.state()
        assert st["gpus"] == [] and st["models"][0]["placement"] == "cpu"
        assert st["ram"]["used_by_models"] == st["models"][0]["size"]
    finally:
        sim.proc.assert_clean_exit()


def test_state_consistency_and_file():
    sim = start_sim("--gpus", "16GiB,24GiB", "--seed", "7", state_file=True, time_scale=1)
    try:
        shm = read_shm(sim.state_file)
        assert shm.magic == 0x4d495356 and shm.version == 1 and shm.ngpus == 2
        assert shm.gpus[0].total_bytes == 16 * GIB and shm.gpus[1].total_bytes == 24 * GIB
        assert shm.gpus[0].uuid.startswith(b"GPU-") and shm.gpus[0].uuid != shm.gpus[1].uuid
        gen(sim, "llama3.2:1b")
        st = sim.state()
        m = st["models"][0]
        assert m["placement"] == "gpu" and m["gpu"] == 1  # most free memory
        g1 = st["gpus"][1]
        # NVML counts the runner's CUDA context (400 MiB) on top of /api/ps's size.
        assert g1["used_by_models"] == m["size"] + CUDA_CTX and m["size"] == m["size_vram"]
        assert g1["used"] == g1["reserved"] + g1["used_by_models"] + g1["used_by_others"]
        assert g1["free"] == g1["total"] - g1["used"]
        shm = read_shm(sim.state_file)
        assert shm.gpus[1].used_by_models_bytes == m["size"] + CUDA_CTX
        assert shm.gpus[1].nprocs == 1 and shm.gpus[1].procs[0].is_model_runner == 1
        assert shm.gpus[1].procs[0].pid == m["pid"]
        # Utilization is 100 while generating (real time, so the generation lasts long
        # enough to be seen even on a loaded machine).
        done = {}
        t = threading.Thread(target=lambda: done.update(r=gen(sim, "llama3.2:1b", prompt="x", stream=False,
                                                              options={"num_predict": 100})))
        sim2 = sim
        t.start()
        wait_until(lambda: sim2.state()["gpus"][1]["utilization"] == 100, 5)
        t.join(30)
        assert sim.state()["gpus"][1]["utilization"] == 0
        # A second start with the same seed names GPUs the same.
        again = start_sim("--gpus", "16GiB,24GiB", "--seed", "7")
        assert again.state()["gpus"][0]["uuid"] == st["gpus"][0]["uuid"]
        again.proc.assert_clean_exit()
    finally:
        sim.proc.assert_clean_exit()


def test_sim_gpu_controls():
    sim = start_sim("--gpus", "24GiB", state_file=True)
    try:
        status, g = http_json("POST", sim.url + "/sim/gpu/0",
                              {"temperature_c": 90, "utilization_pct": 80,
                               "unsupported": ["fan", "power"]})
        assert status == 200 and g["temperature"] == 90 and g["utilization"] == 80
        assert g["clock_event_reasons"] & 0x60 == 0x60  # thermal slowdown bits
        shm = read_shm(sim.state_file)
        assert shm.gpus[0].temperature_c == 90 and shm.gpus[0].unsupported == 0x6
        assert shm.gpus[0].clock_event_reasons & 0x60
        status, g = http_json("POST", sim.url + "/sim/gpu/0", {"lost": True})
        assert g["lost"] is True and read_shm(sim.state_file).gpus[0].lost == 1
        # A lost GPU takes no models: the load runs on the CPU.
        gen(sim, "smollm:360m")
        assert sim.state()["models"][0]["placement"] == "cpu"
        status, body = http_json("POST", sim.url + "/sim/gpu/3", {"lost": True})
        assert status == 404 and "no GPU" in body["error"]
        status, body = http_json("POST", sim.url + "/sim/gpu/x", {})
        assert status == 404
        for bad in ({"other_mb": "lots"}, {"lost": 1}, {"temperature_c": 500},
                    {"unsupported": ["warp_drive"]}, {"colour": "red"},
                    {"other_mb": 1024 * 1024}):
            status, body = http_json("POST", sim.url + "/sim/gpu/0", bad)
            assert status == 400 and body["error"], (bad, status, body)
        status, body = http_json("POST", sim.url + "/sim/gpu/0", raw_body=b"{")
        assert status == 400
        status, body = http_json("POST", sim.url + "/sim/reset", {})
        assert status == 200
        st = sim.state()
        assert st["models"] == [] and st["gpus"][0]["lost"] is False
        assert st["counters"]["loads"] == 0
        # Temperature follows load again after reset (35 C idle).
        assert st["gpus"][0]["temperature"] == 35
    finally:
        sim.proc.assert_clean_exit()


def test_parallel_slots_and_disconnect():
    sim = start_sim("--gpus", "24GiB", time_scale=20, env={"OLLAMA_NUM_PARALLEL": "2"})
    try:
        gen(sim, "qwen2.5:0.5b")
        # A client that goes away mid-stream frees its slot; the server keeps serving.
        s = socket.create_connection(("127.0.0.1", sim.port))
        body = b'{"model":"qwen2.5:0.5b","prompt":"long","options":{"num_predict":2000}}'
        s.sendall(b"POST /api/generate HTTP/1.1\r\nHost: localhost\r\nContent-Type: "
                  b"application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        assert b"200 OK" in s.recv(4096)
        assert sim.state()["models"][0]["active"] == 1
        s.close()
        wait_until(lambda: sim.state()["models"][0]["active"] == 0, 10)
        status, body = gen(sim, "qwen2.5:0.5b", prompt="x", stream=False)
        assert status == 200 and body["done"]
    finally:
        sim.proc.assert_clean_exit()


def test_keep_alive_expiry_unloads():
    sim = start_sim("--gpus", "24GiB", time_scale=1000)
    try:
        gen(sim, "smollm:360m", keep_alive="30s")  # 30 ms real
        wait_until(lambda: loaded(sim) == [], 5)
        gen(sim, "smollm:360m", keep_alive=-1)
        time.sleep(0.3)  # 300 s simulated
        assert loaded(sim) == ["smollm:360m"]
        _, ps = http_json("GET", sim.url + "/api/ps")
        assert ps["models"][0]["expires_at"] > "2200"
    finally:
        sim.proc.assert_clean_exit()


# ---- Ollama v0.33 (the default) ------------------------------------------------


def ps_models(sim):
    return http_json("GET", sim.url + "/api/ps")[1]["models"]


def test_version_flag():
    sim = start_sim("--ollama-version", "0.12")
    try:
        assert http_json("GET", sim.url + "/api/version")[1] == {"version": "0.12.0"}
    finally:
        sim.proc.assert_clean_exit()
    sim = start_sim()
    try:
        assert http_json("GET", sim.url + "/api/version")[1] == {"version": "0.33.0"}
    finally:
        sim.proc.assert_clean_exit()
    bad = start_sim_fails("--ollama-version", "banana")
    assert "--ollama-version \"banana\"" in bad, bad


def start_sim_fails(*args):
    import subprocess
    from harness import sim_path
    out = subprocess.run([sim_path(), "--listen", "127.0.0.1:1"] + list(args),
                         capture_output=True, text=True, timeout=10)
    assert out.returncode == 2, out
    return out.stderr


def test_v033_spill_after_other_process_memory():
    # The twin of test_oom_after_other_process_memory: 200, layers on the CPU.
    sim = start_sim("--gpus", "8GiB", "--context-length", "4096", state_file=True)
    try:
        assert gen(sim, "smollm:360m")[0] == 200
        http_json("POST", sim.url + "/sim/gpu/0", {"other_mb": 5 * 1024})
        status, body = gen(sim, "phi3:mini", prompt="hi", stream=False,
                           options={"num_predict": 50})
        assert status == 200, (status, body)
        ps = {m["name"]: m for m in ps_models(sim)}
        assert 0 < ps["phi3:mini"]["size_vram"] < ps["phi3:mini"]["size"], ps
        st = sim.state()
        m = [x for x in st["models"] if x["name"] == "phi3:mini"][0]
        assert m["placement"] == "partial" and 0 < m["gpu_layers"] < m["layers"], m
        # JSON reals are written with 15 significant digits (common/http-util.c).
        assert abs(m["cpu_share"] - (m["layers"] - m["gpu_layers"]) / m["layers"]) < 1e-12, m
        assert st["counters"]["cpu_spills"] == 1 and st["counters"]["oom_failures"] == 0
        # llama.cpp keeps about 1 GiB free on the device.
        assert GIB <= st["gpus"][0]["free"] < 2 * GIB, st["gpus"][0]
        # Tokens come at the layer-weighted mix of GPU (100/s) and CPU (12/s) speed.
        f = m["gpu_layers"] / m["layers"]
        tps = 1 / (f / 100 + (1 - f) / 12)
        assert abs(body["eval_duration"] - 50 / tps * 1e9) < 1e6, (body, tps)
        # cpu_tokens: smollm's tokens ran on the GPU alone; phi3's 50 count by CPU share.
        cpu_tokens = sim.state()["counters"]["cpu_tokens"]
        assert abs(cpu_tokens - body["eval_count"] * m["cpu_share"]) < 1e-6, (cpu_tokens, m)
    finally:
        sim.proc.assert_clean_exit()


def test_v033_first_model_spills_and_explicit_num_gpu_ooms():
    sim = start_sim("--gpus", "4GiB", "--context-length", "4096")
    try:
        status, body = gen(sim, "phi3:mini", options={"num_gpu": 99})
        # Explicit num_gpu above what fits: out of memory, retried once, then the 500.
        assert status == 500 and body == {"error": OOM}, (status, body)
        c = sim.state()["counters"]
        assert c["load_retries"] == 1 and c["oom_failures"] == 2, c
        assert gen(sim, "phi3:mini")[0] == 200
        m = ps_models(sim)[0]
        assert 0 < m["size_vram"] < m["size"], m
        assert sim.state()["counters"]["cpu_spills"] == 1
    finally:
        sim.proc.assert_clean_exit()


def test_v033_oom_retry_evicts_every_model():
    sim = start_sim("--gpus", "8GiB", "--context-length", "4096")
    try:
        assert gen(sim, "phi3:mini")[0] == 200
        http_json("POST", sim.url + "/sim/gpu/0", {"other_mb": 2560})
        # Does not fit next to phi3 with every layer on the GPU: the first try fails,
        # the retry evicts phi3 and fits.
        status, body = gen(sim, "qwen2.5:1.5b", options={"num_gpu": 99})
        assert status == 200, (status, body)
        st = sim.state()
        assert loaded(sim) == ["qwen2.5:1.5b"] and st["models"][0]["placement"] == "gpu"
        c = st["counters"]
        assert c["load_retries"] == 1 and c["oom_failures"] == 1 and c["evictions"] == 1, c
        assert c["recovery_waits"] >= 1, c
    finally:
        sim.proc.assert_clean_exit()


def test_v033_loading_model_absent_from_ps_and_growing():
    # phi3:mini at 200 MB/s loads in ~11 s simulated = 1.1 s real.
    sim = start_sim("--gpus", "24GiB", "--load-bw", "200MB", "--context-length", "4096",
                    time_scale=10, state_file=True)
    try:
        done = {}
        t = threading.Thread(target=lambda: done.update(r=gen(sim, "phi3:mini")))
        t.start()
        wait_until(lambda: sim.state()["models"] != [], 5)
        assert sim.state()["models"][0]["loading"] is True
        assert ps_models(sim) == []
        first = read_shm(sim.state_file).gpus[0].used_by_models_bytes
        time.sleep(0.4)
        second = read_shm(sim.state_file).gpus[0].used_by_models_bytes
        assert 0 < first < second, (first, second)
        # An unload of a model still loading is a no-op.
        assert gen(sim, "phi3:mini", keep_alive=0)[1]["done_reason"] == "unload"
        t.join(20)
        assert done["r"][0] == 200
        assert [m["name"] for m in ps_models(sim)] == ["phi3:mini"]
        m = sim.state()["models"][0]
        assert read_shm(sim.state_file).gpus[0].used_by_models_bytes == m["size_vram"] + CUDA_CTX
    finally:
        sim.proc.assert_clean_exit()


def test_v033_client_disconnect_aborts_its_load():
    sim = start_sim("--gpus", "24GiB", "--load-bw", "200MB", time_scale=10)
    try:
        s = socket.create_connection(("127.0.0.1", sim.port))
        body = b'{"model":"phi3:mini","prompt":"x"}'
        s.sendall(b"POST /api/generate HTTP/1.1\r\nHost: localhost\r\nContent-Type: "
                  b"application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        wait_until(lambda: sim.state()["models"] != [], 5)
        s.close()
        wait_until(lambda: sim.state()["counters"]["aborted_loads"] == 1, 5)
        assert loaded(sim) == []
        wait_until(lambda: sim.state()["gpus"][0]["used_by_models"] == 0, 5)
    finally:
        sim.proc.assert_clean_exit()


def test_v033_swap_waits_for_vram_recovery():
    sim = start_sim("--gpus", "24GiB", env={"OLLAMA_MAX_LOADED_MODELS": "1"}, time_scale=10)
    try:
        gen(sim, "smollm:360m")
        status, body = gen(sim, "qwen2.5:0.5b", stream=False, prompt="x")
        assert status == 200
        # Load = 300 ms start + 0.5 GB / 2 GB/s; the eviction adds the recovery wait: the
        # driver frees memory after 300 ms, seen at the 500 ms poll.
        load = 0.3e9 + 0.5e9 / 2e9 * 1e9
        assert body["load_duration"] >= load + 0.45e9, body["load_duration"]
        assert sim.state()["counters"]["recovery_waits"] == 1
    finally:
        sim.proc.assert_clean_exit()
    sim = start_sim("--gpus", "24GiB", "--ollama-version", "0.12",
                    env={"OLLAMA_MAX_LOADED_MODELS": "1"}, time_scale=10)
    try:
        gen(sim, "smollm:360m")
        status, body = gen(sim, "qwen2.5:0.5b", stream=False, prompt="x")
        assert body["load_duration"] < 0.3e9 + 0.25e9 + 0.3e9, body["load_duration"]
        assert sim.state()["counters"]["recovery_waits"] == 0
    finally:
        sim.proc.assert_clean_exit()


def test_v033_draining_runner_is_reused():
    sim = start_sim("--gpus", "24GiB", env={"OLLAMA_MAX_LOADED_MODELS": "1"}, time_scale=1)
    try:
        gen(sim, "smollm:360m")
        res = {}
        # 500 tokens at 250 tokens/s: 2 s.
        busy = threading.Thread(target=lambda: res.update(a=gen(
            sim, "smollm:360m", prompt="x", stream=False, options={"num_predict": 500})))
        busy.start()
        wait_until(lambda: sim.state()["models"][0]["active"] == 1, 5)
        other = threading.Thread(target=lambda: res.update(b=gen(sim, "qwen2.5:0.5b")))
        other.start()
        wait_until(lambda: sim.state()["pending"] == 1, 5)
        # smollm is being drained for qwen; a new smollm request is served by it.
        status, _ = gen(sim, "smollm:360m", prompt="y", stream=False, options={"num_predict": 5})
        assert status == 200
        busy.join(20)
        other.join(20)
        c = sim.state()["counters"]
        assert c["loads"] == 2, c  # smollm, qwen: no reload of smollm
    finally:
        sim.proc.assert_clean_exit()


def test_v033_reload_triggers_and_num_ctx_zero():
    sim = start_sim("--gpus", "24GiB")
    try:
        gen(sim, "qwen2.5:0.5b")
        gen(sim, "qwen2.5:0.5b", options={"num_thread": 4})
        gen(sim, "qwen2.5:0.5b", options={"num_thread": 4, "draft_num_predict": 8})
        assert sim.state()["counters"]["loads"] == 3
        gen(sim, "qwen2.5:0.5b", options={"num_ctx": 0})
        assert ps_models(sim)[0]["context_length"] == 4
        status, body = gen(sim, "qwen2.5:0.5b", options={"use_mmap": "yes"})
        assert status == 500 and "use_mmap" in body["error"], body
    finally:
        sim.proc.assert_clean_exit()


def test_v033_sched_spread():
    sim = start_sim("--gpus", "24GiB,24GiB", env={"OLLAMA_SCHED_SPREAD": "1"})
    try:
        gen(sim, "llama3.2:1b")
        m = sim.state()["models"][0]
        assert [g["gpu"] for g in m["gpus"]] == [0, 1], m
        g = sim.state()["gpus"]
        assert g[0]["used_by_models"] > CUDA_CTX and g[1]["used_by_models"] > CUDA_CTX
    finally:
        sim.proc.assert_clean_exit()


def test_v033_free_memory_remeasured_when_a_gpu_is_idle():
    # Another program fills GPU 1 after a model went to GPU 0: Ollama 0.33 re-measures
    # (GPU 1 has no runner) and places the next model on GPU 0; 0.12 picked GPU 1 and
    # ran out of memory.
    for version, want in (("0.33", 0), ("0.12", None)):
        sim = start_sim("--gpus", "24GiB,24GiB", "--ollama-version", version,
                        "--context-length", "4096")
        try:
            gen(sim, "phi3:mini", options={"main_gpu": 0})
            http_json("POST", sim.url + "/sim/gpu/1", {"other_mb": 22 * 1024})
            status, _ = gen(sim, "gemma:2b")
            m = [x for x in sim.state()["models"] if x["name"] == "gemma:2b"]
            if want is None:
                assert status == 500 and m == [], (version, status, m)
            else:
                assert status == 200 and m[0]["gpus"][0]["gpu"] == want, (version, m)
        finally:
            sim.proc.assert_clean_exit()


run_tests(globals())
