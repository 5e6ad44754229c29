#!/usr/bin/env python3
"""cluster-bench.py: several vramd instances on one PostgreSQL store (issue 14): durable
submit throughput and latency on SQLite and on PostgreSQL with 1, 2 and 4 instances, and
the time a follower takes to lead after the leader is killed with -9.

Throughput. For each row it starts fresh vramd instances in front of one ollama-sim whose
model start costs an hour (as submit-compare.py does: no job ever leaves the queue, so
the submit path is what is measured) and runs bench-submit at 16 connections in total,
connection i to instance i mod N (round robin), so its p50 and p99 are those of every
submit together. A 202 follows the job's commit (SQLite: SYNC; PostgreSQL: the server's
synchronous commit). Rows: SQLite with one instance; PostgreSQL (a throw-away server from
tests/pgserver.py, one fresh database per row) with 1, 2 and 4 instances; and, on the
2-instance cluster, every submit to the leader, then every submit to the follower, since
the two paths differ: the leader queues its own job in memory when it commits it, while
a follower's job is handed over after its commit (it leaves the follower's memory, the
commit's notification wakes the leader, which reads the job back from the store with one
query on its loop and queues it).

Takeover. Three instances in front of a sim that runs jobs (time scale 200), one client
thread submitting a job every --gap seconds to the live instances in turn, and --kills
times: wait --interval, kill -9 the leader, poll GET /api/health of the survivors every
20 ms until one says "leader" (the time from the kill to that answer is the takeover
time), then restart the killed instance with its instance id and data directory (as
systemd's Restart= would), which rejoins as a follower. At the end every accepted job
(202) must become final: accepted, completed, lost (404 or not final in --final-timeout
seconds) and re-run (attempts above 1: jobs running at a kill, at least once by design).

usage: python3 bench/cluster-bench.py [--build build-rel] [--jobs 10000] [--kills 20]
           [--instances 1,2,4] [--priority high|normal|low] [--leader-takeover 5] [--json]

--priority gives every submit one priority (bench-submit's default takes the three in
turn): the store's per-(model, status, priority) job counter is then one row, which
separates the instances' lock-order deadlocks on that counter from its serialisation.

PostgreSQL is a throw-away server (tests/pgserver.py: Debian's PostgreSQL, fsync on) on
the same machine, so it competes with vramd and the client for the CPU. It exits 1 when a
row saw replies other than 202, stored a different number of jobs than it accepted or ran
one, or when a takeover lost a job.
"""

