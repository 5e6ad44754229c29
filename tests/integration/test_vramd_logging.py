"""Where vramd's log goes and in what shape (issue 13): LOG_FORMAT=json writes one JSON
object per line; a vramd whose stderr goes nowhere (/dev/null, as when started in the
background) logs to DATA_DIR/vramd.log instead of losing its log; LOG_FILE=- keeps
stderr."""

import json
import os
import shutil
import subprocess
import tempfile

from harness import build_dir, free_port, run_tests, wait_http_ready, wait_until


def start(data_dir, stderr, *args):
    port = free_port()
    argv = [os.path.join(build_dir(), "src", "vramd"), "--listen", "127.0.0.1:%d" % port,
            "--data-dir", data_dir, "--gpu-source", "none",
            "--ollama", "http://127.0.0.1:%d" % free_port()] + list(args)
    env = dict(os.environ)
    env.pop("VRAMD_LOG_FILE", None)
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=stderr, env=env)
    try:
        wait_http_ready("http://127.0.0.1:%d/api/health" % port, timeout=20)
    except Exception:
        proc.kill()
        proc.wait()
        raise
    return proc


def stop(proc):
    proc.terminate()
    assert proc.wait(timeout=20) == 0


def test_stderr_to_dev_null_logs_to_the_data_dir_as_json():
    tmp = tempfile.mkdtemp(prefix="vramd-log-")
    try:
        data = os.path.join(tmp, "data")
        proc = start(data, subprocess.DEVNULL, "--log-format", "json")
        stop(proc)
        path = os.path.join(data, "vramd.log")
        assert os.path.exists(path), os.listdir(data)
        lines = open(path).read().splitlines()
        assert len(lines) >= 3, lines
        records = [json.loads(line) for line in lines]  # every line is one JSON object
        for r in records:
            assert set(r) == {"time", "level", "component", "msg"}, r
            assert r["time"].endswith("Z") and len(r["time"]) == 24, r
        assert any(r["component"] == "SYSTEM" and r["msg"].startswith("vramd ") and
                   "starting" in r["msg"] for r in records), records[:3]
        assert records[-1]["msg"] == "vramd stopped", records[-1]
        assert os.stat(path).st_mode & 0o077 == 0  # client text: owner only
    finally:
        shutil.rmtree(tmp)


def test_stderr_kept_when_it_goes_somewhere_and_with_dash():
    tmp = tempfile.mkdtemp(prefix="vramd-log-")
    try:
        for args in ([], ["--log-file", "-"]):
            data = os.path.join(tmp, "data%d" % len(args))
            with open(os.path.join(tmp, "stderr%d" % len(args)), "w+") as err:
                proc = start(data, err, *args)
                stop(proc)
                err.seek(0)
                text = err.read()
            assert "[SYSTEM] vramd " in text and "starting" in text, text[-2000:]
            assert not os.path.exists(os.path.join(data, "vramd.log"))
        # And /dev/null with LOG_FILE=-: the operator asked for stderr, so no file.
        data = os.path.join(tmp, "data-dash-null")
        stop(start(data, subprocess.DEVNULL, "--log-file", "-"))
        assert not os.path.exists(os.path.join(data, "vramd.log"))
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    run_tests(globals())
