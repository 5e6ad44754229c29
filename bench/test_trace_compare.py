#!/usr/bin/env python3
"""Tests of bench/trace-compare.py (run by ctest as bench/trace-compare): the shapes of
its traces, the figures it derives (memory utilisation while work waits, ETA error, the
lower bound, the targets), and one small batch run against the real programs."""

import importlib.util
import math
import os
import random
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "integration"))

import harness  # noqa: E402

_spec = importlib.util.spec_from_file_location("trace_compare",
                                               os.path.join(HERE, "trace-compare.py"))
tc = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tc)

MODELS = {"a": "completion", "b": "completion", "c": "embedding", "d": "completion",
          "e": "completion", "f": "completion", "g": "completion", "h": "completion",
          "i": "completion", "j": "completion"}


def earlier_make_trace(n, rate, seed, models):
    """The Poisson trace as the script drew it before the scenarios (commit 6c81286), so
    a seed keeps meaning the same trace as in the earlier tables."""
    rng = random.Random(seed)
    t = 0.0
    jobs = []
    for i in range(n):
        t += rng.expovariate(rate)
        r = rng.random()
        prio = "low"
        acc = 0.0
        for name, w in tc.PRIO_WEIGHTS:
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
    other = []
    k = 1
    while k * tc.OTHER_EVERY_S < t:
        other.append((k * tc.OTHER_EVERY_S, rng.choice(tc.OTHER_CHOICES_MB)))
        k += 1
    return jobs, other


def test_poisson_trace_is_the_earlier_one():
    for seed in (1, 2, 3):
        got = tc.make_trace(tc.SCENARIOS["poisson"], 300, 2.0, seed, MODELS)
        assert got == earlier_make_trace(300, 2.0, seed, MODELS), seed


def test_bursty_arrivals_have_cv_4_and_zipf_models():
    n = 20000
    trace, other = tc.make_trace(tc.SCENARIOS["bursty"], n, 2.0, 1, MODELS)
    gaps = [b[0] - a[0] for a, b in zip([(0.0, None)] + trace, trace)]
    mean = sum(gaps) / n
    sd = math.sqrt(sum((g - mean) ** 2 for g in gaps) / n)
    assert abs(mean - 0.5) < 0.05, mean
    assert abs(sd / mean - 4.0) < 0.3, sd / mean
    assert other, "the bursty scenario keeps the other-memory changes"
    counts = {}
    for _, body in trace:
        counts[body["model"]] = counts.get(body["model"], 0) + 1
    ranked = [m for m, _ in tc.zipf_weights(sorted(MODELS), 1)]
    harmonic = sum(1.0 / k for k in range(1, 11))
    for rank in (1, 2, 10):
        share = counts.get(ranked[rank - 1], 0) / n
        expect = 1.0 / rank / harmonic
        assert abs(share - expect) < 0.15 * expect + 0.005, (rank, share, expect)


def test_batch_arrives_at_once_without_other_memory():
    trace, other = tc.make_trace(tc.SCENARIOS["batch"], 500, 0.0, 1, MODELS)
    assert len(trace) == 500 and all(at == 0.0 for at, _ in trace)
    assert other == []
    assert len({b["model"] for _, b in trace}) == len(MODELS)


def test_memory_utilisation_counts_only_while_work_waits():
    total = 1000
    # 0.2 of the GPU in use for t < 5, 0.8 from t = 5; samples every second to t = 10.
    samples = [(float(t), 200 if t < 5 else 800, 100, total) for t in range(11)]
    jobs = [{"arrival": 5.0, "wait_end": 8.0}]
    m = tc.memory_utilisation(samples, jobs)
    assert abs(m["util"] - 0.8) < 1e-9, m
    assert abs(m["util_free"] - 800 / 900) < 1e-9, m
    assert abs(m["waiting_share"] - 0.3) < 1e-9, m
    jobs.append({"arrival": 0.0, "wait_end": 2.0})
    m = tc.memory_utilisation(samples, jobs)
    assert abs(m["util"] - (2 * 0.2 + 3 * 0.8) / 5) < 1e-9, m
    assert tc.memory_utilisation(samples, [{"arrival": 20.0, "wait_end": 30.0}]) is None


