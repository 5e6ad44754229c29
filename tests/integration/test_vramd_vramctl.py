"""vramctl driving the real vramd in front of ollama-sim: submit --wait, job,
jobs, stats, models, health, cancel, bench --batch and bench --random 20, with
tables by default and --json output that parses."""

import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import run_tests, start_sim  # noqa: E402
from vramd_harness import MODELS, start_vramd, vramctl_path, wait_ready  # noqa: E402

SIM = V = None


def setup_module():
    global SIM, V
    SIM = start_sim("--gpus", "8GiB", state_file=True, time_scale=200)
    V = start_vramd(SIM)
    wait_ready(V)


def teardown_module():
    V.proc.assert_clean_exit()
    SIM.stop()


def ctl(*args, ok=True, timeout=120):
    p = subprocess.run([vramctl_path(), "--url", V.url] + [str(a) for a in args],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout,
                       stdin=subprocess.DEVNULL)
    out, err = p.stdout.decode(), p.stderr.decode()
    if ok is True:
        assert p.returncode == 0, (args, p.returncode, out, err)
    elif ok is not None:
        assert p.returncode == ok, (args, p.returncode, out, err)
    return p.returncode, out, err


def ctl_json(*args, **kw):
    rc, out, err = ctl("--json", *args, **kw)
    try:
        return json.loads(out)
    except ValueError:
        raise AssertionError("not JSON from vramctl %s: %r %r" % (args, out[:300], err[:300]))


def test_submit_wait_and_job():
    _, out, _ = ctl("submit", "-m", "qwen2.5:0.5b", "-p", "Why is the sky blue?", "--wait=60")
    assert out.strip(), "no result text"
    job = ctl_json("submit", "-m", "llama3.2:1b", "--messages-json",
                   '[{"role":"user","content":"Hello"}]', "-P", "high", "--wait=60")
    assert job["status"] == "complete" and job["priority"] == "high", job
    assert isinstance(job["result"]["message"]["content"], str), job
    _, out, _ = ctl("submit", "-m", "all-minilm:latest", "-i", "a", "-i", "b", "--wait=60")
    assert "2 embeddings" in out, out
    reply = ctl_json("submit", "-m", "gemma:2b", "-p", "hi")
    jid = reply["job_id"]
    job = ctl_json("job", jid, "--wait", "60")
    assert job["job_id"] == jid and job["status"] == "complete", job
    _, out, _ = ctl("job", jid)
    assert jid in out and "complete" in out, out
    rc, _, err = ctl("submit", "-m", "llama9:70b", "-p", "hi", ok=1)
    assert "llama9:70b" in err, err


def test_jobs_stats_models_health():
    jobs = ctl_json("jobs", "--limit", "3")
    assert jobs["count"] == len(jobs["jobs"]) <= 3 and jobs["count"] >= 1, jobs
    _, out, _ = ctl("jobs", "--status", "complete")
    assert "complete" in out and "j-" in out, out
    stats = ctl_json("stats")
    assert stats["jobs"]["by_status"]["complete"] >= 4, stats
    _, out, _ = ctl("stats")
    assert "PRIORITY" in out, out
    models = ctl_json("models")
    names = {m["name"] for m in models["models"]}
    assert set(MODELS) <= names, names
    _, out, _ = ctl("models")
    assert "phi3:mini" in out, out
    health = ctl_json("health")
    assert health["status"] == "ok", health
    _, out, _ = ctl("health")
    assert "ok" in out and SIM.url in out, out


def test_cancel():
    # A job cancelled right after its submission; it may already have run, and
    # then vramctl reports the 409 and exits 1.
    reply = ctl_json("submit", "-m", "phi3:mini", "-p", "hi", "-P", "low")
    rc, out, err = ctl("cancel", reply["job_id"], ok=None)
    job = V.job(reply["job_id"])
    if rc == 0:
        assert "cancelled" in out and job["status"] == "cancelled", (out, job)
    else:
        assert rc == 1 and "already" in err, (rc, out, err)
    rc, out, err = ctl("cancel", reply["job_id"], ok=1)
    assert "already" in err, err
    rc, out, err = ctl("cancel", "j-00000000000fffff", ok=1)
    assert "not found" in err, err


def test_bench_batch_and_random():
    _, out, _ = ctl("bench", "--batch")
    assert "all" in out and "PRIORITY" in out, out
    summary = ctl_json("bench", "--batch")
    assert summary["submitted"] == 4, summary
    summary = ctl_json("bench", "--random", "20", "--seed", "7")
    assert summary["submitted"] == 20 and summary.get("rejected", 0) == 0, summary
    assert len(summary["job_ids"]) == 20, summary
    for jid in summary["job_ids"]:
        assert V.job(jid)["status"] == "complete", V.job(jid)
    assert SIM.state()["counters"]["oom_failures"] == 0


if __name__ == "__main__":
    run_tests(globals())
