"""Several ollama-sim servers on one simulated machine (--machine FILE): each server's
runners are the other servers' other-process memory, in the simulated NVML (read here
through libnvidia-ml.so.1 with ctypes), in nvidia-smi and in each server's own fit;
CUDA_VISIBLE_DEVICES selects and renumbers a server's GPUs; `ollama-sim serve` starts
from the environment alone; --create only creates a machine."""

import ctypes
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Proc, build_dir, free_port, http_json, run_tests, sim_path,  # noqa: E402
                     source_dir, start_sim, wait_http_ready, wait_until)

GIB = 1 << 30


class ProcessInfo(ctypes.Structure):
    _fields_ = [("pid", ctypes.c_uint), ("usedGpuMemory", ctypes.c_ulonglong),
                ("gpuInstanceId", ctypes.c_uint), ("computeInstanceId", ctypes.c_uint)]


class Memory(ctypes.Structure):
    _fields_ = [("total", ctypes.c_ulonglong), ("free", ctypes.c_ulonglong),
                ("used", ctypes.c_ulonglong)]


_NVML = None


def nvml_machine(path):
    """Every GPU of the machine file at path as the simulated NVML reports it:
    [{"uuid", "total", "used", "free", "procs": {pid: bytes}}]."""
    global _NVML
    if _NVML is None:
        _NVML = ctypes.CDLL(os.path.join(build_dir(), "nvml", "libnvidia-ml.so.1"))
    os.environ["OLLAMA_SIM_STATE"] = path
    lib = _NVML
    assert lib.nvmlInit_v2() == 0
    try:
        count = ctypes.c_uint()
        assert lib.nvmlDeviceGetCount_v2(ctypes.byref(count)) == 0
        gpus = []
        for i in range(count.value):
            dev = ctypes.c_void_p()
            assert lib.nvmlDeviceGetHandleByIndex_v2(i, ctypes.byref(dev)) == 0
            uuid = ctypes.create_string_buffer(96)
            assert lib.nvmlDeviceGetUUID(dev, uuid, 96) == 0
            mem = Memory()
            assert lib.nvmlDeviceGetMemoryInfo(dev, ctypes.byref(mem)) == 0
            n = ctypes.c_uint(64)
            procs = (ProcessInfo * 64)()
            assert lib.nvmlDeviceGetComputeRunningProcesses_v3(dev, ctypes.byref(n), procs) == 0
            gpus.append({"uuid": uuid.value.decode(), "total": mem.total, "used": mem.used,
                         "free": mem.free,
                         "procs": {procs[k].pid: procs[k].usedGpuMemory for k in range(n.value)}})
        return gpus
    finally:
        lib.nvmlShutdown()


def smi(path, query):
    out = subprocess.run([os.path.join(build_dir(), "sim-bin", "nvidia-smi"), query,
                          "--format=csv,noheader,nounits"], capture_output=True, text=True,
                         timeout=10, env=dict(os.environ, OLLAMA_SIM_STATE=path))
    assert out.returncode == 0, out
    return [[c.strip() for c in line.split(",")] for line in out.stdout.splitlines() if line]


def run_sim(*args, env=None):
    return subprocess.run([sim_path()] + list(args), capture_output=True, text=True,
                          timeout=20, env=dict(os.environ, **(env or {})))


def new_machine(gpus):
    path = os.path.join(tempfile.mkdtemp(prefix="vramd-machine-"), "machine")
    out = run_sim("--machine", path, "--gpus", gpus, "--time-scale", "100", "--create")
    assert out.returncode == 0, out
    return path


def gen(sim, model, **extra):
    body = {"model": model, "prompt": "hi", "stream": False, "options": {"num_predict": 5}}
    body.update(extra)
    return http_json("POST", sim.url + "/api/generate", body)


def runner_pids(sim):
    return {m["pid"] for m in sim.state()["models"]}


def ps(sim):
    return {m["name"]: m for m in http_json("GET", sim.url + "/api/ps")[1]["models"]}


