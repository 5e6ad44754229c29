#!/usr/bin/env python3
"""soak-kill.py: crash vramd with kill -9 again and again under a submit load and count
what happened to every job it accepted.

ollama-sim (one simulated 8 GiB GPU) and vramd start on free ports; CLIENTS threads
submit random valid jobs (the ten-model catalogue of tests/integration) for SECONDS;
meanwhile vramd is killed with SIGKILL every INTERVAL seconds, KILLS times, and
restarted each time on the same data directory and port. Every job id that got a 202
is recorded. When the load and the kills are over, the script waits (at most
--final-timeout seconds) for every accepted job to reach a final state, then prints:

  accepted    jobs that got a 202 (whatever vramd was killed after)
  completed / failed / cancelled
              final states of the accepted jobs (failures are listed by message)
  lost        accepted, but unknown to vramd (404) after the restarts
  stuck       known, but not final by the deadline
  duplicated  jobs run more than once: the job's `attempts` field (Ollama requests
              made for it, restarts included) is above 1; extra runs is the sum of
              attempts - 1 over them. A job that was running when vramd died is run
              again after the restart (at-least-once), so some are expected.

Expected: 0 lost and 0 stuck. The exit status is 1 when either is not 0.

python3 standard library only; not part of the test command. It reuses
tests/integration/harness.py and vramd_harness.py.

usage: bench/soak-kill.py [--build DIR] [--kills N] [--interval S] [--clients N]
                          [--seconds S] [--seed N] [--fault-rate R] [--time-scale N]
                          [--final-timeout S]
"""

import argparse
import collections
import os
import random
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


def default_build():
    env = os.environ.get("VRAMD_BUILD_DIR")
    if env:
        return env
    for name in ("build-rel", "build-test"):
        if os.path.exists(os.path.join(ROOT, name, "src", "vramd")):
            return os.path.join(ROOT, name)
    return os.path.join(ROOT, "build-rel")


class Load:
    """CLIENTS submit threads against one URL that survives restarts (same port)."""

    def __init__(self, h, vh, url, clients, seed):
        self.h, self.vh, self.url = h, vh, url
        self.accepted = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.statuses = collections.Counter()  # non-202 replies by status
        self.conn_errors = 0
        self.deadline = float("inf")  # monotonic time the clients stop at
        self.threads = [threading.Thread(target=self.client, args=(random.Random(seed * 1000 + i),),
                                         daemon=True) for i in range(clients)]

    def client(self, rng):
        while not self.stop.is_set() and time.monotonic() < self.deadline:
            body = self.vh.random_job(rng)
            try:
                status, reply = self.h.http_json("POST", self.url + "/api/submit",
                                                 json_body=body, timeout=10)
            except Exception:  # noqa: BLE001 - vramd is down (killed): try again soon
                with self.lock:
                    self.conn_errors += 1
                time.sleep(0.02)
                continue
            with self.lock:
                if status == 202:
                    self.accepted.append(reply["job_id"])
                else:
                    self.statuses[status] += 1
            if status != 202:
                time.sleep(0.05)  # queue full (503) and the like: back off a little

    def start(self):
        for t in self.threads:
            t.start()

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(30)


def sim_fault_flag(h, rate, seed):
    """The ollama-sim flags for random backend faults, or None when it has none."""
    out = subprocess.run([h.sim_path(), "--help"], capture_output=True, text=True, timeout=10)
    text = out.stdout + out.stderr
    if "--fault-rate" in text:
        return ["--fault-rate", str(rate), "--fault-seed", str(seed)]
    return None


