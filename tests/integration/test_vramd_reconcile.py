"""vramd reconciles its model states with what Ollama's /api/ps and the GPUs report
(issue 9, section 2): a model loaded that vramd did not load is adopted, an Ollama
restart is noticed, a load's memory counts once, and a job recovered after a vramd
restart reads the same in /api/jobs, /api/stats and /api/job/{id}."""

import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import http_json, run_tests, start_sim, wait_until  # noqa: E402
from vramd_harness import start_vramd, wait_ready  # noqa: E402

MODEL = "phi3:mini"


def short_job(num_predict=3):
    return {"model": MODEL, "prompt": "hi", "options": {"num_predict": num_predict}}


def sim_loads(sim):
    return sim.state()["counters"]["loads"]


def sim_loaded(sim):
    return [m["name"] for m in sim.state()["models"]]


def vramd_resident(v, name=MODEL):
    for m in v.stats()["loaded_models"]:
        if m["model"] == name:
            return m
    return None


class EventStream:
    """GET /api/events?types=... read raw: .wait_for(text) waits until the stream has
    carried text (an "event: TYPE" line)."""

    def __init__(self, v, types):
        self.sock = socket.create_connection(("127.0.0.1", v.port), timeout=1)
        self.sock.sendall(("GET /api/events?types=%s HTTP/1.1\r\nHost: localhost\r\n\r\n" %
                           types).encode())
        self.data = b""

    def wait_for(self, text, timeout=20):
        deadline = time.monotonic() + timeout
        while text.encode() not in self.data:
            assert time.monotonic() < deadline, ("no %r in the event stream" % text, self.data)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            assert chunk, ("event stream closed", self.data)
            self.data += chunk
        return self.data.decode("utf-8", "replace")

    def close(self):
        self.sock.close()


def restart_adopts(stop):
    sim = start_sim("--gpus", "8GiB", state_file=True)
    v = start_vramd(sim)
    v2 = None
    try:
        wait_ready(v)
        job = v.wait_final(v.submit_ok(short_job()), timeout=60)
        assert job["status"] == "complete", job
        assert sim_loads(sim) == 1, sim.state()["counters"]
        stop(v)
        assert MODEL in sim_loaded(sim), sim.state()["models"]
        v2 = start_vramd(sim, data_dir=v.data_dir, port=v.port)
        wait_ready(v2)
        # The model Ollama still holds is adopted: it is resident in vramd's view, its
        # memory counts, and the next job runs on it without a load.
        wait_until(lambda: vramd_resident(v2) is not None, timeout=20,
                   what="the restarted vramd to adopt %s" % MODEL)
        m = vramd_resident(v2)
        assert m["state"] == "loaded" and m["footprint_bytes"] > 0 and m["adopted"], m
        wait_until(lambda: v2.stats()["gpus"][0]["memory_models_bytes"] > 0, timeout=10,
                   what="the adopted model's memory to count")
        job = v2.wait_final(v2.submit_ok(short_job()), timeout=30)
        assert job["status"] == "complete", job
        assert sim_loads(sim) == 1, ("the adopted model was loaded again",
                                     sim.state()["counters"])
        v2.proc.assert_clean_exit()
    finally:
        v.stop()
        if v2 is not None:
            v2.stop()
        sim.stop()


def test_vramd_restart_kill9_adopts_loaded_model():
    restart_adopts(lambda v: v.proc.kill9())


def test_vramd_restart_sigterm_adopts_loaded_model():
    restart_adopts(lambda v: v.proc.assert_clean_exit())


def test_adopted_model_keep_alive_applies():
    # A model another client loaded counts and is unloaded by vramd's keep-alive.
    sim = start_sim("--gpus", "8GiB", state_file=True)
    v = start_vramd(sim, "--keep-alive", "2")
    try:
        wait_ready(v)
        events = EventStream(v, "model_adopted")
        status, _ = http_json("POST", sim.url + "/api/generate",
                              json_body={"model": MODEL, "prompt": "", "keep_alive": -1})
        assert status == 200, status
        wait_until(lambda: vramd_resident(v) is not None, timeout=20,
                   what="vramd to adopt a model another client loaded")
        assert MODEL in events.wait_for("event: model_adopted")
        events.close()
        wait_until(lambda: MODEL not in sim_loaded(sim), timeout=30,
                   what="keep-alive to unload the adopted model")
        wait_until(lambda: vramd_resident(v) is None, timeout=10,
                   what="vramd to see the unload")
        v.proc.assert_clean_exit()
    finally:
        v.stop()
        sim.stop()


