"""Several vramd instances on one PostgreSQL store (issue 14), against one ollama-sim: one
leader runs the fleet, every instance accepts jobs and answers their status and
long-polls, a follower sends front-door requests to the leader, and when the leader is
killed with -9 another takes over with no accepted job lost. /metrics says which
instance leads and how many are alive, and vramctl cluster lists them.

A real PostgreSQL is started for the test (tests/pgserver.py)."""

import contextlib
import itertools
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))
from harness import http, http_json, run_tests, start_sim, wait_until  # noqa: E402
from pgserver import PgServer  # noqa: E402
from vramd_harness import start_vramd, vramctl_path, wait_models_known  # noqa: E402

PG = None
TAKEOVER_S = 3


def setup_module():
    global PG
    PG = PgServer().start()


def teardown_module():
    if PG is not None:
        PG.stop()


def start_instances(sim, url, n, *args):
    return [start_vramd(sim, "--store", url, "--leader-takeover", TAKEOVER_S,
                        "--instance-id", "i%d" % i, *args) for i in range(n)]


def role(v):
    try:
        status, body = v.get("/api/health", timeout=5)
    except OSError:
        return None
    return body.get("cluster", {}).get("role") if status == 200 else None


def known_leader(v):
    try:
        status, body = v.get("/api/health", timeout=5)
    except OSError:
        return None
    return body.get("cluster", {}).get("leader") if status == 200 else None


def wait_leader(instances, timeout=30):
    """The one instance that says it leads, once exactly one does."""
    found = []

    def one():
        found[:] = [v for v in instances if role(v) == "leader"]
        return len(found) == 1
    wait_until(one, timeout=timeout, what="exactly one leader")
    return found[0]


def wait_agree(instances, timeout=10):
    """Every instance names the same leader (their listings are one tick apart)."""
    wait_until(lambda: len({known_leader(v) for v in instances} - {None}) == 1 and
               None not in {known_leader(v) for v in instances},
               timeout=timeout, what="every instance to know the leader")


def stop_all(sim, instances):
    for v in instances:
        v.stop()
    sim.stop()


_DATABASES = itertools.count(1)


@contextlib.contextmanager
def cluster(n, *args, time_scale=200):
    """n instances (given args) on a new database in front of one ollama-sim (8 GiB): yields
    (url, sim, instances) and stops them all at the end, also those the test appended."""
    url = PG.create_database("cluster%d" % next(_DATABASES))
    sim = start_sim("--gpus", "8GiB", state_file=True, time_scale=time_scale)
    instances = start_instances(sim, url, n, *args)
    try:
        yield url, sim, instances
    finally:
        stop_all(sim, instances)


def test_one_leader_and_jobs_through_every_instance():
    with cluster(3, time_scale=200) as (url, sim, instances):
        leader = wait_leader(instances)
        followers = [v for v in instances if v is not leader]
        assert all(role(v) == "follower" for v in followers)
        for v in instances:
            wait_models_known(v)
        # Every instance lists the three, and agrees which leads.
        for v in instances:
            wait_until(lambda: len(v.get("/api/cluster")[1]["instances"]) == 3,
                       what="three instances listed")
            body = v.get("/api/cluster")[1]
            assert body["leader"] == leader.get("/api/health")[1]["cluster"]["instance"], body
            assert sum(1 for i in body["instances"] if i["holds_lock"]) == 1, body
        models = ["qwen2.5:0.5b", "smollm:360m", "tinyllama:1.1b"]
        ids = []
        for i in range(60):
            v = instances[i % 3]
            ids.append(v.submit_ok({"model": models[i % 3], "prompt": "hi %d" % i,
                                    "options": {"num_predict": 4}}))
        assert len(set(ids)) == 60, "job ids collide across instances"
        # Status from any instance; each job ran exactly once.
        for i, jid in enumerate(ids):
            job = instances[(i + 1) % 3].wait_final(jid, timeout=120)
            assert job["status"] == "complete", job
            assert job["attempts"] == 1, job
        stats = followers[0].stats()
        assert stats["jobs"]["by_status"]["complete"] == 60, stats["jobs"]


