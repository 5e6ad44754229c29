"""vramd drives a fleet (issue 9): two Ollama nodes on two simulated machines. Node "a"
reads its GPU through the simulated NVML of machine A; node "b" (machine B) plans
against a declared budget (NODES_FILE). Jobs spread over the nodes, a model goes only to
nodes that have it, MODEL_GPU_MAP's "node:gpu" is honoured, and a node that dies with
a job in flight loses nothing: the job runs again on the other node, the dead node is
shown down, and once it is back it is reconciled and used again."""

import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import http_json, run_tests, start_sim, wait_until  # noqa: E402
from vramd_harness import (nvml_lib_path, start_vramd, wait_gpu_known,  # noqa: E402
                           wait_models_known)

GIB = 1 << 30


def write_json(obj):
    fd, path = tempfile.mkstemp(prefix="vramd-fleet-", suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump(obj, f)
    return path


class Fleet:
    """Two sims (machines A and B, one 8 GiB GPU each) and a vramd with both as nodes."""

    def __init__(self, *vramd_args, time_scale=100, gpu_map=None):
        self.time_scale = time_scale
        self.a = start_sim("--gpus", "8GiB", state_file=True, time_scale=time_scale)
        self.b = start_sim("--gpus", "8GiB", state_file=True, time_scale=time_scale)
        self.nodes_file = write_json({"nodes": [
            {"name": "a", "url": self.a.url},
            {"name": "b", "url": self.b.url, "local": False, "vram_budget": "8GiB",
             "labels": ["budget"]},
        ]})
        args = ["--nodes-file", self.nodes_file]
        if gpu_map is not None:
            args += ["--model-gpu-map", write_json(gpu_map)]
        # NODES_FILE is the whole list; machine A's GPU through the simulated NVML.
        self.v = start_vramd(None, "--nvml-lib", nvml_lib_path(), *args, *vramd_args,
                             env={"OLLAMA_SIM_STATE": self.a.state_file})
        wait_models_known(self.v)
        wait_gpu_known(self.v)
        wait_until(lambda: all(n["state"] == "up" for n in self.nodes()), timeout=20,
                   what="both nodes up")

    def nodes(self):
        status, body = self.v.get("/api/nodes")
        assert status == 200, body
        return body["nodes"]

    def node(self, name):
        return [n for n in self.nodes() if n["node"] == name][0]

    def sim_loaded(self, sim):
        return [m["name"] for m in sim.state()["models"]]

    def stop(self):
        self.v.proc.assert_clean_exit()
        self.a.stop()
        self.b.stop()


def job(model, num_predict=3, priority="normal"):
    return {"model": model, "prompt": "hi", "priority": priority,
            "options": {"num_predict": num_predict}}


def test_nodes_listed_with_their_telemetry():
    f = Fleet()
    try:
        nodes = f.nodes()
        assert [n["node"] for n in nodes] == ["a", "b"], nodes
        a, b = nodes
        assert a["url"] == f.a.url and a["telemetry"] == "local", a
        assert b["url"] == f.b.url and b["telemetry"] == "budget", b
        assert b["labels"] == ["budget"] and b["breaker"] == "closed", b
        assert a["gpus"][0]["total_bytes"] == 8 * GIB, a
        assert b["gpus"][0]["total_bytes"] == 8 * GIB and b["gpus"][0]["name"] == "budget", b
        assert a["version"] and b["version"], nodes
    finally:
        f.stop()


def test_two_models_spread_over_two_nodes():
    f = Fleet()
    try:
        ids = [f.v.submit_ok(job("phi3:mini")), f.v.submit_ok(job("gemma:2b"))]
        for j in f.v.wait_all_final(ids, timeout=60).values():
            assert j["status"] == "complete", j
        on_a, on_b = f.sim_loaded(f.a), f.sim_loaded(f.b)
        assert len(on_a) == 1 and len(on_b) == 1 and set(on_a + on_b) == {
            "phi3:mini", "gemma:2b"}, (on_a, on_b)
        status, stats = f.v.get("/api/lb_stats")
        assert status == 200, stats
        assert [s["requests"] for s in stats["nodes"]] == [1, 1], stats
        # The next job of each model goes where it is warm: no new load anywhere.
        loads = f.v.stats()["loads"]
        ids = [f.v.submit_ok(job("phi3:mini")), f.v.submit_ok(job("gemma:2b"))]
        for j in f.v.wait_all_final(ids, timeout=60).values():
            assert j["status"] == "complete", j
        assert f.v.stats()["loads"] == loads, f.v.stats()
    finally:
        f.stop()


def test_model_goes_only_where_installed():
    f = Fleet()
    try:
        status, body = http_json("DELETE", f.a.url + "/api/delete", {"model": "gemma:2b"})
        assert status == 200, (status, body)
        wait_until(lambda: f.v.get("/api/models")[1] and [
            m for m in f.v.get("/api/models")[1]["models"]
            if m["name"] == "gemma:2b" and m["nodes"] == ["b"]], timeout=30,
            what="vramd to see gemma:2b only on node b")
        for _ in range(3):
            j = f.v.wait_final(f.v.submit_ok(job("gemma:2b")), timeout=60)
            assert j["status"] == "complete", j
        assert "gemma:2b" in f.sim_loaded(f.b), f.sim_loaded(f.b)
        assert "gemma:2b" not in f.sim_loaded(f.a), f.sim_loaded(f.a)
    finally:
        f.stop()


def test_model_gpu_map_names_the_node():
    f = Fleet(gpu_map={"phi3:mini": ["b:0"], "gemma:2b": ["a:0"]})
    try:
        ids = [f.v.submit_ok(job("phi3:mini")), f.v.submit_ok(job("gemma:2b"))]
        for j in f.v.wait_all_final(ids, timeout=60).values():
            assert j["status"] == "complete", j
        assert f.sim_loaded(f.b) == ["phi3:mini"], f.sim_loaded(f.b)
        assert f.sim_loaded(f.a) == ["gemma:2b"], f.sim_loaded(f.a)
    finally:
        f.stop()


def test_node_killed_mid_job_fails_over_and_comes_back():
    # Slow enough that the job is still generating when node b dies.
    f = Fleet(time_scale=5, gpu_map={"phi3:mini": ["b:0"]})
    try:
        jid = f.v.submit_ok(job("phi3:mini", num_predict=400))
        wait_until(lambda: f.v.job(jid)["status"] == "running", timeout=30,
                   what="the job to run on node b")
        assert "phi3:mini" in f.sim_loaded(f.b)
        port, state_file = f.b.port, f.b.state_file
        f.b.proc.kill9()
        j = f.v.wait_final(jid, timeout=120)
        assert j["status"] == "complete", j
        assert j["attempts"] == 2, j
        assert "phi3:mini" in f.sim_loaded(f.a), f.sim_loaded(f.a)
        wait_until(lambda: f.node("b")["state"] == "down", timeout=20, what="b shown down")
        # Failures in a row open its circuit breaker: no work goes there until a trial.
        wait_until(lambda: f.node("b")["breaker"] == "open", timeout=30,
                   what="b's breaker open")
        # b comes back (its machine kept the memory of nothing: a fresh server).
        f.b = start_sim("--gpus", "8GiB", state_file=state_file, port=port,
                        time_scale=f.time_scale)
        wait_until(lambda: f.node("b")["state"] == "up", timeout=40, what="b shown up again")
        assert f.node("b")["breaker"] == "closed", f.node("b")
        # It is used again: a model pinned to it by the map loads there.
        j = f.v.wait_final(f.v.submit_ok(job("gemma:2b")), timeout=60)
        assert j["status"] == "complete", j
        ids = [f.v.submit_ok(job("qwen2.5:0.5b")), f.v.submit_ok(job("llama3.2:1b"))]
        for jj in f.v.wait_all_final(ids, timeout=60).values():
            assert jj["status"] == "complete", jj
        assert f.sim_loaded(f.b), "nothing ran on node b after it came back"
    finally:
        f.stop()




def test_hot_model_gets_a_replica():
    # MAX_REPLICAS=2: a queue longer than one node runs at once puts the model on the
    # other node too, and both serve it; with the default 1, one node serves it alone.
    for replicas, want in ((2, 2), (1, 1)):
        f = Fleet("--max-replicas", str(replicas), "--max-concurrent", "1",
                  time_scale=20)
        try:
            ids = [f.v.submit_ok(job("phi3:mini", num_predict=60)) for _ in range(8)]
            for j in f.v.wait_all_final(ids, timeout=120).values():
                assert j["status"] == "complete", j
            holders = [s for s in (f.a, f.b) if "phi3:mini" in f.sim_loaded(s)]
            assert len(holders) == want, (replicas, f.sim_loaded(f.a), f.sim_loaded(f.b))
            status, stats = f.v.get("/api/lb_stats")
            served = [n["requests"] for n in stats["nodes"]]
            assert sum(served) == 8 and (want == 1 or min(served) > 0), (replicas, stats)
        finally:
            f.stop()

def test_remote_node_telemetry_from_its_vramd():
    # Node b's GPU is read from a vramd on machine B (its telemetry_url), not a budget.
    a = start_sim("--gpus", "8GiB", state_file=True)
    b = start_sim("--gpus", "16GiB", state_file=True)
    vb = start_vramd(b)  # the vramd of machine B: simulated NVML of B
    nodes_file = write_json({"nodes": [
        {"name": "a", "url": a.url},
        {"name": "b", "url": b.url, "telemetry_url": vb.url},
    ]})
    v = start_vramd(None, "--nvml-lib", nvml_lib_path(), "--nodes-file", nodes_file,
                    "--model-gpu-map", write_json({"phi3:mini": ["b:0"]}),
                    env={"OLLAMA_SIM_STATE": a.state_file})
    try:
        wait_models_known(v)

        def node_b():
            status, body = v.get("/api/nodes")
            return [n for n in body["nodes"] if n["node"] == "b"][0]
        wait_until(lambda: node_b()["gpus"] and node_b()["gpus"][0]["total_bytes"], timeout=20,
                   what="node b's GPU read from its vramd")
        nb = node_b()
        assert nb["telemetry"] == "remote", nb
        assert nb["gpus"][0]["total_bytes"] == 16 * GIB, nb
        used_before = nb["gpus"][0]["used_bytes"]
        j = v.wait_final(v.submit_ok(job("phi3:mini")), timeout=60)
        assert j["status"] == "complete", j
        assert [m["name"] for m in b.state()["models"]] == ["phi3:mini"]
        # The runner's memory shows through B's vramd.
        wait_until(lambda: node_b()["gpus"][0]["used_bytes"] > used_before + GIB, timeout=20,
                   what="node b's used memory to show the load")
        v.proc.assert_clean_exit()
    finally:
        v.stop()
        vb.stop()
        a.stop()
        b.stop()

if __name__ == "__main__":
    run_tests(globals())
