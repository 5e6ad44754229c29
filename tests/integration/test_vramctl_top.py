"""vramctl top against the real vramd in front of a slow ollama-sim (start_slow: phi3:mini
makes about one token a second and runs one job at a time), with one job running and two
queued behind it: the plain one-shot output when stdout is not a terminal, and the
full-screen view under tmux, read with `tmux capture-pane -p`: the GPU lines, the loaded
model, the running and queued jobs, the keys (s sort, h help, q quit with status 0), and a
redraw after the window is resized. Debian's tmux is installed as root when missing;
without root and without tmux the test is skipped (exit 77)."""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import http_json, run_tests, wait_until  # noqa: E402
from vramd_harness import start_slow, vramctl_path  # noqa: E402

MODEL = "phi3:mini"
SIM = V = None
RUNNING = None
QUEUED = []
TMUX = ["tmux", "-L", "vramctl-top-%d" % os.getpid()]


def ensure_tmux():
    """True when tmux is there, installing Debian's package as root."""
    if shutil.which("tmux"):
        return True
    if os.geteuid() != 0:
        print("SKIP: Debian's tmux package is missing and this test is not root; "
              "install it with: sudo apt-get install -y tmux")
        return False
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends",
               "-o", "DPkg::Lock::Timeout=600", "tmux"]
    print("installing Debian's tmux package")
    if subprocess.run(install, env=env, timeout=900).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], env=env, timeout=900, check=True)
        subprocess.run(install, env=env, timeout=900, check=True)
    return shutil.which("tmux") is not None


def body(n):
    return {"model": MODEL, "prompt": "hi", "options": {"num_predict": n}}


def setup_module():
    global SIM, V, RUNNING
    SIM, V = start_slow("--monitor-interval", "100")
    # About 600 s of tokens: it runs for the whole test and the others queue behind it.
    RUNNING = V.submit_ok(body(600))
    wait_until(lambda: V.job(RUNNING)["status"] == "running", timeout=60,
               what="first job running")
    QUEUED.append(V.submit_ok(dict(body(5), priority="high")))
    QUEUED.append(V.submit_ok(dict(body(5), priority="low")))


def teardown_module():
    subprocess.run(TMUX + ["kill-server"], capture_output=True)
    _, reply = V.get("/api/jobs?status=queued,pending,running")
    for job in reply.get("jobs", []):
        V.cancel(job["job_id"])
    V.proc.assert_clean_exit()
    SIM.stop()


def check_screen(text):
    """The parts every view must show, with the jobs of setup_module."""
    assert "GPUS (telemetry: nvml)" in text, text
    gpu_lines = [ln for ln in text.splitlines() if ln.startswith("  0  ")]
    assert gpu_lines, "no line for GPU 0:\n" + text
    assert "[" in gpu_lines[0] and "#" in gpu_lines[0] and " C " in gpu_lines[0], gpu_lines
    assert "models " in text and "other " in text and "free " in text, text
    assert "MODELS loaded (1)" in text and MODEL in text, text
    assert "RUNNING (1)" in text and RUNNING in text, text
    assert "QUEUE (2)  high 1  normal 0  low 1" in text, text
    for jid in QUEUED:
        assert jid in text, (jid, text)
    # The high-priority job is listed before the low one.
    assert text.index(QUEUED[0]) < text.index(QUEUED[1]), text


