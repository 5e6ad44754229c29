"""vramctl driving the real vramd in front of ollama-sim: submit --wait, job,
jobs, stats, models, health, cancel, bench --batch and bench --random 20, the model
operations (load, unload, force-gpu, force-cpu, placement) and the node views
(vram-report, lb-stats, nodes), with tables by default and --json output that parses."""

import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import http_json, run_tests, start_sim  # noqa: E402
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
    # Per priority, every status and the total, adding up to the totals by status.
    by_priority = stats["jobs"]["by_priority"]
    for status, n in stats["jobs"]["by_status"].items():
        if status != "queued":
            assert sum(row[status] for row in by_priority.values()) == n, stats
    assert sum(row["total"] for row in by_priority.values()) == stats["jobs"]["total"], stats
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


def table_rows(text):
    """Splits printed tables into rows of cells (runs of 2+ spaces separate cells)."""
    import re
    return [re.split(r"\s{2,}", line.strip()) for line in text.splitlines() if line.strip()]


def kv_lines(text):
    """The "key: value" lines of a model operation's output, as a dict."""
    return {k.strip(): v.strip() for k, v in
            (line.split(":", 1) for line in text.splitlines() if ":" in line)}


def report_models(out):
    """vramctl vram-report's model table as {model: {column: cell}}."""
    rows = table_rows(out)
    header = next((r for r in rows if r[0] == "MODEL"), None)
    if header is None:
        return {}
    return {r[0]: dict(zip(header, r)) for r in rows[rows.index(header) + 1:]}


def sim_ps():
    """What ollama-sim's /api/ps lists: {name: model}."""
    status, body = http_json("GET", SIM.url + "/api/ps")
    assert status == 200, (status, body)
    return {m["name"]: m for m in body["models"]}


def test_model_operations_and_node_views():
    model = "qwen2.5:0.5b"
    _, out, _ = ctl("load", model, "--gpu", "0")
    kv = kv_lines(out)
    assert kv["model"] == model and kv["node"] == ctl_json("nodes")["nodes"][0]["node"], kv
    assert kv["state"] == "loaded" and kv["location"] == "gpu 0", kv
    ps = sim_ps()
    assert model in ps and ps[model]["size_vram"] == ps[model]["size"] > 0, ps

    _, out, _ = ctl("vram-report")
    assert ("(" + SIM.url + ")") in out, out
    gpu_rows = [r for r in table_rows(out) if r[0] == "0"]
    assert gpu_rows and "simulated" in gpu_rows[0][1], out
    row = report_models(out)[model]
    assert row["STATE"] == "loaded" and row["LOCATION"] == "gpu 0", row
    assert row["VRAM"] == row["SIZE"] != "0 B", row
    report = ctl_json("vram-report")
    node = report["nodes"][0]
    assert node["url"] == SIM.url and node["gpus"][0]["total_bytes"] == 8 << 30, report
    assert [m["location"] for m in node["models"] if m["model"] == model] == ["gpu"], report

    op = ctl_json("force-cpu", model)
    assert op["done"] is True and op["location"] == "cpu", op
    assert op["placement"] == "cpu" and op["size_vram_bytes"] == 0, op
    _, out, _ = ctl("vram-report")
    row = report_models(out)[model]
    assert row["LOCATION"] == "cpu" and row["VRAM"] == "0 B" and row["PLACEMENT"] == "cpu"
    ps = sim_ps()
    assert ps[model]["size_vram"] == 0, ps

    _, out, _ = ctl("force-gpu", model)
    kv = kv_lines(out)
    assert kv["location"] == "gpu 0" and kv["placement"] == "gpu", kv
    _, out, _ = ctl("placement", model, "auto")
    assert kv_lines(out)["placement"] == "auto", out

    _, out, _ = ctl("nodes")
    rows = table_rows(out)
    assert rows[0] == ["NODE", "URL", "STATE", "VERSION", "GPUS", "VRAM", "MODELS"], rows
    assert rows[1][1:6] == [SIM.url, "up", "0.33.0", "1", "8.00 GiB"], rows
    assert model in rows[1][6].split(","), rows
    nodes = ctl_json("nodes")
    assert model in nodes["nodes"][0]["models"], nodes

    _, out, _ = ctl("unload", model)
    kv = kv_lines(out)
    assert kv["state"] == "unloaded" and kv["location"] == "-", kv
    assert model not in report_models(ctl("vram-report")[1]), "still reported after unload"
    assert model not in sim_ps()

    # lb-stats agrees with its own --json and counts a job run through vramd.
    before = ctl_json("lb-stats")["nodes"][0]
    ctl("submit", "-m", "gemma:2b", "-p", "hi", "--wait=60")
    stats = ctl_json("lb-stats")["nodes"][0]
    assert stats["requests"] == before["requests"] + 1, (before, stats)
    assert stats["completed"] == before["completed"] + 1, (before, stats)
    _, out, _ = ctl("lb-stats")
    rows = table_rows(out)
    assert rows[0][:4] == ["NODE", "REQUESTS", "COMPLETED", "FAILURES"], rows
    assert rows[1][:4] == [stats["node"], str(stats["requests"]), str(stats["completed"]),
                           str(stats["failures"])], (rows, stats)
    assert rows[1][4] == "%.1f" % stats["mean_latency_ms"], (rows, stats)
    assert rows[1][7] == "closed", rows


def test_model_operation_errors_print_vramds_message():
    status, body = http_json("POST", V.url + "/api/models/load", {"model": "llama9:70b"})
    assert status == 404, (status, body)
    for args in (("load", "llama9:70b"), ("force-gpu", "llama9:70b"),
                 ("placement", "llama9:70b", "cpu"), ("unload", "llama9:70b")):
        rc, out, err = ctl(*args, ok=1)
        assert err.strip() == "vramctl: " + body["error"], (args, err, body)
        assert out == "", (args, out)
    rc, _, err = ctl("force-cpu", "qwen2.5:0.5b", "--node", "elsewhere", ok=1)
    assert "node 'elsewhere' not found" in err, err
    rc, _, err = ctl("load", "qwen2.5:0.5b", "--gpu", "7", ok=1)
    assert "GPU 7 not found" in err, err


if __name__ == "__main__":
    run_tests(globals())