class SimKeeper:
    """Restarts ollama-sim on the same port and state file whenever it exits (a
    random crash fault kills it), as a supervisor would restart Ollama."""

    def __init__(self, h, sim, sim_args, time_scale):
        self.h, self.sim, self.sim_args, self.time_scale = h, sim, sim_args, time_scale
        self.restarts = 0
        self.fault_counts = collections.Counter()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def collect(self):
        """Adds the fault counters of the sim now running (before it may die)."""
        try:
            status, reply = self.h.http_json("GET", self.sim.url + "/sim/faults", timeout=5)
            if status == 200:
                return reply["counters"]
        except Exception:  # noqa: BLE001 - hung or dead: counted from the last sample
            pass
        return None

    def run(self):
        last = collections.Counter()
        while not self.stop.is_set():
            counters = self.collect()
            if counters is not None:
                last = collections.Counter(counters)
            if not self.sim.proc.alive():
                self.fault_counts += last
                last = collections.Counter()
                self.sim.proc.stop()
                self.sim = self.h.start_sim(*self.sim_args, state_file=self.sim.state_file,
                                            time_scale=self.time_scale, port=self.sim.port)
                self.restarts += 1
            self.stop.wait(0.2)
        counters = self.collect()
        self.fault_counts += collections.Counter(counters or last)

    def start(self):
        self.thread.start()

    def finish(self):
        self.stop.set()
        self.thread.join(30)


