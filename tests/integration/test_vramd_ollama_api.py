"""vramd answering as Ollama (issue 10, docs/api.md "Ollama-compatible API"), against
ollama-sim: /, /api/version, /api/tags, /api/ps and /api/show as the node answers them
(the union over two nodes), pull/copy/delete forwarded to the nodes (X-Vramd-Node),
generate and chat shaped exactly as Ollama's, load and unload requests, a client's
keep_alive as a hint, a client that goes away (queued: never runs; mid-stream: the node
request is aborted), load_duration with the queue wait, queue full, the priority
header, OLLAMA_LISTEN, and NORMALIZE_OPTIONS: two clients alternating num_ctx make one
load."""

import http.client as httpclient
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (free_port, http, http_json, ndjson, run_tests, start_sim,  # noqa: E402
                     wait_until)
from vramd_harness import (open_stream, sim_active, start_slow, start_vramd,  # noqa: E402
                           wait_ready)

SLOW_MODEL = "phi3:mini"
# At time scale 0.01 phi3:mini makes about one token a second and answers with 20 to
# 120 tokens unless num_predict says less: LONG runs 20 s or more, SHORT about 1 s.
LONG = {"model": SLOW_MODEL, "prompt": "tell me a long story"}
SHORT = {"model": SLOW_MODEL, "prompt": "hi", "options": {"num_predict": 1}, "stream": False}


def post(url, body, headers=None, timeout=60):
    return http("POST", url, json_body=body, headers=headers, timeout=timeout)


def sim_counters(sim):
    return sim.state()["counters"]


def sim_ps(sim):
    status, body = http_json("GET", sim.url + "/api/ps")
    assert status == 200, (status, body)
    return {m["name"]: m for m in body["models"]}


def job_of(v, headers):
    jid = headers.get("x-vramd-job")
    assert jid, headers
    return v.job(jid)


class Async:
    """A request run in a thread: .result() is (status, headers, body)."""

    def __init__(self, fn, *args, **kwargs):
        self.value = None
        self.error = None
        self.thread = threading.Thread(target=self._run, args=(fn, args, kwargs))
        self.thread.start()

    def _run(self, fn, args, kwargs):
        try:
            self.value = fn(*args, **kwargs)
        except Exception as e:  # noqa: BLE001 - reported by result()
            self.error = e

    def result(self, timeout=120):
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "request still running"
        if self.error:
            raise self.error
        return self.value


def send_and_leave(v, path, body):
    """Sends a request and keeps the connection open without reading; returns it."""
    conn = httpclient.HTTPConnection("127.0.0.1", v.port, timeout=60)
    conn.request("POST", path, body=json.dumps(body),
                 headers={"Content-Type": "application/json"})
    return conn


def jobs_with(v, status):
    """Jobs of that status as the store has them: a front-door job is stored only once
    it is final."""
    code, body = v.get("/api/jobs?status=%s&limit=100" % status)
    assert code == 200, (code, body)
    return body["jobs"]


def queued(v):
    return v.stats()["queue"]["length"]


# --- One node, fast simulated time -------------------------------------------------

SIM = V = None
OLLAMA_PORT = None


def setup_module():
    global SIM, V, OLLAMA_PORT
    SIM = start_sim("--gpus", "24GiB", state_file=True, time_scale=100)
    OLLAMA_PORT = free_port()
    V = start_vramd(SIM, "--ollama-listen", "127.0.0.1:%d" % OLLAMA_PORT)
    wait_ready(V)


def teardown_module():
    if V is not None:
        V.proc.assert_clean_exit()
    if SIM is not None:
        SIM.stop()


def test_root_version_tags_show_as_the_node_answers():
    for method in ("GET", "HEAD"):
        status, headers, body = http(method, V.url + "/")
        assert status == 200 and headers["content-type"].startswith("text/plain"), headers
        assert body == (b"Ollama is running" if method == "GET" else b""), body
    assert http_json("GET", V.url + "/api/version") == http_json("GET", SIM.url + "/api/version")
    # The node's list, object for object and in its order.
    assert http_json("GET", V.url + "/api/tags") == http_json("GET", SIM.url + "/api/tags")
    # show: the node's reply passed through, errors included.
    for body in ({"model": "llama3.2:1b"}, {"model": "nope"}, {"name": "gemma:2b"}, {}):
        got = post(V.url + "/api/show", body)
        want = post(SIM.url + "/api/show", body)
        assert (got[0], got[2]) == (want[0], want[2]), (body, got, want)
    assert post(V.url + "/api/show", {"model": "nope"})[0] == 404


