"""Helpers for the vramd end-to-end tests (python3, standard library only).

The tests/integration/test_vramd_*.py programs start ollama-sim with start_sim()
from harness.py and vramd in front of it with start_vramd() below, on free ports
and temporary data directories, then drive vramd over HTTP. This module adds:

  start_vramd(sim, *args, data_dir=None, env=None, port=None)
      vramd on a free port against sim (or sim=None: no Ollama at all, pass
      --ollama yourself), with the simulated NVML reading the sim's state file.
  Vramd: .url, .port, .data_dir, .proc, .submit(), .job(), .wait_final(),
      .wait_all_final(), .stats(), .health().
  MODELS, CAPABILITIES, random_job(rng): the ten-model catalogue and a random,
      valid submit body for one of its models.
"""

import http.client as httpclient
import json
import os
import random
import tempfile
import time

from harness import Proc, build_dir, free_port, http, http_json, start_sim, wait_http_ready

# The built-in catalogue of ollama-sim (sim/catalogues/default.json): name -> kind.
MODELS = {
    "smollm:360m": "completion",
    "all-minilm:latest": "embedding",
    "nomic-embed-text:latest": "embedding",
    "qwen2.5:0.5b": "completion",
    "tinyllama:1.1b": "completion",
    "smollm:1.7b": "completion",
    "llama3.2:1b": "completion",
    "gemma:2b": "completion",
    "qwen2.5:1.5b": "completion",
    "phi3:mini": "completion",
}
PRIORITIES = ("high", "normal", "low")
FINAL = ("complete", "failed", "cancelled")


def vramd_path():
    return os.path.join(build_dir(), "src", "vramd")


def vramctl_path():
    return os.path.join(build_dir(), "cli", "vramctl")


def nvml_lib_path():
    return os.path.join(build_dir(), "nvml", "libnvidia-ml.so.1")


def random_job(rng, model=None, priority=None):
    """A valid submit body for a random model of the catalogue (or model), with a
    kind its capabilities allow, and a random priority (or priority)."""
    model = model or rng.choice(sorted(MODELS))
    body = {"model": model, "priority": priority or rng.choice(PRIORITIES)}
    if MODELS[model] == "embedding":
        body["kind"] = "embed"
        body["input"] = ["text %d" % rng.randrange(1000)] if rng.random() < 0.5 else "one text"
    elif rng.random() < 0.5:
        body["kind"] = "chat"
        body["messages"] = [{"role": "user", "content": "hello %d" % rng.randrange(1000)}]
    else:
        body["prompt"] = "why %d?" % rng.randrange(1000)
        body["options"] = {"num_predict": 8}
    if "options" not in body:
        body["options"] = {"num_predict": 8}
    return body


def check_result(job):
    """Asserts a complete job carries a result of its kind."""
    res = job.get("result")
    assert isinstance(res, dict), job
    kind = job.get("kind")
    if kind == "embed":
        assert isinstance(res.get("embeddings"), list) and res["embeddings"], job
        assert all(isinstance(v, list) and v for v in res["embeddings"]), job
    elif kind == "chat":
        msg = res.get("message")
        assert isinstance(msg, dict) and isinstance(msg.get("content"), str), job
    else:
        assert isinstance(res.get("response"), str), job


