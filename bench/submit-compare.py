#!/usr/bin/env python3
"""submit-compare.py: durable submit against the HTTP ceiling, and memory at 100 000
queued jobs (issue 12), in one run on one machine.

It starts ollama-sim (a model start cost of one hour: no job ever leaves the queue),
vramd in front of it, and bench-ref-server (a bare libevent server that answers the
same 202 with no queue, store or fsync), then runs bench-submit against both at each
connection count and prints them side by side with vramd's fraction of the ceiling.
With --rss-jobs N (default 100 000) it then starts a fresh vramd, submits N jobs over
16 connections and prints its VmRSS before and after (the memory of N queued jobs).
With --store URL (a postgresql:// URL, or "pgserver" for a throw-away server from
tests/pgserver.py) it also runs a vramd whose store is that PostgreSQL database at
each connection count and prints SQLite and PostgreSQL side by side.

usage: python3 bench/submit-compare.py --build build-rel [--jobs 20000]
           [--conns 1,16,64] [--sync full|normal] [--rss-jobs 100000] [--data-dir DIR]
           [--vramd PATH] [--store URL|pgserver]
"""

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_http(url, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            time.sleep(0.1)
    sys.exit("submit-compare: %s did not answer in %d s" % (url, timeout))


def start(argv, log):
    return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)


def stop(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


ROW = re.compile(r"^(\d+)\s+([\d.]+)\s+([\d.]+)\s+(\d+)\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)",
                 re.M)
RSS = re.compile(r"^\d+\s+([\d.]+)\s+([\d.]+)\s+(-?\d+)", re.M)


def bench(build, url, jobs, conns, pid=None, extra=()):
    """Runs bench-submit (extra: more of its arguments) and returns its figures."""
    argv = [os.path.join(build, "bench", "bench-submit"), "--url", url, "--jobs", str(jobs),
            "--conns", str(conns)] + list(extra)
    if pid:
        argv += ["--pid", str(pid)]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=900).stdout
    m = ROW.search(out)
    if m is None:
        sys.exit("submit-compare: cannot read bench-submit's output:\n" + out)
    r = {"accepted": int(m.group(1)), "jobs_s": float(m.group(3)), "other": int(m.group(4)),
         "failed": int(m.group(5)), "p50": float(m.group(6)), "p99": float(m.group(7))}
    m = RSS.search(out[out.find("VRAMD_PID"):]) if pid else None
    if m:
        r["rss_before"], r["rss_after"], r["per_job"] = float(m.group(1)), float(m.group(2)), int(m.group(3))
    return r


