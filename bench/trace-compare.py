#!/usr/bin/env python3
"""trace-compare.py: the same random job trace run (a) straight against ollama-sim
and (b) through vramd, printed side by side.

The trace: JOBS jobs with Poisson arrivals (RATE jobs per simulated second), mixed
priorities (20 % high, 50 % normal, 30 % low), random models of the ten-model
catalogue with a kind each model supports, on one simulated 8 GiB GPU; every 30
simulated seconds another process's memory on the GPU changes (POST /sim/gpu/0,
0 to 3 GiB). Each run gets a fresh ollama-sim with the same seed and schedule.

(a) direct: one client thread per job, started at its arrival time, sends the
    job as one non-streaming Ollama request (no retries, Ollama's own scheduler
    and keep-alive).
(b) vramd: one client submits each job at its arrival time to vramd (simulated
    NVML), then the jobs' final states are read back.

Both runs use ollama-sim's Ollama version (--ollama-version, default 0.33: a load
that does not fit spills layers to the CPU instead of failing, once the server has
retried an OOM).

Printed: makespan (first arrival to last completion), model loads, OOM load
failures, 503s, CPU spills (loads Ollama put partly on the CPU) and the tokens
generated on the CPU (each token weighted by its runner's CPU layer share, against
all tokens generated) counted by ollama-sim, jobs completed / failed, and p50/p99 of
the wait per priority. The wait of a job is its time from arrival to its answer
minus its own generation time (Ollama's prompt_eval_duration + eval_duration),
so queueing and model loads count, the same way for both runs. Times are
wall-clock seconds of the scaled run multiplied back by the time scale, so they
read as real-world seconds.

--scenario one-gpu (the default) is the above. --scenario fleet: 2 nodes x 2 GPUs
with the large catalogue (sim/catalogues/large.json, 7B to 70B models; all
completion models). Two simulated machines, each with two 24 GiB GPUs and one
ollama-sim using both. (a) round-robin: job i goes straight to machine i mod 2,
one client thread per job as above. (b) vramd gets both servers as nodes from a
NODES_FILE: node a through the simulated NVML of machine 1, node b through a
second vramd on machine 2's simulated NVML, named as node b's telemetry_url (that
vramd's own Ollama URL is a closed port, so it only reports machine 2's GPUs and
never loads or unloads anything there; --node-b-telemetry budget declares node b's
48 GiB as a budget instead). No other-process memory changes in this scenario.
Defaults: 200 jobs at 0.5 per simulated second, time scale 10 (about two minutes
per run). The table adds the loads and the jobs of each node, and the paths of the
vramd run's logs are printed.

usage: bench/trace-compare.py [--build DIR] [--scenario one-gpu|fleet] [--jobs N]
                              [--rate R] [--time-scale S] [--seed N] [--ollama-version V]
                              [--node-b-telemetry vramd|budget]

  bench/trace-compare.py --build build-rel                     # one-gpu, 1000 jobs
  bench/trace-compare.py --build build-rel --scenario fleet     # 200 jobs, rate 0.5, scale 10
"""

import argparse
import datetime
import json
import os
import random
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "integration"))

PRIO_WEIGHTS = (("high", 0.2), ("normal", 0.5), ("low", 0.3))
OTHER_EVERY_S = 30.0
OTHER_CHOICES_MB = (0, 1024, 2048, 3072)


def make_trace(n, rate, seed, models):
    rng = random.Random(seed)
    t = 0.0
    jobs = []
    for i in range(n):
        t += rng.expovariate(rate)
        r = rng.random()
        prio = "low"
        acc = 0.0
        for name, w in PRIO_WEIGHTS:
            acc += w
            if r < acc:
                prio = name
                break
        model = rng.choice(sorted(models))
        body = {"model": model, "priority": prio}
        if models[model] == "embedding":
            body["kind"], body["input"] = "embed", "text %d" % i
        elif rng.random() < 0.5:
            body["kind"] = "chat"
            body["messages"] = [{"role": "user", "content": "question %d" % i}]
        else:
            body["kind"], body["prompt"] = "generate", "question %d" % i
        jobs.append((t, body))
    end = t
    other = []
    k = 1
    while k * OTHER_EVERY_S < end:
        other.append((k * OTHER_EVERY_S, rng.choice(OTHER_CHOICES_MB)))
        k += 1
    return jobs, other