def test_create_only_creates():
    path = new_machine("24GiB,16GiB")
    gpus = nvml_machine(path)
    assert [g["total"] for g in gpus] == [24 * GIB, 16 * GIB], gpus
    assert all(g["procs"] == {} for g in gpus), gpus
    again = run_sim("--machine", path, "--gpus", "24GiB", "--create")
    assert again.returncode == 2 and "exists already" in again.stderr, again
    no_gpus = run_sim("--machine", path, "--create")
    assert no_gpus.returncode == 2 and "--create needs" in no_gpus.stderr, no_gpus
    other = run_sim("--machine", path, "--gpus", "8GiB", "--listen", "127.0.0.1:1")
    assert other.returncode == 2 and "exists with GPUs 24.00 GiB, 16.00 GiB" in other.stderr, other
    missing = run_sim("--machine", path + ".absent", "--listen", "127.0.0.1:1")
    assert missing.returncode == 2 and "no machine there" in missing.stderr, missing
    scale = run_sim("--machine", path, "--time-scale", "3", "--listen", "127.0.0.1:1")
    assert scale.returncode == 2 and "--time-scale 100" in scale.stderr, scale
    # The first server that names the file with --gpus creates the machine.
    fresh = os.path.join(os.path.dirname(path), "fresh")
    sim = start_sim("--machine", fresh, "--gpus", "12GiB")
    try:
        assert [g["total"] for g in nvml_machine(fresh)] == [12 * GIB]
        assert sim.state()["state_file"] == fresh
    finally:
        sim.proc.assert_clean_exit()


def test_two_servers_share_a_gpu():
    path = new_machine("8GiB")
    a = start_sim("--machine", path, "--context-length", "4096")
    b = start_sim("--machine", path, "--context-length", "4096")
    try:
        # Alone on the GPU, server A places phi3:mini fully.
        assert gen(a, "phi3:mini")[0] == 200
        pa = ps(a)["phi3:mini"]
        assert pa["size_vram"] == pa["size"], pa
        # B sees A's runner as another process's memory ...
        gpu_b = b.state()["gpus"][0]
        a_bytes = sum(nvml_machine(path)[0]["procs"].values())
        assert gpu_b["used_by_other_servers"] == a_bytes > 0, (gpu_b, a_bytes)
        assert gpu_b["free"] == gpu_b["total"] - gpu_b["reserved"] - a_bytes, gpu_b
        # ... and its fit (llama-server --fit, v0.33) spills the same model to the CPU.
        status, body = gen(b, "phi3:mini")
        assert status == 200, (status, body)
        pb = ps(b)["phi3:mini"]
        assert 0 < pb["size_vram"] < pb["size"], pb
        assert b.state()["counters"]["cpu_spills"] == 1
        assert a.state()["counters"]["cpu_spills"] == 0
        # NVML lists both servers' runners, each under its own PID, and counts both.
        pids_a, pids_b = runner_pids(a), runner_pids(b)
        assert len(pids_a) == 1 and len(pids_b) == 1 and not pids_a & pids_b
        gpu = nvml_machine(path)[0]
        assert set(gpu["procs"]) == pids_a | pids_b, (gpu, pids_a, pids_b)
        sa = a.state()["gpus"][0]
        sb = b.state()["gpus"][0]
        assert sa["used_by_other_servers"] == gpu["procs"][min(pids_b)]
        assert sb["used_by_other_servers"] == gpu["procs"][min(pids_a)]
        assert gpu["used"] == sa["reserved"] + sum(gpu["procs"].values()), gpu
        # Both servers compute the same physical free memory as NVML.
        assert sa["free"] == sb["free"] == gpu["free"], (sa, sb, gpu)
        # nvidia-smi shows the whole machine: both runners.
        apps = smi(path, "--query-compute-apps=pid,used_memory")
        assert {int(r[0]) for r in apps} == pids_a | pids_b, apps
        # A server that dies (kill -9) leaves the machine at the next write of another.
        a.proc.kill9()
        http_json("POST", b.url + "/sim/gpu/0", {"other_mb": 100})
        gpu = nvml_machine(path)[0]
        assert pids_a.isdisjoint(gpu["procs"]) and pids_b <= set(gpu["procs"]), gpu
        assert b.state()["gpus"][0]["used_by_other_servers"] == 0
    finally:
        a.proc.stop()
        b.proc.assert_clean_exit()
    # A clean exit removes the server's processes from the machine.
    assert nvml_machine(path)[0]["procs"] == {}