def start_vramd(args, sim_port, data_dir, log, store=None, extra=()):
    """vramd on a free port in front of the sim; extra: more arguments (cluster-bench.py
    gives each instance its --instance-id)."""
    port = free_port()
    proc = start([args.vramd or os.path.join(args.build, "src", "vramd"), "--listen",
                  "127.0.0.1:%d" % port,
                  "--ollama", "http://127.0.0.1:%d" % sim_port, "--data-dir", data_dir,
                  "--gpu-source", "none", "--vram-budget", "8GiB", "--queue-max-size",
                  "1000000", "--sync", args.sync] + (["--store", store] if store else []) +
                 list(extra), log)
    wait_http("http://127.0.0.1:%d/api/health" % port)
    time.sleep(1)  # its first poll of the sim
    return proc, "http://127.0.0.1:%d" % port


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build-rel")
    ap.add_argument("--jobs", type=int, default=20000)
    ap.add_argument("--conns", default="1,16,64")
    ap.add_argument("--sync", default="full", choices=("full", "normal"))
    ap.add_argument("--rss-jobs", type=int, default=100000)
    ap.add_argument("--data-dir", default=None, help="where vramd's data directories go")
    ap.add_argument("--vramd", default=None, help="another vramd binary (e.g. an older build)")
    ap.add_argument("--store", default=None,
                    help="also measure vramd on this PostgreSQL URL ('pgserver': a throw-away one)")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="vramd-submit-compare-", dir=args.data_dir)
    log = open(os.path.join(tmp, "log"), "w")
    procs = []
    pg = None
    try:
        if args.store == "pgserver":
            sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                            "tests"))
            from pgserver import PgServer
            pg = PgServer().start()
            args.store = pg.url()
        sim_port = free_port()
        sim = start([os.path.join(args.build, "sim", "ollama-sim"), "--listen",
                     "127.0.0.1:%d" % sim_port, "--gpus", "8GiB", "--start-cost", "1h"], log)
        procs.append(sim)
        wait_http("http://127.0.0.1:%d/api/version" % sim_port)
        ref_port = free_port()
        ref = start([os.path.join(args.build, "bench", "bench-ref-server"), "--listen",
                     "127.0.0.1:%d" % ref_port], log)
        procs.append(ref)
        ref_url = "http://127.0.0.1:%d" % ref_port
        time.sleep(0.5)
        vramd, url = start_vramd(args, sim_port, os.path.join(tmp, "data"), log)
        procs.append(vramd)

        print("submit-compare: %d jobs per run, SYNC=%s, vramd against bench-ref-server "
              "(the ceiling)\n" % (args.jobs, args.sync))
        print("%-6s %12s %10s %10s %12s %10s %10s %8s %7s" % (
            "CONNS", "CEILING_J/S", "P50_MS", "P99_MS", "VRAMD_J/S", "P50_MS", "P99_MS",
            "RATIO", "NON202"))
        sqlite_rows = {}
        for conns in [int(c) for c in args.conns.split(",")]:
            c = bench(args.build, ref_url, args.jobs, conns)
            v = bench(args.build, url, args.jobs, conns)
            sqlite_rows[conns] = v
            print("%-6d %12.0f %10.2f %10.2f %12.0f %10.2f %10.2f %8.2f %7d" % (
                conns, c["jobs_s"], c["p50"], c["p99"], v["jobs_s"], v["p50"], v["p99"],
                v["jobs_s"] / c["jobs_s"] if c["jobs_s"] else 0, v["other"] + v["failed"]))
        stop(vramd)
        procs.remove(vramd)

        if args.store:
            vramd, url = start_vramd(args, sim_port, os.path.join(tmp, "data-pg"), log,
                                     store=args.store)
            procs.append(vramd)
            print("\nthe same vramd, its store on PostgreSQL (SQLite from the table above)\n")
            print("%-6s %12s %10s %10s %12s %10s %10s %7s" % (
                "CONNS", "SQLITE_J/S", "P50_MS", "P99_MS", "PG_J/S", "P50_MS", "P99_MS",
                "NON202"))
            for conns in [int(c) for c in args.conns.split(",")]:
                s, p = sqlite_rows[conns], bench(args.build, url, args.jobs, conns)
                print("%-6d %12.0f %10.2f %10.2f %12.0f %10.2f %10.2f %7d" % (
                    conns, s["jobs_s"], s["p50"], s["p99"], p["jobs_s"], p["p50"], p["p99"],
                    p["other"] + p["failed"]))
            stop(vramd)
            procs.remove(vramd)

        if args.rss_jobs > 0:
            vramd, url = start_vramd(args, sim_port, os.path.join(tmp, "data-rss"), log)
            procs.append(vramd)
            r = bench(args.build, url, args.rss_jobs, 16, pid=vramd.pid)
            print("\n%-10s %14s %16s %14s %8s" % ("QUEUED", "RSS_BEFORE_MIB", "RSS_QUEUED_MIB",
                                                  "BYTES_PER_JOB", "NON202"))
            print("%-10d %14.1f %16.1f %14d %8d" % (r["accepted"], r["rss_before"],
                                                    r["rss_after"], r["per_job"],
                                                    r["other"] + r["failed"]))
    finally:
        for p in reversed(procs):
            stop(p)
        if pg is not None:
            pg.stop()
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