def test_ollama_restart_is_noticed():
    sim = start_sim("--gpus", "8GiB", state_file=True)
    v = start_vramd(sim)
    sim2 = None
    try:
        wait_ready(v)
        job = v.wait_final(v.submit_ok(short_job()), timeout=60)
        assert job["status"] == "complete", job
        assert vramd_resident(v) is not None
        loads_before = v.stats()["loads"]
        events = EventStream(v, "server_restarted,model_gone")
        # Ollama restarts (same port, same machine): its runners are gone.
        sim.stop()
        sim2 = start_sim("--gpus", "8GiB", state_file=sim.state_file, port=sim.port)
        wait_until(lambda: vramd_resident(v) is None, timeout=30,
                   what="vramd to notice the restarted Ollama lost its models")
        text = events.wait_for("event: model_gone")
        assert "event: server_restarted" in text and MODEL in text, text
        events.close()
        # The next job pays a load that vramd plans and counts.
        job = v.wait_final(v.submit_ok(short_job()), timeout=60)
        assert job["status"] == "complete", job
        assert v.stats()["loads"] == loads_before + 1, v.stats()
        v.proc.assert_clean_exit()
    finally:
        v.stop()
        if sim2 is not None:
            sim2.stop()
        sim.stop()


def test_ollama_upgraded_in_place_is_a_restart():
    # The server comes back as a new version and another client has already loaded a
    # model on it: its model list is not empty, but it is another process all the same.
    sim = start_sim("--gpus", "8GiB", state_file=True)
    v = start_vramd(sim)
    sim2 = None
    try:
        wait_ready(v)
        job = v.wait_final(v.submit_ok(short_job()), timeout=60)
        assert job["status"] == "complete", job
        assert vramd_resident(v) is not None
        sim.stop()
        sim2 = start_sim("--gpus", "8GiB", "--ollama-version", "0.33.7",
                         state_file=sim.state_file, port=sim.port)
        status, _ = http_json("POST", sim2.url + "/api/generate",
                              {"model": "llama3.2:1b", "prompt": "", "keep_alive": -1})
        assert status == 200
        wait_until(lambda: "restarted (version 0.33.7, was 0.33.0)" in v.proc.log_text(),
                   timeout=30, what="vramd to notice the new version")
        wait_until(lambda: vramd_resident(v) is None and
                   vramd_resident(v, "llama3.2:1b") is not None, timeout=30,
                   what="the old model gone and the other client's adopted")
        v.proc.assert_clean_exit()
    finally:
        v.stop()
        if sim2 is not None:
            sim2.stop()
        sim.stop()


def test_model_unloaded_behind_vramds_back_is_gone():
    # Another client unloads the model vramd loaded: vramd no longer counts it.
    sim = start_sim("--gpus", "8GiB", state_file=True)
    v = start_vramd(sim)
    try:
        wait_ready(v)
        job = v.wait_final(v.submit_ok(short_job()), timeout=60)
        assert job["status"] == "complete", job
        assert vramd_resident(v) is not None
        status, _ = http_json("POST", sim.url + "/api/generate",
                              json_body={"model": MODEL, "prompt": "", "keep_alive": 0})
        assert status == 200, status
        wait_until(lambda: vramd_resident(v) is None, timeout=20,
                   what="vramd to see the model gone")
        v.proc.assert_clean_exit()
    finally:
        v.stop()
        sim.stop()


def test_short_jobs_make_one_load():
    # Four short jobs 2 s apart on one 8 GiB GPU with default settings: the first pays
    # the load, the others run on the loaded model (the load's memory counts once).
    sim = start_sim("--gpus", "8GiB", state_file=True, time_scale=1)
    v = start_vramd(sim)
    try:
        wait_ready(v)
        ids = []
        for i in range(4):
            if i > 0:
                time.sleep(2)
            ids.append(v.submit_ok(short_job()))
        jobs = v.wait_all_final(ids, timeout=120)
        assert all(j["status"] == "complete" for j in jobs.values()), jobs
        assert sim_loads(sim) == 1, (sim.state()["counters"], v.proc.log_tail(30))
        v.proc.assert_clean_exit()
    finally:
        v.stop()
        sim.stop()