class Vramd:
    """A running vramd."""

    def __init__(self, proc, port, data_dir):
        self.proc = proc
        self.port = port
        self.url = "http://127.0.0.1:%d" % port
        self.data_dir = data_dir

    def get(self, path, timeout=30):
        return http_json("GET", self.url + path, timeout=timeout)

    def submit(self, body, timeout=30):
        """POST /api/submit. Returns (status, reply)."""
        return http_json("POST", self.url + "/api/submit", json_body=body, timeout=timeout)

    def submit_ok(self, body):
        status, reply = self.submit(body)
        assert status == 202, (status, reply, body)
        assert isinstance(reply.get("job_id"), str), reply
        return reply["job_id"]

    def job(self, job_id, wait=None, timeout=30):
        path = "/api/job/" + job_id
        if wait is not None:
            path += "?wait=%s" % wait
            timeout = max(timeout, float(wait) + 30)
        status, body = self.get(path, timeout=timeout)
        assert status == 200, (status, body, job_id)
        return body

    def cancel(self, job_id):
        return http_json("DELETE", self.url + "/api/job/" + job_id)

    def stats(self):
        status, body = self.get("/api/stats")
        assert status == 200, (status, body)
        return body

    def health(self):
        status, body = self.get("/api/health")
        assert status == 200, (status, body)
        return body

    def wait_final(self, job_id, timeout=60):
        """Long-polls until the job is final; returns it."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            job = self.job(job_id, wait=max(1, min(10, int(left))))
            if job["status"] in FINAL:
                return job
            if time.monotonic() >= deadline:
                raise AssertionError("job %s not final after %ss: %r" % (job_id, timeout, job))

    def wait_all_final(self, job_ids, timeout=120):
        """Waits until every job is final (polling GET /api/stats between checks
        keeps the HTTP traffic small); returns {id: job}."""
        deadline = time.monotonic() + timeout
        pending = list(job_ids)
        done = {}
        while pending:
            still = []
            for jid in pending:
                job = self.job(jid)
                if job["status"] in FINAL:
                    done[jid] = job
                else:
                    still.append(jid)
            pending = still
            if not pending:
                break
            if time.monotonic() >= deadline:
                sample = self.job(pending[0])
                raise AssertionError("%d jobs not final after %ss, e.g. %r" %
                                     (len(pending), timeout, sample))
            # Long-poll the oldest one instead of sleeping.
            self.job(pending[0], wait=2)
        return done

    def stop(self):
        return self.proc.stop()


def start_vramd(sim, *args, data_dir=None, env=None, port=None, ready_timeout=30,
                nvml=True):
    """Starts vramd on a free port with a temporary (or the given) data directory.
    With sim, it talks to that ollama-sim and, when nvml is true and the sim has
    a state file, reads GPU memory through the simulated NVML; extra args are
    appended (they win). Waits until GET /api/health answers."""
    port = port or free_port()
    data_dir = data_dir or tempfile.mkdtemp(prefix="vramd-data-")
    argv = [vramd_path(), "--listen", "127.0.0.1:%d" % port, "--data-dir", data_dir]
    full_env = {}
    if sim is not None:
        argv += ["--ollama", sim.url]
        if nvml and sim.state_file:
            argv += ["--nvml-lib", nvml_lib_path()]
            full_env["OLLAMA_SIM_STATE"] = sim.state_file
    argv += [str(a) for a in args]
    if env:
        full_env.update(env)
    proc = Proc(argv, env=full_env, name="vramd")
    v = Vramd(proc, port, data_dir)
    wait_http_ready(v.url + "/api/health", ready_timeout, proc=proc)
    return v


def wait_models_known(v, timeout=30):
    """Waits until vramd's registry lists the ten models of the catalogue."""
    def known():
        status, body = v.get("/api/models")
        return status == 200 and len(body.get("models", [])) >= len(MODELS)
    deadline = time.monotonic() + timeout
    while not known():
        if time.monotonic() > deadline:
            raise AssertionError("vramd did not learn the models within %ss" % timeout)
        time.sleep(0.1)


def wait_gpu_known(v, timeout=30):
    """Waits until vramd has sampled GPU memory (GET /api/stats shows a GPU with a
    total). Jobs submitted before that fail today: see test_vramd_random.py,
    test_jobs_submitted_before_first_gpu_sample_run."""
    def known():
        gpus = v.stats().get("gpus") or []
        return any((g.get("memory_total_bytes") or 0) > 0 for g in gpus)
    deadline = time.monotonic() + timeout
    while not known():
        if time.monotonic() > deadline:
            raise AssertionError("vramd did not sample GPU memory within %ss" % timeout)
        time.sleep(0.1)


def wait_ready(v, timeout=30):
    """Waits until vramd knows the models and, when it has GPU telemetry, the GPU."""
    wait_models_known(v, timeout)
    if v.health().get("gpu_telemetry") in ("nvml", "nvidia-smi"):
        wait_gpu_known(v, timeout)


def new_rng(seed_env="VRAMD_TEST_SEED"):
    """A random generator seeded from $VRAMD_TEST_SEED or the clock; the seed is
    printed so a failure can be replayed."""
    seed = int(os.environ.get(seed_env) or int(time.time() * 1000) % 1000000)
    print("seed %d (set %s to replay)" % (seed, seed_env))
    return random.Random(seed)


__all__ = ["MODELS", "PRIORITIES", "FINAL", "Vramd", "start_vramd", "random_job",
           "check_result", "vramd_path", "vramctl_path", "nvml_lib_path", "wait_models_known",
           "wait_gpu_known", "wait_ready",
           "new_rng", "http", "http_json"]


# --- Front doors (vramd answering as Ollama and OpenAI) ---------------------------------


def sim_active(sim, model):
    """Requests of model ollama-sim is generating for now."""
    for m in sim.state()["models"]:
        if m["name"] == model:
            return m.get("active", 0)
    return 0


def open_stream(v, path, body, headers=None):
    """Starts a POST of body to vramd and reads its reply head; returns (connection,
    response) so that the caller reads the stream, or closes it to go away."""
    conn = httpclient.HTTPConnection("127.0.0.1", v.port, timeout=60)
    hdrs = {"Content-Type": "application/json"}
    hdrs.update(headers or {})
    conn.request("POST", path, body=json.dumps(body), headers=hdrs)
    return conn, conn.getresponse()


def start_slow(*args):
    """ollama-sim at time scale 0.01 (phi3:mini makes about one token a second, loads are
    near instant) and vramd running one job of a model at a time in front of it, ready:
    for tests that need jobs to queue and streams to last."""
    sim = start_sim("--gpus", "8GiB", "--load-bw", "1000GB", "--start-cost", "1ms",
                    "--num-parallel", "2", state_file=True, time_scale=0.01)
    v = start_vramd(sim, "--max-concurrent", "1", *args)
    wait_ready(v)
    return sim, v
