"""vramd answering as OpenAI (issue 10, docs/api.md "OpenAI-compatible API"), against
ollama-sim: the official openai npm client unchanged but for its base URL (models,
chat and completions streamed and not, embeddings, errors); server-sent events that
arrive as the node generates, not at the end; a client that goes away (queued: never
runs; mid-stream: the node's request aborted); the priority header; API keys (default
and maximum priority, allowed models) on the front doors; every error in OpenAI's
shape."""

import http.client as httpclient
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import http, http_json, run_tests, source_dir, start_sim, wait_until  # noqa: E402
from vramd_harness import (open_stream, sim_active, start_slow, start_vramd,  # noqa: E402
                           wait_ready)

SLOW_MODEL = "phi3:mini"
HELLO = [{"role": "user", "content": "tell me a long story"}]


def openai_error(body, status):
    """The error object of an OpenAI-shaped error reply."""
    e = body["error"]
    assert isinstance(e, dict) and set(e) == {"message", "type", "param", "code"}, body
    assert e["message"], body
    return e


def queued(v):
    return v.stats()["queue"]["length"]


def read_event(resp):
    """The next server-sent event's data (without "data: "), or None at the end."""
    line = resp.readline()
    while line == b"\n":
        line = resp.readline()
    if not line:
        return None
    assert line.startswith(b"data: "), line
    return line[len(b"data: "):].rstrip(b"\n").decode()


def test_official_openai_client():
    sim = start_sim("--gpus", "24GiB", state_file=True, time_scale=100)
    v = start_vramd(sim)
    try:
        wait_ready(v)
        script = os.path.join(source_dir(), "tests", "npm", "run.sh")
        env = dict(os.environ, VRAMD_URL=v.url)
        out = subprocess.run([script, "openai.test.mjs"], env=env, capture_output=True,
                             text=True, timeout=240)
        print(out.stdout[-3000:], out.stderr[-2000:])
        assert out.returncode == 0 and " 0 failed" in out.stdout, out.stdout
        v.proc.assert_clean_exit()
    finally:
        v.stop()
        sim.stop()


def test_errors_have_openais_shape():
    sim = start_sim("--gpus", "24GiB", state_file=True, time_scale=100)
    v = start_vramd(sim)
    try:
        wait_ready(v)
        chat = v.url + "/v1/chat/completions"
        status, body = http_json("POST", chat, {"model": "nope:1b", "messages": HELLO})
        e = openai_error(body, status)
        assert status == 404 and e["code"] == "model_not_found" and e["param"] == "model", body
        status, body = http_json("POST", chat, {"model": "llama3.2:1b", "messages": "hi"})
        e = openai_error(body, status)
        assert status == 400 and e["param"] == "messages" and e["code"] == "invalid_type", body
        status, body = http_json("POST", chat, raw_body=b'{"model": ',
                                 headers={"Content-Type": "application/json"})
        e = openai_error(body, status)
        assert status == 400 and e["type"] == "invalid_request_error", body
        status, body = http_json("POST", chat, {"model": "llama3.2:1b", "messages": HELLO},
                                 headers={"X-Vramd-Priority": "urgent"})
        e = openai_error(body, status)
        assert status == 400 and "X-Vramd-Priority" in e["message"], body
        status, body = http_json("GET", v.url + "/v1/models/nope:1b")
        e = openai_error(body, status)
        assert status == 404 and e["code"] == "model_not_found", body
        # Errors vramd answers before an endpoint runs have OpenAI's shape on /v1 too.
        status, body = http_json("GET", v.url + "/v1/assistants")
        e = openai_error(body, status)
        assert status == 404 and e["type"] == "not_found_error", body
        status, body = http_json("DELETE", v.url + "/v1/chat/completions")
        assert status == 405 and openai_error(body, status)["type"] == "invalid_request_error"
        # A model named without its tag is found as ":latest", as Ollama does.
        status, body = http_json("GET", v.url + "/v1/models/all-minilm")
        assert status == 200 and body["id"] == "all-minilm:latest", body
        v.proc.assert_clean_exit()
    finally:
        v.stop()
        sim.stop()