def test_follower_long_poll_relay_and_redirects():
    with cluster(2, time_scale=50) as (url, sim, instances):
        leader = wait_leader(instances)
        wait_agree(instances)
        follower = [v for v in instances if v is not leader][0]
        # A submission before the follower has read the node's model list is a 503.
        wait_models_known(follower)
        jid = follower.submit_ok({"model": "qwen2.5:0.5b", "prompt": "hi",
                                  "options": {"num_predict": 40}})
        t0 = time.monotonic()
        status, job = follower.get("/api/job/%s?wait=60" % jid, timeout=90)
        waited = time.monotonic() - t0
        assert status == 200 and job["status"] == "complete", (status, job)
        assert waited < 30, waited
        # A front door on a follower: relayed to the leader, which runs the job, and the
        # answer streamed back to the client of the follower.
        status, headers, body = http("POST", follower.url + "/api/generate",
                                     json_body={"model": "qwen2.5:0.5b", "prompt": "x",
                                                "stream": False,
                                                "options": {"num_predict": 5}})
        assert status == 200, (status, body)
        assert json.loads(body)["done"] is True, body
        status, headers, body = http("POST", follower.url + "/api/chat",
                                     json_body={"model": "qwen2.5:0.5b",
                                                "messages": [{"role": "user", "content": "hi"}],
                                                "options": {"num_predict": 6}})
        assert status == 200, (status, body)
        assert headers["content-type"].startswith("application/x-ndjson"), headers
        lines = [json.loads(x) for x in body.decode().splitlines() if x.strip()]
        assert len(lines) >= 2 and lines[-1]["done"] is True, lines
        status, headers, body = http("POST", follower.url + "/v1/chat/completions",
                                     json_body={"model": "qwen2.5:0.5b", "stream": True,
                                                "max_tokens": 4,
                                                "messages": [{"role": "user", "content": "hi"}]})
        assert status == 200, (status, body)
        assert headers["content-type"].startswith("text/event-stream"), headers
        assert body.decode().rstrip().endswith("data: [DONE]"), body
        # An unknown model: the leader's own error, relayed.
        status, headers, body = http("POST", follower.url + "/api/generate",
                                     json_body={"model": "no-such:model", "prompt": "x"})
        assert status == 404, (status, body)
        status, body = http_json("POST", follower.url + "/api/models/unload",
                                 json_body={"model": "qwen2.5:0.5b"})
        assert status == 307 and "leader" in body["error"], (status, body)
        # Cancelling a queued job on a follower: redirected too; a final one is 409 here.
        status, body = http_json("DELETE", follower.url + "/api/job/" + jid)
        assert status == 409, (status, body)


def test_leader_killed_under_load_loses_nothing():
    kills = int(os.environ.get("VRAMD_CLUSTER_KILLS", "20"))
    url = PG.create_database("cluster%d" % next(_DATABASES))
    sim = start_sim("--gpus", "8GiB", state_file=True, time_scale=200)
    instances = start_instances(sim, url, 3)
    accepted = []
    stop = threading.Event()
    lock = threading.Lock()

    def submitter():
        rng = random.Random(7)
        n = 0
        while not stop.is_set():
            with lock:
                live = [v for v in instances if v.proc.alive()]
            v = rng.choice(live)
            try:
                status, body = v.submit({"model": rng.choice(["qwen2.5:0.5b", "smollm:360m"]),
                                         "prompt": "p%d" % n, "options": {"num_predict": 3}},
                                        timeout=10)
            except OSError:
                continue  # the instance died under it: not accepted
            if status == 202:
                accepted.append(body["job_id"])
                n += 1
            time.sleep(0.02)

    t = threading.Thread(target=submitter)
    t.start()
    takeovers = []
    try:
        leader = wait_leader(instances)
        for k in range(kills):
            time.sleep(1.5)
            idx = instances.index(leader)
            os.kill(leader.proc.pid, signal.SIGKILL)
            leader.proc.popen.wait()
            t0 = time.monotonic()
            with lock:
                survivors = [v for v in instances if v is not leader]
            leader = wait_leader(survivors, timeout=TAKEOVER_S * 4)
            takeovers.append(time.monotonic() - t0)
            # The killed one comes back (as systemd would restart it) as a follower.
            with lock:
                instances[idx] = start_vramd(None, "--store", url, "--leader-takeover",
                                             TAKEOVER_S, "--instance-id", "i%d-%d" % (idx, k),
                                             "--ollama", sim.url)
        time.sleep(1)
    finally:
        stop.set()
        t.join()
    try:
        print("accepted %d jobs; takeovers (s): %s" %
              (len(accepted), ", ".join("%.2f" % x for x in takeovers)))
        assert len(accepted) > 50, len(accepted)
        assert max(takeovers) < TAKEOVER_S * 2, takeovers
        any_v = instances[0]
        for jid in accepted:
            job = any_v.wait_final(jid, timeout=180)
            assert job["status"] == "complete", job
    finally:
        stop_all(sim, instances)