import argparse
import importlib.util
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def cb_import_submit_compare():
    """submit-compare.py as a module (its name has a dash): its process helpers and its
    load generator, bench(), which runs bench-submit and reads its figures."""
    spec = importlib.util.spec_from_file_location("submit_compare",
                                                  os.path.join(HERE, "submit-compare.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


sc = cb_import_submit_compare()

CONNS = 16  # the figure: 16 connections in all, spread over the instances
POLL_S = 0.02  # how often the survivors' /api/health is asked during a takeover
MODELS = ("qwen2.5:0.5b", "smollm:360m")


def cb_http_json(method, url, body=None, timeout=5):
    """(status, parsed body); OSError when nothing answers."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw or b"null")
        except ValueError:
            return e.code, None


class Instance:
    """One vramd of the cluster: its id and data directory outlive its process."""

    def __init__(self, iid, data_dir):
        self.iid = iid
        self.data_dir = data_dir
        self.proc = None
        self.url = None

    def start(self, args, sim_port, log, store):
        self.proc, self.url = sc.start_vramd(
            args, sim_port, self.data_dir, log, store=store,
            extra=["--instance-id", self.iid, "--leader-takeover", str(args.leader_takeover)])
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def role(self, timeout=1):
        """"leader", "follower", or None (no answer, or not in a cluster)."""
        try:
            status, body = cb_http_json("GET", self.url + "/api/health", timeout=timeout)
        except OSError:
            return None
        if status != 200 or not isinstance(body, dict):
            return None
        return (body.get("cluster") or {}).get("role")

    def stop(self):
        if self.proc is not None:
            sc.stop(self.proc)


def cb_wait_one_leader(instances, timeout):
    """The one instance that says it leads, once exactly one does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        leaders = [v for v in instances if v.alive() and v.role() == "leader"]
        if len(leaders) == 1:
            return leaders[0]
        time.sleep(POLL_S)
    sys.exit("cluster-bench: no single leader among %s after %d s" %
             ([v.iid for v in instances], timeout))


def cb_stored_jobs(url):
    """Jobs in the store by status, as GET /api/stats counts them."""
    status, body = cb_http_json("GET", url + "/api/stats", timeout=30)
    if status != 200:
        sys.exit("cluster-bench: GET %s/api/stats answered %d" % (url, status))
    return body["jobs"]["by_status"]


def cb_count_lines(path, text):
    with open(path, errors="replace") as f:
        return sum(text in line for line in f)


def cb_row(args, name, store, instances, targets, log):
    """One throughput row: bench-submit over targets' URLs; stored counts the jobs the
    store gained meanwhile (every 202 must be one), complete those that ran (none should:
    nothing can leave the queue), commit_errors the batches the instances logged as
    failed (each answered its submissions 500)."""
    before = cb_stored_jobs(instances[0].url)
    errors = cb_count_lines(log.name, "commit failed")
    deadlocks = cb_count_lines(log.name, "deadlock detected")
    r = sc.bench(args.build, ",".join(v.url for v in targets), args.jobs, CONNS,
                 extra=["--priority", args.priority] if args.priority else [])
    after = cb_stored_jobs(instances[0].url)
    r.update(setup=name, store=store, instances=len(instances), targets=len(targets),
             stored=sum(after.values()) - sum(before.values()),
             complete=after.get("complete", 0) - before.get("complete", 0),
             commit_errors=cb_count_lines(log.name, "commit failed") - errors,
             deadlocks=cb_count_lines(log.name, "deadlock detected") - deadlocks)
    return r


def cb_throughput(args, tmp, log, pg):
    rows = []
    sim_port = sc.free_port()
    sim = sc.start([os.path.join(args.build, "sim", "ollama-sim"), "--listen",
                    "127.0.0.1:%d" % sim_port, "--gpus", "8GiB", "--start-cost", "1h"], log)
    try:
        sc.wait_http("http://127.0.0.1:%d/api/version" % sim_port)
        one = Instance("sqlite", os.path.join(tmp, "sqlite"))
        one.proc, one.url = sc.start_vramd(args, sim_port, one.data_dir, log)
        try:
            rows.append(cb_row(args, "SQLite", "sqlite", [one], [one], log))
        finally:
            one.stop()
        for n in args.instances:
            url = pg.create_database("submit%d" % n)
            cluster = [Instance("s%d-%d" % (n, i), os.path.join(tmp, "s%d-%d" % (n, i)))
                       for i in range(n)]
            try:
                for v in cluster:
                    v.start(args, sim_port, log, url)
                leader = cb_wait_one_leader(cluster, args.leader_takeover * 4)
                rows.append(cb_row(args, "PostgreSQL", "postgresql", cluster, cluster, log))
                if n == 2:
                    # The two submit paths apart, on the same cluster (its queue holds the
                    # jobs of the row above: nothing runs, so they cost only memory).
                    follower = [v for v in cluster if v is not leader][0]
                    rows.append(cb_row(args, "PostgreSQL, all to the leader", "postgresql",
                                       cluster, [leader], log))
                    rows.append(cb_row(args, "PostgreSQL, all to the follower", "postgresql",
                                       cluster, [follower], log))
            finally:
                for v in cluster:
                    v.stop()
    finally:
        sc.stop(sim)
    return rows


class Submitter(threading.Thread):
    """A light steady load: one job every gap seconds to the live instances in turn."""

    def __init__(self, instances, lock, gap):
        super().__init__(daemon=True)
        self.instances = instances
        self.lock = lock
        self.gap = gap
        self.accepted = []
        self.refused = {}  # status -> count
        self.errors = 0  # no reply (the instance died under the request)
        self.halt = threading.Event()

    def run(self):
        n = 0
        while not self.halt.is_set():
            with self.lock:
                live = [v for v in self.instances if v.alive()]
            if live:
                v = live[n % len(live)]
                body = {"model": MODELS[n % len(MODELS)], "prompt": "takeover %d" % n,
                        "options": {"num_predict": 3}}
                try:
                    status, reply = cb_http_json("POST", v.url + "/api/submit", body, 10)
                except OSError:
                    self.errors += 1
                else:
                    if status == 202:
                        self.accepted.append(reply["job_id"])
                    else:
                        self.refused[status] = self.refused.get(status, 0) + 1
                n += 1
            self.halt.wait(self.gap)


def cb_final_state(instances, lock, ids, timeout):
    """(complete, failed or cancelled, lost, re-run) of the accepted ids."""
    deadline = time.monotonic() + timeout
    complete = other = lost = rerun = 0
    for jid in ids:
        while True:
            with lock:
                v = [v for v in instances if v.alive()][0]
            left = deadline - time.monotonic()
            try:
                status, job = cb_http_json("GET", "%s/api/job/%s?wait=%d" % (
                    v.url, jid, max(1, min(30, int(left)))), timeout=40)
            except OSError:
                status, job = None, None
            if status == 200 and job["status"] in ("complete", "failed", "cancelled"):
                if job["status"] == "complete":
                    complete += 1
                else:
                    other += 1
                rerun += job.get("attempts", 1) > 1
                break
            if status == 404 or left <= 0:
                lost += 1
                break
    return complete, other, lost, rerun


def cb_takeover(args, tmp, log, pg):
    url = pg.create_database("takeover")
    sim_port = sc.free_port()
    sim = sc.start([os.path.join(args.build, "sim", "ollama-sim"), "--listen",
                    "127.0.0.1:%d" % sim_port, "--gpus", "8GiB", "--time-scale", "200"], log)
    instances = [Instance("t%d" % i, os.path.join(tmp, "t%d" % i)) for i in range(3)]
    lock = threading.Lock()
    sub = Submitter(instances, lock, args.gap)
    times = []
    try:
        sc.wait_http("http://127.0.0.1:%d/api/version" % sim_port)
        for v in instances:
            v.start(args, sim_port, log, url)
        leader = cb_wait_one_leader(instances, args.leader_takeover * 4)
        sub.start()
        for k in range(args.kills):
            time.sleep(args.interval)
            leader = cb_wait_one_leader(instances, args.leader_takeover * 4)
            survivors = [v for v in instances if v is not leader]
            t0 = time.monotonic()
            os.kill(leader.proc.pid, signal.SIGKILL)
            leader.proc.wait()
            new = None
            while new is None:
                for v in survivors:
                    if v.role(timeout=0.5) == "leader":
                        new = v
                        break
                else:
                    if time.monotonic() - t0 > args.leader_takeover * 4:
                        sys.exit("cluster-bench: no new leader %.1f s after kill %d" %
                                 (time.monotonic() - t0, k + 1))
                    time.sleep(POLL_S)
            times.append(time.monotonic() - t0)
            with lock:
                leader.start(args, sim_port, log, url)  # rejoins as a follower
        time.sleep(args.interval)
        sub.halt.set()
        sub.join()
        complete, other, lost, rerun = cb_final_state(instances, lock, sub.accepted,
                                                      args.final_timeout)
    finally:
        sub.halt.set()
        for v in instances:
            v.stop()
        sc.stop(sim)
    return {"kills": len(times), "takeover_s": times,
            "median_s": statistics.median(times) if times else None,
            "max_s": max(times) if times else None,
            "accepted": len(sub.accepted), "completed": complete, "failed_or_cancelled": other,
            "lost": lost, "rerun": rerun, "refused": sub.refused, "no_reply": sub.errors,
            "leader_takeover_s": args.leader_takeover}


def cb_print(rows, tk):
    print("| setup | instances | submits to | jobs/s | p50 ms | p99 ms | non-202 | stored | "
          "failed commits (deadlocks) |")
    print("|---|--:|---|--:|--:|--:|--:|--:|--:|")
    for r in rows:
        to = ("the one" if r["instances"] == 1 else
              "all, round robin" if r["targets"] == r["instances"] else "one")
        print("| %s | %d | %s | %s | %.2f | %.2f | %d | %d | %d (%d) |" % (
            r["setup"], r["instances"], to, "{:,}".format(round(r["jobs_s"])).replace(",", " "),
            r["p50"], r["p99"], r["other"] + r["failed"], r["stored"], r["commit_errors"],
            r["deadlocks"]))
    if tk is None:
        return
    print("\n| kills (3 instances) | takeover median s | max s | accepted | completed | "
          "lost | re-run |")
    print("|--:|--:|--:|--:|--:|--:|--:|")
    print("| %d | %.3f | %.3f | %d | %d | %d | %d |" % (
        tk["kills"], tk["median_s"], tk["max_s"], tk["accepted"], tk["completed"],
        tk["lost"], tk["rerun"]))
    print("\nLEADER_TAKEOVER_S %s; takeovers (s): %s; submits refused: %s, without reply: %d; "
          "failed or cancelled: %d" % (
              tk["leader_takeover_s"], " ".join("%.3f" % t for t in tk["takeover_s"]),
              tk["refused"] or "none", tk["no_reply"], tk["failed_or_cancelled"]))


def cb_build(build):
    """A Release build of what the bench runs, when build has none."""
    need = [os.path.join(build, "src", "vramd"), os.path.join(build, "sim", "ollama-sim"),
            os.path.join(build, "bench", "bench-submit")]
    if all(os.path.exists(p) for p in need):
        return
    print("cluster-bench: building %s (Release)" % build, file=sys.stderr)
    subprocess.run(["cmake", "-S", ROOT, "-B", build, "-DCMAKE_BUILD_TYPE=Release"],
                   check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["cmake", "--build", build, "-j2", "--target", "vramd", "ollama-sim",
                    "bench-submit"], check=True, stdout=subprocess.DEVNULL)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default="build-rel")
    ap.add_argument("--vramd", default=None, help="another vramd binary (e.g. an older build)")
    ap.add_argument("--jobs", type=int, default=10000, help="submits per throughput row")
    ap.add_argument("--instances", default="1,2,4", help="PostgreSQL cluster sizes")
    ap.add_argument("--sync", default="full", choices=("full", "normal"), help="SQLite's SYNC")
    ap.add_argument("--priority", default=None, choices=("high", "normal", "low"),
                    help="every submit at this priority (default: the three in turn)")
    ap.add_argument("--kills", type=int, default=20, help="0: no takeover measurement")
    ap.add_argument("--interval", type=float, default=1.5, help="seconds between kills")
    ap.add_argument("--gap", type=float, default=0.05, help="seconds between takeover submits")
    ap.add_argument("--leader-takeover", type=int, default=5, help="LEADER_TAKEOVER_S")
    ap.add_argument("--final-timeout", type=float, default=300)
    ap.add_argument("--data-dir", default=None, help="where the data directories go")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = ap.parse_args()
    args.instances = [int(n) for n in args.instances.split(",")]
    cb_build(args.build)
    tmp = tempfile.mkdtemp(prefix="vramd-cluster-bench-", dir=args.data_dir)
    log = open(os.path.join(tmp, "log"), "w")
    pg = None
    try:
        # A throw-away server, a fresh database per row: every row starts from an empty
        # store, and the takeover's queue holds only its own jobs.
        sys.path.insert(0, os.path.join(ROOT, "tests"))
        from pgserver import PgServer
        pg = PgServer().start()
        rows = cb_throughput(args, tmp, log, pg)
        tk = cb_takeover(args, tmp, log, pg) if args.kills > 0 else None
    finally:
        if pg is not None:
            pg.stop()
        log.close()
        if os.environ.get("CLUSTER_BENCH_KEEP"):
            print("cluster-bench: logs kept in %s" % tmp, file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        print(json.dumps({"jobs_per_row": args.jobs, "conns": CONNS, "sync": args.sync,
                          "priority": args.priority or "high, normal, low in turn",
                          "rows": rows, "takeover": tk}, indent=2))
    else:
        print("cluster-bench: %d durable submits per row over %d connections, SQLite "
              "SYNC=%s, priorities %s\n" % (args.jobs, CONNS, args.sync,
                                             args.priority or "high, normal, low in turn"))
        cb_print(rows, tk)
    bad = any(r["other"] + r["failed"] > 0 or r["stored"] != r["accepted"] or r["complete"]
              for r in rows)
    bad = bad or (tk is not None and (tk["lost"] > 0 or tk["completed"] != tk["accepted"]))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
