"""ollama-sim's small API facts of Ollama v0.33 (../shared/reference/ollama.md section 6,
rows 14-16), each against Ollama's source at fb30760: no host-RAM pre-check, the 400s
GenerateHandler/ChatHandler give before scheduling (top_logprobs, raw, think, tools,
suffix), /api/show's normalised name, option conversions, HEAD lengths, no body cap,
OLLAMA_MAX_QUEUE=0; and where --ollama-version 0.12 still differs."""

import json
import os
import socket
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import http, http_json, run_tests, source_dir, start_sim, wait_until  # noqa: E402

SIM = None    # default catalogue, v0.33
LARGE = None  # sim/catalogues/large.json: deepseek-r1:14b thinks, codellama:34b inserts
MIB = 1 << 20


def setup_module():
    global SIM, LARGE
    SIM = start_sim("--gpus", "24GiB", time_scale=200)
    LARGE = start_sim("--gpus", "80GiB", "--models",
                      os.path.join(source_dir(), "sim", "catalogues", "large.json"),
                      time_scale=1000)


def post(sim, path, body):
    status, _, raw = http("POST", sim.url + path, body)
    return status, raw


def err(text):
    return json.dumps({"error": text}, separators=(",", ":")).encode()


def test_no_host_ram_precheck_in_v033():
    # Ollama <= 0.12 refused a model larger than free host memory (llm/server.go at
    # v0.12.3); v0.33 has no such check: the load goes ahead.
    old = start_sim("--gpus", "none", "--ram", "1GiB", "--ollama-version", "0.12")
    new = start_sim("--gpus", "none", "--ram", "1GiB")
    try:
        status, body = http_json("POST", old.url + "/api/generate",
                                 {"model": "phi3:mini", "prompt": "hi", "stream": False})
        assert status == 500, (status, body)
        assert body["error"].startswith("model requires more system memory ("), body
        status, body = http_json("POST", new.url + "/api/generate",
                                 {"model": "phi3:mini", "prompt": "hi", "stream": False,
                                  "options": {"num_predict": 1}})
        assert status == 200 and body["done"] is True, (status, body)
        assert new.state()["models"][0]["placement"] == "cpu"
    finally:
        old.proc.assert_clean_exit()
        new.proc.assert_clean_exit()


def test_top_logprobs_range():
    want = err("top_logprobs must be between 0 and 20")
    for path, extra in (("/api/generate", {"prompt": "x"}),
                        ("/api/chat", {"messages": [{"role": "user", "content": "x"}]})):
        for bad in (-1, 21):
            body = dict(extra, model="smollm:360m", top_logprobs=bad)
            assert post(SIM, path, body) == (400, want), (path, bad)
        # Checked right after decoding, before the model is looked up.
        assert post(SIM, path, dict(extra, model="ghost", top_logprobs=99)) == (400, want)
        for ok in (0, 20):
            body = dict(extra, model="smollm:360m", top_logprobs=ok, stream=False,
                        options={"num_predict": 1})
            assert post(SIM, path, body)[0] == 200, (path, ok)
    status, raw = post(SIM, "/api/generate", {"model": "smollm:360m", "top_logprobs": 2.5})
    assert (status, raw) == (400, err("json: cannot unmarshal number 2.5 into Go struct "
                                      "field GenerateRequest.top_logprobs of type int")), raw


def test_raw_mode_conflicts():
    want = err("raw mode does not support template, system, or context")
    base = {"model": "smollm:360m", "prompt": "x", "raw": True, "stream": False,
            "options": {"num_predict": 1}}
    for extra in ({"system": "s"}, {"template": "{{ .Prompt }}"}, {"context": [1, 2]}):
        assert post(SIM, "/api/generate", dict(base, **extra)) == (400, want), extra
    # Empty ones do not count, and without raw they are fine.
    assert post(SIM, "/api/generate", dict(base, system="", context=[]))[0] == 200
    assert post(SIM, "/api/generate", dict(base, raw=False, system="s"))[0] == 200
    # The model is looked up first.
    status, raw = post(SIM, "/api/generate", dict(base, model="ghost", system="s"))
    assert (status, raw) == (404, err("model 'ghost' not found"))
    status, raw = post(SIM, "/api/generate", dict(base, context="x"))
    assert status == 400 and b"GenerateRequest.context of type []int" in raw, raw


