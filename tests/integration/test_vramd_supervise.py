"""SUPERVISE=per-gpu (issue 9, section 1): vramd starts one `OLLAMA_BIN serve` per GPU,
here ollama-sim on a shared simulated machine with two GPUs, each server seeing only its
GPU (CUDA_VISIBLE_DEVICES) on a loopback port of its own. The servers become the nodes
gpu0 and gpu1; a server that dies is started again and reconciled (a pinned model is
loaded again); vramd stops them all when it exits."""

import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Proc, free_port, run_tests, sim_path, wait_http_ready, wait_until  # noqa: E402
from vramd_harness import (nvml_lib_path, start_vramd, wait_gpu_known,  # noqa: E402
                           wait_models_known)

GIB = 1 << 30


def make_machine(gpus="8GiB,8GiB", time_scale=20):
    """A simulated machine file; its servers run time_scale times faster than real."""
    path = os.path.join(tempfile.mkdtemp(prefix="vramd-sup-"), "machine")
    subprocess.run([sim_path(), "--machine", path, "--gpus", gpus, "--create",
                    "--time-scale", str(time_scale)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return path


def serve_pids():
    """{port: pid} of every `ollama-sim serve` process, from /proc."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % entry, "rb") as f:
                argv = f.read().split(b"\0")
            if len(argv) < 2 or not argv[0].endswith(b"ollama-sim") or argv[1] != b"serve":
                continue
            with open("/proc/%s/environ" % entry, "rb") as f:
                env = dict(kv.split(b"=", 1) for kv in f.read().split(b"\0") if b"=" in kv)
        except OSError:
            continue
        host = env.get(b"OLLAMA_HOST", b"").decode()
        if ":" in host:
            found[int(host.rsplit(":", 1)[1])] = int(entry)
    return found


def start(machine, *args):
    v = start_vramd(None, "--supervise", "per-gpu", "--ollama-bin", sim_path(),
                    "--nvml-lib", nvml_lib_path(), *args,
                    env={"OLLAMA_SIM_STATE": machine})
    wait_gpu_known(v)
    wait_until(lambda: len(nodes(v)) == 2 and all(n["state"] == "up" for n in nodes(v)),
               timeout=40, what="both supervised servers up")
    wait_models_known(v)
    return v


def nodes(v):
    status, body = v.get("/api/nodes")
    assert status == 200, body
    return body["nodes"]


def port_of(node):
    return int(node["url"].rsplit(":", 1)[1])


def test_one_server_per_gpu_and_spread():
    machine = make_machine()
    v = start(machine)
    try:
        ns = nodes(v)
        assert [n["node"] for n in ns] == ["gpu0", "gpu1"], ns
        for i, n in enumerate(ns):
            assert [g["index"] for g in n["gpus"]] == [i], n
            assert n["url"].startswith("http://127.0.0.1:"), n
        assert set(serve_pids()) >= {port_of(n) for n in ns}, serve_pids()
        ids = [v.submit_ok({"model": m, "prompt": "hi", "options": {"num_predict": 2}})
               for m in ("phi3:mini", "gemma:2b")]
        for j in v.wait_all_final(ids, timeout=60).values():
            assert j["status"] == "complete", j
        placed = {n["node"]: n["models"] for n in nodes(v)}
        assert sorted(placed["gpu0"] + placed["gpu1"]) == ["gemma:2b", "phi3:mini"], placed
        assert placed["gpu0"] and placed["gpu1"], placed
    finally:
        ports = {port_of(n) for n in nodes(v)}
        v.proc.assert_clean_exit(timeout=20)
    # Every server it started is gone with it.
    assert not (ports & set(serve_pids())), serve_pids()


def test_dead_server_restarted_and_pinned_model_reloaded():
    machine = make_machine()
    v = start(machine, "--pin-models", "qwen2.5:0.5b")
    try:
        wait_until(lambda: any("qwen2.5:0.5b" in n["models"] for n in nodes(v)),
                   timeout=40, what="the pinned model loaded")
        home = [n for n in nodes(v) if "qwen2.5:0.5b" in n["models"]]
        assert len(home) == 1, nodes(v)  # pinned on one node, not on every node
        port = port_of(home[0])
        old = serve_pids()[port]
        os.kill(old, 9)
        wait_until(lambda: serve_pids().get(port) not in (None, old), timeout=30,
                   what="the server restarted on its port")
        wait_until(lambda: any("qwen2.5:0.5b" in n["models"] and n["state"] == "up"
                               for n in nodes(v)), timeout=60,
                   what="the pinned model loaded again")
        # One copy, on a GPU: a node that came back while the pin reloaded elsewhere may hold
        # a second copy for a moment, which is unloaded since nothing uses it.
        def one_copy():
            status, report = v.get("/api/vram_report")
            copies = [m for n in report["nodes"] for m in n["models"]
                      if m["model"] == "qwen2.5:0.5b"]
            return len(copies) == 1 and copies[0]["location"] == "gpu" and \
                not copies[0]["pending"]
        wait_until(one_copy, timeout=30, what="one copy of the pinned model, on a GPU")
    finally:
        v.proc.assert_clean_exit(timeout=20)


def test_main_gpu_counts_the_nodes_gpus_only():
    # One server started with CUDA_VISIBLE_DEVICES=1,2 on a three-GPU machine sees two
    # GPUs, numbered 0 and 1. A model mapped to the host's GPU 2 must be asked of that
    # server as main_gpu 1; main_gpu 2 is no GPU it has.
    machine = make_machine("8GiB,8GiB,8GiB")
    port = free_port()
    sim = Proc([sim_path(), "serve"], name="ollama-sim",
               env={"OLLAMA_SIM_STATE": machine, "OLLAMA_HOST": "127.0.0.1:%d" % port,
                    "CUDA_VISIBLE_DEVICES": "1,2"})
    tmp = tempfile.mkdtemp(prefix="vramd-maingpu-")
    with open(os.path.join(tmp, "nodes.json"), "w") as f:
        json.dump({"nodes": [{"name": "pair", "url": "http://127.0.0.1:%d" % port,
                              "gpus": "1,2"}]}, f)
    with open(os.path.join(tmp, "map.json"), "w") as f:
        json.dump({"llama3.2:1b": [2]}, f)
    v = None
    try:
        wait_http_ready("http://127.0.0.1:%d/api/version" % port, proc=sim)
        v = start_vramd(None, "--nodes-file", os.path.join(tmp, "nodes.json"),
                        "--model-gpu-map", os.path.join(tmp, "map.json"),
                        "--nvml-lib", nvml_lib_path(), env={"OLLAMA_SIM_STATE": machine})
        wait_gpu_known(v)
        wait_models_known(v)
        jid = v.submit_ok({"model": "llama3.2:1b", "prompt": "hi", "options": {"num_predict": 2}})
        assert v.wait_final(jid, timeout=60)["status"] == "complete"
        # Where the memory went, as the (simulated) NVML sees it: the host's GPU 2.
        status, body = v.get("/api/gpu/status/all")
        used = {g["index"]: g["memory_used_bytes"] for g in body["gpus"]}
        assert used[2] - used[1] > 1 << 30, used
        v.proc.assert_clean_exit(timeout=20)
    finally:
        if v is not None:
            v.stop()
        sim.stop()


if __name__ == "__main__":
    run_tests(globals())