def wait_final(h, url, ids, timeout):
    """Polls every accepted job until all are final or the deadline passes. Returns
    {id: job or None (404)}."""
    final = ("complete", "failed", "cancelled")
    jobs = {}
    pending = list(ids)
    deadline = time.monotonic() + timeout
    while pending:
        still = []
        for jid in pending:
            status, job = h.http_json("GET", url + "/api/job/" + jid, timeout=30)
            if status == 404:
                jobs[jid] = None
            elif status == 200 and job["status"] in final:
                jobs[jid] = job
            else:
                jobs[jid] = job if status == 200 else {"status": "http %d" % status}
                still.append(jid)
        pending = still
        if not pending or time.monotonic() >= deadline:
            break
        # Long-poll the oldest one instead of sleeping.
        h.http_json("GET", url + "/api/job/%s?wait=2" % pending[0], timeout=60)
    return jobs


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=default_build(),
                    help="CMake build directory (default: $VRAMD_BUILD_DIR, build-rel, "
                         "build-test)")
    ap.add_argument("--kills", type=int, default=20, help="kill -9 this many times")
    ap.add_argument("--interval", type=float, default=3.0,
                    help="seconds between a restart and the next kill")
    ap.add_argument("--clients", type=int, default=8, help="submit threads")
    ap.add_argument("--seconds", type=float, default=0,
                    help="submit load duration from the start (default: until one interval "
                         "after the last restart); the kills go on regardless")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--fault-rate", type=float, default=0.0,
                    help="random backend faults in ollama-sim (if it supports them)")
    ap.add_argument("--time-scale", type=float, default=20.0,
                    help="ollama-sim speed-up (smaller: longer runs, more jobs in flight "
                         "at each kill)")
    ap.add_argument("--final-timeout", type=float, default=300.0,
                    help="seconds to wait for every accepted job to be final")
    args = ap.parse_args()
    os.environ["VRAMD_BUILD_DIR"] = os.path.abspath(args.build)
    import harness as h
    import vramd_harness as vh

    if not os.path.exists(vh.vramd_path()):
        sys.exit("no vramd in %s (build it, or pass --build DIR)" % args.build)
    sim_args = ["--gpus", "8GiB", "--seed", str(args.seed)]
    if args.fault_rate > 0:
        flag = sim_fault_flag(h, args.fault_rate, args.seed)
        if flag is None:
            print("--fault-rate %g: skipped, ollama-sim has no random backend faults yet"
                  % args.fault_rate)
        else:
            sim_args += flag
    print("soak: %d kills every %gs, %d clients, seed %d, sim time scale %g, build %s" % (
        args.kills, args.interval, args.clients, args.seed, args.time_scale,
        os.path.abspath(args.build)))
    sys.stdout.flush()

    sim = h.start_sim(*sim_args, state_file=True, time_scale=args.time_scale)
    keeper = SimKeeper(h, sim, sim_args, args.time_scale)
    keeper.start()
    v = vh.start_vramd(sim)
    port, data_dir = v.port, v.data_dir
    procs = [v.proc]
    load = Load(h, vh, v.url, args.clients, args.seed)
    restart_s = []
    kill_at_status = collections.Counter()  # jobs by status just before each kill
    try:
        vh.wait_ready(v)
        t0 = time.monotonic()
        if args.seconds > 0:
            load.deadline = time.monotonic() + args.seconds
        load.start()
        for k in range(args.kills):
            time.sleep(args.interval)
            try:
                for st, n in v.stats()["jobs"]["by_status"].items():
                    kill_at_status[st] += n
            except Exception:  # noqa: BLE001 - a figure for the report only
                pass
            v.proc.kill9()
            t = time.monotonic()
            v = vh.start_vramd(sim, data_dir=data_dir, port=port)
            procs.append(v.proc)
            restart_s.append(time.monotonic() - t)
            print("kill %d/%d: restarted in %.2fs, %d accepted so far" % (
                k + 1, args.kills, restart_s[-1], len(load.accepted)))
            sys.stdout.flush()
        if args.seconds <= 0:
            load.deadline = time.monotonic() + args.interval
        for t in load.threads:
            t.join()
        load.finish()
        load_s = min(load.deadline, time.monotonic()) - t0
        vh.wait_ready(v)
        t = time.monotonic()
        jobs = wait_final(h, v.url, load.accepted, args.final_timeout)
        drain_s = time.monotonic() - t
        stats = v.stats()
        rc = v.proc.stop()
    finally:
        load.stop.set()
        v.proc.kill9()  # a no-op when it already exited
        keeper.finish()
        keeper.sim.stop()

    ids = load.accepted
    counts = collections.Counter()
    failures = collections.Counter()
    duplicated = extra_runs = max_attempts = 0
    for jid in ids:
        job = jobs.get(jid)
        if job is None:
            counts["lost"] += 1
            continue
        st = job["status"]
        counts[st if st in ("complete", "failed", "cancelled") else "stuck"] += 1
        if st == "failed":
            failures[(job.get("error") or "?")[:100]] += 1
        attempts = job.get("attempts") or 0
        max_attempts = max(max_attempts, attempts)
        if attempts > 1:
            duplicated += 1
            extra_runs += attempts - 1
    sanitizer = sum(1 for p in procs for m in SANITIZER_MARKERS if m in p.log_text())

    print()
    print("| kills | accepted | completed | failed | cancelled | lost | stuck | duplicated "
          "runs (extra) |")
    print("|--:|--:|--:|--:|--:|--:|--:|--:|")
    print("| %d | %d | %d | %d | %d | %d | %d | %d (%d) |" % (
        args.kills, len(ids), counts["complete"], counts["failed"], counts["cancelled"],
        counts["lost"], counts["stuck"], duplicated, extra_runs))
    print()
    print("distinct ids: %d of %d; load %.0fs, drain %.1fs; restart mean %.2fs max %.2fs" % (
        len(set(ids)), len(ids), load_s, drain_s,
        sum(restart_s) / len(restart_s) if restart_s else 0, max(restart_s or [0])))
    print("jobs by status just before the kills (summed): %s" % dict(kill_at_status))
    print("max attempts of one job: %d; submits refused: %s; connection errors: %d" % (
        max_attempts, dict(load.statuses) or "none", load.conn_errors))
    print("final vramd: exit %s, jobs total %s; sanitizer reports in %d vramd logs: %d" % (
        rc, stats["jobs"]["total"], len(procs), sanitizer))
    if args.fault_rate > 0:
        print("ollama-sim faults injected (sampled every 0.2 s): %s; sim restarts after a crash: %d" % (
            dict(keeper.fault_counts) or "none", keeper.restarts))
    for msg, n in failures.most_common(5):
        print("failed x%d: %s" % (n, msg))
    stuck = [jid for jid in ids if jobs.get(jid) and jobs[jid]["status"] not in
             ("complete", "failed", "cancelled")]
    for jid in stuck[:5]:
        print("stuck: %s %s" % (jid, jobs[jid]))
    lost = [jid for jid in ids if jobs.get(jid) is None]
    for jid in lost[:5]:
        print("lost: %s" % jid)
    if lost or stuck or len(set(ids)) != len(ids):
        sys.exit(1)


if __name__ == "__main__":
    main()
