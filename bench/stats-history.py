#!/usr/bin/env python3
"""GET /api/stats against a long history (issue 12: stats in constant time).

Starts ollama-sim and vramd once to create the store, stops vramd, writes N finished jobs
straight into its SQLite file (the counting triggers keep job_counts as vramd's own saves
do), starts vramd again on it and times 20 GET /api/stats. Usage:

  python3 bench/stats-history.py [--build build-rel] [--jobs 100000] [--vramd PATH]
"""

import argparse
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "integration"))
from harness import free_port, start_sim  # noqa: E402


def start(vramd, data_dir, sim_url):
    port = free_port()
    proc = subprocess.Popen([vramd, "--listen", "127.0.0.1:%d" % port, "--data-dir", data_dir,
                             "--ollama", sim_url],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            urllib.request.urlopen("http://127.0.0.1:%d/api/health" % port).read()
            return proc, port
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("vramd did not start")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build-rel")
    ap.add_argument("--jobs", type=int, default=100000)
    ap.add_argument("--vramd", default=None)
    args = ap.parse_args()
    os.environ["VRAMD_BUILD_DIR"] = os.path.abspath(args.build)
    vramd = args.vramd or os.path.join(args.build, "src", "vramd")
    data_dir = tempfile.mkdtemp(prefix="vramd-stats-")
    sim = start_sim("--gpus", "8GiB")
    try:
        proc, _ = start(vramd, data_dir, sim.url)
        proc.terminate()
        proc.wait()
        db = sqlite3.connect(os.path.join(data_dir, "vramd.db"))
        statuses = ("complete", "failed", "cancelled")
        priorities = ("high", "normal", "low")
        db.executemany(
            "INSERT INTO jobs (seq, id, model, kind, priority, status, submitted_at) "
            "VALUES (?, ?, ?, 'generate', ?, ?, 0)",
            ((i, "j-%016d" % i, "m%d" % (i % 10), priorities[i % 3], statuses[i % 3])
             for i in range(1, args.jobs + 1)))
        db.commit()
        db.close()
        proc, port = start(vramd, data_dir, sim.url)
        times = []
        for _ in range(20):
            t = time.perf_counter()
            urllib.request.urlopen("http://127.0.0.1:%d/api/stats" % port).read()
            times.append((time.perf_counter() - t) * 1000)
        proc.terminate()
        proc.wait()
        times.sort()
        print("%d stored jobs: GET /api/stats p50 %.2f ms, max %.2f ms (%s)"
              % (args.jobs, times[len(times) // 2], times[-1], vramd))
    finally:
        sim.stop()


if __name__ == "__main__":
    main()