def test_think_needs_a_thinking_model():
    for path, extra in (("/api/generate", {"prompt": "x"}),
                        ("/api/chat", {"messages": [{"role": "user", "content": "x"}]})):
        for think in (True, "high", "max"):
            body = dict(extra, model="llama3.1:8b", think=think)
            assert post(LARGE, path, body) == (
                400, err('"llama3.1:8b" does not support thinking')), (path, think)
        ok = dict(extra, stream=False, options={"num_predict": 1})
        assert post(LARGE, path, dict(ok, model="llama3.1:8b", think=False))[0] == 200
        assert post(LARGE, path, dict(ok, model="deepseek-r1:14b", think=True))[0] == 200
        assert post(LARGE, path, dict(ok, model="deepseek-r1:14b", think="low"))[0] == 200
    status, raw = post(LARGE, "/api/generate", {"model": "llama3.1:8b", "think": "lots"})
    assert (status, raw) == (400, err('invalid think value: "lots" (must be "high", '
                                      '"medium", "low", "max", true, or false)')), raw
    status, raw = post(LARGE, "/api/chat", {"model": "llama3.1:8b", "think": 1})
    assert status == 400 and raw.startswith(b'{"error":"think must be a boolean or string'), raw


def test_tools_and_suffix_need_the_capability():
    tools = [{"type": "function", "function": {"name": "f", "parameters": {}}}]
    msgs = [{"role": "user", "content": "x"}]
    status, raw = post(LARGE, "/api/chat", {"model": "gemma2:27b", "messages": msgs,
                                            "tools": tools})
    assert (status, raw) == (400, err("registry.ollama.ai/library/gemma2:27b does not "
                                      "support tools")), raw
    status, raw = post(LARGE, "/api/generate", {"model": "gemma2:27b", "prompt": "def f(",
                                                "suffix": "return 1"})
    assert (status, raw) == (400, err("registry.ollama.ai/library/gemma2:27b does not "
                                      "support insert")), raw
    # With the capability, or without the field, the request goes ahead.
    ok = {"stream": False, "options": {"num_predict": 1}}
    assert post(LARGE, "/api/chat", dict(ok, model="llama3.1:8b", messages=msgs,
                                         tools=tools))[0] == 200
    assert post(LARGE, "/api/chat", dict(ok, model="gemma2:27b", messages=msgs,
                                         tools=[]))[0] == 200
    assert post(LARGE, "/api/generate", dict(ok, model="codellama:34b", prompt="def f(",
                                             suffix="return 1"))[0] == 200
    status, raw = post(LARGE, "/api/chat", {"model": "gemma2:27b", "tools": "f"})
    assert (status, raw) == (400, err("json: cannot unmarshal string into Go struct field "
                                      "ChatRequest.tools of type api.Tools")), raw


def test_v012_request_checks():
    old = start_sim("--gpus", "80GiB", "--ollama-version", "0.12", "--models",
                    os.path.join(source_dir(), "sim", "catalogues", "large.json"))
    try:
        # 0.12.3: thinking is one more capability; the missing ones are joined by
        # newlines (errors.Join); no top_logprobs field; levels only for harmony models.
        status, raw = post(old, "/api/generate", {"model": "gemma2:27b", "prompt": "x",
                                                  "suffix": "y", "think": True})
        assert (status, raw) == (400, err("registry.ollama.ai/library/gemma2:27b does not "
                                          "support insert\nthinking")), raw
        status, raw = post(old, "/api/chat", {"model": "deepseek-r1:14b", "think": "high"})
        assert (status, raw) == (400, err('think value "high" is not supported for this '
                                          'model')), raw
        status, _ = post(old, "/api/generate", {"model": "gemma2:27b", "prompt": "x",
                                                "top_logprobs": 99, "stream": False,
                                                "options": {"num_predict": 1}})
        assert status == 200
    finally:
        old.proc.assert_clean_exit()


def test_show_not_found_names_the_normalised_model():
    for name, shown in (("nope", "nope:latest"), ("library/nope", "nope:latest"),
                        ("nope:1b", "nope:1b"), ("someone/nope", "someone/nope:latest")):
        status, raw = post(SIM, "/api/show", {"model": name})
        assert (status, raw) == (404, err("model '%s' not found" % shown)), (name, raw)
    # A name model.ParseName rejects is a 400 (writeModelRefParseError).
    assert post(SIM, "/api/show", {"model": "<b>&"}) == (400, err("invalid model name"))
    # library/ is the default namespace: the model is found.
    assert post(SIM, "/api/show", {"model": "library/llama3.2:1b"})[0] == 200


def test_names_match_case_insensitively():
    # getExistingName (routes.go:1222) adopts the installed spelling of each part.
    status, body = http_json("POST", SIM.url + "/api/show", {"model": "LLAMA3.2:1B"})
    assert status == 200 and body["details"]["parameter_size"] == "1.2B", (status, body)
    status, body = http_json("POST", SIM.url + "/api/generate",
                             {"model": "SmolLM:360M", "prompt": "x", "stream": False,
                              "options": {"num_predict": 1}})
    assert status == 200 and body["model"] == "SmolLM:360M", (status, body)