def test_ollama_restart_mid_job_retries_it():
    # Ollama restarts while a job runs: the job runs again (at-least-once, its attempts
    # counted) on a model vramd loads again, and vramd never lists the lost runner.
    sim = start_sim("--gpus", "8GiB", state_file=True, time_scale=1)
    v = start_vramd(sim)
    sim2 = None
    try:
        wait_ready(v)
        status, body = http_json("POST", sim.url + "/sim/fault",
                                 json_body={"type": "slow", "factor": 0.01, "count": 3})
        assert status == 200, (status, body)
        jid = v.submit_ok(short_job(num_predict=20))
        wait_until(lambda: v.job(jid)["status"] == "running", timeout=60,
                   what="the job to run")
        time.sleep(0.5)
        sim.proc.kill9()
        sim2 = start_sim("--gpus", "8GiB", state_file=sim.state_file, port=sim.port,
                         time_scale=20)
        job = v.wait_final(jid, timeout=90)
        assert job["status"] == "complete", job
        assert job["attempts"] == 2, (job, v.proc.log_tail(30))
        assert sim2.state()["counters"]["loads"] == 1, sim2.state()["counters"]
        stats = v.stats()
        assert stats["retries"] >= 1, stats
        v.proc.assert_clean_exit()
    finally:
        v.stop()
        if sim2 is not None:
            sim2.stop()
        sim.stop()


def jobs_views_agree(v):
    """Asserts /api/jobs, /api/stats and /api/job/{id} report the same statuses and
    attempts; returns the jobs by id."""
    status, body = v.get("/api/jobs?limit=1000")
    assert status == 200, (status, body)
    listed = {j["job_id"]: j for j in body["jobs"]}
    by_status = v.stats()["jobs"]["by_status"]
    counts = {}
    for j in listed.values():
        counts[j["status"]] = counts.get(j["status"], 0) + 1
    for name, n in by_status.items():
        assert counts.get(name, 0) == n, (name, by_status, counts)
    for jid, j in listed.items():
        one = v.job(jid)
        assert one["status"] == j["status"], (one, j)
        assert one["attempts"] == j["attempts"], (one, j)
    return listed


def test_recovered_jobs_reported_the_same_everywhere():
    # kill -9 with jobs running and queued; the restarted vramd (its Ollama down, so
    # nothing moves) reports the recovered jobs the same in every view, and again once
    # they have run.
    sim = start_sim("--gpus", "8GiB", state_file=True, time_scale=1)
    v = start_vramd(sim)
    v2 = None
    sim2 = None
    try:
        wait_ready(v)
        ids = [v.submit_ok(short_job(num_predict=200)) for _ in range(4)]
        wait_until(lambda: v.job(ids[0])["status"] == "running", timeout=60,
                   what="a job to run")
        v.proc.kill9()
        sim.proc.kill9()
        v2 = start_vramd(sim, data_dir=v.data_dir, port=v.port)
        listed = jobs_views_agree(v2)
        assert sorted(listed) == sorted(ids), (sorted(listed), ids)
        assert all(j["status"] == "queued" for j in listed.values()), listed
        assert listed[ids[0]]["attempts"] == 1, listed[ids[0]]
        sim2 = start_sim("--gpus", "8GiB", state_file=sim.state_file, port=sim.port,
                         time_scale=50)
        jobs = v2.wait_all_final(ids, timeout=120)
        assert all(j["status"] == "complete" for j in jobs.values()), jobs
        listed = jobs_views_agree(v2)
        assert listed[ids[0]]["attempts"] == 2, listed[ids[0]]
        v2.proc.assert_clean_exit()
    finally:
        v.stop()
        if v2 is not None:
            v2.stop()
        if sim2 is not None:
            sim2.stop()
        sim.stop()


