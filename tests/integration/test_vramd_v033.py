"""vramd against ollama-sim's Ollama v0.33 behaviour (the sim's default), one rule at
a time: the CUDA context each runner holds that only NVML shows, the late release of
an unloaded runner's memory, and loads that Ollama spills partly onto the CPU."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import http_json, run_tests, start_sim, wait_until  # noqa: E402
from vramd_harness import start_vramd, wait_ready  # noqa: E402

MIB = 1 << 20
GIB = 1 << 30
CUDA_CONTEXT = 400 * MIB  # ollama-sim's --cuda-context default


def sim_model(sim, name):
    for m in sim.state()["models"]:
        if m["name"] == name:
            return m
    return None


def vramd_model(v, name):
    status, body = v.get("/api/models")
    assert status == 200, (status, body)
    for m in body["models"]:
        if m["name"] == name:
            return m
    raise AssertionError("vramd does not know %s: %r" % (name, body))


def vramd_resident(v, name):
    for m in v.stats()["loaded_models"]:
        if m["model"] == name:
            return m
    return None


def test_footprint_counts_the_cuda_context():
    # /api/ps says size_vram = size; NVML shows the runner 400 MiB larger. vramd's
    # footprint of the model, and the memory it books for its models, is NVML's.
    sim = start_sim("--gpus", "24GiB", state_file=True)
    v = start_vramd(sim)
    try:
        wait_ready(v)
        job = v.wait_final(v.submit_ok({"model": "llama3.2:1b", "prompt": "hi",
                                        "options": {"num_predict": 4}}), timeout=60)
        assert job["status"] == "complete", job
        size = sim_model(sim, "llama3.2:1b")["size"]
        wait_until(lambda: vramd_model(v, "llama3.2:1b")["runner_overhead_bytes"] > 0,
                   what="vramd to measure the runner's NVML memory")
        m = vramd_model(v, "llama3.2:1b")
        assert m["runner_overhead_bytes"] == CUDA_CONTEXT, m
        assert m["footprint_bytes"] == size + CUDA_CONTEXT, (m, size)
        gpu = sim.state()["gpus"][0]
        wait_until(lambda: v.stats()["gpus"][0]["memory_models_bytes"] ==
                   gpu["used_by_models"], what="vramd to book what NVML shows")
        # A model never loaded pays the measured overhead in its estimate too.
        other = vramd_model(v, "gemma:2b")
        assert other["footprint_source"] == "estimate", other
        assert other["estimate_bytes"] >= other["file_size_bytes"] + CUDA_CONTEXT, other
        assert v.stats()["cpu_spills"] == 0
    finally:
        v.stop()
        sim.stop()


def test_unload_waits_until_the_memory_is_released():
    # Ollama drops an unloaded model from /api/ps at once; the driver frees its memory
    # later (here 3 s). Until then vramd keeps the model "unloading", so nothing is
    # planned into memory that is not free yet.
    sim = start_sim("--gpus", "8GiB", "--release-delay", "3s", state_file=True, time_scale=1)
    v = start_vramd(sim, "--keep-alive", "1")
    try:
        wait_ready(v)
        job = v.wait_final(v.submit_ok({"model": "qwen2.5:0.5b", "prompt": "hi",
                                        "options": {"num_predict": 4}}), timeout=60)
        assert job["status"] == "complete", job
        wait_until(lambda: http_json("GET", sim.url + "/api/ps")[1]["models"] == [],
                   timeout=20, what="the keep-alive unload")
        seen = 0
        while True:
            # vramd first: memory the sim still holds afterwards was held then too.
            asked = time.monotonic()
            m = vramd_resident(v, "qwen2.5:0.5b")
            # Waiting for the memory must not keep vramd's loop busy.
            assert time.monotonic() - asked < 1.0, "vramd answered late while it waited"
            if sim.state()["gpus"][0]["used_by_models"] == 0:
                break
            assert m is not None and m["state"] == "unloading", m
            seen += 1
            time.sleep(0.1)
        assert seen >= 5, "the memory came back too soon to tell (%d polls)" % seen
        wait_until(lambda: vramd_resident(v, "qwen2.5:0.5b") is None, timeout=5,
                   what="vramd to finish the unload once the memory is free")
        log = v.proc.log_text()
        assert "still holds GPU memory" not in log and "still listed" not in log, log
    finally:
        v.stop()
        sim.stop()


def test_spill_is_noticed_and_not_repeated():
    # The first load of a model is planned with its estimate, which here is short of
    # what Ollama needs (the compute buffer and the CUDA context): free memory is set
    # just above estimate + margin, so Ollama spills part of it onto the CPU. vramd
    # counts the spill, learns the real footprint, unloads the model once idle, and
    # does not load it into that memory again.
    sim = start_sim("--gpus", "8GiB", state_file=True)
    v = start_vramd(sim)
    try:
        wait_ready(v)
        estimate = vramd_model(v, "qwen2.5:0.5b")["estimate_bytes"]
        gpu = sim.state()["gpus"][0]
        free_wanted = estimate + GIB + 64 * MIB
        other_mb = (gpu["total"] - gpu["reserved"] - free_wanted) // MIB
        status, reply = http_json("POST", sim.url + "/sim/gpu/0", json_body={"other_mb": other_mb})
        assert status == 200, (status, reply)
        wait_until(lambda: v.stats()["gpus"][0]["memory_free_bytes"] < free_wanted + 32 * MIB,
                   what="vramd to see the other program's memory")
        body = {"model": "qwen2.5:0.5b", "prompt": "hi", "options": {"num_predict": 8}}
        job = v.wait_final(v.submit_ok(body), timeout=60)
        assert job["status"] == "complete", job
        counters = sim.state()["counters"]
        assert counters["cpu_spills"] == 1, counters
        wait_until(lambda: v.stats()["cpu_spills"] == 1, timeout=30, what="vramd to notice the spill")
        assert "of qwen2.5:0.5b on the CPU although vramd planned it" in v.proc.log_text()
        # Idle and wrongly placed: unloaded at once, not after the 300 s keep-alive.
        wait_until(lambda: sim_model(sim, "qwen2.5:0.5b") is None, timeout=10,
                   what="vramd to unload the spilled model")
        m = vramd_model(v, "qwen2.5:0.5b")
        assert m["footprint_source"] == "measured", m
        assert m["footprint_bytes"] + GIB > free_wanted, (m, free_wanted)
        # The same job again: it waits for the GPU instead of spilling again.
        jid = v.submit_ok(body)
        time.sleep(1.5)
        assert v.job(jid)["status"] == "queued", v.job(jid)
        assert sim.state()["counters"]["loads"] == counters["loads"], sim.state()["counters"]
        status, reply = http_json("POST", sim.url + "/sim/gpu/0", json_body={"other_mb": 0})
        assert status == 200, (status, reply)
        assert v.wait_final(jid, timeout=60)["status"] == "complete"
        counters = sim.state()["counters"]
        assert counters["cpu_spills"] == 1 and counters["oom_failures"] == 0, counters
        assert v.stats()["cpu_spills"] == 1
    finally:
        v.stop()
        sim.stop()


def test_small_margin_is_raised_to_the_fit_reserve():
    # Ollama 0.30+ keeps 1 GiB free on the GPU (llama-server --fit) and spills what would
    # eat into it. With VRAM_SAFETY_MARGIN_MB 512 and 768 MiB over the model's footprint,
    # vramd would load it and Ollama would spill it: vramd keeps 1 GiB instead, and the
    # job waits for the memory.
    sim = start_sim("--gpus", "8GiB", state_file=True)
    v = start_vramd(sim, "--safety-margin-mb", "512", "--keep-alive", "1")
    try:
        wait_ready(v)
        body = {"model": "qwen2.5:0.5b", "prompt": "hi", "options": {"num_predict": 4}}
        assert v.wait_final(v.submit_ok(body), timeout=60)["status"] == "complete"
        wait_until(lambda: vramd_model(v, "qwen2.5:0.5b")["runner_overhead_bytes"] > 0,
                   what="vramd to measure the runner")
        wait_until(lambda: vramd_resident(v, "qwen2.5:0.5b") is None, timeout=20,
                   what="the keep-alive unload")
        footprint = vramd_model(v, "qwen2.5:0.5b")["footprint_bytes"]
        gpu = sim.state()["gpus"][0]
        free_wanted = footprint + 768 * MIB
        other_mb = (gpu["total"] - gpu["reserved"] - free_wanted) // MIB
        status, reply = http_json("POST", sim.url + "/sim/gpu/0", json_body={"other_mb": other_mb})
        assert status == 200, (status, reply)
        wait_until(lambda: v.stats()["gpus"][0]["memory_free_bytes"] < free_wanted + 32 * MIB,
                   what="vramd to see the other program's memory")
        loads = sim.state()["counters"]["loads"]
        jid = v.submit_ok(body)
        time.sleep(1.5)
        assert v.job(jid)["status"] == "queued", v.job(jid)
        assert sim.state()["counters"]["loads"] == loads, sim.state()["counters"]
        status, reply = http_json("POST", sim.url + "/sim/gpu/0", json_body={"other_mb": 0})
        assert status == 200, (status, reply)
        assert v.wait_final(jid, timeout=60)["status"] == "complete"
        counters = sim.state()["counters"]
        assert counters["cpu_spills"] == 0 and counters["oom_failures"] == 0, counters
    finally:
        v.stop()
        sim.stop()


if __name__ == "__main__":
    run_tests(globals())
