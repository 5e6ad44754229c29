"""ollama-sim's model management: /api/pull (streamed progress in Ollama's shapes, paced
by --pull-bw, and "stream": false), DELETE /api/delete (unloads first), /api/copy and
HEAD /api/blobs/:digest, with Ollama v0.33's error texts. One ollama-sim serves all
tests of this file, in the order written."""

import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import http, http_json, ndjson, run_tests, start_sim, wait_until  # noqa: E402

SIM = None
SCALE = 20
PULL_BW = 200e6  # --pull-bw 200MB: 2 GB take 10 s simulated, 0.5 s real


def setup_module():
    global SIM
    SIM = start_sim("--gpus", "24GiB", "--pull-bw", "200MB", time_scale=SCALE)


def url(path):
    return SIM.url + path


def tag_names():
    return [m["name"] for m in http_json("GET", url("/api/tags"))[1]["models"]]


def ps_names():
    return [m["name"] for m in http_json("GET", url("/api/ps"))[1]["models"]]


def test_pull_streams_ollama_progress():
    assert "llama3.2:3b" not in tag_names()
    t0 = time.monotonic()
    status, headers, body = http("POST", url("/api/pull"), {"model": "llama3.2:3b"})
    took = time.monotonic() - t0
    assert status == 200 and headers["content-type"] == "application/x-ndjson", (status, headers)
    lines = body.decode().splitlines()
    objs = ndjson(body)
    assert lines[0] == '{"status":"pulling manifest"}', lines[0]
    assert [o["status"] for o in objs[-3:]] == ["verifying sha256 digest", "writing manifest",
                                                "success"], objs[-3:]
    assert lines[-1] == '{"status":"success"}'
    layer = objs[1:-3]
    assert len(layer) >= 3, layer  # several progress ticks, not one jump
    digest = layer[0]["digest"]
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest), digest
    completed = []
    for o, line in zip(layer, lines[1:-3]):
        assert o["status"] == "pulling " + digest[7:19] and o["digest"] == digest, o
        assert o["total"] == 2000000000, o
        # Go's omitempty: completed is absent while 0; keys in ProgressResponse order.
        assert list(json.loads(line, object_pairs_hook=lambda p: [k for k, _ in p])) == \
            ["status", "digest", "total", "completed"][:len(o)], line
        completed.append(o.get("completed", 0))
    assert completed == sorted(completed) and completed[-1] == 2000000000, completed
    # 2 GB at 200 MB/s of simulated time is 10 s, 0.5 s real at time scale 20.
    assert took >= 0.8 * 2e9 / PULL_BW / SCALE, took
    assert "llama3.2:3b" in tag_names()
    m = [x for x in http_json("GET", url("/api/tags"))[1]["models"] if x["name"] == "llama3.2:3b"][0]
    assert m["size"] == 2000000000 and m["capabilities"] == ["completion", "tools"], m
    assert http("HEAD", url("/api/blobs/" + digest))[0] == 200
    status, reply = http_json("POST", url("/api/generate"),
                              {"model": "llama3.2:3b", "prompt": "hi", "stream": False,
                               "options": {"num_predict": 3}})
    assert status == 200 and reply["eval_count"] == 3, reply


def test_pull_installed_model_is_a_cache_hit():
    status, _, body = http("POST", url("/api/pull"), {"name": "llama3.2:3b"})
    objs = ndjson(body)
    assert status == 200 and len(objs) == 5, objs
    assert objs[1]["completed"] == objs[1]["total"] == 2000000000, objs[1]


def test_pull_not_streaming():
    status, headers, body = http("POST", url("/api/pull"), {"model": "qwen2.5:3b", "stream": False})
    assert status == 200 and body == b'{"status":"success"}', (status, body)
    assert headers["content-type"] == "application/json; charset=utf-8"
    status, show = http_json("POST", url("/api/show"), {"model": "qwen2.5:3b"})
    assert status == 200 and show["details"]["family"] == "qwen2", show


def test_pull_errors():
    status, headers, body = http("POST", url("/api/pull"), {"model": "no-such-model"})
    assert status == 200 and body == (b'{"status":"pulling manifest"}\n'
                                      b'{"error":"pull model manifest: file does not exist"}\n'), body
    status, _, body = http("POST", url("/api/pull"), {"model": "no-such-model", "stream": False})
    assert status == 500 and body == b'{"error":"pull model manifest: file does not exist"}', body
    status, _, body = http("POST", url("/api/pull"), {"model": "bad name!"})
    assert status == 400 and body == b'{"error":"invalid model name"}', body
    status, _, body = http("POST", url("/api/pull"), {})
    assert status == 400 and body == b'{"error":"invalid model name"}', body
    status, _, body = http("POST", url("/api/pull"), {"model": 3})
    assert status == 400 and b"PullRequest.model of type string" in body, body
    status, _, body = http("POST", url("/api/pull"), raw_body=b"")
    assert status == 400 and b"missing request body" in body, body
    assert "no-such-model:latest" not in tag_names()


