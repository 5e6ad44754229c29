"""ollama-sim's Ollama API: every endpoint's happy path and error shapes (byte-exact
where docs/ollama.md gives bytes), streaming and non-streaming replies, load and
unload, bad input. One ollama-sim on a free port serves all tests of this file."""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import http, http_json, ndjson, run_tests, start_sim, wait_until  # noqa: E402

SIM = None


def setup_module():
    global SIM
    SIM = start_sim("--gpus", "24GiB", time_scale=200)


def url(path):
    return SIM.url + path


def keys(data):
    """The key order of a JSON object, as sent."""
    return [k for k, _ in json.loads(data, object_pairs_hook=lambda pairs: pairs)]


def test_root_and_version():
    status, headers, body = http("GET", url("/"))
    assert status == 200 and body == b"Ollama is running", (status, body)
    assert headers["content-type"] == "text/plain; charset=utf-8"
    status, headers, body = http("HEAD", url("/"))
    assert status == 200 and body == b""
    status, headers, body = http("GET", url("/api/version"))
    assert status == 200 and body == b'{"version":"0.33.0"}', body
    assert headers["content-type"] == "application/json; charset=utf-8"
    assert http("HEAD", url("/api/version"))[0] == 200


def test_tags():
    status, body = http_json("GET", url("/api/tags"))
    assert status == 200
    names = [m["name"] for m in body["models"]]
    assert "llama3.2:1b" in names and "all-minilm:latest" in names and len(names) == 10
    m = body["models"][0]
    # ListModelResponse (v0.33): capabilities, and the details' context/embedding length.
    assert list(m.keys()) == ["name", "model", "modified_at", "size", "digest", "details",
                              "capabilities"]
    assert len(m["digest"]) == 64 and all(c in "0123456789abcdef" for c in m["digest"])
    assert list(m["details"].keys()) == ["parent_model", "format", "family", "families",
                                         "parameter_size", "quantization_level",
                                         "context_length", "embedding_length"]
    llama = [x for x in body["models"] if x["name"] == "llama3.2:1b"][0]
    assert llama["capabilities"] == ["completion", "tools"], llama
    assert llama["details"]["context_length"] == 131072
    assert llama["details"]["embedding_length"] == 2048
    dates = [x["modified_at"] for x in body["models"]]
    assert dates == sorted(dates, reverse=True)
    sizes = {x["name"]: x["size"] for x in body["models"]}
    assert sizes["phi3:mini"] == 2200000000


def test_show():
    status, body = http_json("POST", url("/api/show"), {"model": "llama3.2:1b"})
    assert status == 200
    assert body["model_info"]["general.architecture"] == "llama"
    assert body["model_info"]["llama.context_length"] == 131072
    assert body["capabilities"] == ["completion", "tools"]
    assert body["details"]["parameter_size"] == "1.2B"
    status, body = http_json("POST", url("/api/show"), {"name": "all-minilm"})
    assert status == 200 and body["capabilities"] == ["embedding"]
    status, _, raw = http("POST", url("/api/show"), {"model": "nope:1b"})
    assert status == 404 and raw == b'{"error":"model \'nope:1b\' not found"}', raw
    status, _, raw = http("POST", url("/api/show"), {})
    assert status == 400 and raw == b'{"error":"model is required"}', raw