def test_ps_lists_what_the_node_has_loaded():
    status, _, _ = post(V.url + "/api/generate", {"model": "qwen2.5:0.5b", "prompt": "hi",
                                                  "stream": False,
                                                  "options": {"num_predict": 2}})
    assert status == 200
    got = http_json("GET", V.url + "/api/ps")
    want = http_json("GET", SIM.url + "/api/ps")
    assert got == want and got[0] == 200, (got, want)
    assert "qwen2.5:0.5b" in [m["name"] for m in got[1]["models"]], got


def keys_of_lines(body):
    return [list(o.keys()) for o in ndjson(body)]


def test_generate_and_chat_have_ollamas_shapes():
    """Streamed and not, the same keys in the same order as the node's own replies; the
    final object's metrics included (their values differ: vramd adds its queue wait)."""
    cases = [
        ("/api/generate", {"model": "llama3.2:1b", "prompt": "Why is the sky blue?",
                           "options": {"num_predict": 6}}),
        ("/api/chat", {"model": "llama3.2:1b",
                       "messages": [{"role": "user", "content": "hello"}],
                       "options": {"num_predict": 6}}),
        ("/api/embed", {"model": "all-minilm", "input": ["a", "b"]}),
        ("/api/embeddings", {"model": "all-minilm", "prompt": "a"}),
    ]
    for path, body in cases:
        for stream in (True, False):
            b = dict(body, stream=stream)
            got = post(V.url + path, b)
            want = post(SIM.url + path, b)
            assert got[0] == want[0] == 200, (path, got, want)
            if stream and path in ("/api/generate", "/api/chat"):
                assert got[1]["content-type"] == "application/x-ndjson", got[1]
                g, w = keys_of_lines(got[2]), keys_of_lines(want[2])
                assert len(g) == len(w) > 2 and g == w, (path, g, w)
                gl, wl = ndjson(got[2])[-1], ndjson(want[2])[-1]
                assert "load_duration" in gl and gl["done"] is True, gl
                # The text is the node's (deterministic sim), not re-made by vramd.
                field = "response" if path == "/api/generate" else "message"
                assert [o[field] for o in ndjson(got[2])] == [o[field] for o in ndjson(want[2])]
            else:
                g, w = json.loads(got[2]), json.loads(want[2])
                assert list(g.keys()) == list(w.keys()), (path, stream, g.keys(), w.keys())
    # Unknown models: Ollama's words, which differ between its handlers.
    for path, body in (("/api/generate", {"model": "nope", "prompt": "x"}),
                       ("/api/chat", {"model": "nope", "messages": []}),
                       ("/api/embed", {"model": "nope", "input": "x"})):
        got, want = post(V.url + path, body), post(SIM.url + path, body)
        assert got[0] == want[0] == 404 and json.loads(got[2]) == json.loads(want[2]), \
            (path, got, want)


def test_load_and_unload_requests():
    model = "gemma:2b"
    assert model not in sim_ps(SIM)
    status, _, body = post(V.url + "/api/generate", {"model": model})
    assert status == 200, body
    last = ndjson(body)[-1]
    assert last["done"] is True and last["done_reason"] == "load", last
    assert model in sim_ps(SIM)
    status, _, body = post(V.url + "/api/chat", {"model": model, "messages": [],
                                                 "keep_alive": 0})
    assert status == 200, body
    o = json.loads(body)
    assert o["done_reason"] == "unload" and o["message"]["content"] == "", o
    wait_until(lambda: model not in sim_ps(SIM), timeout=20, what="the model unloaded")
    def state():
        return [m["state"] for m in V.get("/api/models")[1]["models"] if m["name"] == model]
    wait_until(lambda: state() == ["unloaded"], timeout=10, what="vramd to see it unloaded")


def test_bad_priority_header_and_keep_alive_are_400():
    status, _, body = post(V.url + "/api/generate", {"model": "qwen2.5:0.5b", "prompt": "x"},
                           headers={"X-Vramd-Priority": "urgent"})
    assert status == 400 and b"X-Vramd-Priority" in body, (status, body)
    status, _, body = post(V.url + "/api/generate", {"model": "qwen2.5:0.5b", "prompt": "x",
                                                     "keep_alive": "soon"})
    assert status == 400 and b"invalid duration" in body, (status, body)
    status, _, body = post(V.url + "/api/generate", {"model": "qwen2.5:0.5b", "prompt": "x",
                                                     "keep_alive": True})
    assert status == 400 and b"Unsupported type" in body, (status, body)


