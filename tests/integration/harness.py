"""Shared helpers for the integration tests (python3, standard library only).

Every tests/integration/test_*.py imports this module, starts the programs it
needs on free ports (ollama-sim, vramd, ...) with Proc or start_sim(), drives them
over HTTP with http()/http_json(), and ends with run_tests(globals()), which runs
every test_* function, prints PASS/FAIL per test, then exactly the line
"N passed, N failed", and exits non-zero if any test failed.

Environment: VRAMD_BUILD_DIR (default /work/main/build) names the build tree,
VRAMD_SOURCE_DIR the source tree (default: two levels above this file).
"""

import http.client as _httpclient
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.parse

_ALL_PROCS = []


def build_dir():
    """The CMake build directory holding the programs under test."""
    return os.environ.get("VRAMD_BUILD_DIR", "/work/main/build")


def source_dir():
    """The repository root."""
    return os.environ.get(
        "VRAMD_SOURCE_DIR",
        os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Proc:
    """A program under test. Its stdout and stderr go to a log file in a
    temporary directory; on a test failure run_tests() prints the tail of the log
    of every Proc still registered."""

    def __init__(self, argv, env=None, name=None, cwd=None):
        self.argv = [str(a) for a in argv]
        self.name = name or os.path.basename(self.argv[0])
        self.tmpdir = tempfile.mkdtemp(prefix="vramd-it-")
        self.log_path = os.path.join(self.tmpdir, self.name + ".log")
        full_env = dict(os.environ)
        if env:
            full_env.update({k: str(v) for k, v in env.items()})
        self._log = open(self.log_path, "wb")
        self.popen = subprocess.Popen(self.argv, env=full_env, cwd=cwd,
                                      stdout=self._log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL)
        self.pid = self.popen.pid
        _ALL_PROCS.append(self)

    def alive(self):
        return self.popen.poll() is None

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_tail(self, lines=40):
        return "\n".join(self.log_text().splitlines()[-lines:])

    def stop(self, timeout=10):
        """SIGTERM, then SIGKILL after timeout seconds. Returns the exit status."""
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self._close()
        return self.popen.returncode

    def assert_clean_exit(self, timeout=10):
        """Stops the program with SIGTERM and asserts it exited 0 with no sanitizer
        report (leaks, UB) in its log."""
        rc = self.stop(timeout)
        text = self.log_text()
        for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
            assert marker not in text, "%s in the log of %s:\n%s" % (marker, self.name,
                                                                       self.log_tail(60))
        assert rc == 0, "%s exited with %s:\n%s" % (self.name, rc, self.log_tail())

    def kill9(self):
        """SIGKILL now (a crash)."""
        if self.alive():
            self.popen.kill()
            self.popen.wait()
        self._close()
        return self.popen.returncode

    def _close(self):
        if not self._log.closed:
            self._log.close()
        if self in _ALL_PROCS:
            _ALL_PROCS.remove(self)


class Sim:
    """A running ollama-sim: .url, .port, .state_file, .proc."""

    def __init__(self, proc, port, state_file):
        self.proc = proc
        self.port = port
        self.url = "http://127.0.0.1:%d" % port
        self.state_file = state_file

    def stop(self):
        return self.proc.stop()

    def state(self):
        status, body = http_json("GET", self.url + "/sim/state")
        assert status == 200, (status, body)
        return body


def sim_path():
    return os.path.join(build_dir(), "sim", "ollama-sim")


def start_sim(*args, state_file=None, time_scale=100, env=None, port=None, ready_timeout=20):
    """Starts ollama-sim on a free port with the given extra arguments and waits
    until it answers. state_file=True picks a temporary path."""
    port = port or free_port()
    argv = [sim_path(), "--listen", "127.0.0.1:%d" % port, "--time-scale", str(time_scale)]
    if state_file is True:
        state_file = os.path.join(tempfile.mkdtemp(prefix="vramd-sim-"), "state")
    if state_file:
        argv += ["--state", state_file]
    argv += [str(a) for a in args]
    proc = Proc(argv, env=env, name="ollama-sim")
    sim = Sim(proc, port, state_file)
    wait_http_ready(sim.url, ready_timeout, proc=proc)
    return sim


def wait_http_ready(url, timeout=20, proc=None):
    """Waits until GET url answers with any HTTP status."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc is not None and not proc.alive():
            raise AssertionError("%s exited with %s before answering:\n%s" %
                                 (proc.name, proc.popen.returncode, proc.log_tail()))
        try:
            http("GET", url, timeout=2)
            return
        except (OSError, _httpclient.HTTPException) as e:
            last = e
            time.sleep(0.05)
    raise AssertionError("%s did not answer within %ss: %s" % (url, timeout, last))


def http(method, url, json_body=None, raw_body=None, headers=None, timeout=30):
    """One HTTP request without any proxy. Returns (status, headers dict with
    lower-case names, body bytes)."""
    u = urllib.parse.urlsplit(url)
    conn = _httpclient.HTTPConnection(u.hostname, u.port or 80, timeout=timeout)
    path = u.path or "/"
    if u.query:
        path += "?" + u.query
    hdrs = dict(headers or {})
    body = raw_body
    if json_body is not None:
        body = json.dumps(json_body).encode()
    if body is not None and not any(k.lower() == "content-type" for k in hdrs):
        hdrs["Content-Type"] = "application/json"
    if isinstance(body, str):
        body = body.encode()
    try:
        conn.request(method, path, body=body, headers=hdrs)
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        conn.close()


def http_json(method, url, json_body=None, raw_body=None, headers=None, timeout=30):
    """Like http() but parses the body as JSON (None when empty). Returns (status, value)."""
    status, _, data = http(method, url, json_body, raw_body, headers, timeout)
    if not data:
        return status, None
    try:
        return status, json.loads(data)
    except ValueError:
        raise AssertionError("not JSON (status %d): %r" % (status, data[:300]))


def ndjson(data):
    """Splits a streamed body into parsed JSON objects, one per line."""
    return [json.loads(line) for line in data.decode().split("\n") if line.strip()]


def wait_until(predicate, timeout=10, interval=0.05, what=None):
    """Polls predicate() until it returns a truthy value, which is returned."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %ss waiting for %s" %
                                 (timeout, what or getattr(predicate, "__name__", "condition")))
        time.sleep(interval)


