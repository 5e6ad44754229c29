"""GET /metrics against a real Prometheus (Debian's `prometheus` package, installed here
when missing and running as root; skipped, exit 77, when not root and absent).

vramd runs in front of ollama-sim with two simulated GPUs; Prometheus scrapes it every
second with the alert rules of docs/vramd-alerts.yml loaded. After a known set of jobs,
Prometheus's HTTP API (/api/v1/query) must report the GPU memory, a GPU's temperature
and state, the job counters and the HTTP request counter with the values the test
caused. Also: the exposition passes a parser check (HELP and TYPE before every family's
samples, cumulative buckets, +Inf == _count) and `promtool check metrics`; the alert
rules pass `promtool check rules` and their unit test, and evaluate without error in
Prometheus; every query of the Grafana dashboard (docs/grafana-vramd.json) runs, and
those of the GPU, job and load panels return data; /metrics needs no key with
API_KEYS_FILE unless METRICS_REQUIRE_KEY."""

import json
import math
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Proc, free_port, http, http_json, run_tests, source_dir,  # noqa: E402
                     start_sim, wait_http_ready, wait_until)
from vramd_harness import start_vramd, wait_ready  # noqa: E402

GIB = 1 << 30
SIM = V = PROM = None
PROM_URL = None
PROMTOOL = None
# The jobs the test runs: (model, priority) -> how many.
JOBS = {("qwen2.5:0.5b", "high"): 3, ("qwen2.5:0.5b", "normal"): 4,
        ("smollm:360m", "normal"): 2, ("smollm:360m", "low"): 1}
HOT_C = 91  # above TEMP_CRITICAL_C (85) and the simulated card's slowdown (87)


def ensure_prometheus():
    """True when the prometheus binary is there, installing Debian's package as root."""
    if shutil.which("prometheus"):
        return True
    if os.geteuid() != 0:
        print("SKIP: Debian's prometheus package is missing and this test is not root; "
              "install it with: sudo apt-get install -y prometheus")
        return False
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends",
               "-o", "DPkg::Lock::Timeout=600", "prometheus"]
    print("installing Debian's prometheus package")
    if subprocess.run(install, env=env, timeout=900).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], env=env, timeout=900, check=True)
        subprocess.run(install, env=env, timeout=900, check=True)
    return shutil.which("prometheus") is not None


def docs(name):
    return os.path.join(source_dir(), "docs", name)


def query(expr):
    """Prometheus's instant query: a list of (labels, value)."""
    url = PROM_URL + "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    status, body = http_json("GET", url)
    assert status == 200 and body.get("status") == "success", (expr, status, body)
    assert body["data"]["resultType"] == "vector", (expr, body)
    return [(r["metric"], float(r["value"][1])) for r in body["data"]["result"]]


def wait_value(expr, expected, timeout=30):
    """Waits until expr has exactly one sample whose value is expected (the next
    scrapes bring it); returns its labels."""
    last = []

    def ok():
        nonlocal last
        last = query(expr)
        return len(last) == 1 and last[0][1] == expected
    try:
        wait_until(ok, timeout=timeout, interval=0.25, what=expr)
    except AssertionError:
        raise AssertionError("%s: expected %r, Prometheus has %r" % (expr, expected, last))
    return last[0][0]


def setup_module():
    global SIM, V, PROM, PROM_URL, PROMTOOL
    SIM = start_sim("--gpus", "8GiB,8GiB", "--load-bw", "1000GB", "--start-cost", "1ms",
                    state_file=True, time_scale=100)
    V = start_vramd(SIM)
    wait_ready(V)
    PROMTOOL = shutil.which("promtool")
    tmp = tempfile.mkdtemp(prefix="vramd-prometheus-")
    config = os.path.join(tmp, "prometheus.yml")
    with open(config, "w") as f:
        f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                "rule_files:\n  - %s\n"
                "scrape_configs:\n  - job_name: vramd\n    static_configs:\n"
                "      - targets: ['127.0.0.1:%d']\n" % (json.dumps(docs("vramd-alerts.yml")),
                                                      V.port))
    port = free_port()
    PROM_URL = "http://127.0.0.1:%d" % port
    PROM = Proc(["prometheus", "--config.file=" + config,
                 "--storage.tsdb.path=" + os.path.join(tmp, "data"),
                 "--web.listen-address=127.0.0.1:%d" % port], name="prometheus")
    wait_http_ready(PROM_URL + "/-/ready", 60, proc=PROM)