def test_visible_devices_renumber():
    path = new_machine("24GiB,16GiB")
    uuids = [g["uuid"] for g in nvml_machine(path)]
    one = start_sim("--machine", path, env={"CUDA_VISIBLE_DEVICES": "1"})
    zero = start_sim("--machine", path, env={"CUDA_VISIBLE_DEVICES": uuids[0][:12] + ",7,1"})
    none = start_sim("--machine", path, env={"CUDA_VISIBLE_DEVICES": ""})
    try:
        g1 = one.state()["gpus"]
        assert [(g["index"], g["machine_index"], g["uuid"], g["total"]) for g in g1] == \
            [(0, 1, uuids[1], 16 * GIB)], g1
        g0 = zero.state()["gpus"]  # the list ends at the first index that is no GPU
        assert [(g["index"], g["machine_index"], g["uuid"]) for g in g0] == \
            [(0, 0, uuids[0])], g0
        assert none.state()["gpus"] == []
        assert gen(one, "smollm:360m")[0] == 200
        assert gen(zero, "qwen2.5:0.5b")[0] == 200
        assert gen(none, "tinyllama:1.1b")[0] == 200
        assert ps(none)["tinyllama:1.1b"]["size_vram"] == 0
        gpus = nvml_machine(path)
        assert set(gpus[1]["procs"]) == runner_pids(one), gpus
        assert set(gpus[0]["procs"]) == runner_pids(zero), gpus
        # nvidia-smi lists every GPU of the machine and each runner on its GPU.
        rows = smi(path, "--query-gpu=index,uuid,memory.total")
        assert [(r[0], r[1]) for r in rows] == [("0", uuids[0]), ("1", uuids[1])], rows
        apps = smi(path, "--query-compute-apps=gpu_uuid,pid")
        assert sorted((r[0], int(r[1])) for r in apps) == sorted(
            [(uuids[1], p) for p in runner_pids(one)] +
            [(uuids[0], p) for p in runner_pids(zero)]), apps
        # Other-process memory set through one server is machine-wide.
        http_json("POST", one.url + "/sim/gpu/0", {"other_mb": 1024})
        assert GIB in nvml_machine(path)[1]["procs"].values()
        assert zero.state()["gpus"][0]["used_by_other_servers"] == 0
    finally:
        for s in (one, zero, none):
            s.proc.assert_clean_exit()


def test_serve_reads_the_ollama_environment():
    path = new_machine("24GiB,24GiB")
    models = tempfile.mkdtemp(prefix="vramd-models-")
    shutil.copy(os.path.join(source_dir(), "sim", "catalogues", "large.json"),
                os.path.join(models, "catalogue.json"))
    with open(os.path.join(models, "catalogue.json")) as f:
        names = sorted(m["name"] for m in json.load(f)["models"])
    port = free_port()
    env = {"OLLAMA_HOST": "http://127.0.0.1:%d" % port, "OLLAMA_SIM_STATE": path,
           "OLLAMA_MODELS": models, "CUDA_VISIBLE_DEVICES": "1",
           "OLLAMA_NUM_PARALLEL": "3", "OLLAMA_CONTEXT_LENGTH": "2048",
           "OLLAMA_KEEP_ALIVE": "-1", "OLLAMA_MAX_LOADED_MODELS": "1",
           "OLLAMA_MAX_QUEUE": "7"}
    proc = Proc([sim_path(), "serve"], env=env, name="ollama-sim-serve")
    url = "http://127.0.0.1:%d" % port
    wait_http_ready(url, 20, proc=proc)
    try:
        tags = http_json("GET", url + "/api/tags")[1]
        assert sorted(m["name"] for m in tags["models"]) == names, tags
        st = http_json("GET", url + "/sim/state")[1]
        assert st["state_file"] == path and st["time_scale"] == 100, st
        assert [g["machine_index"] for g in st["gpus"]] == [1], st["gpus"]
        body = {"model": "mistral:7b", "prompt": "hi", "stream": False,
                "options": {"num_predict": 2}}
        assert http_json("POST", url + "/api/generate", body)[0] == 200
        m = http_json("GET", url + "/sim/state")[1]["models"][0]
        assert m["parallel"] == 3 and m["context_length"] == 2048, m
        assert m["keep_alive_ns"] < 0 or m["keep_alive_ns"] > 10 ** 17, m
        assert set(nvml_machine(path)[1]["procs"]) == {m["pid"]}
        # OLLAMA_MAX_LOADED_MODELS=1: the next model replaces it.
        body["model"] = "llama3.1:8b"
        assert http_json("POST", url + "/api/generate", body)[0] == 200
        loaded = [x["name"] for x in http_json("GET", url + "/sim/state")[1]["models"]]
        assert loaded == ["llama3.1:8b"], loaded
    finally:
        proc.assert_clean_exit()
    bad = run_sim("serve", env={"OLLAMA_SIM_STATE": path + ".absent",
                                "OLLAMA_HOST": "127.0.0.1:1"})
    assert bad.returncode == 2 and "no machine there" in bad.stderr, bad
    bad = run_sim("serve", env={"OLLAMA_NUM_PARALLEL": "many", "OLLAMA_HOST": "127.0.0.1:1"})
    assert bad.returncode == 2 and "OLLAMA_NUM_PARALLEL" in bad.stderr, bad