def gen_seconds(result):
    """Ollama's own generation time of one reply, in real-world seconds."""
    if not isinstance(result, dict):
        return 0.0
    ns = (result.get("prompt_eval_duration") or 0) + (result.get("eval_duration") or 0)
    return ns / 1e9


def parse_time(s):
    return datetime.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def pct(values, p):
    if not values:
        return float("nan")
    v = sorted(values)
    rank = max(1, int(p / 100.0 * len(v) + 0.999999))
    return v[rank - 1]


def other_memory_driver(sim_url, schedule, t0, scale, stop, http_json):
    for at, mb in schedule:
        while not stop.is_set() and time.monotonic() < t0 + at / scale:
            time.sleep(0.01)
        if stop.is_set():
            return
        http_json("POST", sim_url + "/sim/gpu/0", json_body={"other_mb": mb})


def send_direct(trace, scale, h, url_of, t0):
    """Sends job i to url_of(i) at its arrival time, each from its own client thread, as
    one non-streaming Ollama request. Returns (status, reply, end time) per job."""
    results = [None] * len(trace)
    path = {"generate": "/api/generate", "chat": "/api/chat", "embed": "/api/embed"}

    def client(i, body):
        req = {k: v for k, v in body.items() if k not in ("priority", "kind")}
        req["stream"] = False
        try:
            status, reply = h.http_json("POST", url_of(i) + path[body["kind"]], json_body=req,
                                        timeout=3600)
        except Exception as e:  # noqa: BLE001 - a failed request is a result
            status, reply = 0, {"error": str(e)}
        results[i] = (status, reply, time.monotonic())

    threads = []
    for i, (at, body) in enumerate(trace):
        delay = t0 + at / scale - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        th = threading.Thread(target=client, args=(i, body), daemon=True)
        th.start()
        threads.append(th)
    for th in threads:
        th.join()
    return results


def summarise_direct(trace, results, t0, scale, counters):
    waits = {p: [] for p, _ in PRIO_WEIGHTS}
    done = failed = tokens = 0
    last = t0
    for (at, body), (status, reply, end) in zip(trace, results):
        last = max(last, end)
        if status == 200:
            done += 1
            tokens += reply.get("eval_count") or 0
            latency = (end - (t0 + at / scale)) * scale
            waits[body["priority"]].append(max(0.0, latency - gen_seconds(reply)))
        else:
            failed += 1
    return {"makespan": (last - t0 - trace[0][0] / scale) * scale, "counters": counters,
            "done": done, "failed": failed, "waits": waits, "tokens": tokens}


def run_direct(trace, schedule, scale, args, h):
    sim = h.start_sim("--gpus", "8GiB", "--seed", str(args.seed),
                      "--ollama-version", args.ollama_version, state_file=True,
                      time_scale=scale)
    stop = threading.Event()
    try:
        t0 = time.monotonic()
        mem = threading.Thread(target=other_memory_driver,
                               args=(sim.url, schedule, t0, scale, stop, h.http_json))
        mem.start()
        results = send_direct(trace, scale, h, lambda i: sim.url, t0)
        stop.set()
        mem.join()
        counters = sim.state()["counters"]
    finally:
        stop.set()
        sim.stop()
    return summarise_direct(trace, results, t0, scale, counters)


def submit_trace(v, trace, scale, t0):
    """Submits every job to vramd at its arrival time; returns the job ids."""
    ids = []
    for at, body in trace:
        delay = t0 + at / scale - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        ids.append(v.submit_ok(body))
    return ids


def summarise_vramd(trace, full, wall0, scale, counters, stats):
    waits = {p: [] for p, _ in PRIO_WEIGHTS}
    done = failed = tokens = 0
    last = wall0
    for job in full:
        end = parse_time(job["completed_at"])
        last = max(last, end)
        if job["status"] == "complete":
            done += 1
            tokens += (job.get("result") or {}).get("eval_count") or 0
            latency = (end - parse_time(job["submitted_at"])) * scale
            waits[job["priority"]].append(max(0.0, latency - gen_seconds(job.get("result"))))
        else:
            failed += 1
    return {"makespan": (last - wall0 - trace[0][0] / scale) * scale, "counters": counters,
            "done": done, "failed": failed, "waits": waits, "tokens": tokens,
            "vramd_cpu_spills": stats.get("cpu_spills")}


def vramd_timing_args(trace, scale):
    # vramd's timers run in real time while the sim's clock runs faster: scale the
    # batch wait (30 s) and the keep-alive (300 s) the same way.
    return ("--queue-max-size", str(len(trace) + 10),
            "--max-batch-wait", str(max(1, round(30 / scale))),
            "--keep-alive", str(max(1, round(300 / scale))))


