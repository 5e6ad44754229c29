#!/usr/bin/env python3
"""hostile-clients.py: the attacks of the hardening issue against a running vramd, with
what each costs the daemon now. One row per attack:

  query       GET /api/jobs with status=complete repeated 6000 times (a 54 KB URL),
              then 800 times (under the 8 KiB request-line cap), with JOBS jobs stored
  fd          400 connections to a vramd started under `ulimit -n 256`: the CPU vramd
              burns over 3 s, the bytes it logs, and how long /api/health takes then
  slowloris   SLOW connections sending one header byte a second: how long until vramd
              answers each with 408, and /api/health latency meanwhile
  sse         SSE clients that never read, each with a 1 ms heartbeat (allowed by the
              VRAMD_SSE_MIN_HEARTBEAT_MS test knob): vramd's RSS growth once all are
              dropped (the issue measured 4.3 GB for 300 clients)
  queue       120 submissions with 7.5 MiB prompts: how many are accepted (QUEUE_MAX_BYTES,
              default 256 MiB) and vramd's RSS growth

python3 standard library only; not part of the test command. Use a Release build (RSS
and CPU figures under ASan mean little).

usage: bench/hostile-clients.py [--build DIR] [--jobs N] [--slow N] [--sse N]
"""

import argparse
import os
import socket
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))


def rss_mib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed_health(h, url):
    t0 = time.monotonic()
    try:
        status, _, _ = h.http("GET", url + "/api/health", timeout=10)
    except OSError:
        status = "error"
    return status, (time.monotonic() - t0) * 1000


def bench_query(h, vh, sim, jobs):
    v = vh.start_vramd(sim, "--queue-max-size", str(jobs + 10))
    vh.wait_ready(v)
    ids = [v.submit_ok({"model": "qwen2.5:0.5b", "prompt": "p%d" % i, "priority": "high",
                        "options": {"num_predict": 1}}) for i in range(jobs)]
    v.wait_all_final(ids, timeout=600)
    rows = []
    for repeats in (6000, 800):
        path = "/api/jobs?priority=high&limit=1000&status=" + ",".join(["complete"] * repeats)
        t0 = time.monotonic()
        status, body = v.get(path)
        ms = (time.monotonic() - t0) * 1000
        rows.append(("query", "%d repeats (%d B URL), %d jobs stored" % (repeats, len(path), jobs),
                     "%d, %.1f ms, %s rows" % (status, ms, body.get("count", "-"))))
    v.proc.stop()
    return rows


def bench_fd(h, vh, sim):
    port = h.free_port()
    argv = ["bash", "-c", 'ulimit -n 256 && exec "$@"', "vramd", vh.vramd_path(),
            "--listen", "127.0.0.1:%d" % port, "--data-dir", "/tmp/hostile-fd-%d" % port,
            "--ollama", sim.url, "--nvml-lib", vh.nvml_lib_path()]
    rows = []
    for label, env in (("default", {}), ("no fd reserve", {"VRAMD_HTTP_FD_RESERVE": "0"})):
        env = dict(env, OLLAMA_SIM_STATE=sim.state_file)
        proc = h.Proc(argv, env=env, name="vramd-fd")
        url = "http://127.0.0.1:%d" % port
        h.wait_http_ready(url + "/api/health", 20, proc=proc)
        log0 = len(proc.log_text())
        socks = []
        for _ in range(400):
            try:
                socks.append(socket.create_connection(("127.0.0.1", port), timeout=2))
            except OSError:
                break
        c0 = cpu_s(proc.pid)
        time.sleep(3)
        spent = cpu_s(proc.pid) - c0
        logged = len(proc.log_text()) - log0
        for s in socks:
            s.close()
        time.sleep(0.3)
        status, ms = timed_health(h, url)
        rows.append(("fd", "400 connections, ulimit -n 256, %s" % label,
                     "CPU %.2f s in 3 s, %d B logged, then health %s in %.1f ms" %
                     (spent, logged, status, ms)))
        proc.stop()
    return rows