def test_leader_whose_lock_session_ends_stops_at_once():
    # Only the lock's session is ended (the store's connections live on): the leader must
    # stop without writing anything more, and the other instance finishes every job.
    with cluster(2, time_scale=20) as (url, sim, instances):
        leader = wait_leader(instances)
        other = [v for v in instances if v is not leader][0]
        ids = [leader.submit_ok({"model": "qwen2.5:0.5b", "prompt": "p%d" % i,
                                 "options": {"num_predict": 20}}) for i in range(20)]
        ended = PG.psql("SELECT pg_terminate_backend(pid) FROM pg_locks WHERE "
                        "locktype = 'advisory' AND objid = 1 AND granted",
                        database=url.rsplit("/", 1)[1])
        assert ended == "t", ended
        leader.proc.popen.wait(timeout=10)
        assert leader.proc.popen.returncode == 75, leader.proc.popen.returncode
        assert "lost the leader lock" in leader.proc.log_text()
        assert wait_leader([other], timeout=TAKEOVER_S * 4) is other
        for jid in ids:
            job = other.wait_final(jid, timeout=120)
            assert job["status"] == "complete", job


def test_runtime_config_shared_and_kept_over_failover():
    with cluster(2, time_scale=200) as (url, sim, instances):
        leader = wait_leader(instances)
        wait_agree(instances)
        follower = [v for v in instances if v is not leader][0]
        status, body = http_json("PUT", follower.url + "/api/gpu/config",
                                 json_body={"temp_throttle": 81})
        assert status == 307, (status, body)
        status, body = http_json("PUT", leader.url + "/api/gpu/config",
                                 json_body={"temp_throttle": 81})
        assert status == 200, (status, body)

        def throttle(v):
            return v.get("/api/gpu/config")[1]["temp_throttled_max_c"]
        assert throttle(leader) == 81
        assert throttle(follower) == 81, follower.get("/api/gpu/config")[1]
        os.kill(leader.proc.pid, signal.SIGKILL)
        leader.proc.popen.wait()
        assert wait_leader([follower], timeout=TAKEOVER_S * 4) is follower
        assert throttle(follower) == 81
        # A new instance with its own empty data directory reads it from the store.
        late = start_vramd(sim, "--store", url, "--leader-takeover", TAKEOVER_S,
                           "--instance-id", "late")
        instances.append(late)
        wait_agree([follower, late])
        assert throttle(late) == 81


def test_api_keys_shared_through_the_store():
    # The instance given API_KEYS_FILE shares it; one started after without the file
    # asks for the same keys.
    url = PG.create_database("cluster%d" % next(_DATABASES))
    sim = start_sim("--gpus", "8GiB", state_file=True, time_scale=200)
    admin = "sk-cluster-admin-0123456789abcdef"
    keys_file = os.path.join(tempfile.mkdtemp(prefix="vramd-keys-"), "keys.json")
    with open(keys_file, "w") as f:
        json.dump([{"key": admin, "name": "ops", "admin": True}], f)
    os.chmod(keys_file, 0o600)
    first = start_vramd(sim, "--store", url, "--api-keys-file", keys_file,
                        "--instance-id", "with-file")
    instances = [first]
    try:
        second = start_vramd(sim, "--store", url, "--instance-id", "without-file")
        instances.append(second)
        assert "the cluster's shared store" in second.proc.log_text()
        for v in instances:
            status, _, _ = http("GET", v.url + "/api/stats")
            assert status == 401, (v.url, status)
            status, _, _ = http("GET", v.url + "/api/stats",
                                headers={"Authorization": "Bearer " + admin})
            assert status == 200, (v.url, status)
    finally:
        stop_all(sim, instances)