def run_vramd(trace, schedule, scale, args, h, vh):
    sim = h.start_sim("--gpus", "8GiB", "--seed", str(args.seed),
                      "--ollama-version", args.ollama_version, state_file=True,
                      time_scale=scale)
    v = vh.start_vramd(sim, *vramd_timing_args(trace, scale))
    stop = threading.Event()
    try:
        vh.wait_ready(v)
        telemetry = v.health()["gpu_telemetry"]
        if telemetry != "nvml":
            raise SystemExit("vramd runs without the simulated NVML (%s); build the nvml "
                             "target in %s" % (telemetry, os.environ["VRAMD_BUILD_DIR"]))
        t0 = time.monotonic()
        wall0 = time.time()
        mem = threading.Thread(target=other_memory_driver,
                               args=(sim.url, schedule, t0, scale, stop, h.http_json))
        mem.start()
        ids = submit_trace(v, trace, scale, t0)
        jobs = v.wait_all_final(ids, timeout=3600)
        stop.set()
        mem.join()
        counters = sim.state()["counters"]
        stats = v.stats()
        full = [v.job(jid) for jid in ids]
    finally:
        stop.set()
        v.stop()
        sim.stop()
    assert len(jobs) == len(ids)
    return summarise_vramd(trace, full, wall0, scale, counters, stats)


# --- The fleet scenario: 2 machines x 2 GPUs, the large catalogue ----------------------

FLEET_GPUS = "24GiB,24GiB"
FLEET_NODES = ("a", "b")
FLEET_BUDGET = "48GiB"  # --node-b-telemetry budget: machine 2's two GPUs together


def large_catalogue(h):
    path = os.path.join(h.source_dir(), "sim", "catalogues", "large.json")
    with open(path) as f:
        models = json.load(f)["models"]
    kinds = {m["name"]: "embedding" if "embedding" in m["capabilities"] else "completion"
             for m in models}
    return path, kinds


def start_fleet_sims(scale, args, h, catalogue):
    """One simulated machine per node, each with its own machine file (the simulated
    NVML reads it) and one ollama-sim using both of its GPUs."""
    sims = []
    for k in range(len(FLEET_NODES)):
        sims.append(h.start_sim("--gpus", FLEET_GPUS, "--seed", str(args.seed + k),
                                "--models", catalogue, "--ollama-version",
                                args.ollama_version, state_file=True, time_scale=scale))
    return sims


def sum_counters(per_node):
    total = {}
    for c in per_node:
        for k, v in c.items():
            if isinstance(v, (int, float)):
                total[k] = total.get(k, 0) + v
    return total


def run_direct_fleet(trace, scale, args, h, catalogue):
    sims = start_fleet_sims(scale, args, h, catalogue)
    try:
        t0 = time.monotonic()
        results = send_direct(trace, scale, h, lambda i: sims[i % len(sims)].url, t0)
        per_node = [s.state()["counters"] for s in sims]
    finally:
        for s in sims:
            s.stop()
    run = summarise_direct(trace, results, t0, scale, sum_counters(per_node))
    run["node_loads"] = [c["loads"] for c in per_node]
    run["node_jobs"] = [sum(1 for i in range(len(trace)) if i % len(sims) == k)
                        for k in range(len(sims))]
    return run


def wait_fleet_ready(v, nmodels, timeout=60):
    """Waits until every node is up with its GPUs' memory known and vramd knows the
    catalogue."""
    deadline = time.monotonic() + timeout
    while True:
        status, nodes = v.get("/api/nodes")
        status2, models = v.get("/api/models")
        ready = status == 200 and status2 == 200 and \
            len(models.get("models", [])) >= nmodels and all(
                n.get("state") == "up" and n.get("gpus") and
                all((g.get("total_bytes") or 0) > 0 for g in n["gpus"])
                for n in nodes.get("nodes", []))
        if ready:
            return nodes["nodes"]
        if time.monotonic() > deadline:
            raise SystemExit("vramd's nodes not ready within %d s: %s" %
                             (timeout, json.dumps(nodes)[:2000]))
        time.sleep(0.2)


