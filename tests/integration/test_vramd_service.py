"""vramd as a service: the systemd notification protocol (READY=1 only once the first
GPU sample is in, WATCHDOG=1 at half of WATCHDOG_USEC, RELOADING=1 around SIGHUP,
STOPPING=1 at the end), SIGHUP reloading the configuration file (run-time keys
applied, others logged as needing a restart, a bad file changing nothing), and
run-time changes made through PUT /api/gpu/config surviving a restart
(DATA_DIR/runtime-config.json)."""

import json
import os
import signal
import socket
import subprocess
import tempfile
import time

from harness import http_json, run_tests, start_sim, wait_until
from vramd_harness import start_vramd, vramd_path

sim = None


def setup_module():
    global sim
    sim = start_sim("--gpus", "8GiB,8GiB", state_file=True, time_scale=100)


def teardown_module():
    sim.stop()


def has_libsystemd():
    out = subprocess.run(["ldd", vramd_path()], capture_output=True, text=True).stdout
    return "libsystemd" in out


class NotifySocket:
    """The socket systemd listens on for a Type=notify service ($NOTIFY_SOCKET)."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="vramd-notify-")
        self.path = os.path.join(self.dir, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.messages = []  # (monotonic time, {key: value})

    def poll(self, timeout):
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(4096)
        except socket.timeout:
            return None
        fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
        self.messages.append((time.monotonic(), fields))
        return fields

    def wait_for(self, key, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = self.poll(max(0.01, deadline - time.monotonic()))
            if m is not None and key in m:
                return m
        raise AssertionError("no %s in %r" % (key, self.messages))

    def close(self):
        self.sock.close()
        os.unlink(self.path)
        os.rmdir(self.dir)


def gpu_config(v):
    status, body = v.get("/api/gpu/config")
    assert status == 200, (status, body)
    return body


def test_notify_ready_watchdog_stopping():
    if not has_libsystemd():
        print("SKIP: vramd built without libsystemd (no sd_notify)")
        return
    ns = NotifySocket()
    # A slow first GPU sample: READY=1 must wait for it, not come at the first loop turn.
    v = start_vramd(sim, "--monitor-interval", "2000",
                    env={"NOTIFY_SOCKET": ns.path, "WATCHDOG_USEC": "400000"})
    try:
        ready = ns.wait_for("READY")
        assert "2 GPUs (nvml)" in ready.get("STATUS", ""), ready
        status, gpus = v.get("/api/gpu/status/all")
        assert status == 200, (status, gpus)
        listed = gpus.get("gpus", gpus) if isinstance(gpus, dict) else gpus
        assert len(listed) == 2, gpus
        # Status lines before READY say what vramd was doing.
        assert any("STATUS" in m and "READY" not in m for _, m in ns.messages), ns.messages
        # WATCHDOG=1 every 200 ms (half of 400 ms): at least 4 in 1.5 s.
        ns.messages.clear()
        end = time.monotonic() + 1.5
        while time.monotonic() < end:
            ns.poll(0.1)
        pets = [t for t, m in ns.messages if m.get("WATCHDOG") == "1"]
        assert len(pets) >= 4, ns.messages
        gaps = [b - a for a, b in zip(pets, pets[1:])]
        assert max(gaps) < 0.6, gaps
        # SIGHUP: RELOADING=1, then READY=1 again.
        v.proc.popen.send_signal(signal.SIGHUP)
        ns.wait_for("RELOADING")
        again = ns.wait_for("READY")
        assert "reload" in again.get("STATUS", ""), again
        v.proc.popen.send_signal(signal.SIGTERM)
        stopping = ns.wait_for("STOPPING")
        assert stopping["STOPPING"] == "1", stopping
        v.proc.assert_clean_exit()
    finally:
        v.stop()
        ns.close()


def test_no_notify_socket_is_fine():
    # Started by hand (no $NOTIFY_SOCKET): nothing to tell, and nothing breaks.
    v = start_vramd(sim, env={"WATCHDOG_USEC": "400000"})
    try:
        assert gpu_config(v)["hysteresis_c"] == 3
        v.proc.popen.send_signal(signal.SIGHUP)
        wait_until(lambda: "SIGHUP: 0 run-time keys changed" in v.proc.log_text(), 10,
                   what="the reload")
        v.proc.assert_clean_exit()
    finally:
        v.stop()


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def test_put_survives_restart_and_sighup_reloads():
    work = tempfile.mkdtemp(prefix="vramd-service-")
    conf = os.path.join(work, "vramd.conf")
    data = os.path.join(work, "data")
    write(conf, "HYSTERESIS_C = 3\nQUEUE_MAX_SIZE = 100\nMAX_BATCH_WAIT = 30\n")
    v = start_vramd(sim, "--config", conf, data_dir=data)
    try:
        status, body = http_json("PUT", v.url + "/api/gpu/config",
                                 json_body={"temp_throttled_max_c": 88, "speed_normal": 0.7,
                                            "MAX_BATCH_WAIT": 12})
        assert status == 200, (status, body)
        kept = json.load(open(os.path.join(data, "runtime-config.json")))
        assert kept["config"]["TEMP_CRITICAL_C"] == "88", kept
        assert abs(float(kept["config"]["SPEED_NORMAL"]) - 0.7) < 1e-9, kept
        assert kept["config"]["MAX_BATCH_WAIT"] == "12", kept
        v.proc.assert_clean_exit()
    finally:
        v.stop()

    # A restart with the same file and data directory: the changes are still in effect.
    v = start_vramd(sim, "--config", conf, data_dir=data)
    try:
        cfg = gpu_config(v)
        assert cfg["temp_throttled_max_c"] == 88, cfg
        assert abs(cfg["speed_normal"] - 0.7) < 1e-9, cfg
        assert "run-time change kept" in v.proc.log_text(), v.proc.log_tail()

        # Edit the file: a run-time key and a start-only key; SIGHUP.
        write(conf, "HYSTERESIS_C = 5\nQUEUE_MAX_SIZE = 200\nMAX_BATCH_WAIT = 30\n")
        v.proc.popen.send_signal(signal.SIGHUP)
        wait_until(lambda: gpu_config(v)["hysteresis_c"] == 5, 10, what="hysteresis_c 5")
        wait_until(lambda: "QUEUE_MAX_SIZE changed in the configuration but needs a restart"
                   in v.proc.log_text(), 10, what="the needs-a-restart line")
        cfg = gpu_config(v)
        assert cfg["temp_throttled_max_c"] == 88, cfg  # the file did not touch it
        # The file now says what the run-time change said before: the file wins, and
        # the kept change is dropped.
        write(conf, "HYSTERESIS_C = 5\nQUEUE_MAX_SIZE = 200\nMAX_BATCH_WAIT = 30\n"
                    "TEMP_CRITICAL_C = 84\n")
        v.proc.popen.send_signal(signal.SIGHUP)
        wait_until(lambda: gpu_config(v)["temp_throttled_max_c"] == 84, 10,
                   what="temp_throttled_max_c 84")
        kept = json.load(open(os.path.join(data, "runtime-config.json")))
        assert "TEMP_CRITICAL_C" not in kept["config"], kept
        assert kept["config"]["MAX_BATCH_WAIT"] == "12", kept

        # A bad file: logged, nothing changes, vramd keeps running.
        write(conf, "HYSTERESIS_C = 7\nNO_SUCH_KEY = 1\n")
        v.proc.popen.send_signal(signal.SIGHUP)
        wait_until(lambda: "configuration not reloaded" in v.proc.log_text(), 10,
                   what="the failed reload")
        assert "NO_SUCH_KEY" in v.proc.log_text()
        cfg = gpu_config(v)
        assert cfg["hysteresis_c"] == 5 and cfg["temp_throttled_max_c"] == 84, cfg
        v.proc.assert_clean_exit()
    finally:
        v.stop()


if __name__ == "__main__":
    run_tests(globals())
