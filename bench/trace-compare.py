#!/usr/bin/env python3
"""trace-compare.py: each scenario's job trace run twice, (a) straight against ollama-sim
(Ollama's own scheduler) and (b) through vramd, judged against issue 11's targets.

Scenarios (--scenario; `all` runs every one, one table each, then a summary):

  poisson  today's trace: JOBS jobs (1000) with Poisson arrivals (RATE 2 per simulated
           second), 20 % high, 50 % normal, 30 % low priority, a uniformly random model of
           the ten-model catalogue with a kind it supports, on one simulated 8 GiB GPU whose
           other-process memory changes every 30 simulated seconds (POST /sim/gpu/0, 0 to
           3 GiB); seeds 1, 2 and 3 (--seeds), one table per seed. (`one-gpu` is an alias.)
  bursty   the same GPU, catalogue and memory changes; gamma-distributed inter-arrival times
           with coefficient of variation 4 (mean 1/RATE) and Zipf model popularity
           (weight 1/rank, the ranks a seeded shuffle of the ten models).
  batch    an overnight batch: all 1000 jobs submitted at once (the same priority mix and
           uniform models), one 8 GiB GPU, no other-process memory.
  large    one ollama-sim with two 24 GiB GPUs and the large catalogue
           (sim/catalogues/large.json, 7B to 70B), 100 jobs at 0.2 per simulated second.
  fleet    2 nodes x 2 GPUs (24 GiB each), the large catalogue: two simulated machines, each
           with one ollama-sim using both of its GPUs; 200 jobs at 0.5 per simulated second.
           (a) round-robin: job i goes straight to machine i mod 2. (b) one vramd with both
           servers as nodes (NODES_FILE): node a through machine 1's simulated NVML, node b
           through a second vramd on machine 2's simulated NVML named as node b's
           telemetry_url (that vramd fronts a closed port: it only reports GPUs);
           --node-b-telemetry budget declares node b's 48 GiB as a budget instead.

(a) direct: one client thread per job, started at its arrival time, sends the job as one
    non-streaming Ollama request (no retries; Ollama's own scheduler and keep-alive).
(b) vramd: at each arrival time the job is handed to a pool of 8 submitting threads (HTTP
    keep-alive, so a burst is submitted within milliseconds); the jobs' final states are
    read back once vramd's /api/stats shows nothing queued or running.
Each run gets fresh ollama-sims with the same seeds and the same trace. Both runs use
ollama-sim's Ollama version (--ollama-version, default 0.33: a load that does not fit
spills layers to the CPU instead of failing).

Time: the sims run TIME_SCALE times faster (default 15; printed with each table). Every
figure is in real-world seconds (wall seconds x TIME_SCALE). vramd's timers are scaled the
same way so that it behaves as at 1x: MAX_BATCH_WAIT 30 s, MODEL_KEEP_ALIVE 300 s (both
whole seconds, so TIME_SCALE should divide 30), OLLAMA_POLL_INTERVAL and
MEMORY_MONITORING_INTERVAL 1 s, SCHEDULER_LOOP_INTERVAL 100 ms (at least 50 ms / 1 ms).

Per run: completed and failed jobs, model loads, Ollama's evictions, OOM load failures,
OOM retries, 503s, CPU spills and the tokens generated on the CPU (each weighted by its
runner's CPU layer share), all counted by ollama-sim; the wait p50/p99 per priority; the
makespan (first arrival to the last completion of a job that completed). A vramd run ends
when every job is final, or when no job became final for 900 real-world seconds after the
last submit: the jobs still unfinished are then cancelled and counted as stuck (failed).
- A job's wait: arrival to answer minus its own generation time (Ollama's
  prompt_eval_duration + eval_duration), so queueing and model loads count, the same way in
  both runs (arrival: when its request or submit was sent; vramd's submitted_at).
- GPU memory utilisation while work waits: from ollama-sim's /sim/state, sampled every
  0.1 wall seconds in both runs: the time-weighted mean of (memory of the model runners,
  CUDA contexts included, summed over the GPUs) / (the GPUs' total), over the sample
  intervals that begin while at least one job waits (from its arrival until its wait
  ends, as defined above; a failed job until it failed). A second row divides by the
  total minus other processes' memory instead. The third, which the target judges
  (issue 11: at least 80 % of the memory vramd may use "unless the waiting models cannot
  fit together"), divides by what the models with work (a job waiting or running) could
  hold together: per GPU total - other processes - reserved - VRAM_SAFETY_MARGIN_MB (1
  GiB), summed over the GPUs (splits and both fleet nodes pooled), filled with at most 3
  models per GPU (Ollama's resident cap) at the footprints the run showed (the most VRAM
  each runner held, plus the runners' share of the CUDA contexts); a sample counts at
  most 1.
- ETA error (vramd only): over the jobs whose submit reply carried an eta_s, the median of
  |started_at - (submitted_at + eta_s)| / max(started_at - submitted_at, 1 s).
- Lower bound on the makespan: each job's run time on the GPU alone (its prompt tokens at
  8x, an embedding's at 20x, and its output tokens at the model's tokens_per_second_gpu of
  the catalogue; token counts from the replies), with at most S = 3 streams per GPU
  (Ollama's resident cap of 3 models per GPU, one slot each): ollama-sim's shared compute
  gives n generating streams sqrt(n) times one stream's speed, prompt evaluation is not
  shared. Plus one load per distinct model (0.3 s start cost + file size at 2 GB/s, one
  load at a time per server). Given the arrivals: the maximum over every arrival time t of
  (t - first arrival) + the generation work of the jobs arriving at or after t / (GPUs x
  sqrt S) + their prompt work / (GPUs x S) + the loads of their distinct models / servers.

Targets (issue 11, checked for vramd against the direct run of the same trace): 0 OOM and
0 CPU spills; loads <= 0.5 x direct; high-priority p99 wait <= 0.5 x direct; normal p99
<= direct; low p99 <= MAX_BATCH_WAIT + the longest load of the trace's models (catalogue
load time); batch: makespan <= 0.6 x direct and <= 1.15 x the lower bound; memory
utilisation while work waits (its third row) >= 0.80 (issue 11 section 1); ETA error
median <= 0.25 (section 2).

usage: bench/trace-compare.py [--build DIR] [--scenario NAME|all] [--jobs N] [--rate R]
                              [--time-scale S] [--seeds 1,2,3] [--seed N]
                              [--ollama-version V] [--node-b-telemetry vramd|budget]
                              [--json FILE]

  bench/trace-compare.py --build build-rel --scenario all       # about 13 minutes on 2 cores
  bench/trace-compare.py --build build-rel --scenario batch
  bench/trace-compare.py --build build-rel --scenario poisson --seeds 1 --time-scale 5
"""

