"""GPU telemetry from another vramd (GPU_SOURCE=vramd, issue 9): vramd B reads the GPUs of
vramd A's machine through A's GET /api/gpu/status/all.

A runs in front of an ollama-sim with two 8 GiB GPUs and a state file, read through the
simulated NVML; B has its own ollama-sim (no state file, no NVML) and takes its GPUs from
A every 100 ms. B must report what A reports (count, names, UUIDs, bus ids, totals, and
after a load on A's server the used memory and the runner process, with A's pid); when A
goes away B marks the GPUs lost with a reason naming A's URL, and when A is back on the
same port they come back.
"""

import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import free_port, http_json, run_tests, start_sim, wait_until  # noqa: E402
from vramd_harness import start_vramd, vramd_path, wait_models_known  # noqa: E402

SIM_A = None
SIM_B = None
A = None
B = None
A_DATA = None
A_ARGS = ["--monitor-interval", "100"]
MODEL = "qwen2.5:0.5b"


def start_a(port=None):
    global A
    A = start_vramd(SIM_A, *A_ARGS, data_dir=A_DATA, port=port)
    wait_models_known(A)


def setup_module():
    global SIM_A, SIM_B, B, A_DATA
    SIM_A = start_sim("--gpus", "8GiB,8GiB", state_file=True, time_scale=100)
    SIM_B = start_sim(time_scale=100)
    A_DATA = tempfile.mkdtemp(prefix="vramd-remote-a-")
    start_a()
    # CUDA_VISIBLE_DEVICES describes B's own host: it must not hide A's GPUs.
    B = start_vramd(SIM_B, "--gpu-source", "vramd", "--gpu-remote-url", A.url + "/",
                    "--monitor-interval", "100", nvml=False,
                    env={"CUDA_VISIBLE_DEVICES": "7"})


def teardown_module():
    if B is not None:
        B.proc.assert_clean_exit()
    for p in (A, SIM_A, SIM_B):
        if p is not None:
            p.stop()


def status_all(v):
    status, body = http_json("GET", v.url + "/api/gpu/status/all")
    assert status == 200, (status, body)
    return body


def by_uuid(body):
    return {g["uuid"]: g for g in body["gpus"]}


def identity(g):
    return (g["index"], g["uuid"], g["name"], g["pci_bus_id"], g["memory_total_bytes"])


def live_figures(g):
    procs = sorted((p["pid"], p["name"], p["used_bytes"], p["ours"])
                   for p in (g["processes"] or []))
    return (g["memory_used_bytes"], g["memory_free_bytes"], procs)


def b_matches_a():
    """B's view of every GPU equals A's at this moment (A samples every 100 ms and the
    simulated memory is steady, so the two agree once B has sampled after A)."""
    a, b = by_uuid(status_all(A)), by_uuid(status_all(B))
    if len(a) != 2 or set(a) != set(b):
        return None
    for uuid, ga in a.items():
        gb = b[uuid]
        if gb["state"] == "UNAVAILABLE" or live_figures(ga) != live_figures(gb):
            return None
    return a, b


def test_b_reports_a_gpus():
    wait_until(lambda: len(status_all(B)["gpus"]) == 2, timeout=15, what="B sees two GPUs")
    a, b = status_all(A), status_all(B)
    assert a["telemetry"] == "nvml", a["telemetry"]
    assert b["telemetry"] == "vramd", b["telemetry"]
    assert len(a["gpus"]) == len(b["gpus"]) == 2
    assert sorted(identity(g) for g in a["gpus"]) == sorted(identity(g) for g in b["gpus"])
    for g in b["gpus"]:
        assert g["source"] == "vramd", g
        assert g["memory_total_bytes"] == 8 * 1024 ** 3, g
        assert g["temperature_c"] is not None and g["processes"] is not None, g
    health = B.health()
    assert health["gpu_telemetry"] == "vramd" and health["gpu_count"] == 2, health
    assert health["gpu_telemetry_reason"] is None, health


def test_load_on_a_shows_on_b():
    before = {u: g["memory_used_bytes"] for u, g in by_uuid(status_all(A)).items()}
    jid = A.submit_ok({"model": MODEL, "prompt": "hi", "options": {"num_predict": 4}})
    assert A.wait_final(jid)["status"] == "complete"

    def loaded_and_equal():
        pair = b_matches_a()
        if pair is None:
            return None
        a, _ = pair
        grew = [u for u, g in a.items() if g["memory_used_bytes"] > before[u] and g["processes"]]
        return pair if grew else None
    a, b = wait_until(loaded_and_equal, timeout=20, what="B showing A's loaded runner")
    runners = [p for g in b.values() for p in g["processes"]]
    assert len(runners) == 1 and runners[0]["ours"], runners
    # The pid is the one A's machine reports, kept as is.
    assert runners[0]["pid"] == [p for g in a.values() for p in g["processes"]][0]["pid"]


def test_a_down_marks_lost_then_back():
    url = A.url + "/api/gpu/status/all"
    port = A.port
    A.stop()

    def all_lost():
        gpus = status_all(B)["gpus"]
        return len(gpus) == 2 and all(g["state"] == "UNAVAILABLE" and g.get("lost_at")
                                      for g in gpus)
    wait_until(all_lost, timeout=15, what="B marking A's GPUs lost")
    reason = B.health()["gpu_telemetry_reason"]
    assert reason and url in reason, reason
    for g in status_all(B)["gpus"]:
        assert g["memory_used_bytes"] is None and g["temperature_c"] is None, g

    start_a(port=port)
    wait_until(b_matches_a, timeout=20, what="A's GPUs back on B")
    assert B.health()["gpu_telemetry_reason"] is None
    # The model A's server still holds shows again.
    assert any(g["processes"] for g in status_all(B)["gpus"])


def test_remote_down_at_start():
    """A B started before its remote answers runs, with no GPUs yet and the reason."""
    dead = "http://127.0.0.1:%d" % free_port()
    v = start_vramd(SIM_B, "--gpu-source", "vramd", "--gpu-remote-url", dead,
                    "--monitor-interval", "100", nvml=False)
    try:
        def told():
            h = v.health()
            return h if h["gpu_telemetry_reason"] else None
        h = wait_until(told, timeout=10, what="a reason for no GPUs")
        assert h["gpu_telemetry"] == "vramd" and h["gpu_count"] == 0, h
        assert dead + "/api/gpu/status/all" in h["gpu_telemetry_reason"], h
        assert "connect" in h["gpu_telemetry_reason"], h
    finally:
        v.proc.assert_clean_exit()


def test_gpu_source_vramd_needs_url():
    data = tempfile.mkdtemp(prefix="vramd-remote-nourl-")
    r = subprocess.run([vramd_path(), "--listen", "127.0.0.1:%d" % free_port(), "--data-dir",
                        data, "--gpu-source", "vramd"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0, r
    text = r.stdout + r.stderr
    assert "GPU_SOURCE" in text and "GPU_REMOTE_URL" in text, text


if __name__ == "__main__":
    run_tests(globals())
