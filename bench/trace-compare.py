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

usage: bench/trace-compare.py [--build DIR] [--jobs N] [--rate R] [--time-scale S]
                              [--seed N] [--ollama-version V]
"""

import argparse
import datetime
import json
import os
import random
import sys
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


def run_direct(trace, schedule, scale, args, h):
    sim = h.start_sim("--gpus", "8GiB", "--seed", str(args.seed),
                      "--ollama-version", args.ollama_version, state_file=True,
                      time_scale=scale)
    results = [None] * len(trace)
    stop = threading.Event()
    try:
        t0 = time.monotonic()
        mem = threading.Thread(target=other_memory_driver,
                               args=(sim.url, schedule, t0, scale, stop, h.http_json))
        mem.start()

        def client(i, body):
            kind = body["kind"]
            req = {k: v for k, v in body.items() if k not in ("priority", "kind")}
            req["stream"] = False
            path = {"generate": "/api/generate", "chat": "/api/chat", "embed": "/api/embed"}
            try:
                status, reply = h.http_json("POST", sim.url + path[kind], json_body=req,
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
        stop.set()
        mem.join()
        counters = sim.state()["counters"]
    finally:
        stop.set()
        sim.stop()
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


def run_vramd(trace, schedule, scale, args, h, vh):
    sim = h.start_sim("--gpus", "8GiB", "--seed", str(args.seed),
                      "--ollama-version", args.ollama_version, state_file=True,
                      time_scale=scale)
    # vramd's timers run in real time while the sim's clock runs faster: scale the
    # batch wait (30 s) and the keep-alive (300 s) the same way.
    v = vh.start_vramd(sim, "--queue-max-size", str(len(trace) + 10),
                       "--max-batch-wait", str(max(1, round(30 / scale))),
                       "--keep-alive", str(max(1, round(300 / scale))))
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
        ids = []
        for at, body in trace:
            delay = t0 + at / scale - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            ids.append(v.submit_ok(body))
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
    assert len(jobs) == len(ids)
    return {"makespan": (last - wall0 - trace[0][0] / scale) * scale, "counters": counters,
            "done": done, "failed": failed, "waits": waits, "tokens": tokens,
            "vramd_cpu_spills": stats.get("cpu_spills")}


def cpu_tokens(run):
    """Tokens generated on the CPU (weighted by the CPU layer share) against all."""
    return "%.0f / %d" % (run["counters"].get("cpu_tokens", 0.0), run["tokens"])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.environ.get("VRAMD_BUILD_DIR") or os.path.join(
        os.path.dirname(HERE), "build"))
    ap.add_argument("--jobs", type=int, default=1000)
    ap.add_argument("--rate", type=float, default=2.0, help="arrivals per simulated second")
    ap.add_argument("--time-scale", type=float, default=5.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--ollama-version", default="0.33",
                    help="ollama-sim's Ollama version for both runs (0.33 or 0.12)")
    args = ap.parse_args()
    os.environ["VRAMD_BUILD_DIR"] = os.path.abspath(args.build)
    import harness as h
    import vramd_harness as vh

    trace, schedule = make_trace(args.jobs, args.rate, args.seed, vh.MODELS)
    print("trace: %d jobs over %.0f simulated s (rate %.2f/s, seed %d), %d other-memory "
          "changes, time scale %g, Ollama %s" % (len(trace), trace[-1][0], args.rate,
                                                 args.seed, len(schedule), args.time_scale,
                                                 args.ollama_version))
    sys.stdout.flush()
    t = time.monotonic()
    a = run_direct(trace, schedule, args.time_scale, args, h)
    print("(a) direct run took %.0f s" % (time.monotonic() - t))
    sys.stdout.flush()
    t = time.monotonic()
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
    for p, _ in PRIO_WEIGHTS:
        for q in (50, 99):
            rows.append(("%s wait p%d (s)" % (p, q), "%.1f" % pct(a["waits"][p], q),
                         "%.1f" % pct(b["waits"][p], q)))
    print("| %-24s | %12s | %12s |" % ("", "(a) direct", "(b) vramd"))
    print("|%s|%s|%s|" % ("-" * 26, "-" * 13 + ":", "-" * 13 + ":"))
    for name, x, y in rows:
        print("| %-24s | %12s | %12s |" % (name, x, y))
    keys = ("makespan", "counters", "done", "failed", "tokens")
    print(json.dumps({"direct": {k: a[k] for k in keys},
                      "vramd": dict({k: b[k] for k in keys},
                                    vramd_cpu_spills=b["vramd_cpu_spills"])}))


if __name__ == "__main__":
    main()