def run_tests(namespace):
    """Runs every test_* function in namespace (pass globals()) in definition order,
    prints PASS/FAIL lines and the summary, stops leftover processes, and exits."""
    tests = [(k, v) for k, v in namespace.items() if k.startswith("test_") and callable(v)]
    only = os.environ.get("VRAMD_TEST_ONLY")
    passed = failed = 0
    setup = namespace.get("setup_module")
    teardown = namespace.get("teardown_module")
    try:
        if setup:
            try:
                setup()
            except Exception:  # noqa: BLE001
                print("FAIL setup_module")
                traceback.print_exc(file=sys.stdout)
                for p in list(_ALL_PROCS):
                    print("---- tail of %s log (%s) ----" % (p.name, p.log_path))
                    print(p.log_tail())
                failed += 1
                tests = []
        for name, fn in tests:
            if only and only not in name:
                continue
            t0 = time.monotonic()
            try:
                fn()
            except Exception:  # noqa: BLE001 - report every failure kind
                failed += 1
                print("FAIL %s (%.2fs)" % (name, time.monotonic() - t0))
                traceback.print_exc(file=sys.stdout)
                for p in list(_ALL_PROCS):
                    print("---- tail of %s log (%s) ----" % (p.name, p.log_path))
                    print(p.log_tail())
                    print("----")
            else:
                passed += 1
                print("PASS %s (%.2fs)" % (name, time.monotonic() - t0))
            sys.stdout.flush()
    finally:
        if teardown:
            try:
                teardown()
            except Exception:  # noqa: BLE001
                traceback.print_exc(file=sys.stdout)
        for p in list(_ALL_PROCS):
            p.stop()
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)