import argparse
import bisect
import datetime
import http.client
import json
import math
import os
import queue
import random
import statistics
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "integration"))

PRIO_WEIGHTS = (("high", 0.2), ("normal", 0.5), ("low", 0.3))
OTHER_EVERY_S = 30.0
OTHER_CHOICES_MB = (0, 1024, 2048, 3072)
GAMMA_CV = 4.0
ZIPF_S = 1.0
SAMPLE_EVERY_S = 0.1  # wall seconds between /sim/state samples
MARGIN_BYTES = 1024 << 20  # vramd's VRAM_SAFETY_MARGIN_MB default, kept free per GPU
SUBMITTERS = 8
STALL_S = 900  # real-world seconds without a job becoming final: the rest are stuck
# vramd's timers at 1x, scaled by the time scale for each run.
MAX_BATCH_WAIT_S = 30
KEEP_ALIVE_S = 300
POLL_MS = 1000
LOOP_MS = 100
# The lower bound's model of ollama-sim (sim/sim-sched.c, sim/sim-api.c): streams per GPU,
# prompt speed over generation speed, load start cost and bandwidth.
STREAMS_PER_GPU = 3
PROMPT_SPEEDUP = 8.0
EMBED_SPEEDUP = 20.0
LOAD_START_S = 0.3
LOAD_BYTES_PER_S = 2e9
# Issue 11's targets.
LOADS_MAX_SHARE = 0.5
HIGH_P99_MAX_SHARE = 0.5
BATCH_MAKESPAN_MAX_SHARE = 0.6
BATCH_LB_MAX_RATIO = 1.15
UTIL_MIN = 0.80
ETA_ERROR_MAX = 0.25
FLEET_NODES = ("a", "b")
FLEET_BUDGET = "48GiB"  # --node-b-telemetry budget: machine 2's two GPUs together

# One row per scenario: the world and the trace's shape; jobs, rate and time scale are
# defaults that the flags override.
SCENARIOS = {
    "poisson": {"what": "Poisson arrivals, uniform models, one 8 GiB GPU, other memory",
                "gpus": "8GiB", "servers": 1, "catalogue": None, "arrivals": "poisson",
                "popularity": "uniform", "other_memory": True, "jobs": 1000, "rate": 2.0,
                "scale": 15.0, "batch": False},
    "bursty": {"what": "gamma arrivals (CV 4), Zipf models, one 8 GiB GPU, other memory",
               "gpus": "8GiB", "servers": 1, "catalogue": None, "arrivals": "gamma",
               "popularity": "zipf", "other_memory": True, "jobs": 1000, "rate": 2.0,
               "scale": 15.0, "batch": False},
    "batch": {"what": "every job submitted at once, uniform models, one 8 GiB GPU",
              "gpus": "8GiB", "servers": 1, "catalogue": None, "arrivals": "batch",
              "popularity": "uniform", "other_memory": False, "jobs": 1000, "rate": 0.0,
              "scale": 15.0, "batch": True},
    "large": {"what": "Poisson arrivals, large catalogue, one server with 2 x 24 GiB GPUs",
              "gpus": "24GiB,24GiB", "servers": 1, "catalogue": "large.json",
              "arrivals": "poisson", "popularity": "uniform", "other_memory": False,
              "jobs": 100, "rate": 0.2, "scale": 15.0, "batch": False},
    "fleet": {"what": "Poisson arrivals, large catalogue, 2 nodes x 2 x 24 GiB GPUs",
              "gpus": "24GiB,24GiB", "servers": 2, "catalogue": "large.json",
              "arrivals": "poisson", "popularity": "uniform", "other_memory": False,
              "jobs": 200, "rate": 0.5, "scale": 15.0, "batch": False},
}
ORDER = ("poisson", "bursty", "batch", "large", "fleet")


# --- The trace -----------------------------------------------------------------------------

def pick_priority(rng):
    r = rng.random()
    acc = 0.0
    for name, w in PRIO_WEIGHTS:
        acc += w
        if r < acc:
            return name
    return "low"


def zipf_weights(names, seed):
    """Zipf popularity: weight 1/rank^ZIPF_S, the ranks a shuffle of the models drawn
    from its own generator (so the arrivals do not change with it)."""
    order = sorted(names)
    random.Random(seed * 7919 + 17).shuffle(order)
    return [(m, 1.0 / (r + 1) ** ZIPF_S) for r, m in enumerate(order)]


def make_trace(spec, n, rate, seed, models):
    """[(arrival in simulated s, submit body)] and the other-memory schedule
    [(simulated s, MiB)]. The Poisson trace draws exactly what earlier versions of this
    script drew, so a seed gives the trace of the earlier tables."""
    rng = random.Random(seed)
    names = sorted(models)
    weights = zipf_weights(names, seed) if spec["popularity"] == "zipf" else None
    total_w = sum(w for _, w in weights) if weights else 0.0
    t = 0.0
    jobs = []
    for i in range(n):
        if spec["arrivals"] == "poisson":
            t += rng.expovariate(rate)
        elif spec["arrivals"] == "gamma":
            # shape 1/CV^2 and scale CV^2/rate: mean 1/rate, coefficient of variation CV.
            t += rng.gammavariate(1.0 / GAMMA_CV ** 2, GAMMA_CV ** 2 / rate)
        prio = pick_priority(rng)
        if weights:
            r = rng.random() * total_w
            model = weights[-1][0]
            for name, w in weights:
                r -= w
                if r < 0:
                    model = name
                    break
        else:
            model = rng.choice(names)
        body = {"model": model, "priority": prio}
        if models[model] == "embedding":
            body["kind"], body["input"] = "embed", "text %d" % i
        elif rng.random() < 0.5:
            body["kind"] = "chat"
            body["messages"] = [{"role": "user", "content": "question %d" % i}]
        else:
            body["kind"], body["prompt"] = "generate", "question %d" % i
        jobs.append((t, body))
    other = []
    if spec["other_memory"]:
        k = 1
        while k * OTHER_EVERY_S < t:
            other.append((k * OTHER_EVERY_S, rng.choice(OTHER_CHOICES_MB)))
            k += 1
    return jobs, other