def test_state_flag_is_a_machine_of_one():
    sim = start_sim("--gpus", "24GiB", state_file=True)
    try:
        assert gen(sim, "smollm:360m")[0] == 200
        gpu = nvml_machine(sim.state_file)[0]
        assert set(gpu["procs"]) == runner_pids(sim), gpu
        # Another server can attach to it.
        other = start_sim("--machine", sim.state_file)
        try:
            assert other.state()["gpus"][0]["used_by_other_servers"] == \
                sum(gpu["procs"].values())
        finally:
            other.proc.assert_clean_exit()
    finally:
        sim.proc.assert_clean_exit()


def free_port_run(n):
    """A base port below the ephemeral range (where clients' own ports come from) with n
    consecutive ports free a moment ago."""
    import random
    import socket
    rng = random.Random(os.getpid())
    for _ in range(200):
        base = rng.randrange(20000, 32000 - n)
        socks = []
        try:
            for p in range(base, base + n):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise AssertionError("no run of %d free ports" % n)


def test_sim_cluster_script_up_and_down():
    script = os.path.join(source_dir(), "scripts", "sim-cluster.sh")
    d = os.path.join(tempfile.mkdtemp(prefix="vramd-cluster-"), "c")
    base = free_port_run(4)
    up = subprocess.run([script, "up", "--machines", "2", "--gpus", "24GiB,24GiB",
                         "--servers-per-machine", "2", "--build", build_dir(), "--dir", d,
                         "--port", str(base), "--", "--time-scale", "100"],
                        capture_output=True, text=True, timeout=30)
    try:
        assert up.returncode == 0, up
        urls = [line.split()[0] for line in up.stdout.splitlines() if line.startswith("http")]
        assert len(urls) == 4, up.stdout
        for i, u in enumerate(urls):
            try:
                wait_http_ready(u, 20)
            except AssertionError:
                with open(os.path.join(d, "server%d-%d.log" % (i // 2, i % 2))) as f:
                    raise AssertionError("%s: %s" % (u, f.read()))
        states = [http_json("GET", u + "/sim/state")[1] for u in urls]
        assert [[g["machine_index"] for g in st["gpus"]] for st in states] == \
            [[0], [1], [0], [1]], states
        assert len({st["state_file"] for st in states}) == 2
        assert len(nvml_machine(states[0]["state_file"])) == 2
    finally:
        down = subprocess.run([script, "down", "--dir", d], capture_output=True, text=True,
                              timeout=30)
    assert down.returncode == 0 and not os.path.exists(d), down
    for u in urls:
        try:
            http_json("GET", u + "/api/version", timeout=2)
            raise AssertionError("%s still answers after down" % u)
        except OSError:
            pass


if __name__ == "__main__":
    run_tests(globals())