def test_fill_bound_takes_at_most_cap_models_within_the_usable_memory():
    assert tc.fill_bound([5, 4, 3, 2], 9, 3) == 9  # 5 + 4, or 4 + 3 + 2
    assert tc.fill_bound([5, 4, 3, 2], 100, 2) == 9  # the cap: the two largest
    assert tc.fill_bound([5, 4, 3, 2], 8, 3) == 8  # 5 + 3
    assert tc.fill_bound([10], 8, 3) == 0  # nothing fits


def test_memory_utilisation_of_what_the_waiting_models_can_hold():
    gib = 1 << 30
    # Models a (1 GiB) and b (2 GiB) have work from t = 0 to 10; 6 GiB usable, cap 3:
    # together they can hold 3 GiB. a alone is resident for t < 5, both from t = 5.
    samples = []
    for t in range(11):
        vram = {"a": gib} if t < 5 else {"a": gib, "b": 2 * gib}
        samples.append((float(t), sum(vram.values()), 0, 8 * gib,
                        {"usable": 6 * gib, "vram": vram}))
    jobs = [{"arrival": 0.0, "wait_end": 10.0, "end": 10.0, "model": "a"},
            {"arrival": 0.0, "wait_end": 10.0, "end": 10.0, "model": "b"}]
    m = tc.memory_utilisation(samples, jobs, cap=3)
    assert abs(m["util_fill"] - (5 * (1 / 3) + 5 * 1.0) / 10) < 1e-9, m
    # With a cap of one model, the best is b alone (2 GiB): a alone is half of it, and
    # both resident count as full (at most 1).
    m = tc.memory_utilisation(samples, jobs, cap=1)
    assert abs(m["util_fill"] - (5 * 0.5 + 5 * 1.0) / 10) < 1e-9, m
    # Without a cap (or without detail) there is no such figure.
    assert tc.memory_utilisation(samples, jobs)["util_fill"] is None


def test_eta_error_is_the_median_relative_to_the_wait():
    scale = 10.0
    jobs = [
        # wall seconds: waited 2, predicted 1 -> 0.5
        {"arrival": 100.0, "started": 102.0, "eta": 1.0},
        # waited 4, predicted 5 -> 0.25
        {"arrival": 100.0, "started": 104.0, "eta": 5.0},
        # waited 0.01 wall (0.1 s real: the 1 s floor is 0.1 wall), predicted 0.05 -> 0.4
        {"arrival": 100.0, "started": 100.01, "eta": 0.05},
        {"arrival": 100.0, "started": 101.0, "eta": None},
        {"arrival": 100.0, "started": None, "eta": 3.0},
    ]
    err, n, bias = tc.eta_error(jobs, scale)
    assert n == 3, n
    assert abs(err - 0.4) < 1e-9, err
    assert abs(bias - 0.25) < 1e-9, bias  # -0.5, +0.25, +0.4
    assert tc.eta_error(jobs[3:], scale) == (None, 0, None)


def record(model, kind, prompt, output, ok=True):
    return {"model": model, "kind": kind, "ok": ok, "prompt_count": prompt if ok else None,
            "eval_count": output if ok else 0}