def parse_bytes(text):
    units = (("GB", 1e9), ("MB", 1e6), ("KB", 1e3), ("B", 1.0))
    for unit, factor in units:
        if text.endswith(unit):
            return float(text[:-len(unit)]) * factor
    return float(text)


def load_catalogue(h, name):
    """{model: {"kind", "tps", "load_s"}} of sim/catalogues/NAME (default.json is
    ollama-sim's built-in catalogue) and the file's path (None for the built-in one)."""
    path = os.path.join(h.source_dir(), "sim", "catalogues", name or "default.json")
    with open(path) as f:
        models = json.load(f)["models"]
    info = {}
    for m in models:
        info[m["name"]] = {
            "kind": "embedding" if "embedding" in m["capabilities"] else "completion",
            "tps": float(m["tokens_per_second_gpu"]),
            "load_s": LOAD_START_S + parse_bytes(m["file_size"]) / LOAD_BYTES_PER_S}
    return (path if name else None), info


# --- Measuring -----------------------------------------------------------------------------

def parse_time(s):
    return datetime.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def gen_seconds(result):
    """Ollama's own generation time of one reply, in real-world seconds."""
    if not isinstance(result, dict):
        return 0.0
    ns = (result.get("prompt_eval_duration") or 0) + (result.get("eval_duration") or 0)
    return ns / 1e9


def pct(values, p):
    if not values:
        return float("nan")
    v = sorted(values)
    rank = max(1, int(p / 100.0 * len(v) + 0.999999))
    return v[rank - 1]


class Sampler(threading.Thread):
    """Samples every sim's /sim/state: (wall time, model runners' bytes, other processes'
    bytes, total bytes, detail), summed over all GPUs of all sims; detail: the memory vramd
    may use ("usable": per GPU total - other processes - reserved - VRAM_SAFETY_MARGIN_MB,
    summed) and each resident model's VRAM bytes ("vram": {name: bytes})."""

    def __init__(self, sims, http_json):
        super().__init__(daemon=True)
        self.sims = sims
        self.http_json = http_json
        self.samples = []
        self.stop_event = threading.Event()

    def run(self):
        while not self.stop_event.is_set():
            t = time.time()
            models = others = total = usable = 0
            vram = {}
            try:
                for s in self.sims:
                    status, st = self.http_json("GET", s.url + "/sim/state", timeout=5)
                    if status != 200:
                        raise OSError("status %d" % status)
                    for g in st["gpus"]:
                        models += g.get("used_by_models") or 0
                        others += g.get("used_by_others") or 0
                        total += g.get("total") or 0
                        usable += max(0, (g.get("total") or 0) - (g.get("used_by_others") or 0)
                                      - (g.get("reserved") or 0) - MARGIN_BYTES)
                    for m in st.get("models") or []:
                        b = sum(x.get("bytes") or 0 for x in m.get("gpus") or [])
                        if b > 0:
                            vram[m["name"]] = vram.get(m["name"], 0) + b
            except (OSError, ValueError, http.client.HTTPException):
                total = 0
            if total > 0:
                self.samples.append((t, models, others, total,
                                     {"usable": usable, "vram": vram}))
            self.stop_event.wait(SAMPLE_EVERY_S)

    def stop(self):
        self.stop_event.set()
        self.join()


def model_footprints(samples):
    """Each model's footprint as the sims showed it: the most VRAM its runner held, plus
    the runners' share of the GPU memory the runner list does not name (CUDA contexts;
    the median over the samples)."""
    most, extra = {}, []
    for smp in samples:
        if len(smp) < 5 or not smp[4]["vram"]:
            continue
        vram = smp[4]["vram"]
        for name, b in vram.items():
            most[name] = max(most.get(name, 0), b)
        extra.append(max(0, smp[1] - sum(vram.values())) / len(vram))
    overhead = statistics.median(extra) if extra else 0
    return {name: b + overhead for name, b in most.items()}


def fill_bound(footprints, usable, cap):
    """The most memory the models in footprints can hold together: at most cap of them,
    their footprints summed within usable (exhaustive: ten-odd models at most)."""
    fps = sorted(footprints, reverse=True)
    best = 0

    def walk(i, used, n):
        nonlocal best
        best = max(best, used)
        if n == cap or best == usable:
            return
        for k in range(i, len(fps)):
            if used + fps[k] <= usable:
                walk(k + 1, used + fps[k], n + 1)
    walk(0, 0, 0)
    return best