def test_options_conversions():
    # api.Options.FromMap: float64 into an int field is Go's int64(): truncated.
    status, body = http_json("POST", SIM.url + "/api/generate",
                             {"model": "qwen2.5:0.5b", "prompt": "a long story",
                              "stream": False, "options": {"num_predict": 2.9}})
    assert status == 200 and body["eval_count"] == 2 and body["done_reason"] == "length", body
    status, body = http_json("POST", SIM.url + "/api/generate",
                             {"model": "smollm:360m", "options": {"num_ctx": 1024.7}})
    assert status == 200, body
    ctx = [m["context_length"] for m in SIM.state()["models"] if m["name"] == "smollm:360m"]
    assert ctx == [1024], ctx
    status, raw = post(SIM, "/api/generate", {"model": "smollm:360m", "prompt": "x",
                                              "options": {"temperature": "hot"}})
    assert (status, raw) == (500, err('option "temperature" must be of type float32')), raw


def test_head_replies_carry_content_length():
    for path in ("/", "/api/version", "/api/tags"):
        _, get_headers, get_body = http("GET", SIM.url + path)
        status, headers, body = http("HEAD", SIM.url + path)
        assert status == 200 and body == b"", (path, status, body)
        assert headers["content-length"] == str(len(get_body)), (path, headers)
        assert headers["content-type"] == get_headers["content-type"]
    assert http("HEAD", SIM.url + "/")[1]["content-length"] == "17"


def test_no_body_cap_on_the_api():
    # Ollama's /api/* has no body limit: 64 MiB of fields it ignores are fine.
    pad = "a" * (64 * MIB)
    body = json.dumps({"model": "smollm:360m", "prompt": "x", "stream": False,
                       "options": {"num_predict": 1}, "pad": pad}).encode()
    status, _, raw = http("POST", SIM.url + "/api/generate", raw_body=body, timeout=120)
    assert status == 200 and json.loads(raw)["done"] is True, (status, raw[:200])
    body = json.dumps({"model": "llama3.2:1b", "pad": pad}).encode()
    status, _, raw = http("POST", SIM.url + "/api/show", raw_body=body, timeout=120)
    assert status == 200, (status, raw[:200])
    # The simulator still bounds what a client can make it hold (256 MiB): a larger
    # declared body is refused before any of it is read.
    sock = socket.create_connection(("127.0.0.1", SIM.port), timeout=10)
    try:
        sock.sendall(b"POST /api/generate HTTP/1.1\r\nHost: localhost\r\nContent-Type: "
                     b"application/json\r\nContent-Length: %d\r\n\r\n" % (300 * MIB))
        reply = b""
        while b"\r\n\r\n" not in reply:
            chunk = sock.recv(4096)
            if not chunk:
                break
            reply += chunk
        assert reply.startswith(b"HTTP/1.1 413 "), reply
    finally:
        sock.close()
    assert http("GET", SIM.url + "/")[0] == 200


def test_max_queue_zero_admits_when_idle():
    # pendingReqCh is unbuffered with OLLAMA_MAX_QUEUE=0: the send succeeds only while
    # processPending waits to receive. Real-time loads of 1 s.
    sim = start_sim("--gpus", "24GiB", "--start-cost", "1s", time_scale=1,
                    env={"OLLAMA_MAX_QUEUE": "0"})
    results = {}

    def first():
        results["first"] = http_json("POST", sim.url + "/api/generate",
                                     {"model": "smollm:360m", "prompt": "", "stream": False})[0]

    try:
        t = threading.Thread(target=first)
        t.start()
        wait_until(lambda: any(m["loading"] for m in sim.state()["models"]), 5,
                   what="the first load")
        # The loop is busy with that load: a second load-needing request is refused.
        status, raw = post(sim, "/api/generate", {"model": "gemma:2b", "prompt": ""})
        assert (status, raw) == (503, err("server busy, please try again.  maximum pending "
                                          "requests exceeded")), raw
        t.join(30)
        assert results == {"first": 200}, results
        # Idle again: loads are admitted; a loaded model never touches the queue.
        assert post(sim, "/api/generate", {"model": "gemma:2b", "prompt": ""})[0] == 200
        assert post(sim, "/api/generate", {"model": "smollm:360m", "prompt": ""})[0] == 200
        assert sim.state()["counters"]["rejected_503"] == 1
    finally:
        sim.proc.assert_clean_exit()


def test_zz_clean_shutdown():
    SIM.proc.assert_clean_exit()
    LARGE.proc.assert_clean_exit()


run_tests(globals())
