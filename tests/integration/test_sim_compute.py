"""ollama-sim's shared compute (docs/ollama-sim.md, row 12 of the v0.33 table): n
concurrent streams on one GPU share an aggregate of single x sqrt(n) tokens/s, so two
streams are each slower than one alone but faster together; streams on different GPUs
do not slow each other down. Rates come from eval_count / eval_duration."""

import os
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import http_json, run_tests, start_sim  # noqa: E402

PROMPT = "why is the sky blue"  # 100 tokens with llama3.2:1b


def rate(reply):
    return reply["eval_count"] / reply["eval_duration"] * 1e9


def generate(sim, body, out, i):
    status, reply = http_json("POST", sim.url + "/api/generate",
                              dict(body, prompt=PROMPT, stream=False))
    assert status == 200, reply
    out[i] = reply


def concurrently(sim, bodies):
    out = [None] * len(bodies)
    threads = [threading.Thread(target=generate, args=(sim, b, out, i))
               for i, b in enumerate(bodies)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def test_two_streams_on_one_runner_share_its_gpu():
    sim = start_sim("--gpus", "24GiB", "--num-parallel", "2", time_scale=5)
    try:
        body = {"model": "llama3.2:1b"}
        alone = rate(concurrently(sim, [body])[0])
        pair = [rate(r) for r in concurrently(sim, [body, body])]
        # Expected: alone / sqrt(2) = 0.71 x alone each, 1.41 x alone together.
        for r in pair:
            assert r < 0.85 * alone, (alone, pair)
        assert sum(pair) > 1.2 * alone, (alone, pair)
    finally:
        sim.proc.assert_clean_exit()


def test_runners_share_a_gpu_not_another():
    sim = start_sim("--gpus", "24GiB,24GiB", time_scale=5)
    try:
        a = {"model": "llama3.2:1b", "options": {"main_gpu": 0}}
        b = {"model": "qwen2.5:1.5b", "options": {"main_gpu": 0}}
        alone = [rate(concurrently(sim, [x])[0]) for x in (a, b)]
        both = [rate(r) for r in concurrently(sim, [a, b])]
        for one, shared in zip(alone, both):
            assert shared < 0.85 * one, (alone, both)
        # On two GPUs each runs at its own pace.
        b1 = {"model": "qwen2.5:1.5b", "options": {"main_gpu": 1}}
        alone_b1 = rate(concurrently(sim, [b1])[0])
        apart = [rate(r) for r in concurrently(sim, [a, b1])]
        assert apart[0] > 0.9 * alone[0] and apart[1] > 0.9 * alone_b1, (alone, alone_b1, apart)
    finally:
        sim.proc.assert_clean_exit()


run_tests(globals())