def memory_utilisation(samples, jobs, cap=None):
    """Time-weighted mean of models/total and of models/(total - others) over the sample
    intervals that begin while at least one job waits; also the share of the sampled time
    with work waiting. With cap (the resident models the servers allow) and samples that
    carry their detail, also "util_fill": models over what the models with work (waiting
    or running) could hold together in the memory vramd may use (total - others -
    reserved - margin), at most cap of them, each at the footprint the run showed (issue
    11: >= 80 % "unless the waiting models cannot fit together"). None when no job ever
    waited during a sample."""
    starts = sorted(j["arrival"] for j in jobs)
    ends = sorted(j["wait_end"] for j in jobs)
    footprints = model_footprints(samples) if cap else {}
    busy = sorted((j["arrival"], j.get("end", j["wait_end"]), j.get("model")) for j in jobs)
    cache = {}
    acc = acc_free = weight = span = 0.0
    acc_fill = weight_fill = 0.0
    for smp, nxt in zip(samples, samples[1:]):
        t, models, others, total = smp[:4]
        dt = nxt[0] - t
        span += dt
        waiting = bisect.bisect_right(starts, t) - bisect.bisect_right(ends, t)
        if waiting <= 0:
            continue
        weight += dt
        acc += dt * models / total
        acc_free += dt * models / max(1, total - others)
        if not footprints or len(smp) < 5:
            continue
        wanted = frozenset(m for a, e, m in busy[:bisect.bisect_right(busy, (t, math.inf))]
                           if e > t and m in footprints)
        key = (wanted, smp[4]["usable"])
        if key not in cache:
            cache[key] = fill_bound([footprints[m] for m in wanted], smp[4]["usable"], cap)
        if cache[key] > 0:
            weight_fill += dt
            acc_fill += dt * min(1.0, models / cache[key])
    if weight <= 0:
        return None
    return {"util": acc / weight, "util_free": acc_free / weight,
            "util_fill": acc_fill / weight_fill if weight_fill > 0 else None,
            "waiting_share": weight / span if span else 0.0}


def eta_error(jobs, scale):
    """The median over jobs with an ETA of |actual - predicted start| / max(actual wait,
    1 s), how many jobs had one, and the median of the signed error (predicted - actual,
    same denominator: below 0 the ETA was optimistic)."""
    errs = []
    for j in jobs:
        if j.get("eta") is None or j.get("started") is None:
            continue
        actual = j["started"] - j["arrival"]
        errs.append((j["eta"] - actual) / max(actual, 1.0 / scale))
    if not errs:
        return None, 0, None
    return statistics.median(abs(e) for e in errs), len(errs), statistics.median(errs)


def resident_cap(spec):
    """Models the scenario's servers keep resident at most (Ollama 0.33's default
    OLLAMA_MAX_LOADED_MODELS: 3 per GPU; past it the server evicts)."""
    return STREAMS_PER_GPU * len(spec["gpus"].split(",")) * spec["servers"]


def summarise(trace, jobs, scale, counters, samples, cap=None):
    """The run's figures from its per-job records (wall-clock times); cap: the resident
    models the servers allow (memory_utilisation)."""
    waits = {p: [] for p, _ in PRIO_WEIGHTS}
    done = failed = tokens = 0
    for j in jobs:
        if j["ok"]:
            done += 1
            tokens += j["eval_count"]
            waits[j["priority"]].append(max(0.0, (j["wait_end"] - j["arrival"]) * scale))
        else:
            failed += 1
    first = min(j["arrival"] for j in jobs)
    last = max([j["end"] for j in jobs if j["ok"]] or [first])
    eta, eta_jobs, eta_bias = eta_error(jobs, scale)
    return {"makespan": (last - first) * scale, "counters": counters, "done": done,
            "failed": failed, "waits": waits, "tokens": tokens,
            "memory": memory_utilisation(samples, jobs, cap), "eta_error": eta,
            "eta_jobs": eta_jobs, "eta_bias": eta_bias}


def job_record(body, ok, arrival, end, result, scale, eta=None, started=None):
    """One job's figures. wait_end: when its wait ended (end minus its own generation
    time, or end for a failed job)."""
    res = result if isinstance(result, dict) else {}
    gen = gen_seconds(res) if ok else 0.0
    return {"priority": body["priority"], "model": body["model"], "kind": body["kind"],
            "ok": ok, "arrival": arrival, "end": end,
            "wait_end": max(arrival, end - gen / scale),
            "prompt_count": res.get("prompt_eval_count") if ok else None,
            "eval_count": (res.get("eval_count") or 0) if ok else 0,
            "eta": eta, "started": started}


# --- The lower bound -------------------------------------------------------------------------

def job_work(body, record_a, record_b, info, fallback):
    """(generation seconds, prompt seconds) of one job alone on a GPU; token counts from
    whichever run completed it, else the model's mean over the trace."""
    counts = None
    for r in (record_b, record_a):
        if r["ok"] and r["prompt_count"] is not None:
            counts = (r["prompt_count"], r["eval_count"])
            break
    if counts is None:
        counts = fallback.get(body["model"], (1, 0))
    tps = info[body["model"]]["tps"]
    speedup = EMBED_SPEEDUP if body["kind"] == "embed" else PROMPT_SPEEDUP
    return counts[1] / tps, max(1, counts[0]) / (tps * speedup)


def lower_bound(trace, a_jobs, b_jobs, info, gpus, servers):
    seen = {}
    for ra, rb in zip(a_jobs, b_jobs):
        for r in (ra, rb):
            if r["ok"] and r["prompt_count"] is not None:
                seen.setdefault(r["model"], []).append((r["prompt_count"], r["eval_count"]))
    fallback = {m: (statistics.mean(p for p, _ in v), statistics.mean(e for _, e in v))
                for m, v in seen.items()}
    order = sorted(range(len(trace)), key=lambda i: trace[i][0])
    first = trace[order[0]][0]
    gen = prompt = loads = best = 0.0
    models = set()
    # From the last arrival back: the jobs arriving at or after t must all run after t.
    for i in reversed(order):
        at, body = trace[i]
        g, p = job_work(body, a_jobs[i], b_jobs[i], info, fallback)
        gen += g
        prompt += p
        if body["model"] not in models:
            models.add(body["model"])
            loads += info[body["model"]]["load_s"]
        bound = (at - first) + gen / (gpus * math.sqrt(STREAMS_PER_GPU)) + \
            prompt / (gpus * STREAMS_PER_GPU) + loads / servers
        best = max(best, bound)
    return best


# --- Driving the runs ------------------------------------------------------------------------

def other_memory_driver(sim_url, schedule, t0, scale, stop, http_json):
    for at, mb in schedule:
        while not stop.is_set() and time.monotonic() < t0 + at / scale:
            time.sleep(0.01)
        if stop.is_set():
            return
        http_json("POST", sim_url + "/sim/gpu/0", json_body={"other_mb": mb})