def test_streams_as_generated_disconnects_and_priority():
    sim, v = start_slow()
    try:
        # Events arrive as the node makes tokens: the first well before the last.
        body = {"model": SLOW_MODEL, "messages": HELLO, "max_tokens": 4, "stream": True}
        t0 = time.monotonic()
        conn, resp = open_stream(v, "/v1/chat/completions", body,
                                 headers={"X-Vramd-Priority": "high"})
        assert resp.status == 200, resp.read()
        assert resp.getheader("Content-Type").startswith("text/event-stream")
        jid = resp.getheader("X-Vramd-Job")
        first = json.loads(read_event(resp))
        t_first = time.monotonic() - t0
        assert first["object"] == "chat.completion.chunk", first
        assert first["choices"][0]["delta"]["role"] == "assistant", first
        events = [first]
        while True:
            data = read_event(resp)
            if data == "[DONE]" or data is None:
                break
            events.append(json.loads(data))
        t_last = time.monotonic() - t0
        conn.close()
        assert data == "[DONE]", events
        assert events[-1]["choices"][0]["finish_reason"] == "length", events[-1]
        assert len({e["id"] for e in events}) == 1, events
        assert t_last - t_first >= 1.5, (t_first, t_last)  # 3 more tokens at ~1/s
        assert v.job(jid)["priority"] == "high"

        # Gone mid-stream: the job is cancelled and the node stops generating.
        long_body = {"model": SLOW_MODEL, "messages": HELLO, "stream": True}
        conn, resp = open_stream(v, "/v1/chat/completions", long_body)
        jid = resp.getheader("X-Vramd-Job")
        assert read_event(resp) is not None
        wait_until(lambda: sim_active(sim, SLOW_MODEL) >= 1, timeout=10, what="generating")
        conn.close()
        wait_until(lambda: v.job(jid)["status"] == "cancelled", timeout=10,
                   what="the streamed job cancelled")
        wait_until(lambda: sim_active(sim, SLOW_MODEL) == 0, timeout=10,
                   what="the node's generation aborted")

        # Gone while queued: the job is cancelled and never runs.
        blocker = v.submit_ok({"model": SLOW_MODEL, "prompt": "tell me a long story"})
        wait_until(lambda: v.job(blocker)["status"] == "running", timeout=60, what="blocker")
        conn = httpclient.HTTPConnection("127.0.0.1", v.port, timeout=60)
        conn.request("POST", "/v1/completions",
                     body=json.dumps({"model": SLOW_MODEL, "prompt": "hi", "max_tokens": 1}),
                     headers={"Content-Type": "application/json"})
        wait_until(lambda: queued(v) == 1, timeout=10, what="queued")
        conn.close()
        wait_until(lambda: queued(v) == 0, timeout=10, what="the departed client's job gone")
        status, body = v.get("/api/jobs?status=cancelled&limit=100")
        gone = [j for j in body["jobs"] if j["kind"] == "generate"]
        assert len(gone) == 1 and gone[0]["started_at"] is None, body
        assert v.cancel(blocker)[0] == 200
        v.proc.assert_clean_exit()
    finally:
        v.stop()
        sim.stop()


ALPHA = "sk-test-alpha-5a4b3c2d1e0f9a8b"
BRAVO = "sk-test-bravo-0a1b2c3d4e5f6a7b"


def test_api_keys_hold_on_the_front_doors():
    keys = [
        {"key": ALPHA, "name": "alpha", "default_priority": "low", "max_priority": "normal"},
        {"key": BRAVO, "name": "bravo", "models": ["llama3.2:1b"]},
    ]
    fd, path = tempfile.mkstemp(prefix="vramd-keys-", suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump(keys, f)
    sim = start_sim("--gpus", "24GiB", state_file=True, time_scale=100)
    v = start_vramd(sim, "--api-keys-file", path)
    try:
        wait_until(lambda: http_json("GET", v.url + "/v1/models",
                                     headers={"Authorization": "Bearer " + ALPHA})[0] == 200,
                   timeout=30, what="models known")
        chat = {"model": "llama3.2:1b", "messages": HELLO, "max_tokens": 2}
        # No key: 401, which the official clients raise as AuthenticationError.
        status, _, _ = http("POST", v.url + "/v1/chat/completions", json_body=chat)
        assert status == 401
        # The key's default priority applies, and a job carries its key.
        auth = {"Authorization": "Bearer " + ALPHA}
        status, headers, body = http("POST", v.url + "/v1/chat/completions", json_body=chat,
                                     headers=auth)
        assert status == 200, body
        job = json.loads(http("GET", v.url + "/api/job/" + headers["x-vramd-job"],
                              headers=auth)[2])
        assert job["priority"] == "low" and job["key"] == "alpha", job
        # Above its max_priority: 403 in OpenAI's shape (never clamped).
        status, body = http_json("POST", v.url + "/v1/chat/completions", chat,
                                 headers=dict(auth, **{"X-Vramd-Priority": "high"}))
        e = openai_error(body, status)
        assert status == 403 and "max_priority" in e["message"], body
        # Ollama's door holds to the same rules.
        status, _, body = http("POST", v.url + "/api/generate",
                               json_body={"model": "llama3.2:1b", "prompt": "hi",
                                          "stream": False},
                               headers=dict(auth, **{"X-Vramd-Priority": "high"}))
        assert status == 403 and "max_priority" in json.loads(body)["error"], body
        # A model outside the key's list: 403.
        bravo = {"Authorization": "Bearer " + BRAVO}
        status, body = http_json("POST", v.url + "/v1/completions",
                                 {"model": "qwen2.5:0.5b", "prompt": "hi"}, headers=bravo)
        e = openai_error(body, status)
        assert status == 403 and "qwen2.5:0.5b" in e["message"], body
        status, _, body = http("POST", v.url + "/api/chat",
                               json_body={"model": "qwen2.5:0.5b", "messages": HELLO},
                               headers=bravo)
        assert status == 403, body
        v.proc.assert_clean_exit()
    finally:
        v.stop()
        sim.stop()
        os.unlink(path)


if __name__ == "__main__":
    run_tests(globals())
