"""Seed 003/000 model operations against ollama-sim (docs/api.md "Models and nodes"):
pinned models (loaded at start and again after the server restarts), the GPU
optimizer moving a priority model off the CPU once room appears, force_gpu /
force_cpu, manual load / unload, the node views, and bad input."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import http_json, run_tests, start_sim, wait_until  # noqa: E402
from vramd_harness import start_vramd, wait_ready  # noqa: E402

GIB = 1 << 30



def only_node(v):
    """The one node of a one-node vramd, as GET /api/nodes lists it."""
    status, body = v.get("/api/nodes")
    assert status == 200 and len(body["nodes"]) == 1, body
    return body["nodes"][0]

def post(v, path, body, timeout=60):
    return http_json("POST", v.url + path, json_body=body, timeout=timeout)


def sim_loaded(sim):
    status, body = http_json("GET", sim.url + "/api/ps")
    assert status == 200, (status, body)
    return {m["name"]: m for m in body["models"]}


def report_model(v, name):
    status, body = v.get("/api/vram_report")
    assert status == 200, (status, body)
    for m in body["nodes"][0]["models"]:
        if m["model"] == name:
            return m
    return None


def test_pinned_model_loaded_at_start_and_after_server_restart():
    sim = start_sim("--gpus", "8GiB", time_scale=200)
    port = sim.port
    v = start_vramd(sim, "--pin-models", "qwen2.5:0.5b", "--keep-alive", "1")
    try:
        wait_ready(v)
        wait_until(lambda: "qwen2.5:0.5b" in sim_loaded(sim), timeout=30,
                   what="the pinned model loaded at start")
        # Keep-alive (1 s) never unloads it, nor does a job of another model.
        job = v.wait_final(v.submit_ok({"model": "phi3:mini", "prompt": "hi",
                                        "options": {"num_predict": 3}}), timeout=60)
        assert job["status"] == "complete", job
        time.sleep(3)
        assert "qwen2.5:0.5b" in sim_loaded(sim), sim_loaded(sim)
        assert report_model(v, "qwen2.5:0.5b")["pinned"] is True
        status, body = post(v, "/api/models/unload", {"model": "qwen2.5:0.5b"})
        assert status == 409 and "pinned" in body["error"], (status, body)
        # The server restarts (its models are gone): vramd loads the pinned one again.
        sim.proc.kill9()
        sim = start_sim("--gpus", "8GiB", time_scale=200, port=port)
        assert "qwen2.5:0.5b" not in sim_loaded(sim)
        wait_until(lambda: "qwen2.5:0.5b" in sim_loaded(sim), timeout=40,
                   what="the pinned model loaded again after the restart")
        assert "model_gone: qwen2.5:0.5b is no longer loaded" in v.proc.log_text()
    finally:
        v.stop()
        sim.stop()


def test_force_cpu_force_gpu_and_optimizer():
    sim = start_sim("--gpus", "8GiB", time_scale=200, state_file=True)
    v = start_vramd(sim, "--gpu-priority-models", "llama3.2:1b", "--optimizer-interval", "1")
    try:
        wait_ready(v)
        status, body = post(v, "/api/models/force_cpu", {"model": "llama3.2:1b"})
        assert status == 200, (status, body)
        assert body["location"] == "cpu" and body["placement"] == "cpu", body
        assert body["node"] == only_node(v)["node"] and body["done"] is True, body
        ps = sim_loaded(sim)["llama3.2:1b"]
        assert ps["size_vram"] == 0, ps
        # A forced placement holds: the optimizer leaves it on the CPU.
        time.sleep(2.5)
        assert report_model(v, "llama3.2:1b")["location"] == "cpu"
        status, body = post(v, "/api/models/force_gpu", {"model": "llama3.2:1b", "node": "local"})
        assert status == 200, (status, body)
        assert body["location"] == "gpu" and body["gpu"] == 0, body
        assert body["size_vram_bytes"] == body["size_bytes"] > 0, body
        assert sim_loaded(sim)["llama3.2:1b"]["size_vram"] > 0

        # Back on the CPU, then automatic placement: the optimizer moves it back to the
        # GPU only once room appears (a reservation holds the GPU first).
        status, body = post(v, "/api/models/force_cpu", {"model": "llama3.2:1b"})
        assert status == 200 and body["location"] == "cpu", (status, body)
        status, body = post(v, "/api/gpu/memory/allocate", {"id": "hold", "mb": 6800})
        assert status in (200, 201), (status, body)
        status, body = post(v, "/api/models/placement",
                            {"model": "llama3.2:1b", "placement": "auto"})
        assert status == 200 and body["location"] == "cpu", (status, body)
        time.sleep(3)
        assert report_model(v, "llama3.2:1b")["location"] == "cpu"
        status, body = post(v, "/api/gpu/memory/deallocate", {"id": "hold"})
        assert status == 200, (status, body)
        wait_until(lambda: (report_model(v, "llama3.2:1b")["location"],
                            report_model(v, "llama3.2:1b")["state"]) == ("gpu", "loaded"),
                   timeout=30,
                   what="the optimizer to move the priority model to the GPU")
        assert "moved llama3.2:1b from cpu to gpu 0 (optimizer)" in v.proc.log_text()
        wait_until(lambda: sim_loaded(sim)["llama3.2:1b"]["size_vram"] > 0, timeout=10)
    finally:
        v.stop()
        sim.stop()


def test_load_unload_and_views():
    sim = start_sim("--gpus", "8GiB", time_scale=200, state_file=True)
    v = start_vramd(sim)
    try:
        wait_ready(v)
        status, body = post(v, "/api/models/load", {"model": "gemma:2b", "gpu": 0})
        assert status == 200, (status, body)
        assert body["location"] == "gpu" and body["state"] == "loaded", body
        assert "gemma:2b" in sim_loaded(sim)
        status, body = v.get("/api/vram_report")
        assert status == 200, body
        node = body["nodes"][0]
        assert node["node"] == only_node(v)["node"] and node["url"] == sim.url, node
        gpu = node["gpus"][0]
        assert gpu["index"] == 0 and gpu["total_bytes"] == 8 * GIB, gpu
        assert gpu["used_bytes"] + gpu["free_bytes"] == gpu["total_bytes"], gpu
        assert gpu["used_bytes"] > 0, gpu
        m = [m for m in node["models"] if m["model"] == "gemma:2b"][0]
        assert m["size_bytes"] == sim_loaded(sim)["gemma:2b"]["size"], m
        status, body = v.get("/api/nodes")
        assert status == 200, body
        n = body["nodes"][0]
        assert n["state"] == "up" and n["version"], n
        assert n["models"] == ["gemma:2b"] and n["gpus"][0]["index"] == 0, n
        job = v.wait_final(v.submit_ok({"model": "gemma:2b", "prompt": "x",
                                        "options": {"num_predict": 2}}), timeout=60)
        assert job["status"] == "complete", job
        status, body = v.get("/api/lb_stats")
        assert status == 200, body
        s = body["nodes"][0]
        assert s["requests"] == 1 and s["completed"] == 1 and s["failures"] == 0, s
        assert s["running"] == 0 and s["queued"] == 0 and s["breaker"] == "closed", s
        assert s["mean_latency_ms"] > 0, s
        status, body = post(v, "/api/models/unload", {"model": "gemma:2b"})
        assert status == 200 and body["state"] == "unloaded", (status, body)
        assert body["location"] == "none", body
        wait_until(lambda: "gemma:2b" not in sim_loaded(sim), timeout=10)
    finally:
        v.stop()
        sim.stop()


def test_bad_input():
    sim = start_sim("--gpus", "8GiB", time_scale=200)
    v = start_vramd(sim)
    try:
        wait_ready(v)
        cases = [
            ("/api/models/force_gpu", {}, 400, "'model'"),
            ("/api/models/force_gpu", {"model": 3}, 400, "'model'"),
            ("/api/models/force_cpu", {"model": "no-such:model"}, 404, "not installed"),
            ("/api/models/load", {"model": "gemma:2b", "node": "elsewhere"}, 404, "node"),
            ("/api/models/load", {"model": "gemma:2b", "node": 5}, 400, "'node'"),
            ("/api/models/load", {"model": "gemma:2b", "gpu": "x"}, 400, "'gpu'"),
            ("/api/models/load", {"model": "gemma:2b", "gpu": 7}, 404, "GPU 7"),
            ("/api/models/load", {"model": "gemma:2b", "timeout": -1}, 400, "'timeout'"),
            ("/api/models/unload", {"model": "gemma:2b", "gpu": 0}, 400, "'gpu'"),
            ("/api/models/placement", {"model": "gemma:2b", "placement": "moon"}, 400,
             "'placement'"),
        ]
        for path, body, want, text in cases:
            status, reply = post(v, path, body)
            assert status == want and text in reply["error"], (path, body, status, reply)
        assert v.proc.alive()
    finally:
        v.stop()
        sim.stop()



def test_spilled_priority_model_moved_back_by_optimizer():
    # Another program holds most of the GPU when another client loads a GPU-priority
    # model straight through Ollama: v0.33 puts part of it on the CPU. vramd adopts it as
    # spilled and, since ALLOW_CPU accepts it there while no GPU has room, keeps it; once
    # the memory is back, the optimizer moves it onto the GPU whole.
    sim = start_sim("--gpus", "8GiB", time_scale=200, state_file=True)
    v = start_vramd(sim, "--gpu-priority-models", "llama3.2:1b", "--optimizer-interval", "1",
                    "--allow-cpu", "true")
    try:
        wait_ready(v)
        status, _ = http_json("POST", sim.url + "/sim/gpu/0", {"other_mb": 6144})
        assert status == 200
        status, _ = http_json("POST", sim.url + "/api/generate",
                              {"model": "llama3.2:1b", "prompt": "", "keep_alive": -1})
        assert status == 200
        ps = sim_loaded(sim)["llama3.2:1b"]
        assert 0 < ps["size_vram"] < ps["size"], ps  # spilled
        wait_until(lambda: (report_model(v, "llama3.2:1b") or {}).get("location") == "gpu+cpu",
                   timeout=20, what="vramd to adopt the spilled model")
        time.sleep(2.5)  # no room yet: it stays where it is
        assert report_model(v, "llama3.2:1b")["location"] == "gpu+cpu"
        status, _ = http_json("POST", sim.url + "/sim/gpu/0", {"other_mb": 0})
        assert status == 200
        wait_until(lambda: (report_model(v, "llama3.2:1b") or {}).get("location") == "gpu",
                   timeout=30,
                   what="the optimizer to move the spilled priority model onto the GPU")
        ps = sim_loaded(sim)["llama3.2:1b"]
        assert ps["size_vram"] == ps["size"], ps
        assert "moved llama3.2:1b from gpu 0 (spilled) to gpu 0" in v.proc.log_text()
        v.proc.assert_clean_exit()
    finally:
        v.stop()
        sim.stop()

if __name__ == "__main__":
    run_tests(globals())