def send_direct(trace, scale, h, url_of, t0):
    """Sends job i to url_of(i) at its arrival time, each from its own client thread, as
    one non-streaming Ollama request. Returns (status, reply, sent, ended) per job, wall
    times."""
    results = [None] * len(trace)
    path = {"generate": "/api/generate", "chat": "/api/chat", "embed": "/api/embed"}

    def client(i, body):
        req = {k: v for k, v in body.items() if k not in ("priority", "kind")}
        req["stream"] = False
        sent = time.time()
        try:
            status, reply = h.http_json("POST", url_of(i) + path[body["kind"]], json_body=req,
                                        timeout=3600)
        except Exception as e:  # noqa: BLE001 - a failed request is a result
            status, reply = 0, {"error": str(e)}
        results[i] = (status, reply, sent, time.time())

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


def direct_records(trace, results, scale):
    jobs = []
    for (at, body), (status, reply, sent, ended) in zip(trace, results):
        jobs.append(job_record(body, status == 200, sent, ended, reply, scale))
    return jobs


def submit_trace(v, trace, scale, t0):
    """Hands every job to SUBMITTERS threads at its arrival time; each keeps one HTTP
    connection to vramd. Returns (status, reply, sent) per job."""
    results = [None] * len(trace)
    work = queue.Queue()

    def submitter():
        conn = None
        while True:
            item = work.get()
            if item is None:
                break
            i, body = item
            sent = time.time()
            for attempt in range(2):
                try:
                    if conn is None:
                        conn = http.client.HTTPConnection("127.0.0.1", v.port, timeout=60)
                    conn.request("POST", "/api/submit", body=json.dumps(body),
                                 headers={"Content-Type": "application/json"})
                    resp = conn.getresponse()
                    data = resp.read()
                    results[i] = (resp.status, json.loads(data) if data else None, sent)
                    break
                except (OSError, http.client.HTTPException, ValueError) as e:
                    if conn is not None:
                        conn.close()
                    conn = None
                    results[i] = (0, {"error": str(e)}, sent)
        if conn is not None:
            conn.close()

    threads = [threading.Thread(target=submitter, daemon=True) for _ in range(SUBMITTERS)]
    for th in threads:
        th.start()
    for i, (at, body) in enumerate(trace):
        delay = t0 + at / scale - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        work.put((i, body))
    for _ in threads:
        work.put(None)
    for th in threads:
        th.join()
    return results


def wait_vramd_idle(v, submitted, scale):
    """Waits until vramd holds `submitted` jobs and none is queued, pending or running
    (one GET /api/stats a second instead of a request per job), or until no job became
    final for STALL_S real-world seconds: then the unfinished jobs are cancelled and
    reported as stuck, so that a job vramd never starts ends the run instead of hanging
    it. Returns {model: stuck jobs}."""
    last_final = -1
    progress = time.monotonic()
    while True:
        stats = v.stats()
        by = stats["jobs"]["by_status"]
        busy = sum(by.get(s, 0) for s in ("queued", "pending", "running"))
        if stats["jobs"]["total"] >= submitted and busy == 0:
            return {}
        final = sum(by.get(s, 0) for s in ("complete", "failed", "cancelled"))
        if final != last_final:
            last_final, progress = final, time.monotonic()
        elif time.monotonic() - progress > STALL_S / scale:
            stuck = {m["model"]: m["queued"] + m["running"]
                     for m in stats.get("per_model", []) if m["queued"] + m["running"]}
            print("no job became final for %d s with %d unfinished (%s): cancelling them" %
                  (STALL_S, busy, ", ".join("%s %d" % x for x in sorted(stuck.items()))))
            return stuck
        time.sleep(1.0)


def cancel_unfinished(v, submits):
    for status, reply, _ in submits:
        if status == 202 and v.job(reply["job_id"])["status"] not in ("complete", "failed",
                                                                      "cancelled"):
            v.cancel(reply["job_id"])


def vramd_records(v, trace, submits, scale):
    jobs = []
    for (at, body), (status, reply, sent) in zip(trace, submits):
        if status != 202:
            jobs.append(job_record(body, False, sent, sent, None, scale))
            continue
        job = v.job(reply["job_id"])
        arrival = parse_time(job["submitted_at"])
        ok = job["status"] == "complete"
        started = parse_time(job["started_at"]) if job.get("started_at") else None
        eta = reply.get("eta_s")
        jobs.append(job_record(body, ok, arrival, parse_time(job["completed_at"]),
                               job.get("result"), scale,
                               eta=float(eta) if eta is not None else None, started=started))
    return jobs


def vramd_timing_args(n, scale):
    """vramd's timers run in real time while the sims run `scale` times faster: each is
    scaled so that vramd behaves as it would at 1x."""
    return ("--queue-max-size", str(n + 10),
            "--max-batch-wait", str(max(1, round(MAX_BATCH_WAIT_S / scale))),
            "--keep-alive", str(max(1, round(KEEP_ALIVE_S / scale))),
            "--ollama-poll-interval", str(max(50, round(POLL_MS / scale))),
            "--monitor-interval", str(max(50, round(POLL_MS / scale))),
            "--loop-interval", str(max(1, round(LOOP_MS / scale))))


def sum_counters(per_sim):
    total = {}
    for c in per_sim:
        for k, val in c.items():
            if isinstance(val, (int, float)):
                total[k] = total.get(k, 0) + val
    return total


def start_sims(spec, scale, args, h, catalogue_path):
    sims = []
    for k in range(spec["servers"]):
        extra = ("--models", catalogue_path) if catalogue_path else ()
        sims.append(h.start_sim("--gpus", spec["gpus"], "--seed", str(args.seed_now + k),
                                *extra, "--ollama-version", args.ollama_version,
                                state_file=True, time_scale=scale))
    return sims