def test_generate_non_streaming_is_deterministic():
    req = {"model": "qwen2.5:0.5b", "prompt": "Why is the sky blue?", "stream": False,
           "options": {"seed": 42}}
    status, headers, raw = http("POST", url("/api/generate"), req)
    assert status == 200, raw
    assert headers["content-type"] == "application/json; charset=utf-8"
    assert keys(raw) == ["model", "created_at", "response", "done", "done_reason", "context",
                         "total_duration", "load_duration", "prompt_eval_count",
                         "prompt_eval_duration", "eval_count", "eval_duration"]
    a = json.loads(raw)
    assert a["model"] == "qwen2.5:0.5b" and a["done"] is True and a["done_reason"] == "stop"
    assert a["created_at"].endswith("Z")
    assert 20 <= a["eval_count"] <= 120 and a["response"]
    assert a["total_duration"] >= a["load_duration"] > 0
    # eval_duration follows tokens/s of the catalogue (220 tok/s on GPU).
    assert abs(a["eval_duration"] - a["eval_count"] / 220 * 1e9) < 1e6
    status, b = http_json("POST", url("/api/generate"), req)
    assert b["response"] == a["response"] and b["eval_count"] == a["eval_count"]
    req["options"]["seed"] = 43
    status, c = http_json("POST", url("/api/generate"), req)
    assert c["response"] != a["response"]


def test_generate_streaming_and_num_predict():
    status, headers, raw = http("POST", url("/api/generate"),
                                {"model": "qwen2.5:0.5b", "prompt": "count", "options":
                                 {"num_predict": 5}})
    assert status == 200
    assert headers["content-type"] == "application/x-ndjson"
    assert raw.endswith(b"\n")
    chunks = ndjson(raw)
    assert len(chunks) == 6, chunks
    for c in chunks[:-1]:
        assert list(c.keys()) == ["model", "created_at", "response", "done"]
        assert c["done"] is False
    final = chunks[-1]
    assert final["done"] is True and final["done_reason"] == "length"
    assert final["eval_count"] == 5 and final["response"] == ""


def test_chat_streaming_and_not():
    msgs = [{"role": "user", "content": "hello"}]
    status, headers, raw = http("POST", url("/api/chat"), {"model": "llama3.2:1b",
                                                           "messages": msgs})
    assert status == 200 and headers["content-type"] == "application/x-ndjson"
    chunks = ndjson(raw)
    assert list(chunks[0].keys()) == ["model", "created_at", "message", "done"]
    assert chunks[0]["message"]["role"] == "assistant"
    text = "".join(c["message"]["content"] for c in chunks)
    final = chunks[-1]
    assert list(final.keys()) == ["model", "created_at", "message", "done", "done_reason",
                                  "total_duration", "load_duration", "prompt_eval_count",
                                  "prompt_eval_duration", "eval_count", "eval_duration"]
    status, one = http_json("POST", url("/api/chat"), {"model": "llama3.2:1b", "messages": msgs,
                                                       "stream": False})
    assert status == 200 and one["message"]["content"] == text
    assert one["eval_count"] == final["eval_count"]


def test_load_and_unload():
    status, headers, raw = http("POST", url("/api/generate"), {"model": "smollm:360m"})
    assert status == 200 and headers["content-type"] == "application/json; charset=utf-8"
    assert not raw.endswith(b"\n")
    body = json.loads(raw)
    assert keys(raw) == ["model", "created_at", "response", "done", "done_reason"]
    assert body["done_reason"] == "load" and body["response"] == ""
    status, ps = http_json("GET", url("/api/ps"))
    entry = [m for m in ps["models"] if m["name"] == "smollm:360m"][0]
    assert list(entry.keys()) == ["name", "model", "size", "digest", "details", "expires_at",
                                  "size_vram", "context_length"]
    assert entry["size_vram"] == entry["size"] > 200000000
    status, body = http_json("POST", url("/api/chat"), {"model": "smollm:360m",
                                                        "keep_alive": 0})
    assert status == 200 and body["done_reason"] == "unload"
    assert body["message"] == {"role": "assistant", "content": ""}

    def gone():
        return all(m["name"] != "smollm:360m" for m in http_json("GET", url("/api/ps"))[1]["models"])
    wait_until(gone, 5)
    status, body = http_json("POST", url("/api/chat"), {"model": "smollm:360m"})
    assert body["done_reason"] == "load"
    status, body = http_json("POST", url("/api/generate"), {"model": "smollm:360m",
                                                            "keep_alive": "0s"})
    assert body["done_reason"] == "unload"
    wait_until(gone, 5)


