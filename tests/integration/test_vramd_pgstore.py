"""vramd with its jobs in PostgreSQL (STORE=postgresql://...) against ollama-sim, on a
throw-away server from tests/pgserver.py: 50 jobs complete and their rows are in the
database; kill -9 with jobs queued loses none of them after a restart; with the
server down a submission gets 500 naming the store, and the next one after it is back
gets 202; a bad STORE
refuses to start with a message naming the URL without its password; the password
shows neither in the log nor in GET /api/health (tests/test-config.c checks the
configuration's JSON)."""

import os
import subprocess
import tempfile
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from harness import run_tests, start_sim, wait_until  # noqa: E402
from pgserver import PgServer  # noqa: E402
from vramd_harness import FINAL, new_rng, random_job, start_vramd, vramd_path, wait_ready  # noqa: E402

pg = None
PASSWORD = "pg-s3cret"  # the test server trusts loopback logins: accepted, unused


def setup_module():
    global pg
    pg = PgServer().start()


def teardown_module():
    pg.stop()


def with_password(url):
    return url.replace("postgresql://vramd@", "postgresql://vramd:%s@" % PASSWORD)


def test_fifty_jobs_complete_in_postgresql():
    url = with_password(pg.create_database("fifty"))
    sim = start_sim("--gpus", "8GiB", state_file=True, time_scale=100)
    v = start_vramd(sim, "--store", url)
    try:
        wait_ready(v)
        rng = new_rng()
        ids = [v.submit_ok(random_job(rng)) for _ in range(50)]
        jobs = v.wait_all_final(ids, timeout=240)
        failed = [j for j in jobs.values() if j["status"] != "complete"]
        assert not failed, "%d jobs did not complete, e.g. %r" % (len(failed), failed[0])
        stats = v.stats()["jobs"]
        assert stats["total"] == 50 and stats["by_status"]["complete"] == 50, stats
        rows = pg.psql("SELECT status, COUNT(*) FROM jobs GROUP BY status", database="fifty")
        assert rows == "complete|50", rows
        status, health = v.get("/api/health")
        assert status == 200 and PASSWORD not in str(health), (status, health)
        v.stop()
        log = v.proc.log_text()
        assert PASSWORD not in log, "the password is in the log"
        assert "postgresql://***@127.0.0.1" in log, v.proc.log_tail()
    finally:
        v.stop()
        sim.stop()


def test_kill9_with_jobs_queued_loses_none():
    url = pg.create_database("kill9")
    # A slow sim, so that jobs are still queued when vramd dies.
    sim = start_sim("--gpus", "8GiB", state_file=True, time_scale=20)
    v = start_vramd(sim, "--store", url)
    port = v.port
    rng = new_rng()
    accepted = []
    stop = threading.Event()

    def submitter():
        # Keeps submitting through the crash; only 202 replies count as accepted.
        while not stop.is_set():
            try:
                status, reply = v.submit(random_job(rng), timeout=5)
            except OSError:
                time.sleep(0.02)
                continue
            if status == 202:
                accepted.append(reply["job_id"])
            time.sleep(0.005)

    v2 = None
    try:
        wait_ready(v)
        t = threading.Thread(target=submitter, daemon=True)
        t.start()
        wait_until(lambda: len(accepted) >= 60, timeout=60, what="60 accepted jobs")
        by_status = v.stats()["jobs"]["by_status"]
        v.proc.kill9()
        n_before = len(accepted)
        assert by_status["queued"] + by_status["pending"] > 0, by_status
        time.sleep(0.3)
        v2 = start_vramd(sim, "--store", url, port=port)
        wait_ready(v2)
        time.sleep(0.5)  # the submitter goes on against the restarted daemon
        stop.set()
        t.join(10)
        assert len(accepted) > n_before, "no job accepted after the restart"
        assert len(set(accepted)) == len(accepted), "a job id was handed out twice"
        jobs = v2.wait_all_final(accepted, timeout=300)
        failed = [j for j in jobs.values() if j["status"] != "complete"]
        assert not failed, "%d accepted jobs did not complete after the restart, e.g. %r" % (
            len(failed), failed[0])
        stored = int(pg.psql("SELECT COUNT(*) FROM jobs", database="kill9"))
        assert stored >= len(accepted), (stored, len(accepted))
        v2.proc.assert_clean_exit()
    finally:
        stop.set()
        v.stop()
        if v2 is not None:
            v2.stop()
        sim.stop()


def test_server_down_stops_the_leader_and_nothing_is_lost():
    # With the database gone, vramd (the leader of its one-instance cluster) can no longer
    # be sure it holds the leader lock: it stops with status 75 (EX_TEMPFAIL, which
    # systemd's Restart=on-failure restarts) rather than act without it. Started again
    # once the server is back, it finishes what it had accepted and takes new jobs.
    url = pg.create_database("outage")
    sim = start_sim("--gpus", "8GiB", state_file=True, time_scale=100)
    data_dir = tempfile.mkdtemp(prefix="vramd-data-")
    v = start_vramd(sim, "--store", url, "--leader-takeover", 3, data_dir=data_dir)
    ctl = pg.ctl_command()
    body = {"model": "qwen2.5:0.5b", "prompt": "hi", "options": {"num_predict": 4}}
    try:
        wait_ready(v)
        first = v.submit_ok(body)
        assert v.wait_final(first)["status"] == "complete"
        subprocess.run(ctl + " -w -m fast stop", shell=True, check=True,
                       stdout=subprocess.DEVNULL)
        try:
            v.proc.popen.wait(timeout=30)
            assert v.proc.popen.returncode == 75, v.proc.popen.returncode
            assert "lost the leader lock" in v.proc.log_text(), v.proc.log_text()[-2000:]
        finally:
            subprocess.run(ctl + ' -w -o "%s" start' % pg.opts, shell=True, check=True,
                           stdout=subprocess.DEVNULL)
        v = start_vramd(sim, "--store", url, "--leader-takeover", 3, data_dir=data_dir)
        wait_ready(v)
        assert v.job(first)["status"] == "complete"
        again = v.submit_ok(body)
        assert v.wait_final(again)["status"] == "complete"
    finally:
        v.stop()
        sim.stop()


def test_bad_store_refuses_to_start():
    # Nothing listens on port 1; then a database that does not exist.
    for url, reason in (
            ("postgresql://vramd:%s@127.0.0.1:1/vramd" % PASSWORD, "cannot connect"),
            (with_password(pg.url("no_such_db")), 'database "no_such_db" does not exist')):
        out = subprocess.run([vramd_path(), "--listen", "127.0.0.1:0", "--ollama",
                              "http://127.0.0.1:9", "--store", url, "--data-dir",
                              pg.dir + "/vramd-data"],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             timeout=60)
        assert out.returncode != 0, out.stdout
        assert reason in out.stdout, out.stdout
        assert "postgresql://***@127.0.0.1" in out.stdout, out.stdout
        assert PASSWORD not in out.stdout, out.stdout


if __name__ == "__main__":
    run_tests(globals())