def run_direct(spec, trace, schedule, scale, args, h, catalogue_path):
    sims = start_sims(spec, scale, args, h, catalogue_path)
    stop = threading.Event()
    sampler = Sampler(sims, h.http_json)
    try:
        t0 = time.monotonic()
        sampler.start()
        mem = threading.Thread(target=other_memory_driver,
                               args=(sims[0].url, schedule, t0, scale, stop, h.http_json))
        mem.start()
        results = send_direct(trace, scale, h, lambda i: sims[i % len(sims)].url, t0)
        stop.set()
        mem.join()
        sampler.stop()
        per_sim = [s.state()["counters"] for s in sims]
    finally:
        stop.set()
        sampler.stop_event.set()
        for s in sims:
            s.stop()
    jobs = direct_records(trace, results, scale)
    run = summarise(trace, jobs, scale, sum_counters(per_sim), sampler.samples,
                    resident_cap(spec))
    run["jobs"] = jobs
    run["node_loads"] = [c["loads"] for c in per_sim]
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


def start_vramd_fleet(sims, trace, scale, args, h, vh, procs):
    """One vramd with both sims as nodes; node b's GPUs from a telemetry vramd on machine 2
    or a declared budget."""
    node_b = {"name": FLEET_NODES[1], "url": sims[1].url}
    if args.node_b_telemetry == "vramd":
        tele = vh.start_vramd(None, "--ollama", "http://127.0.0.1:%d" % h.free_port(),
                              "--nvml-lib", vh.nvml_lib_path(), "--monitor-interval",
                              str(max(50, round(POLL_MS / scale))),
                              env={"OLLAMA_SIM_STATE": sims[1].state_file})
        procs.append(("telemetry vramd of b", tele))
        node_b["telemetry_url"] = tele.url
    else:
        node_b.update({"local": False, "vram_budget": FLEET_BUDGET})
    nodes_file = os.path.join(tempfile.mkdtemp(prefix="vramd-nodes-"), "nodes.json")
    with open(nodes_file, "w") as f:
        json.dump({"nodes": [
            {"name": FLEET_NODES[0], "url": sims[0].url, "local": True}, node_b]}, f)
    try:
        v = vh.start_vramd(None, "--nodes-file", nodes_file, "--nvml-lib",
                           vh.nvml_lib_path(), *vramd_timing_args(len(trace), scale),
                           env={"OLLAMA_SIM_STATE": sims[0].state_file})
    except AssertionError as e:
        raise SystemExit("vramd did not start with %s (node b's telemetry: %s); with a "
                         "vramd that cannot read a remote vramd's GPUs yet, try "
                         "--node-b-telemetry budget\n%s" % (
                             nodes_file, args.node_b_telemetry, e))
    procs.insert(0, ("vramd", v))
    return v


def run_vramd(spec, trace, schedule, scale, args, h, vh, catalogue_path, nmodels):
    sims = start_sims(spec, scale, args, h, catalogue_path)
    procs = []
    stop = threading.Event()
    sampler = Sampler(sims, h.http_json)
    fleet = len(sims) > 1
    try:
        if fleet:
            v = start_vramd_fleet(sims, trace, scale, args, h, vh, procs)
            nodes = wait_fleet_ready(v, nmodels)
            print("vramd nodes: %s" % ", ".join(
                "%s (%s, %d GPUs)" % (n.get("node"), n.get("telemetry"), len(n["gpus"]))
                for n in nodes))
        else:
            v = vh.start_vramd(sims[0], *vramd_timing_args(len(trace), scale))
            procs.append(("vramd", v))
            vh.wait_ready(v)
            telemetry = v.health()["gpu_telemetry"]
            if telemetry != "nvml":
                raise SystemExit("vramd runs without the simulated NVML (%s); build the "
                                 "nvml target in %s" % (telemetry,
                                                        os.environ["VRAMD_BUILD_DIR"]))
        sys.stdout.flush()
        t0 = time.monotonic()
        sampler.start()
        mem = threading.Thread(target=other_memory_driver,
                               args=(sims[0].url, schedule, t0, scale, stop, h.http_json))
        mem.start()
        submits = submit_trace(v, trace, scale, t0)
        stuck = wait_vramd_idle(v, sum(1 for s in submits if s[0] == 202), scale)
        if stuck:
            cancel_unfinished(v, submits)
        stop.set()
        mem.join()
        sampler.stop()
        per_sim = [s.state()["counters"] for s in sims]
        stats = v.stats()
        lb_status, lb = v.get("/api/lb_stats")
        jobs = vramd_records(v, trace, submits, scale)
        logs = [(name, p.proc.log_path) for name, p in procs] + [
            ("ollama-sim" + (" " + FLEET_NODES[k] if fleet else ""), s.proc.log_path)
            for k, s in enumerate(sims)]
    finally:
        stop.set()
        sampler.stop_event.set()
        for _, p in procs:
            p.stop()
        for s in sims:
            s.stop()
    run = summarise(trace, jobs, scale, sum_counters(per_sim), sampler.samples,
                    resident_cap(spec))
    run["jobs"] = jobs
    run["vramd_cpu_spills"] = stats.get("cpu_spills")
    run["node_loads"] = [c["loads"] for c in per_sim]
    by_name = {n.get("node"): n for n in lb.get("nodes", [])} if lb_status == 200 else {}
    run["node_jobs"] = [(by_name.get(name) or {}).get("requests") for name in FLEET_NODES]
    run["logs"] = logs
    run["rejected_submits"] = sum(1 for s in submits if s[0] != 202)
    run["stuck"] = stuck
    return run


# --- The table -----------------------------------------------------------------------------

def fmt(x, digits=1):
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if isinstance(x, float):
        return "%.*f" % (digits, x)
    return str(x)


def check(value, limit, at_most=True):
    """'yes' / 'no' / '-' (not measurable) for value against limit."""
    if value is None or limit is None or \
            (isinstance(value, float) and math.isnan(value)) or \
            (isinstance(limit, float) and math.isnan(limit)):
        return "-"
    return "yes" if (value <= limit if at_most else value >= limit) else "no"