def bench_slowloris(h, vh, sim, n):
    v = vh.start_vramd(sim)
    socks = [socket.create_connection(("127.0.0.1", v.port), timeout=30) for _ in range(n)]
    head = b"GET /api/health HTTP/1.1\r\nHost: localhost\r\nX-Slow: " + b"a" * 100
    done = {}
    t0 = time.monotonic()
    lat = []

    def feed(i, s):
        for ch in head:
            try:
                s.send(bytes([ch]))
                s.settimeout(1.0)
                data = s.recv(200)
                if data:
                    done[i] = (time.monotonic() - t0, data.split(b"\r\n", 1)[0].decode())
                    return
            except socket.timeout:
                continue
            except OSError:
                done[i] = (time.monotonic() - t0, "closed")
                return

    threads = [threading.Thread(target=feed, args=(i, s), daemon=True) for i, s in enumerate(socks)]
    for t in threads:
        t.start()
    while len(done) < n and time.monotonic() - t0 < 30:
        lat.append(timed_health(h, v.url)[1])
        time.sleep(0.5)
    for s in socks:
        s.close()
    times = sorted(t for t, _ in done.values())
    answers = sorted(set(a for _, a in done.values()))
    v.proc.stop()
    return [("slowloris", "%d connections, 1 byte/s" % n,
             "%d answered %s after %.1f-%.1f s; health max %.1f ms meanwhile" %
             (len(done), "/".join(answers), times[0] if times else 0, times[-1] if times else 0,
              max(lat) if lat else 0))]


def bench_sse(h, vh, sim, n):
    v = vh.start_vramd(sim, "--max-event-clients", str(n + 10),
                       env={"VRAMD_SSE_MIN_HEARTBEAT_MS": "1"})
    rss0 = rss_mib(v.proc.pid)
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", v.port))
        s.sendall(b"GET /api/events?heartbeat_ms=1 HTTP/1.1\r\nHost: localhost\r\n\r\n")
        socks.append(s)
    peak = rss0
    deadline = time.monotonic() + 120
    while v.proc.log_text().count("SSE client disconnected") < n and time.monotonic() < deadline:
        peak = max(peak, rss_mib(v.proc.pid))
        time.sleep(0.2)
    dropped = v.proc.log_text().count("SSE client disconnected")
    for s in socks:
        s.close()
    v.proc.stop()
    return [("sse", "%d non-reading clients, 1 ms heartbeat" % n,
             "%d dropped at the 256 KiB cap; peak RSS growth %.1f MiB" % (dropped, peak - rss0))]


def bench_queue(h, vh, sim):
    v = vh.start_vramd(sim, "--max-concurrent", "1")
    vh.wait_ready(v)
    rss0 = rss_mib(v.proc.pid)
    prompt = "x" * (7 * 1024 * 1024 + 512 * 1024)
    codes = {}
    for i in range(120):
        status, _ = v.submit({"model": "phi3:mini", "prompt": prompt + str(i),
                              "options": {"num_predict": 2000}})
        codes[status] = codes.get(status, 0) + 1
    grown = rss_mib(v.proc.pid) - rss0
    v.proc.stop()
    return [("queue", "120 jobs with 7.5 MiB prompts",
             "%s; RSS growth %.0f MiB" % (", ".join("%d x %s" % (n, c) for c, n in sorted(codes.items())),
                                          grown))]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build-rel"))
    ap.add_argument("--jobs", type=int, default=1500)
    ap.add_argument("--slow", type=int, default=200)
    ap.add_argument("--sse", type=int, default=300)
    args = ap.parse_args()
    os.environ["VRAMD_BUILD_DIR"] = os.path.abspath(args.build)
    import harness as h
    import vramd_harness as vh
    sim = h.start_sim("--gpus", "8GiB", state_file=True, time_scale=1000)
    rows = []
    try:
        rows += bench_query(h, vh, sim, args.jobs)
        rows += bench_fd(h, vh, sim)
        rows += bench_slowloris(h, vh, sim, args.slow)
        rows += bench_sse(h, vh, sim, args.sse)
        rows += bench_queue(h, vh, sim)
    finally:
        sim.stop()
    print("| attack | setting | what vramd did |")
    print("|---|---|---|")
    for r in rows:
        print("| %s | %s | %s |" % r)


if __name__ == "__main__":
    main()
