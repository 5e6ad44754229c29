"""Webhooks end to end (issue "Hardening", SSRF): targets come only from the
configuration, the API refuses to change them and never shows their credentials, and
a receiver's redirect is never followed.

Three loopback HTTP servers: a receiver configured with Basic-auth credentials and a
query token (answers 503 once, then 200), a bouncer that answers every POST with a 307
to a third server, and that third server, which must never be asked. vramd reads
WEBHOOK_URLS from a config file; GPU 1 of ollama-sim is heated to make a state_change
event.
"""

import base64
import json
import os
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import Proc, http, http_json, run_tests, start_sim, wait_until  # noqa: E402
from vramd_harness import start_vramd, vramd_path  # noqa: E402

SIM = None
V = None
SECRET = "s3cret-pw"
TOKEN = "t0ken-q"


class Recorder:
    """A loopback HTTP server on its own thread that records every request and answers
    with reply(recorder, handler) -> (status, headers)."""

    def __init__(self, reply):
        self.requests = []
        self.lock = threading.Lock()
        rec = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                with rec.lock:
                    rec.requests.append({"path": self.path, "headers": dict(self.headers),
                                         "body": body})
                status, headers = reply(rec, self)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", "0")
                self.send_header("Connection", "close")
                self.end_headers()

            do_GET = do_POST

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def count(self):
        with self.lock:
            return len(self.requests)

    def events(self):
        with self.lock:
            return [json.loads(r["body"]) for r in self.requests if r["body"]]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def receiver_reply(rec, handler):
    return (503, {}) if rec.count() == 1 else (200, {})


TARGET = Recorder(lambda rec, h: (200, {}))
BOUNCER = Recorder(lambda rec, h: (307, {"Location": "http://127.0.0.1:%d/stolen" %
                                         TARGET.port}))
RECEIVER = Recorder(receiver_reply)
BOUNCE_URL = "http://127.0.0.1:%d/bounce" % BOUNCER.port
HOOK_URL = "http://hookuser:%s@127.0.0.1:%d/hook?token=%s" % (SECRET, RECEIVER.port, TOKEN)
HOOK_SHOWN = "http://***@127.0.0.1:%d/hook?***" % RECEIVER.port


def setup_module():
    global SIM, V
    SIM = start_sim("--gpus", "8GiB,8GiB", state_file=True, time_scale=100)
    conf = os.path.join(tempfile.mkdtemp(prefix="vramd-webhooks-"), "vramd.conf")
    with open(conf, "w") as f:
        f.write("# webhooks come from here only\nWEBHOOK_URLS = %s, %s\n" % (BOUNCE_URL,
                                                                            HOOK_URL))
    V = start_vramd(SIM, "--config", conf, "--monitor-interval", "100",
                    env={"VRAMD_WEBHOOK_RETRY_MS": "50", "VRAMD_LOG_LEVEL": "debug"})
    wait_until(lambda: (lambda s: s["gpu_count"] == 2)(http_json(
        "GET", V.url + "/api/gpu/status")[1]), timeout=10, what="both GPUs sampled")


def gpu_config():
    status, body = http_json("GET", V.url + "/api/gpu/config")
    assert status == 200, (status, body)
    return body


def test_config_webhooks_delivered_with_credentials():
    status, _ = http_json("POST", SIM.url + "/sim/gpu/1", json_body={"temperature_c": 70})
    assert status == 200
    try:
        ev = wait_until(lambda: [e for e in RECEIVER.events() if e["type"] == "state_change"
                                 and e["gpu"] == 1 and e["to"] == "NORMAL"],
                        timeout=15, what="webhook delivery to the configured receiver")[0]
        assert ev["from"] == "OPTIMAL" and ev["time"], ev
        first = RECEIVER.requests[0]
        assert first["path"] == "/hook?token=" + TOKEN, first["path"]
        want = "Basic " + base64.b64encode(("hookuser:" + SECRET).encode()).decode()
        assert first["headers"].get("Authorization") == want, first["headers"]
        # The first try got a 503 and was retried (logged at debug, masked).
        assert RECEIVER.count() >= 2
        log = V.proc.log_text()
        assert ("webhook %s answered 503" % HOOK_SHOWN) in log, V.proc.log_tail()
        assert SECRET not in log and TOKEN not in log, V.proc.log_tail()
    finally:
        http_json("POST", SIM.url + "/sim/gpu/1", json_body={"temperature_c": None})


def test_redirect_not_followed():
    # The bouncer is asked again and again (each 307 is a failed delivery, retried with
    # backoff); the address it points to never is.
    wait_until(lambda: BOUNCER.count() >= 3, timeout=15, what="three tries at the bouncer")
    time.sleep(0.5)
    assert all(r["path"] == "/bounce" for r in BOUNCER.requests), BOUNCER.requests
    assert TARGET.count() == 0, TARGET.requests


def test_get_never_shows_credentials():
    c = gpu_config()
    assert c["webhooks"] == [BOUNCE_URL, HOOK_SHOWN], c["webhooks"]
    for path in ("/api/gpu/config", "/api/stats", "/api/health", "/api/gpu/status/all",
                 "/api/gpu/status"):
        status, _, body = http("GET", V.url + path)
        text = body.decode("utf-8", "replace")
        assert status == 200, (path, status, text)
        for secret in (SECRET, TOKEN, "hookuser"):
            assert secret not in text, (path, secret, text)


def test_put_webhooks_refused():
    before = gpu_config()
    cases = [
        {"webhooks": ["http://127.0.0.1:%d/x" % TARGET.port]},
        {"webhooks": []},
        {"webhooks": "not even a list"},
        {"hysteresis_c": 1, "webhooks": ["http://169.254.169.254/latest/meta-data"]},
        {"WEBHOOK_URLS": "http://127.0.0.1:%d/x" % TARGET.port},
        {"vramd_webhook_urls": ""},
    ]
    for body in cases:
        status, reply = http_json("PUT", V.url + "/api/gpu/config", json_body=body)
        assert status == 403, (body, status, reply)
        err = reply.get("error", "")
        assert "set in the configuration" in err and "WEBHOOK_URLS" in err, reply
    assert gpu_config() == before
    # Other keys still change.
    status, reply = http_json("PUT", V.url + "/api/gpu/config", json_body={"hysteresis_c": 2})
    assert status == 200 and reply["hysteresis_c"] == 2 and reply["webhooks"] == before[
        "webhooks"], reply


def test_bad_config_url_stops_start():
    for value, needle in (("ftp://files.example.com/x", "is not an http:// or https:// URL"),
                          ("http://u:%s@/x" % SECRET, "has no host")):
        p = Proc([vramd_path(), "--listen", "127.0.0.1:1", "--data-dir",
                  tempfile.mkdtemp(prefix="vramd-data-"), "--webhook-urls", value],
                 name="vramd-badconf")
        deadline = time.monotonic() + 10
        while p.alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        rc = p.stop()
        log = p.log_text()
        assert rc not in (0, None) and "WEBHOOK_URLS" in log and needle in log, (rc, log)
        assert SECRET not in log, log


def test_clean_exit():
    V.proc.assert_clean_exit()
    SIM.stop()
    for r in (TARGET, BOUNCER, RECEIVER):
        r.close()


if __name__ == "__main__":
    run_tests(globals())