def test_queue_limit_holds_through_a_follower():
    # QUEUE_MAX_SIZE 5 and the GPU held, so jobs stay queued: five through the leader fill
    # the cluster's queue, and the follower refuses the sixth.
    with cluster(2, "--queue-max-size", 5) as (url, sim, instances):
        leader = wait_leader(instances)
        wait_agree(instances)
        follower = [v for v in instances if v is not leader][0]
        wait_until(lambda: leader.get("/api/gpu/memory/available")[1]["gpus"][0]
                   ["reservable_mb"] > 0, what="the leader to know the GPU")
        mb = leader.get("/api/gpu/memory/available")[1]["gpus"][0]["reservable_mb"]
        status, body = http_json("POST", leader.url + "/api/gpu/memory/allocate",
                                 json_body={"id": "hold", "mb": mb, "gpu": 0})
        assert status == 200, (status, body)
        job = {"model": "qwen2.5:0.5b", "prompt": "hi", "options": {"num_predict": 2}}
        for _ in range(5):
            leader.submit_ok(job)
        time.sleep(0.3)  # the follower's count of the shared queue is at most 200 ms old
        status, body = follower.submit(job)
        assert status == 429 and "queue is full" in body["error"], (status, body)
        status, body = http_json("POST", leader.url + "/api/gpu/memory/deallocate",
                                 json_body={"id": "hold"})
        assert status == 200, (status, body)
        wait_until(lambda: follower.submit(job)[0] == 202, timeout=30,
                   what="the follower to take jobs once the queue drains")


def test_official_openai_client_through_a_follower():
    # The official openai npm client, pointed at a follower: every case of
    # tests/npm/openai.test.mjs (models, chat streamed and not, completions, embeddings,
    # the 404 and 400 errors) relayed to the leader and back.
    with cluster(2, time_scale=100) as (url, sim, instances):
        leader = wait_leader(instances)
        wait_agree(instances)
        follower = [v for v in instances if v is not leader][0]
        wait_models_known(follower)
        wait_models_known(leader)
        script = os.path.join(os.path.dirname(HERE), "npm", "run.sh")
        env = dict(os.environ, VRAMD_URL=follower.url)
        out = subprocess.run([script, "openai.test.mjs"], env=env, capture_output=True,
                             text=True, timeout=240)
        print(out.stdout[-3000:], out.stderr[-2000:])
        assert out.returncode == 0 and " 0 failed" in out.stdout, out.stdout


def test_reservations_shared_and_kept_over_failover():
    with cluster(2, time_scale=200) as (url, sim, instances):
        leader = wait_leader(instances)
        wait_agree(instances)
        follower = [v for v in instances if v is not leader][0]
        status, body = http_json("POST", follower.url + "/api/gpu/memory/allocate",
                                 json_body={"id": "sd", "mb": 1024, "gpu": 0})
        assert status == 307, (status, body)
        wait_until(lambda: leader.get("/api/gpu/memory/available")[1]["gpus"][0]
                   ["total_bytes"] > 0, what="the leader to know the GPU")
        status, body = http_json("POST", leader.url + "/api/gpu/memory/allocate",
                                 json_body={"id": "sd", "mb": 1024, "gpu": 0})
        assert status in (200, 202), (status, body)

        def ids(v):
            return [r["id"] for r in v.get("/api/gpu/memory/available")[1]["reservations"]]
        # The leader's reply may leave just before its commit (docs/api.md).
        wait_until(lambda: ids(follower) == ["sd"], timeout=5,
                   what="the follower to show the leader's reservation")
        os.kill(leader.proc.pid, signal.SIGKILL)
        leader.proc.popen.wait()
        assert wait_leader([follower], timeout=TAKEOVER_S * 4) is follower
        assert ids(follower) == ["sd"], ids(follower)
        status, body = http_json("POST", follower.url + "/api/gpu/memory/deallocate",
                                 json_body={"id": "sd"})
        assert status == 200, (status, body)
        assert ids(follower) == [], ids(follower)