def spill_on_load_by_another_client(allow_cpu):
    """Another client loads phi3:mini into too little free memory, so Ollama spills
    part of it onto the CPU; vramd adopts it, notices the spill, and then unloads it
    (no ALLOW_CPU) or accepts it where it is (ALLOW_CPU, no GPU with room)."""
    sim = start_sim("--gpus", "8GiB", state_file=True)
    args = ["--allow-cpu", "true"] if allow_cpu else []
    v = start_vramd(sim, *args)
    try:
        wait_ready(v)
        gpu = sim.state()["gpus"][0]
        status, reply = http_json("POST", sim.url + "/sim/gpu/0",
                                  json_body={"other_mb": (gpu["total"] >> 20) - 3072})
        assert status == 200, (status, reply)
        status, _ = http_json("POST", sim.url + "/api/generate",
                              json_body={"model": MODEL, "prompt": "", "keep_alive": -1})
        assert status == 200, status
        assert sim.state()["counters"]["cpu_spills"] == 1, sim.state()["counters"]
        wait_until(lambda: v.stats()["cpu_spills"] == 1, timeout=20,
                   what="vramd to notice the adopted model spilled")
        assert "of %s on the CPU although it holds the rest on GPU 0" % MODEL in \
            v.proc.log_text()
        if allow_cpu:
            time.sleep(2)
            assert MODEL in sim_loaded(sim), "a spilled model was unloaded with ALLOW_CPU on"
            job = v.wait_final(v.submit_ok(short_job()), timeout=60)
            assert job["status"] == "complete", job
            assert sim_loads(sim) == 1, sim.state()["counters"]
        else:
            wait_until(lambda: MODEL not in sim_loaded(sim), timeout=20,
                       what="vramd to unload the misplaced model")
        v.proc.assert_clean_exit()
    finally:
        v.stop()
        sim.stop()


def test_adopted_spilled_model_is_unloaded():
    spill_on_load_by_another_client(allow_cpu=False)


def test_adopted_spilled_model_accepted_with_allow_cpu():
    spill_on_load_by_another_client(allow_cpu=True)


def test_adopted_on_the_gpu_that_holds_it():
    # Two GPUs; another client's model sits on GPU 1 before vramd starts (so vramd sees
    # it in /api/ps before its first GPU sample). vramd places it where NVML shows its
    # runner, and learns the runner's overhead from it.
    sim = start_sim("--gpus", "8GiB,8GiB", state_file=True)
    v = None
    try:
        gpu = sim.state()["gpus"][0]
        status, reply = http_json("POST", sim.url + "/sim/gpu/0",
                                  json_body={"other_mb": (gpu["total"] >> 20) - 2048})
        assert status == 200, (status, reply)
        status, _ = http_json("POST", sim.url + "/api/generate",
                              json_body={"model": MODEL, "prompt": "", "keep_alive": -1})
        assert status == 200, status
        held = [m for m in sim.state()["models"] if m["name"] == MODEL]
        assert held and held[0]["gpu"] == 1, held
        v = start_vramd(sim)
        wait_ready(v)
        wait_until(lambda: (vramd_resident(v) or {}).get("gpu") == 1, timeout=20,
                   what="vramd to adopt %s on GPU 1" % MODEL)
        wait_until(lambda: v.stats()["gpus"][1]["memory_models_bytes"] ==
                   sim.state()["gpus"][1]["used_by_models"], timeout=20,
                   what="vramd to count what NVML shows the runner holding")
        assert v.stats()["gpus"][0]["memory_models_bytes"] == 0, v.stats()["gpus"]
        v.proc.assert_clean_exit()
    finally:
        if v is not None:
            v.stop()
        sim.stop()


def test_restarted_server_with_failing_ps_does_not_hold_jobs_forever():
    # After an outage vramd waits for a listing before deciding, but a server whose
    # /api/ps keeps failing holds the jobs only for a bounded time.
    sim = start_sim("--gpus", "8GiB", state_file=True)
    v = start_vramd(sim)
    sim2 = None
    try:
        wait_ready(v)
        job = v.wait_final(v.submit_ok(short_job()), timeout=60)
        assert job["status"] == "complete", job
        sim.proc.kill9()
        wait_until(lambda: not v.health()["servers"][0]["reachable"], timeout=30,
                   what="vramd to see the server down")
        sim2 = start_sim("--gpus", "8GiB", state_file=sim.state_file, port=sim.port)
        status, body = http_json("POST", sim2.url + "/sim/fault",
                                 json_body={"type": "error", "endpoint": "/api/ps",
                                            "count": 100000})
        assert status == 200, (status, body)
        wait_until(lambda: v.health()["servers"][0]["reachable"], timeout=30,
                   what="vramd to see the server again")
        t0 = time.monotonic()
        job = v.wait_final(v.submit_ok(short_job()), timeout=60)
        assert job["status"] == "complete", job
        assert time.monotonic() - t0 < 30, time.monotonic() - t0
        assert "no /api/ps listing from" in v.proc.log_text(), v.proc.log_tail(20)
        v.proc.assert_clean_exit()
    finally:
        v.stop()
        if sim2 is not None:
            sim2.stop()
        sim.stop()


if __name__ == "__main__":
    run_tests(globals())