def table(spec, a, b, lb, longest_load, scale):
    """Rows (what, direct, vramd, target, met) and the list of (target, met) pairs."""
    fleet = spec["servers"] > 1
    ca, cb = a["counters"], b["counters"]
    batch_wait = max(1, round(MAX_BATCH_WAIT_S / scale)) * scale
    low_limit = batch_wait + longest_load
    rows = []

    def row(what, x, y, target="", met=""):
        rows.append((what, x, y, target, met))

    def cpu_tokens(run):
        return "%.0f / %d" % (run["counters"].get("cpu_tokens", 0.0), run["tokens"])

    row("jobs completed", fmt(a["done"]), fmt(b["done"]))
    row("jobs failed", fmt(a["failed"]), fmt(b["failed"]))
    if b.get("stuck"):
        row("... never started (stuck)", "-", fmt(sum(b["stuck"].values())))
    row("OOM load failures", fmt(ca["oom_failures"]), fmt(cb["oom_failures"]), "0",
        check(cb["oom_failures"], 0))
    row("CPU spills", fmt(ca.get("cpu_spills", 0)), fmt(cb.get("cpu_spills", 0)), "0",
        check(cb.get("cpu_spills", 0), 0))
    row("tokens on CPU / all", cpu_tokens(a), cpu_tokens(b))
    row("model loads", fmt(ca["loads"]), fmt(cb["loads"]),
        "<= %.0f" % (LOADS_MAX_SHARE * ca["loads"]),
        check(cb["loads"], LOADS_MAX_SHARE * ca["loads"]))
    if fleet:
        row("loads per node (a / b)", " / ".join(map(fmt, a["node_loads"])),
            " / ".join(map(fmt, b["node_loads"])))
        row("jobs per node (a / b)", " / ".join(map(fmt, a["node_jobs"])),
            " / ".join(map(fmt, b["node_jobs"])))
    row("evictions by Ollama", fmt(ca["evictions"]), fmt(cb["evictions"]))
    row("OOM retries by Ollama", fmt(ca.get("load_retries", 0)),
        fmt(cb.get("load_retries", 0)))
    row("503 (Ollama queue full)", fmt(ca["rejected_503"]), fmt(cb["rejected_503"]))
    for p, _ in PRIO_WEIGHTS:
        pa50, pb50 = pct(a["waits"][p], 50), pct(b["waits"][p], 50)
        pa99, pb99 = pct(a["waits"][p], 99), pct(b["waits"][p], 99)
        row("%s wait p50 (s)" % p, fmt(pa50), fmt(pb50))
        if p == "high":
            limit = HIGH_P99_MAX_SHARE * pa99
        elif p == "normal":
            limit = pa99
        else:
            limit = low_limit
        row("%s wait p99 (s)" % p, fmt(pa99), fmt(pb99), "<= %s" % fmt(limit),
            check(pb99, limit))
    row("makespan (s)", fmt(a["makespan"], 0), fmt(b["makespan"], 0),
        "<= %.0f" % (BATCH_MAKESPAN_MAX_SHARE * a["makespan"]) if spec["batch"] else "",
        check(b["makespan"], BATCH_MAKESPAN_MAX_SHARE * a["makespan"]) if spec["batch"]
        else "")
    row("lower bound (s)", fmt(lb, 0), fmt(lb, 0))
    row("makespan / lower bound", fmt(a["makespan"] / lb, 2), fmt(b["makespan"] / lb, 2),
        "<= %.2f" % BATCH_LB_MAX_RATIO if spec["batch"] else "",
        check(b["makespan"] / lb, BATCH_LB_MAX_RATIO) if spec["batch"] else "")
    ma, mb = a["memory"] or {}, b["memory"] or {}
    row("GPU mem used while waiting", fmt(ma.get("util"), 2), fmt(mb.get("util"), 2))
    row("... of total - others", fmt(ma.get("util_free"), 2), fmt(mb.get("util_free"), 2))
    row("... of what waiting can use", fmt(ma.get("util_fill"), 2),
        fmt(mb.get("util_fill"), 2), ">= %.2f" % UTIL_MIN,
        check(mb.get("util_fill"), UTIL_MIN, at_most=False))
    row("share of time work waits", fmt(ma.get("waiting_share"), 2),
        fmt(mb.get("waiting_share"), 2))
    row("ETA error (median)", "-", "%s (%d of %d)" % (fmt(b["eta_error"], 2), b["eta_jobs"],
                                                     b["done"] + b["failed"]),
        "<= %.2f" % ETA_ERROR_MAX, check(b["eta_error"], ETA_ERROR_MAX))
    row("ETA signed error (median)", "-", fmt(b["eta_bias"], 2))
    return rows


def print_table(rows, fleet):
    head = ("", "(a) round-robin" if fleet else "(a) direct", "(b) vramd", "target (b)", "met")
    print("| %-27s | %15s | %15s | %12s | %3s |" % head)
    print("|%s|%s:|%s:|%s:|%s|" % ("-" * 29, "-" * 16, "-" * 16, "-" * 13, "-" * 5))
    for r in rows:
        print("| %-27s | %15s | %15s | %12s | %3s |" % r)


# --- main ----------------------------------------------------------------------------------