def test_keep_alive_forms():
    for ka in (30, "10m", -1, "-1m", 0.5):
        status, body = http_json("POST", url("/api/generate"),
                                 {"model": "tinyllama:1.1b", "keep_alive": ka})
        assert status == 200, (ka, body)
    status, _, raw = http("POST", url("/api/generate"), {"model": "tinyllama:1.1b",
                                                         "keep_alive": "300"})
    assert status == 400 and raw == b'{"error":"time: missing unit in duration \\"300\\""}', raw
    status, body = http_json("POST", url("/api/generate"), {"model": "tinyllama:1.1b",
                                                            "keep_alive": True})
    assert status == 400 and body["error"] == "Unsupported type: 'bool'"


def test_embed():
    status, headers, raw = http("POST", url("/api/embed"), {"model": "all-minilm",
                                                           "input": ["hello", "world"]})
    assert status == 200, raw
    assert keys(raw) == ["model", "embeddings", "total_duration", "load_duration",
                         "prompt_eval_count"]
    body = json.loads(raw)
    assert body["model"] == "all-minilm"
    assert len(body["embeddings"]) == 2 and len(body["embeddings"][0]) == 384
    for v in body["embeddings"]:
        assert abs(sum(x * x for x in v) - 1.0) < 1e-5
    assert body["embeddings"][0] != body["embeddings"][1]
    _, again = http_json("POST", url("/api/embed"), {"model": "all-minilm", "input": "hello"})
    assert again["embeddings"][0] == body["embeddings"][0]
    _, empty = http_json("POST", url("/api/embed"), {"model": "all-minilm", "input": []})
    assert empty == {"model": "all-minilm", "embeddings": []}
    status, body = http_json("POST", url("/api/embed"), {"model": "all-minilm", "input": 5})
    assert status == 400 and body == {"error": "invalid input type"}
    status, legacy = http_json("POST", url("/api/embeddings"), {"model": "nomic-embed-text",
                                                               "prompt": "hi"})
    assert status == 200 and list(legacy.keys()) == ["embedding"]
    assert len(legacy["embedding"]) == 768
    status, legacy = http_json("POST", url("/api/embeddings"), {"model": "nomic-embed-text"})
    assert legacy == {"embedding": []}


def test_not_found_wordings():
    cases = [
        ("/api/generate", {"model": "ghost"}, 404, b'{"error":"model \'ghost\' not found"}'),
        ("/api/generate", {"model": ""}, 404, b'{"error":"model \'\' not found"}'),
        ("/api/chat", {"model": "ghost"}, 404, b'{"error":"model \'ghost\' not found"}'),
        ("/api/chat", {}, 400, b'{"error":"model is required"}'),
        ("/api/embed", {"model": "ghost", "input": "x"}, 404,
         b'{"error":"model \\"ghost\\" not found, try pulling it first"}'),
        ("/api/embeddings", {"model": "ghost", "prompt": "x"}, 404,
         b'{"error":"model \\"ghost\\" not found, try pulling it first"}'),
        ("/api/embeddings", {"prompt": "x"}, 400, b'{"error":"model is required"}'),
        ("/api/generate", {"model": "all-minilm", "prompt": "x"}, 400,
         b'{"error":"\\"all-minilm\\" does not support generate"}'),
        ("/api/chat", {"model": "all-minilm", "messages": [{"role": "user", "content": "x"}]},
         400, b'{"error":"\\"all-minilm\\" does not support chat"}'),
    ]
    for path, body, want_status, want in cases:
        status, headers, raw = http("POST", url(path), body)
        assert (status, raw) == (want_status, want), (path, body, status, raw)
        assert headers["content-type"] == "application/json; charset=utf-8"


def test_unknown_path_and_method():
    status, headers, raw = http("GET", url("/api/nothing"))
    assert status == 404 and raw == b"404 page not found"
    assert headers["content-type"].startswith("text/plain")
    status, headers, raw = http("GET", url("/api/generate"))
    assert status == 405 and raw == b"405 method not allowed"
    status, _, raw = http("DELETE", url("/api/tags"))
    assert status == 405