def run_vramd_fleet(trace, scale, args, h, vh, catalogue, nmodels):
    sims = start_fleet_sims(scale, args, h, catalogue)
    procs = []
    try:
        node_b = {"name": FLEET_NODES[1], "url": sims[1].url}
        if args.node_b_telemetry == "vramd":
            # Node b's GPUs: a vramd on machine 2 (its simulated NVML), fronting no
            # Ollama (a closed port), so it only serves GET /api/gpu/status/all.
            tele = vh.start_vramd(None, "--ollama", "http://127.0.0.1:%d" % h.free_port(),
                                  "--nvml-lib", vh.nvml_lib_path(),
                                  env={"OLLAMA_SIM_STATE": sims[1].state_file})
            procs.append(tele)
            node_b["telemetry_url"] = tele.url
        else:
            node_b.update({"local": False, "vram_budget": FLEET_BUDGET})
        nodes_file = os.path.join(tempfile.mkdtemp(prefix="vramd-nodes-"), "nodes.json")
        with open(nodes_file, "w") as f:
            json.dump({"nodes": [
                {"name": FLEET_NODES[0], "url": sims[0].url, "local": True}, node_b]}, f)
        try:
            v = vh.start_vramd(None, "--nodes-file", nodes_file, "--nvml-lib",
                               vh.nvml_lib_path(), *vramd_timing_args(trace, scale),
                               env={"OLLAMA_SIM_STATE": sims[0].state_file})
        except AssertionError as e:
            raise SystemExit("vramd did not start with %s (node b's telemetry: %s); with a "
                             "vramd that cannot read a remote vramd's GPUs yet, try "
                             "--node-b-telemetry budget\n%s" % (
                                 nodes_file, args.node_b_telemetry, e))
        procs.append(v)
        nodes = wait_fleet_ready(v, nmodels)
        print("vramd nodes: %s" % ", ".join(
            "%s (%s, %d GPUs)" % (n.get("node"), n.get("telemetry"), len(n["gpus"]))
            for n in nodes))
        sys.stdout.flush()
        t0 = time.monotonic()
        wall0 = time.time()
        ids = submit_trace(v, trace, scale, t0)
        jobs = v.wait_all_final(ids, timeout=3600)
        per_node = [s.state()["counters"] for s in sims]
        stats = v.stats()
        status, lb = v.get("/api/lb_stats")
        full = [v.job(jid) for jid in ids]
        logs = [("vramd", v.proc.log_path)] + [
            ("ollama-sim " + name, sim.proc.log_path) for name, sim in zip(FLEET_NODES, sims)]
        if args.node_b_telemetry == "vramd":
            logs.append(("telemetry vramd of b", tele.proc.log_path))
    finally:
        for p in reversed(procs):
            p.stop()
        for s in sims:
            s.stop()
    assert len(jobs) == len(ids)
    run = summarise_vramd(trace, full, wall0, scale, sum_counters(per_node), stats)
    run["node_loads"] = [c["loads"] for c in per_node]
    by_name = {n.get("node"): n for n in lb.get("nodes", [])} if status == 200 else {}
    run["node_jobs"] = [(by_name.get(name) or {}).get("requests") for name in FLEET_NODES]
    run["logs"] = logs
    return run


def cpu_tokens(run):
    """Tokens generated on the CPU (weighted by the CPU layer share) against all."""
    return "%.0f / %d" % (run["counters"].get("cpu_tokens", 0.0), run["tokens"])