def test_ollama_listen_serves_the_same_api():
    url = "http://127.0.0.1:%d" % OLLAMA_PORT
    status, _, body = http("GET", url + "/")
    assert status == 200 and body == b"Ollama is running"
    status, _, body = post(url + "/api/generate", {"model": "qwen2.5:0.5b", "prompt": "hi",
                                                   "stream": False,
                                                   "options": {"num_predict": 3}})
    assert status == 200 and json.loads(body)["eval_count"] == 3, body
    # The same checks as on LISTEN: a foreign Host is refused.
    status, _, _ = http("GET", url + "/api/tags", headers={"Host": "evil.example"})
    assert status == 403


def test_answered_job_is_recorded_at_once_and_kept():
    # A front-door job's record is committed lazily (within 100 ms of its reply, so the
    # reply does not wait for a disk sync), but it shows at once and survives a restart.
    sim = start_sim("--gpus", "8GiB", state_file=True, time_scale=100)
    v = start_vramd(sim)
    v2 = None
    try:
        wait_ready(v)
        status, headers, body = post(v.url + "/api/generate",
                                     {"model": "qwen2.5:0.5b", "prompt": "hi", "stream": False,
                                      "options": {"num_predict": 2}})
        assert status == 200, body
        jid = headers["x-vramd-job"]
        assert v.job(jid)["status"] == "complete"
        assert jid in {j["job_id"] for j in jobs_with(v, "complete")}
        v.proc.assert_clean_exit()
        v2 = start_vramd(sim, data_dir=v.data_dir)
        assert v2.job(jid)["status"] == "complete"
        v2.proc.assert_clean_exit()
    finally:
        v.stop()
        if v2 is not None:
            v2.stop()
        sim.stop()


# --- Slow simulated time: queueing, disconnects, priorities ----------------------------


def start_blocker(v, sim):
    """A long job of SLOW_MODEL running, so the next ones of that model queue."""
    jid = v.submit_ok(LONG)
    wait_until(lambda: v.job(jid)["status"] == "running", timeout=60, what="blocker running")
    wait_until(lambda: sim_active(sim, SLOW_MODEL) >= 1, timeout=10, what="sim running it")
    return jid


def test_queueing_disconnects_and_priorities():
    sim, v = start_slow("--queue-max-size", "3")
    try:
        # load_duration includes the time the job waited in vramd's queue.
        blocker = start_blocker(v, sim)
        waiting = Async(post, v.url + "/api/generate", SHORT, timeout=120)
        wait_until(lambda: queued(v) == 1, timeout=10, what="queued")
        time.sleep(2)
        assert v.cancel(blocker)[0] == 200
        status, headers, body = waiting.result()
        assert status == 200, body
        final = json.loads(body)
        job = job_of(v, headers)
        wait_ns = job["metrics"]["wait_ms"] * 1000000
        assert job["metrics"]["wait_ms"] >= 2000, job
        assert final["load_duration"] >= wait_ns, (final, job)
        assert final["total_duration"] >= final["load_duration"], final

        # A client that goes away while queued: its job is cancelled and never runs.
        earlier = {j["job_id"] for j in jobs_with(v, "cancelled")}
        blocker = start_blocker(v, sim)
        conn = send_and_leave(v, "/api/generate", SHORT)
        wait_until(lambda: queued(v) == 1, timeout=10, what="queued")
        conn.close()
        gone = wait_until(lambda: [j for j in jobs_with(v, "cancelled")
                                   if j["job_id"] not in earlier], timeout=10,
                          what="the job of the departed client cancelled")
        assert len(gone) == 1 and queued(v) == 0, gone
        assert gone[0]["attempts"] == 0 and gone[0]["started_at"] is None, gone

        # Queue full: Ollama's 503 with Retry-After. The blocker runs (not queued); three
        # more fill QUEUE_MAX_SIZE=3.
        filler = {"model": SLOW_MODEL, "prompt": "hi", "options": {"num_predict": 1},
                  "priority": "low"}
        fillers = [v.submit_ok(filler) for _ in range(3)]
        status, headers, body = post(v.url + "/api/generate", SHORT)
        assert status == 503, (status, body)
        assert json.loads(body)["error"] == ("server busy, please try again.  maximum "
                                             "pending requests exceeded"), body
        assert int(headers["retry-after"]) >= 1, headers
        for jid in fillers:
            assert v.cancel(jid)[0] == 200

        # Priority: a high job queued after a low one runs first; the queue position
        # and the job show in the reply's headers.
        low = Async(post, v.url + "/api/generate", SHORT, headers={"X-Vramd-Priority": "low"})
        wait_until(lambda: queued(v) == 1, timeout=10, what="low queued")
        high = Async(post, v.url + "/api/generate", SHORT,
                     headers={"X-Vramd-Priority": "high"})
        wait_until(lambda: queued(v) == 2, timeout=10, what="high queued")
        assert v.cancel(blocker)[0] == 200
        ls, lh, _ = low.result()
        hs, hh, _ = high.result()
        assert ls == hs == 200
        assert lh["x-vramd-queue-position"] == "1" and hh["x-vramd-queue-position"] == "1", \
            (lh, hh)  # the high job went ahead of the low one at once
        lj, hj = job_of(v, lh), job_of(v, hh)
        assert lj["priority"] == "low" and hj["priority"] == "high", (lj, hj)
        assert hj["started_at"] < lj["started_at"], (hj, lj)

        # A client that goes away mid-stream: the job is cancelled and the node's
        # request aborted (the generation would go on for 20 s or more).
        conn, resp = open_stream(v, "/api/generate", LONG)
        assert resp.status == 200 and resp.getheader("Content-Type") == "application/x-ndjson"
        jid = resp.getheader("X-Vramd-Job")
        first = resp.read(40)
        assert first.startswith(b'{"model":"phi3:mini"'), first
        wait_until(lambda: sim_active(sim, SLOW_MODEL) >= 1, timeout=10, what="generating")
        conn.close()
        wait_until(lambda: v.job(jid)["status"] == "cancelled", timeout=10,
                   what="the streamed job cancelled")
        wait_until(lambda: sim_active(sim, SLOW_MODEL) == 0, timeout=10,
                   what="the node's generation aborted")
        v.proc.assert_clean_exit()
    finally:
        v.stop()
        sim.stop()