def test_lower_bound():
    info = {"x": {"tps": 100.0, "load_s": 2.0}, "y": {"tps": 50.0, "load_s": 3.0}}
    body_x = {"model": "x", "kind": "generate"}
    body_y = {"model": "y", "kind": "chat"}
    # Two jobs of x at 0: 100 output tokens each (1 s), 8 prompt tokens each (0.01 s).
    trace = [(0.0, body_x), (0.0, body_x)]
    a = [record("x", "generate", 8, 100)] * 2
    lb = tc.lower_bound(trace, a, a, info, gpus=1, servers=1)
    assert abs(lb - (2 / math.sqrt(3) + 0.02 / 3 + 2.0)) < 1e-9, lb
    # A job of y arriving at 100 s dominates: 100 + 2 s of output + its prompt + its load.
    trace.append((100.0, body_y))
    b_fail = [record("x", "generate", 8, 100)] * 2 + [record("y", "chat", 0, 0, ok=False)]
    a3 = a + [record("y", "chat", 10, 100)]
    lb = tc.lower_bound(trace, a3, b_fail, info, gpus=2, servers=1)
    expect = 100 + 2.0 / (2 * math.sqrt(3)) + (10 / 400) / (2 * 3) + 3.0
    assert abs(lb - expect) < 1e-9, (lb, expect)
    # A job no run completed takes its model's mean token counts.
    failed = [record("x", "generate", 8, 100), record("x", "generate", 0, 0, ok=False)]
    lb = tc.lower_bound(trace[:2], failed, failed, info, gpus=1, servers=1)
    assert abs(lb - (2 / math.sqrt(3) + 0.02 / 3 + 2.0)) < 1e-9, lb


def fake_run(loads, p99s, makespan, oom=0, spills=0, util=0.9, eta=0.1):
    waits = {p: [v] for p, v in zip(("high", "normal", "low"), p99s)}
    return {"counters": {"loads": loads, "oom_failures": oom, "cpu_spills": spills,
                         "evictions": 0, "rejected_503": 0, "cpu_tokens": 0.0},
            "done": 10, "failed": 0, "tokens": 100, "waits": waits, "makespan": makespan,
            "memory": {"util": util, "util_free": util, "util_fill": util,
                       "waiting_share": 1.0},
            "eta_error": eta, "eta_jobs": 10, "eta_bias": None, "node_loads": [loads], "node_jobs": [10]}


def verdicts(rows):
    return {r[0]: r[4] for r in rows if r[4]}


def test_targets():
    spec = tc.SCENARIOS["batch"]
    direct = fake_run(100, (40.0, 50.0, 60.0), 1000.0)
    good = fake_run(50, (20.0, 50.0, 31.0), 600.0)
    v = verdicts(tc.table(spec, direct, good, lb=522.0, longest_load=1.0, scale=15.0))
    assert set(v.values()) == {"yes"}, v
    bad = fake_run(51, (20.1, 50.1, 31.1), 601.0, oom=1, spills=2, util=0.79, eta=0.26)
    v = verdicts(tc.table(spec, direct, bad, lb=522.0, longest_load=1.0, scale=15.0))
    assert set(v.values()) == {"no"}, v
    assert len(v) == 10, v
    # Not the batch scenario: no makespan targets.
    v = verdicts(tc.table(tc.SCENARIOS["poisson"], direct, bad, lb=530.0, longest_load=1.0,
                          scale=15.0))
    assert "makespan (s)" not in v and "makespan / lower bound" not in v, v


def test_small_batch_run():
    """The script end to end on 12 jobs: both runs complete every job and the table has
    every row with a verdict."""
    out = subprocess.run(
        [sys.executable, "-B", os.path.join(HERE, "trace-compare.py"), "--build",
         harness.build_dir(), "--scenario", "batch", "--jobs", "12"],
        capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    rows = {}
    for line in out.stdout.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5:
            rows[cells[0]] = cells[1:]
    assert rows["jobs completed"][:2] == ["12", "12"], rows
    assert rows["jobs failed"][:2] == ["0", "0"], rows
    for what in ("OOM load failures", "model loads", "high wait p99 (s)", "makespan (s)",
                 "makespan / lower bound", "... of what waiting can use",
                 "ETA error (median)"):
        assert rows[what][3] in ("yes", "no", "-"), (what, rows[what])
    assert float(rows["lower bound (s)"][0]) > 0, rows


harness.run_tests(globals())