def cluster_gauges(v):
    """{name: (instance label, value)} of the vramd_cluster_* samples of v's /metrics."""
    status, _, body = http("GET", v.url + "/metrics")
    assert status == 200, status
    found = {}
    for m in re.finditer(r'^(vramd_cluster_\w+)\{instance="([^"]*)"\} (\S+)$', body.decode(),
                         re.M):
        found[m.group(1)] = (m.group(2), float(m.group(3)))
    return found


def vramctl(v, *args):
    p = subprocess.run([vramctl_path(), "--url", v.url] + list(args), capture_output=True,
                       text=True, timeout=30, stdin=subprocess.DEVNULL)
    return p.returncode, p.stdout, p.stderr


def test_metrics_and_vramctl_say_who_leads():
    url = PG.create_database("cluster%d" % next(_DATABASES))
    sim = start_sim("--gpus", "8GiB", state_file=True, time_scale=50)
    instances = start_instances(sim, url, 2)
    plain = None
    try:
        leader = wait_leader(instances)
        follower = [v for v in instances if v is not leader][0]
        names = {v: v.get("/api/health")[1]["cluster"]["instance"] for v in instances}
        # Each instance's listing catches up within a tick of the other's first row.
        for v in instances:
            wait_until(lambda: cluster_gauges(v).get("vramd_cluster_instances",
                                                     (None, 0))[1] == 2,
                       what="vramd_cluster_instances 2 on %s" % names[v])
        assert cluster_gauges(leader)["vramd_cluster_leader"] == (names[leader], 1)
        assert cluster_gauges(follower)["vramd_cluster_leader"] == (names[follower], 0)
        assert cluster_gauges(follower)["vramd_cluster_instances"][0] == names[follower]

        # vramctl cluster against the follower: its view, the leader's lock.
        rc, out, err = vramctl(follower, "cluster")
        assert rc == 0, (rc, out, err)
        lines = out.splitlines()
        assert lines[0].split() == ["this", "instance:", names[follower], "(follower)"], out
        assert lines[1].split()[:4] == ["leader:", names[leader], "at",
                                        leader.url[len("http://"):]], out
        header = next(i for i, line in enumerate(lines) if line.startswith("INSTANCE"))
        assert re.split(r"\s{2,}", lines[header].strip()) == \
            ["INSTANCE", "ADDRESS", "ROLE", "LOCK", "LAST SEEN"], out
        rows = {r[0]: r for r in (re.split(r"\s{2,}", line.strip())
                                  for line in lines[header + 1:] if line.strip())}
        assert set(rows) == set(names.values()), out
        assert rows[names[leader]][1:4] == [leader.url[len("http://"):], "leader", "held"], out
        assert rows[names[follower]][1:4] == [follower.url[len("http://"):], "follower",
                                              "-"], out
        assert all(r[4].endswith(" s ago") for r in rows.values()), out
        rc, out, err = vramctl(follower, "--json", "cluster")
        assert rc == 0, (rc, out, err)
        body = json.loads(out)
        assert body["clustered"] is True and body["leader"] == names[leader], body
        assert len(body["instances"]) == 2, body

        # A stopped instance keeps its row (GET /api/cluster lists it), but the gauge counts
        # only instances heard from within LEADER_TAKEOVER_S.
        follower.stop()
        wait_until(lambda: cluster_gauges(leader)["vramd_cluster_instances"][1] == 1,
                   timeout=TAKEOVER_S * 4, what="the stopped follower no longer counted")
        assert len(leader.get("/api/cluster")[1]["instances"]) == 2

        # Without a cluster: no cluster series, and vramctl says so.
        plain = start_vramd(sim)
        assert cluster_gauges(plain) == {}
        rc, out, err = vramctl(plain, "cluster")
        assert (rc, out) == (0, "not clustered (SQLite store)\n"), (rc, out, err)
    finally:
        if plain is not None:
            plain.stop()
        stop_all(sim, instances)


if __name__ == "__main__":
    run_tests(globals())