def test_bad_input_keeps_serving():
    status, _, raw = http("POST", url("/api/generate"), raw_body=b"")
    assert status == 400 and raw == b'{"error":"missing request body"}', raw
    status, body = http_json("POST", url("/api/generate"), raw_body=b'{"model": "x",')
    assert status == 400 and "invalid JSON" in body["error"], body
    status, body = http_json("POST", url("/api/generate"), raw_body=b'[1,2]')
    assert status == 400 and "JSON object" in body["error"]
    status, _, raw = http("POST", url("/api/generate"), {"model": "qwen2.5:0.5b", "stream": "no"})
    assert status == 400 and raw == (b'{"error":"json: cannot unmarshal string into Go struct '
                                     b'field GenerateRequest.stream of type bool"}'), raw
    status, body = http_json("POST", url("/api/generate"), {"model": 7})
    assert status == 400 and "GenerateRequest.model of type string" in body["error"]
    status, body = http_json("POST", url("/api/chat"), {"model": "llama3.2:1b", "messages": "hi"})
    assert status == 400 and "ChatRequest.messages" in body["error"]
    status, body = http_json("POST", url("/api/generate"), {"model": "qwen2.5:0.5b", "prompt": "x",
                                                            "options": {"num_ctx": "big"}})
    assert status == 500 and body["error"] == 'option "num_ctx" must be of type integer'
    # Bodies have no cap below 256 MiB (test_sim_v033_api.py test_no_body_cap_on_the_api).
    # Still serving.
    assert http("GET", url("/"))[0] == 200
    status, body = http_json("POST", url("/api/generate"), {"model": "qwen2.5:0.5b",
                                                            "prompt": "<&>", "stream": False})
    assert status == 200 and body["done"] is True


def test_go_json_escaping():
    status, _, raw = http("POST", url("/api/generate"), {"model": "smollm:360m",
                                                         "think": "<b>&"})
    assert status == 400
    assert raw == (b'{"error":"invalid think value: \\"\\u003cb\\u003e\\u0026\\" (must be '
                   b'\\"high\\", \\"medium\\", \\"low\\", \\"max\\", true, or false)"}'), raw


def test_host_header_check():
    status, _, raw = http("GET", url("/api/version"), headers={"Host": "evil.example.com"})
    assert status == 403 and raw == b"", (status, raw)
    status, _, _ = http("GET", url("/api/version"), headers={"Host": "localhost:11434"})
    assert status == 200


def test_counters_count_requests():
    before = SIM.state()["counters"]["requests"]
    http("GET", url("/api/tags"))
    http("GET", url("/api/ps"))
    assert SIM.state()["counters"]["requests"] == before + 2


def test_client_hangup_frees_the_slot():
    # A non-streaming client that hangs up before any reply byte: the slot is freed at
    # once, as Ollama does, not when the generation would have ended (minutes here:
    # this sim runs 100 times slower than real time).
    import socket
    slow = start_sim("--gpus", "24GiB", time_scale=0.01)
    try:
        sock = socket.create_connection(("127.0.0.1", slow.port))
        body = json.dumps({"model": "smollm:360m", "prompt": "x", "stream": False}).encode()
        sock.sendall(b"POST /api/generate HTTP/1.1\r\nHost: localhost\r\nContent-Type: "
                     b"application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body)

        def holders():
            return sum(m["refcount"] + m["waiting"] for m in slow.state()["models"])
        wait_until(lambda: holders() >= 1, 10, what="the request to take the runner")
        sock.close()
        # The model keeps loading; nothing holds it for the departed client.
        wait_until(lambda: holders() == 0, 5, what="the request to be dropped after the hangup")
    finally:
        slow.proc.assert_clean_exit()

def test_zz_clean_shutdown():
    SIM.proc.assert_clean_exit()


run_tests(globals())
