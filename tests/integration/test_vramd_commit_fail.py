"""A submission whose commit fails is answered 500, and then it must not run (issue 12:
"a failed commit after a job was already dispatched answers 500 without cancelling the
job"). vramd answers 202 only once the job's row is durable, but the engine may dispatch
the job in the same loop turn, before the writer thread reports the commit. When that
commit fails, the client hears 500 ("not accepted", so it retries), and the job that
started must be cancelled, not left running on Ollama.

The store is made to fail by a file-size limit (RLIMIT_FSIZE, SIGXFSZ ignored so the
write returns EFBIG): once the database files reach it, every commit fails."""

import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Proc, free_port, run_tests, start_sim, wait_http_ready, wait_until  # noqa: E402
from vramd_harness import Vramd, nvml_lib_path, sim_active, vramd_path, wait_ready  # noqa: E402

MODEL = "qwen2.5:0.5b"
FSIZE_LIMIT = 3 << 20  # bytes any file of vramd may reach (the log stays far below)
PROMPT = "x" * (256 << 10)  # big rows fill the database files fast

# Runs argv[1:] with the file-size limit and SIGXFSZ ignored (both survive exec).
LIMITED = ("import os, resource, signal, sys\n"
           "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
           "resource.setrlimit(resource.RLIMIT_FSIZE, (%d, %d))\n"
           "os.execv(sys.argv[1], sys.argv[1:])\n") % (FSIZE_LIMIT, FSIZE_LIMIT)


def start_limited_vramd(sim):
    port = free_port()
    data_dir = tempfile.mkdtemp(prefix="vramd-data-")
    argv = [sys.executable, "-c", LIMITED, vramd_path(), "--listen", "127.0.0.1:%d" % port,
            "--data-dir", data_dir, "--ollama", sim.url, "--nvml-lib", nvml_lib_path()]
    proc = Proc(argv, env={"OLLAMA_SIM_STATE": sim.state_file}, name="vramd")
    v = Vramd(proc, port, data_dir)
    wait_http_ready(v.url + "/api/health", 30, proc=proc)
    return v


def long_job(prompt=PROMPT):
    # About 20 s of generation at the sim's 220 tokens/s (time scale 1).
    return {"model": MODEL, "prompt": prompt, "options": {"num_predict": 4400}}


def test_job_of_a_failed_commit_does_not_run():
    sim = start_sim("--gpus", "8GiB", state_file=True, time_scale=1)
    v = start_limited_vramd(sim)
    try:
        wait_ready(v)
        # The model is loaded, so a new job is dispatched at once.
        first = v.submit_ok({"model": MODEL, "prompt": "hi", "options": {"num_predict": 1}})
        assert v.wait_final(first, timeout=60)["status"] == "complete"
        failed = None
        for _ in range(40):
            status, body = v.submit(long_job())
            if status == 202:
                # Accepted and running: cancel it so the next one starts at once too.
                assert v.cancel(body["job_id"])[0] == 200, body
                wait_until(lambda: sim_active(sim, MODEL) == 0, timeout=10,
                           what="the cancelled run to end on the sim")
                continue
            assert status == 500, (status, body)
            failed = body
            break
        assert failed is not None, "the store never failed"
        assert "could not store the job" in failed["error"], failed
        # The engine had dispatched it in its submission's loop turn (what this is about).
        assert "(its run was cancelled)" in failed["error"], failed
        # Not accepted, so not running: nothing generates on the sim (the long job would
        # run for about 20 s), and nothing of it waits in vramd's queue.
        time.sleep(0.5)
        assert sim_active(sim, MODEL) == 0, (failed, sim.state())
        assert v.stats()["queue"]["length"] == 0, v.stats()["queue"]
    finally:
        v.stop()
        sim.stop()


if __name__ == "__main__":
    run_tests(globals())