# --- NORMALIZE_OPTIONS -------------------------------------------------------------------


def alternate_num_ctx(v, model, rounds=3):
    """Two clients, one asking num_ctx 2048 and one 4096, taking turns."""
    for i in range(rounds):
        for ctx in (2048, 4096):
            status, _, body = post(v.url + "/api/generate", {
                "model": model, "prompt": "hi %d" % i, "stream": False,
                "options": {"num_ctx": ctx, "num_predict": 2}})
            assert status == 200, body


def test_alternating_num_ctx_makes_one_load():
    model = "qwen2.5:0.5b"
    sim = start_sim("--gpus", "24GiB", state_file=True, time_scale=100)
    v = start_vramd(sim)
    try:
        wait_ready(v)
        alternate_num_ctx(v, model)
        assert sim_counters(sim)["loads"] == 1, sim_counters(sim)
        # A job asking more context than the runner has (32768 on a 24 GiB GPU): one
        # reload by vramd, with that context, which later smaller jobs share.
        big = "llama3.2:1b"
        for ctx in (2048, 65536, 4096, 65536, 2048):
            status, _, body = post(v.url + "/api/generate", {
                "model": big, "prompt": "hi", "stream": False,
                "options": {"num_ctx": ctx, "num_predict": 2}})
            assert status == 200, body
        assert sim_counters(sim)["loads"] == 3, sim_counters(sim)
        assert sim_ps(sim)[big]["context_length"] == 65536, sim_ps(sim)
        assert "reloading it with that context" in v.proc.log_text()
        v.proc.assert_clean_exit()
    finally:
        v.stop()
        sim.stop()
    # Without it, every change of num_ctx is a reload.
    sim = start_sim("--gpus", "24GiB", state_file=True, time_scale=100)
    v = start_vramd(sim, "--normalize-options", "false")
    try:
        wait_ready(v)
        alternate_num_ctx(v, model)
        assert sim_counters(sim)["loads"] >= 6, sim_counters(sim)
    finally:
        v.stop()
        sim.stop()


# --- CLIENT_KEEP_ALIVE -------------------------------------------------------------------


def test_client_keep_alive_is_a_capped_hint():
    """MODEL_KEEP_ALIVE=2 s: a client's "6s" keeps the model past 2 s; "1h" is held to
    4 x 2 s; with CLIENT_KEEP_ALIVE=ignore, only the 2 s count."""
    model = "qwen2.5:0.5b"
    sim = start_sim("--gpus", "24GiB", state_file=True, time_scale=100)
    v = start_vramd(sim, "--keep-alive", "2")
    try:
        wait_ready(v)

        def run(keep_alive):
            status, _, body = post(v.url + "/api/generate", {
                "model": model, "prompt": "hi", "stream": False, "keep_alive": keep_alive,
                "options": {"num_predict": 1}})
            assert status == 200, body
            return time.monotonic()

        def unloaded_after(t0, timeout):
            wait_until(lambda: model not in sim_ps(sim), timeout=timeout, interval=0.1,
                       what="the model unloaded")
            return time.monotonic() - t0

        t0 = run("6s")
        time.sleep(4)
        assert model in sim_ps(sim), "unloaded before the client's keep_alive ran out"
        assert unloaded_after(t0, 10) < 9
        t0 = run("1h")
        time.sleep(5)
        assert model in sim_ps(sim)
        assert unloaded_after(t0, 10) < 11  # 8 s, not an hour
        status, body = http_json("PUT", v.url + "/api/gpu/config",
                                 json_body={"client_keep_alive": "ignore"})
        assert status == 200, body
        t0 = run("6s")
        assert unloaded_after(t0, 10) < 5
    finally:
        v.stop()
        sim.stop()