def test_pull_client_hangup_leaves_model_absent():
    # The pull takes 0.17 s real: hang up after the first line.
    import socket
    s = socket.create_connection(("127.0.0.1", SIM.port))
    body = json.dumps({"model": "mxbai-embed-large"}).encode()
    s.sendall(b"POST /api/pull HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
              b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    assert b"pulling manifest" in s.recv(4096)
    s.close()
    time.sleep(0.2)
    assert "mxbai-embed-large:latest" not in tag_names()
    assert http("GET", url("/"))[0] == 200


def test_delete_unloads_then_removes():
    status, reply = http_json("POST", url("/api/generate"), {"model": "smollm:360m", "prompt": ""})
    assert status == 200 and reply["done_reason"] == "load", reply
    assert "smollm:360m" in ps_names()
    digest = None
    for m in http_json("GET", url("/api/tags"))[1]["models"]:
        if m["name"] == "smollm:360m":
            digest = m["digest"]
    assert digest is not None
    # Names match case-insensitively, as Ollama's getExistingName.
    status, headers, body = http("DELETE", url("/api/delete"), {"model": "SmolLM:360m"})
    assert status == 200 and body == b"", (status, body)
    assert "smollm:360m" not in tag_names()
    wait_until(lambda: "smollm:360m" not in ps_names(), what="the deleted model unloads")
    status, _, body = http("DELETE", url("/api/delete"), {"model": "smollm:360m"})
    assert status == 404 and body == b"{\"error\":\"model 'smollm:360m' not found\"}", body
    status, _, body = http("DELETE", url("/api/delete"), {"name": "nope"})
    assert status == 404 and body == b"{\"error\":\"model 'nope' not found\"}", body
    status, _, body = http("DELETE", url("/api/delete"), {"model": "bad name"})
    assert status == 400 and body == b'{"error":"name \\"bad name\\" is invalid"}', body
    status, _, body = http("POST", url("/api/generate"), {"model": "smollm:360m", "prompt": "x"})
    assert status == 404, body
    # A catalogue model stays in the simulated registry: it can be pulled again.
    status, _, body = http("POST", url("/api/pull"), {"model": "smollm:360m", "stream": False})
    assert status == 200 and "smollm:360m" in tag_names(), body


def test_copy():
    status, _, body = http("POST", url("/api/copy"), {"source": "phi3:mini", "destination": "me/phi:v1"})
    assert status == 200 and body == b"", (status, body)
    models = {m["name"]: m for m in http_json("GET", url("/api/tags"))[1]["models"]}
    assert "me/phi:v1" in models and "phi3:mini" in models
    assert models["me/phi:v1"]["digest"] == models["phi3:mini"]["digest"]
    assert models["me/phi:v1"]["size"] == models["phi3:mini"]["size"]
    assert tag_names()[0] == "me/phi:v1"  # newest first
    status, reply = http_json("POST", url("/api/generate"),
                              {"model": "me/phi:v1", "prompt": "hi", "stream": False,
                               "options": {"num_predict": 2}})
    assert status == 200 and reply["model"] == "me/phi:v1", reply
    # No tag means :latest.
    assert http("POST", url("/api/copy"), {"source": "me/phi:v1", "destination": "mine"})[0] == 200
    assert "mine:latest" in tag_names()
    status, _, body = http("POST", url("/api/copy"), {"source": "nope", "destination": "x"})
    assert status == 404 and body == b'{"error":"model \\"nope\\" not found"}', body
    status, _, body = http("POST", url("/api/copy"), {"source": "phi3:mini", "destination": "a b"})
    assert status == 400 and body == b'{"error":"destination \\"a b\\" is invalid"}', body
    status, _, body = http("POST", url("/api/copy"), {"source": "", "destination": "x"})
    assert status == 400 and body == b'{"error":"source \\"\\" is invalid"}', body
    # Deleting the copy leaves the source; the shared blob stays.
    blob = None
    status, _, body = http("POST", url("/api/pull"), {"model": "phi3:mini"})
    blob = ndjson(body)[1]["digest"]
    assert http("DELETE", url("/api/delete"), {"model": "me/phi:v1"})[0] == 200
    assert "phi3:mini" in tag_names() and "me/phi:v1" not in tag_names()
    assert http("DELETE", url("/api/delete"), {"model": "phi3:mini"})[0] == 200
    assert http("HEAD", url("/api/blobs/" + blob))[0] == 200  # mine:latest still holds it
    assert http("DELETE", url("/api/delete"), {"model": "mine"})[0] == 200
    assert http("HEAD", url("/api/blobs/" + blob))[0] == 404


def test_head_blob():
    status, _, body = http("HEAD", url("/api/blobs/sha256:" + "0" * 64))
    assert status == 404 and body == b"", status
    assert http("HEAD", url("/api/blobs/sha256:123"))[0] == 400
    assert http("HEAD", url("/api/blobs/md5-" + "0" * 64))[0] == 400
    status, _, body = http("POST", url("/api/pull"), {"model": "tinyllama:1.1b"})
    digest = ndjson(body)[1]["digest"]
    assert http("HEAD", url("/api/blobs/" + digest))[0] == 200
    assert http("HEAD", url("/api/blobs/" + digest.replace(":", "-")))[0] == 200


def test_zz_clean_shutdown():
    SIM.proc.assert_clean_exit()


run_tests(globals())