def per_node(values):
    return " / ".join("-" if v is None else str(v) for v in values)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.environ.get("VRAMD_BUILD_DIR") or os.path.join(
        os.path.dirname(HERE), "build"))
    ap.add_argument("--scenario", choices=("one-gpu", "fleet"), default="one-gpu",
                    help="one-gpu: the ten-model catalogue on one 8 GiB GPU (default); "
                    "fleet: 2 nodes x 2 GPUs, the large catalogue")
    ap.add_argument("--jobs", type=int, help="default 1000 (one-gpu), 200 (fleet)")
    ap.add_argument("--rate", type=float,
                    help="arrivals per simulated second; default 2 (one-gpu), 0.5 (fleet)")
    ap.add_argument("--time-scale", type=float,
                    help="the sims run this much faster; default 5 (one-gpu), 10 (fleet)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--ollama-version", default="0.33",
                    help="ollama-sim's Ollama version for both runs (0.33 or 0.12)")
    ap.add_argument("--node-b-telemetry", choices=("vramd", "budget"), default="vramd",
                    help="fleet: node b's GPUs from a vramd on machine 2 (telemetry_url, "
                    "default) or from a declared budget of " + FLEET_BUDGET)
    args = ap.parse_args()
    fleet = args.scenario == "fleet"
    if args.jobs is None:
        args.jobs = 200 if fleet else 1000
    if args.rate is None:
        args.rate = 0.5 if fleet else 2.0
    if args.time_scale is None:
        args.time_scale = 10.0 if fleet else 5.0
    os.environ["VRAMD_BUILD_DIR"] = os.path.abspath(args.build)
    import harness as h
    import vramd_harness as vh

    if fleet:
        catalogue, models = large_catalogue(h)
        trace, _ = make_trace(args.jobs, args.rate, args.seed, models)
        schedule = []
        print("trace: %d jobs over %.0f simulated s (rate %.2f/s, seed %d), %d nodes x %s, "
              "%d models (%s), time scale %g, Ollama %s" % (
                  len(trace), trace[-1][0], args.rate, args.seed, len(FLEET_NODES),
                  FLEET_GPUS, len(models), os.path.relpath(catalogue, h.source_dir()),
                  args.time_scale, args.ollama_version))
    else:
        trace, schedule = make_trace(args.jobs, args.rate, args.seed, vh.MODELS)
        print("trace: %d jobs over %.0f simulated s (rate %.2f/s, seed %d), %d other-memory "
              "changes, time scale %g, Ollama %s" % (len(trace), trace[-1][0], args.rate,
                                                     args.seed, len(schedule),
                                                     args.time_scale, args.ollama_version))
    sys.stdout.flush()
    t = time.monotonic()
    if fleet:
        a = run_direct_fleet(trace, args.time_scale, args, h, catalogue)
    else:
        a = run_direct(trace, schedule, args.time_scale, args, h)
    print("(a) direct run took %.0f s" % (time.monotonic() - t))
    sys.stdout.flush()
    t = time.monotonic()
    if fleet:
        b = run_vramd_fleet(trace, args.time_scale, args, h, vh, catalogue, len(models))
    else:
        b = run_vramd(trace, schedule, args.time_scale, args, h, vh)
    print("(b) vramd run took %.0f s\n" % (time.monotonic() - t))

    rows = [("makespan (s)", "%.0f" % a["makespan"], "%.0f" % b["makespan"]),
            ("jobs completed", str(a["done"]), str(b["done"])),
            ("jobs failed", str(a["failed"]), str(b["failed"])),
            ("model loads", str(a["counters"]["loads"]), str(b["counters"]["loads"])),
            ("evictions by Ollama", str(a["counters"]["evictions"]),
             str(b["counters"]["evictions"])),
            ("OOM load failures", str(a["counters"]["oom_failures"]),
             str(b["counters"]["oom_failures"])),
            ("OOM retries by Ollama", str(a["counters"].get("load_retries", 0)),
             str(b["counters"].get("load_retries", 0))),
            ("503 (Ollama queue full)", str(a["counters"]["rejected_503"]),
             str(b["counters"]["rejected_503"])),
            ("CPU spills", str(a["counters"].get("cpu_spills", 0)),
             str(b["counters"].get("cpu_spills", 0))),
            ("tokens on CPU / all", cpu_tokens(a), cpu_tokens(b))]
    if fleet:
        rows[4:4] = [("loads per node (a / b)", per_node(a["node_loads"]),
                      per_node(b["node_loads"])),
                     ("jobs per node (a / b)", per_node(a["node_jobs"]),
                      per_node(b["node_jobs"]))]
    for p, _ in PRIO_WEIGHTS:
        for q in (50, 99):
            rows.append(("%s wait p%d (s)" % (p, q), "%.1f" % pct(a["waits"][p], q),
                         "%.1f" % pct(b["waits"][p], q)))
    print("| %-24s | %12s | %12s |" % ("", "(a) round-robin" if fleet else "(a) direct",
                                       "(b) vramd"))
    print("|%s|%s|%s|" % ("-" * 26, "-" * 13 + ":", "-" * 13 + ":"))
    for name, x, y in rows:
        print("| %-24s | %12s | %12s |" % (name, x, y))
    keys = ("makespan", "counters", "done", "failed", "tokens")
    if fleet:
        keys += ("node_loads", "node_jobs")
        print("logs of the vramd run: %s" % ", ".join("%s %s" % x for x in b["logs"]))
    print(json.dumps({"direct": {k: a[k] for k in keys},
                      "vramd": dict({k: b[k] for k in keys},
                                    vramd_cpu_spills=b["vramd_cpu_spills"])}))


if __name__ == "__main__":
    main()