def run_scenario(name, seed, args, h, vh):
    spec = SCENARIOS[name]
    n = args.jobs or spec["jobs"]
    rate = args.rate or spec["rate"]
    scale = args.time_scale or spec["scale"]
    args.seed_now = seed
    catalogue_path, info = load_catalogue(h, spec["catalogue"])
    models = {m: i["kind"] for m, i in info.items()}
    trace, schedule = make_trace(spec, n, rate, seed, models)
    used = sorted({b["model"] for _, b in trace})
    longest_load = max(info[m]["load_s"] for m in used)
    gpus = len(spec["gpus"].split(",")) * spec["servers"]
    print("\n## %s, seed %d: %s" % (name, seed, spec["what"]))
    print("trace: %d jobs over %.0f simulated s%s, %d models used, %d other-memory changes, "
          "%d server(s) x %s, time scale %g (MAX_BATCH_WAIT %g s, longest load %.1f s), "
          "Ollama %s" % (
              len(trace), trace[-1][0],
              "" if spec["batch"] else " (rate %.2f/s)" % rate, len(used), len(schedule),
              spec["servers"], spec["gpus"], scale,
              max(1, round(MAX_BATCH_WAIT_S / scale)) * scale, longest_load,
              args.ollama_version))
    sys.stdout.flush()
    t = time.monotonic()
    a = run_direct(spec, trace, schedule, scale, args, h, catalogue_path)
    wall_a = time.monotonic() - t
    t = time.monotonic()
    b = run_vramd(spec, trace, schedule, scale, args, h, vh, catalogue_path, len(models))
    wall_b = time.monotonic() - t
    print("(a) took %.0f s, (b) %.0f s of wall time\n" % (wall_a, wall_b))
    lb = lower_bound(trace, a["jobs"], b["jobs"], info, gpus, spec["servers"])
    rows = table(spec, a, b, lb, longest_load, scale)
    print_table(rows, spec["servers"] > 1)
    if b["rejected_submits"]:
        print("vramd refused %d submits" % b["rejected_submits"])
    print("logs of the vramd run: %s" % ", ".join("%s %s" % x for x in b["logs"]))
    keys = ("makespan", "counters", "done", "failed", "tokens", "memory", "eta_error",
            "eta_jobs", "eta_bias", "node_loads", "node_jobs")
    result = {"scenario": name, "seed": seed, "jobs": len(trace), "rate": rate,
              "time_scale": scale, "lower_bound": lb, "longest_load": longest_load,
              "wall_s": [wall_a, wall_b],
              "direct": dict({k: a[k] for k in keys},
                             waits={p: [pct(a["waits"][p], 50), pct(a["waits"][p], 99)]
                                    for p, _ in PRIO_WEIGHTS}),
              "vramd": dict({k: b[k] for k in keys},
                            waits={p: [pct(b["waits"][p], 50), pct(b["waits"][p], 99)]
                                   for p, _ in PRIO_WEIGHTS},
                            vramd_cpu_spills=b["vramd_cpu_spills"], stuck=b["stuck"]),
              "targets": [(r[0], r[3], r[4]) for r in rows if r[4]]}
    print(json.dumps({k: v for k, v in result.items() if k != "targets"}))
    result["per_job"] = {"fields": PER_JOB_FIELDS, "direct": per_job(a["jobs"], scale),
                         "vramd": per_job(b["jobs"], scale)}
    sys.stdout.flush()
    return result


PER_JOB_FIELDS = ("priority", "model", "ok", "arrival_s", "wait_s", "end_s", "eta_s",
                  "start_wait_s")


def per_job(jobs, scale):
    """Each job as a row of PER_JOB_FIELDS, real-world seconds from the first arrival
    (eta_s: the submit reply's; start_wait_s: submitted_at to started_at)."""
    first = min(j["arrival"] for j in jobs)
    rows = []
    for j in jobs:
        rows.append([j["priority"], j["model"], j["ok"],
                     round((j["arrival"] - first) * scale, 2),
                     round((j["wait_end"] - j["arrival"]) * scale, 2),
                     round((j["end"] - first) * scale, 2),
                     None if j["eta"] is None else round(j["eta"] * scale, 2),
                     None if j["started"] is None else
                     round((j["started"] - j["arrival"]) * scale, 2)])
    return rows


def print_summary(results):
    print("\n## Summary: issue 11's targets, vramd (met / checked)")
    print("| scenario | seed | targets met | missed | vramd jobs stuck |")
    print("|---|--:|--:|---|--:|")
    for r in results:
        met = [t for t in r["targets"] if t[2] == "yes"]
        missed = [t[0] for t in r["targets"] if t[2] == "no"]
        print("| %s | %d | %d / %d | %s | %d |" % (
            r["scenario"], r["seed"], len(met), sum(1 for t in r["targets"] if t[2] != "-"),
            ", ".join(missed) or "none", sum(r["vramd"]["stuck"].values())))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.environ.get("VRAMD_BUILD_DIR") or os.path.join(
        os.path.dirname(HERE), "build"))
    ap.add_argument("--scenario", default="poisson",
                    choices=ORDER + ("one-gpu", "all"),
                    help="poisson (default; one-gpu is an alias), bursty, batch, large, "
                    "fleet, or all of them")
    ap.add_argument("--jobs", type=int, help="jobs per trace (default: the scenario's)")
    ap.add_argument("--rate", type=float, help="arrivals per simulated second (default: "
                    "the scenario's; batch ignores it)")
    ap.add_argument("--time-scale", type=float,
                    help="the sims run this much faster (default 15); should divide 30")
    ap.add_argument("--seeds", default="1,2,3", help="poisson: the seeds, one table each")
    ap.add_argument("--seed", type=int, default=1, help="the other scenarios' seed")
    ap.add_argument("--ollama-version", default="0.33",
                    help="ollama-sim's Ollama version for both runs (0.33 or 0.12)")
    ap.add_argument("--node-b-telemetry", choices=("vramd", "budget"), default="vramd",
                    help="fleet: node b's GPUs from a vramd on machine 2 (telemetry_url, "
                    "default) or from a declared budget of " + FLEET_BUDGET)
    ap.add_argument("--json", help="also write every scenario's figures to this file")
    args = ap.parse_args()
    if args.scenario == "one-gpu":
        args.scenario = "poisson"
    os.environ["VRAMD_BUILD_DIR"] = os.path.abspath(args.build)
    import harness as h
    import vramd_harness as vh

    names = ORDER if args.scenario == "all" else (args.scenario,)
    results = []
    t = time.monotonic()
    for name in names:
        seeds = [int(s) for s in args.seeds.split(",")] if name == "poisson" else [args.seed]
        for seed in seeds:
            results.append(run_scenario(name, seed, args, h, vh))
    if len(results) > 1:
        print_summary(results)
    print("\nall scenarios took %.0f s of wall time" % (time.monotonic() - t))
    if args.json:  # with every job's figures (per_job)
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