# --- Two nodes: the union, and what is forwarded where -----------------------------------


def tag_names(url):
    status, body = http_json("GET", url + "/api/tags")
    assert status == 200, body
    return [m["name"] for m in body["models"]]


def test_two_nodes_tags_pull_copy_delete():
    a = start_sim("--gpus", "8GiB", time_scale=100)
    b = start_sim("--gpus", "8GiB", time_scale=100)
    v = start_vramd(None, "--ollama", a.url, "--ollama", b.url, "--gpu-source", "none")
    try:
        wait_until(lambda: len(tag_names(v.url)) == 10, timeout=20, what="both nodes' tags")
        # A model only b has joins the union once.
        assert post(b.url + "/api/pull", {"model": "llama3.2:3b", "stream": False})[0] == 200
        names = tag_names(v.url)
        assert len(names) == 11 and names.count("llama3.2:3b") == 1, names

        # X-Vramd-Node: one node only.
        status, _, body = post(v.url + "/api/pull", {"model": "qwen2.5:3b", "stream": False},
                               headers={"X-Vramd-Node": "node0"})
        assert status == 200 and json.loads(body) == {"status": "success"}, body
        assert "qwen2.5:3b" in tag_names(a.url) and "qwen2.5:3b" not in tag_names(b.url)
        status, _, body = post(v.url + "/api/pull", {"model": "x"},
                               headers={"X-Vramd-Node": "node9"})
        assert status == 400 and b"node9" in body, body

        # Without it, every node, one after the other; one "success", at the end.
        status, headers, body = post(v.url + "/api/pull", {"model": "mxbai-embed-large"})
        assert status == 200 and headers["content-type"] == "application/x-ndjson", headers
        lines = ndjson(body)
        statuses = [o.get("status") for o in lines]
        assert statuses.count("pulling manifest") == 2, statuses
        assert statuses.count("success") == 1 and statuses[-1] == "success", statuses
        for sim in (a, b):
            assert "mxbai-embed-large:latest" in tag_names(sim.url)
        # The registry knows it as soon as the pull answered: it runs at once.
        status, _, body = post(v.url + "/api/embed", {"model": "mxbai-embed-large",
                                                      "input": "x"})
        assert status == 200, body

        # copy goes to the nodes that have the source, delete to those that have the model.
        status, _, body = post(v.url + "/api/copy", {"source": "llama3.2:3b",
                                                     "destination": "mine/l:v1"})
        assert status == 200, body
        assert "mine/l:v1" in tag_names(b.url) and "mine/l:v1" not in tag_names(a.url)
        status, _, body = http("DELETE", v.url + "/api/delete",
                               json_body={"model": "mxbai-embed-large"})
        assert status == 200, body
        for sim in (a, b):
            assert "mxbai-embed-large:latest" not in tag_names(sim.url)
        # No node has it: the first node says so, in Ollama's words.
        status, _, body = http("DELETE", v.url + "/api/delete", json_body={"model": "nope"})
        assert status == 404 and json.loads(body) == {"error": "model 'nope' not found"}, body
        # A failing pull stops there, with the node's error.
        status, _, body = post(v.url + "/api/pull", {"model": "no-such-model", "stream": False})
        assert status == 500, body
        assert json.loads(body)["error"] == "pull model manifest: file does not exist", body

        # A node gone is left out of the union; none left: 503.
        b.stop()
        names = tag_names(v.url)
        assert "mine/l:v1" not in names and len(names) == 11, names
        a.stop()
        wait_until(lambda: http_json("GET", v.url + "/api/tags")[0] == 503, timeout=20,
                   what="503 with no node")
        wait_until(lambda: http_json("GET", v.url + "/api/version")[0] == 503, timeout=20,
                   what="no version once the monitor saw the nodes go")
        assert http_json("GET", v.url + "/api/ps")[0] == 503
        v.proc.assert_clean_exit()
    finally:
        v.stop()
        a.stop()
        b.stop()


if __name__ == "__main__":
    run_tests(globals())