def teardown_module():
    if PROM is not None:
        PROM.stop()
    if V is not None:
        V.proc.assert_clean_exit()
    if SIM is not None:
        SIM.stop()


# --- The exposition itself -----------------------------------------------------------------

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\[\\"n])*)"(,|$)')


def parse_exposition(text):
    """Checks text the way Prometheus's parser and promtool would for what matters here
    and returns {family: {"type": t, "samples": [(name, labels, value)]}}."""
    assert text.endswith("\n"), "no final newline"
    families = {}
    for line in text.split("\n")[:-1]:
        if line.startswith("# HELP "):
            name = line.split(" ")[2]
            assert name not in families, "HELP twice: " + name
            families[name] = {"type": None, "samples": []}
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert families[name]["type"] is None, "TYPE twice: " + name
            families[name]["type"] = kind
            continue
        m = SAMPLE.match(line)
        assert m, "not a sample line: %r" % line
        name, _, labels_text, value = m.groups()
        labels = {}
        rest = labels_text or ""
        while rest:
            lm = LABEL.match(rest)
            assert lm, "bad labels in %r" % line
            labels[lm.group(1)] = lm.group(2)
            rest = rest[lm.end():]
        family = name
        if family not in families:
            family = re.sub(r'_(bucket|sum|count)$', "", name)
        assert family in families, "sample before its HELP: %r" % line
        kind = families[family]["type"]
        assert kind is not None, "sample before its TYPE: %r" % line
        assert (family == name) == (kind != "histogram"), line
        if kind == "counter":
            assert name.endswith("_total") and float(value) >= 0, line
        families[family]["samples"].append((name, labels, float(value)))
    for family, f in families.items():
        if f["type"] != "histogram":
            continue
        series = {}
        for name, labels, value in f["samples"]:
            key = tuple(sorted((k, v) for k, v in labels.items() if k != "le"))
            series.setdefault(key, {"buckets": [], "count": None, "sum": None})
            if name.endswith("_bucket"):
                series[key]["buckets"].append((float(labels["le"]), value))
            else:
                series[key][name.rsplit("_", 1)[1]] = value
        for key, s in series.items():
            les = [le for le, _ in s["buckets"]]
            counts = [c for _, c in s["buckets"]]
            assert les == sorted(les) and les[-1] == math.inf, (family, key, les)
            assert counts == sorted(counts), (family, key, "buckets not cumulative", counts)
            assert counts[-1] == s["count"], (family, key, "+Inf != _count")
            assert s["sum"] is not None, (family, key)
    return families


def test_exposition_format_and_promtool():
    # A request line too long for the server: answered (414) before any handler.
    with socket.create_connection(("127.0.0.1", V.port), timeout=10) as s:
        s.sendall(b"GET /" + b"a" * 100000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert s.recv(64).startswith(b"HTTP/1.1 414"), "no 414"
    status, headers, body = http("GET", V.url + "/metrics")
    assert status == 200, (status, body)
    assert headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8", headers
    families = parse_exposition(body.decode())
    for name in ("vramd_gpu_memory_total_bytes", "vramd_gpu_memory_used_bytes",
                 "vramd_gpu_memory_models_bytes", "vramd_gpu_memory_other_bytes",
                 "vramd_gpu_memory_reserved_bytes", "vramd_gpu_utilization_ratio",
                 "vramd_gpu_temperature_celsius", "vramd_gpu_power_watts", "vramd_gpu_state",
                 "vramd_gpu_throttle_reason", "vramd_model_resident_bytes",
                 "vramd_model_loads_total", "vramd_model_load_seconds",
                 "vramd_model_running_jobs", "vramd_model_queued_jobs",
                 "vramd_jobs_submitted_total", "vramd_jobs_completed_total",
                 "vramd_jobs_failed_total", "vramd_jobs_cancelled_total",
                 "vramd_job_queue_wait_seconds", "vramd_job_run_seconds",
                 "vramd_scheduler_decision_seconds", "vramd_route_decision_seconds",
                 "vramd_node_up",
                 "vramd_node_breaker_state", "vramd_http_requests_total",
                 "process_resident_memory_bytes", "process_open_fds",
                 "process_start_time_seconds", "process_cpu_seconds_total"):
        assert name in families, name
    gpus = families["vramd_gpu_memory_total_bytes"]["samples"]
    assert sorted(s[1]["index"] for s in gpus) == ["0", "1"], gpus
    assert all(s[2] == 8 * GIB and s[1]["node"] and s[1]["uuid"].startswith("GPU-")
               and s[1]["name"] for s in gpus), gpus
    states = [s for s in families["vramd_gpu_state"]["samples"] if s[1]["index"] == "0"]
    assert sorted(s[1]["state"] for s in states) == sorted(
        ["optimal", "normal", "throttled", "critical", "shutdown", "unavailable"]), states
    assert sum(s[2] for s in states) == 1, states
    assert families["vramd_http_server_errors_total"]["samples"][0][2] >= 1, families[
        "vramd_http_server_errors_total"]
    # This scrape is not counted yet (its status line is written after the body is
    # made), the requests before it are, by route pattern.
    http_counts = {(lb["route"], lb["status"]): v
                   for _, lb, v in families["vramd_http_requests_total"]["samples"]}
    assert http_counts.get(("/api/health", "200"), 0) >= 1, http_counts
    assert all(not r.startswith("/api/job/j-") for r, _ in http_counts), http_counts
    start = families["process_start_time_seconds"]["samples"][0][2]
    assert time.time() - 300 < start <= time.time(), start
    # HEAD answers the same head without the body.
    status, headers, body = http("HEAD", V.url + "/metrics")
    assert status == 200 and body == b"" and headers["content-type"].startswith("text/plain")
    if PROMTOOL is None:
        print("promtool not installed: skipping `promtool check metrics`")
        return
    p = subprocess.run([PROMTOOL, "check", "metrics"], input=http("GET", V.url + "/metrics")[2],
                       capture_output=True, timeout=60)
    assert p.returncode == 0, (p.stdout, p.stderr)


# --- Prometheus scraping vramd ---------------------------------------------------------------

def test_prometheus_sees_gpus_and_jobs():
    ids = []
    for (model, priority), n in JOBS.items():
        for i in range(n):
            ids.append(V.submit_ok({"model": model, "priority": priority,
                                    "prompt": "count %d" % i, "options": {"num_predict": 4}}))
    jobs = V.wait_all_final(ids)
    assert all(j["status"] == "complete" for j in jobs.values()), jobs
    status, gpu = http_json("POST", SIM.url + "/sim/gpu/1", json_body={"temperature_c": HOT_C})
    assert status == 200, (status, gpu)

    wait_value('up{job="vramd"}', 1)
    # A GPU metric: the simulated cards' memory, and GPU 1's temperature and state.
    labels = wait_value('vramd_gpu_memory_total_bytes{index="0"}', 8 * GIB)
    assert labels["name"].endswith("(simulated)") and labels["uuid"].startswith("GPU-"), labels
    wait_value('vramd_gpu_temperature_celsius{index="1"}', HOT_C)
    wait_value('vramd_gpu_state{index="1",state="critical"}', 1)
    wait_value('vramd_gpu_state{index="1",state="optimal"}', 0)
    wait_value('vramd_gpu_throttle_reason{index="1",reason="sw_thermal_slowdown"}', 1)
    # The job counters, by priority and in all.
    total = sum(JOBS.values())
    wait_value("sum(vramd_jobs_completed_total)", total)
    wait_value("sum(vramd_jobs_submitted_total)", total)
    for priority in ("high", "normal", "low"):
        n = sum(c for (_, p), c in JOBS.items() if p == priority)
        wait_value('vramd_jobs_completed_total{priority="%s"}' % priority, n)
        wait_value('vramd_job_run_seconds_count{priority="%s"}' % priority, n)
    wait_value("sum(vramd_jobs_failed_total)", 0)
    wait_value('vramd_http_requests_total{route="/api/submit",status="202"}', total)
    # Both models were loaded once each, and each is resident with nothing running.
    for model in ("qwen2.5:0.5b", "smollm:360m"):
        wait_value('sum(vramd_model_loads_total{model="%s"})' % model, 1)
        wait_value('sum(vramd_model_load_seconds_count{model="%s"})' % model, 1)
        wait_value('count(vramd_model_resident_bytes{model="%s"} > 0)' % model, 1)
    assert query("sum(vramd_job_queue_wait_seconds_count)")[0][1] >= total
    wait_value('vramd_node_up', 1)
    wait_value('vramd_node_breaker_state{state="closed"}', 1)
    # The GPU that got hot is back to normal for the next tests.
    http_json("POST", SIM.url + "/sim/gpu/1", json_body={"temperature_c": None})


def test_alert_rules():
    if PROMTOOL is not None:
        p = subprocess.run([PROMTOOL, "check", "rules", docs("vramd-alerts.yml")],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, (p.stdout, p.stderr)
        tests = os.path.join(source_dir(), "tests", "data", "prometheus", "vramd-alerts.test.yml")
        p = subprocess.run([PROMTOOL, "test", "rules", tests], capture_output=True, text=True,
                           timeout=60)
        assert p.returncode == 0, (p.stdout, p.stderr)
    else:
        print("promtool not installed: skipping `promtool check rules` and `test rules`")
    # Loaded into the real Prometheus, every rule evaluates against vramd's series.

    def evaluated():
        status, body = http_json("GET", PROM_URL + "/api/v1/rules")
        assert status == 200, body
        rules = [r for g in body["data"]["groups"] for r in g["rules"]]
        if len(rules) < 7 or any(r.get("lastEvaluation", "").startswith("0001") for r in rules):
            return None
        return rules
    rules = wait_until(evaluated, timeout=30, interval=0.5, what="rules evaluated")
    names = {r["name"] for r in rules}
    assert {"VramdGpuCritical", "VramdNodeDown", "VramdQueueWaitP99High"} <= names, names
    bad = [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"]
    assert not bad, bad


def test_grafana_dashboard_queries():
    with open(docs("grafana-vramd.json")) as f:
        dash = json.load(f)
    assert dash["uid"] and dash["title"] and dash["panels"], dash.keys()
    titles = {p["title"] for p in dash["panels"]}
    for wanted in ("GPU memory", "GPU temperature", "Queue wait p99 by priority",
                   "Jobs per second", "Model loads"):
        assert wanted in titles, titles
    # Panels whose queries must have data after the jobs of the test above.
    with_data = {"GPU memory", "GPU temperature", "GPU state", "Queue wait p99 by priority",
                 "Jobs per second", "Model loads", "Resident models", "Nodes"}
    checked = 0
    for panel in dash["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        exprs = [t["expr"].replace("$node", ".*").replace("$__rate_interval", "5m")
                 for t in panel["targets"]]

        def samples():
            # query() asserts that Prometheus accepts each query.
            return sum(len(query(e)) for e in exprs)
        checked += len(exprs)
        if panel["title"] not in with_data:
            samples()
            continue
        # Some of a panel's queries may be empty (no load failed, say), not all; a
        # rate() needs two scrapes of a series that appeared with the last jobs.
        wait_until(samples, timeout=15, interval=0.5, what="data for " + panel["title"])
    assert checked >= 20, checked


# --- Who may scrape ---------------------------------------------------------------------------

def test_metrics_key_rules():
    key = "sk-test-prom-0123456789abcdef"
    keys_file = os.path.join(tempfile.mkdtemp(prefix="vramd-keys-"), "keys.json")
    with open(keys_file, "w") as f:
        json.dump([{"key": key, "name": "ops", "admin": True}], f)
    os.chmod(keys_file, 0o600)
    for require in (False, True):
        v = start_vramd(SIM, "--api-keys-file", keys_file,
                        "--metrics-require-key", "true" if require else "false")
        try:
            status, _, _ = http("GET", v.url + "/api/stats")
            assert status == 401, status
            status, headers, body = http("GET", v.url + "/metrics")
            if require:
                assert status == 401, (status, body)
                assert headers.get("www-authenticate", "").startswith("Bearer"), headers
            else:
                assert status == 200 and b"vramd_gpu_up" in body, (status, body[:200])
            status, _, body = http("GET", v.url + "/metrics",
                                   headers={"Authorization": "Bearer " + key})
            assert status == 200 and b"vramd_gpu_up" in body, (status, body[:200])
        finally:
            v.proc.assert_clean_exit()


if __name__ == "__main__":
    if not ensure_prometheus():
        sys.exit(77)
    run_tests(globals())