def test_plain_output_when_not_a_terminal():
    p = subprocess.run([vramctl_path(), "--url", V.url, "top"], capture_output=True,
                       text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
    assert "\033" not in p.stdout, "escape codes in plain output: %r" % p.stdout[:200]
    check_screen(p.stdout)
    assert "EVENTS (live only: none in one-shot output)" in p.stdout, p.stdout
    assert max(len(ln) for ln in p.stdout.splitlines()) <= 120, p.stdout
    # --once and a narrow $COLUMNS: every line is cut to it.
    p = subprocess.run([vramctl_path(), "--url", V.url, "top", "--once"], capture_output=True,
                       text=True, timeout=60, env=dict(os.environ, COLUMNS="60"))
    assert p.returncode == 0, (p.returncode, p.stderr)
    assert max(len(ln) for ln in p.stdout.splitlines()) <= 60, p.stdout


def test_unreachable_and_usage():
    p = subprocess.run([vramctl_path(), "--url", "http://127.0.0.1:1", "top", "--once"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 3 and "cannot reach vramd" in p.stderr, (p.returncode, p.stderr)
    p = subprocess.run([vramctl_path(), "top", "-d", "0"], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 2 and "--interval" in p.stderr, (p.returncode, p.stderr)


def capture():
    return subprocess.run(TMUX + ["capture-pane", "-p", "-t", "top"], capture_output=True,
                          text=True, timeout=10).stdout


def wait_screen(predicate, what, timeout=20):
    last = [""]

    def ok():
        last[0] = capture()
        return predicate(last[0])
    try:
        wait_until(ok, timeout=timeout, interval=0.2, what=what)
    except AssertionError:
        raise AssertionError("%s; the screen was:\n%s" % (what, last[0]))
    return last[0]


def test_full_screen_under_tmux():
    rc_file = os.path.join(tempfile.mkdtemp(prefix="vramctl-top-"), "rc")
    cmd = "%s --url %s top -d 0.5; echo $? > %s; sleep 60" % (vramctl_path(), V.url, rc_file)
    subprocess.run(TMUX + ["new-session", "-d", "-s", "top", "-x", "150", "-y", "50", cmd],
                   check=True, timeout=10, env=dict(os.environ, TERM="xterm-256color"))
    screen = wait_screen(lambda s: "RUNNING (1)" in s and "QUEUE (2)" in s,
                         "top did not show the jobs")
    check_screen(screen)
    assert "sort: name  node: all" in screen and "(h help, q quit)" in screen, screen
    assert "none since start" in screen, screen

    # A live event reaches the screen: the GPU warms past OPTIMAL (65 C), then cools.
    status, reply = http_json("POST", SIM.url + "/sim/gpu/0", json_body={"temperature_c": 70})
    assert status == 200, (status, reply)
    screen = wait_screen(lambda s: "state_change" in s and "OPTIMAL -> NORMAL" in s,
                         "the state_change event did not show")
    assert any(" 70 C " in ln for ln in screen.splitlines()), screen
    http_json("POST", SIM.url + "/sim/gpu/0", json_body={"temperature_c": 35})

    subprocess.run(TMUX + ["send-keys", "-t", "top", "s"], check=True, timeout=10)
    wait_screen(lambda s: "sort: memory" in s, "s did not change the sort")
    subprocess.run(TMUX + ["send-keys", "-t", "top", "n"], check=True, timeout=10)
    wait_screen(lambda s: "node: node0" in s or "node: " in s and "node: all" not in s,
                "n did not change the node filter")
    subprocess.run(TMUX + ["send-keys", "-t", "top", "h"], check=True, timeout=10)
    wait_screen(lambda s: "Keys:" in s and "cycle the sort" in s, "h did not show the help")
    subprocess.run(TMUX + ["send-keys", "-t", "top", "h"], check=True, timeout=10)
    wait_screen(lambda s: "GPUS" in s and "Keys:" not in s, "h did not hide the help")

    # A narrower window: top redraws to fit it (KEY_RESIZE).
    subprocess.run(TMUX + ["resize-window", "-t", "top", "-x", "90", "-y", "40"],
                   check=True, timeout=10)
    # tmux cuts an old, wider screen too; only a redraw for 90 columns shows the bar's
    # end and the used/total figures on the GPU line.
    screen = wait_screen(lambda s: "GPUS" in s and "RUNNING (1)" in s and
                         any(ln.startswith("  0  ") and "] " in ln and "GiB/" in ln
                             for ln in s.splitlines()),
                         "top did not redraw for 90 columns")

    subprocess.run(TMUX + ["send-keys", "-t", "top", "q"], check=True, timeout=10)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not (
            os.path.exists(rc_file) and open(rc_file).read().strip()):
        time.sleep(0.1)
    assert os.path.exists(rc_file), "top did not exit after q:\n" + capture()
    assert open(rc_file).read().strip() == "0", open(rc_file).read()
    print(screen)


def test_submit_wait_progress():
    """submit --wait shows a progress line on a terminal (stderr) and nothing on a pipe."""
    # Behind the running job it stays queued; --wait=3 gives up (status 1) after 3 s.
    p = subprocess.run([vramctl_path(), "--url", V.url, "submit", "-m", MODEL, "-p", "hi",
                        "--wait=3"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and "is still queued after 3 s" in p.stderr, (p.returncode,
                                                                          p.stderr)
    assert "\r" not in p.stderr and "[" not in p.stderr and "position" not in p.stderr, \
        p.stderr

    out_file = os.path.join(tempfile.mkdtemp(prefix="vramctl-progress-"), "out")
    cmd = "%s --url %s submit -m %s -p hi --wait=8 > %s; sleep 60" % (
        vramctl_path(), V.url, MODEL, out_file)
    subprocess.run(TMUX + ["new-session", "-d", "-s", "wait", "-x", "120", "-y", "10", cmd],
                   check=True, timeout=10)
    last = [""]

    def shown():
        last[0] = subprocess.run(TMUX + ["capture-pane", "-p", "-t", "wait"],
                                 capture_output=True, text=True, timeout=10).stdout
        return "queued, position" in last[0]
    try:
        wait_until(shown, timeout=20, interval=0.2, what="the progress line")
    except AssertionError:
        raise AssertionError("no progress line; the screen was:\n" + last[0])
    line = [ln for ln in last[0].splitlines() if "queued, position" in ln][0]
    assert line.startswith("[") and "] j-" in line and ", eta " in line, line
    # It gives up after 8 s and clears its line: only the error stays.
    wait_until(lambda: "is still queued after 8 s" in subprocess.run(
        TMUX + ["capture-pane", "-p", "-t", "wait"], capture_output=True, text=True,
        timeout=10).stdout, timeout=30, what="submit --wait=8 to give up")
    screen = subprocess.run(TMUX + ["capture-pane", "-p", "-t", "wait"], capture_output=True,
                            text=True, timeout=10).stdout
    assert "queued, position" not in screen, screen
    print(line)


def test_bench_progress():
    """bench keeps a progress line (jobs done of all, the job waited on) on a terminal only."""
    args = [vramctl_path(), "--url", V.url, "bench", "--random", "3", "--models",
            "qwen2.5:0.5b", "--seed", "1", "--timeout", "4"]
    p = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert "submitted 3 jobs" in p.stdout, (p.returncode, p.stdout, p.stderr)
    assert "\r" not in p.stderr and "\033[K" not in p.stderr, p.stderr

    cmd = " ".join(args) + "; sleep 60"
    subprocess.run(TMUX + ["new-session", "-d", "-s", "bench", "-x", "120", "-y", "20", cmd],
                   check=True, timeout=10)
    last = [""]

    def shown():
        last[0] = subprocess.run(TMUX + ["capture-pane", "-p", "-t", "bench"],
                                 capture_output=True, text=True, timeout=10).stdout
        return re.search(r"^\[[#.]{20}\] [0-3]/3 j-", last[0], re.M) is not None
    try:
        wait_until(shown, timeout=20, interval=0.1, what="the bench progress line")
    except AssertionError:
        raise AssertionError("no bench progress line; the screen was:\n" + last[0])
    print(re.search(r"^\[.*$", last[0], re.M).group(0))


if __name__ == "__main__":
    if not ensure_tmux():
        sys.exit(77)
    run_tests(globals())
