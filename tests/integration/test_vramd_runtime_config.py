"""Run-time changes through PUT /api/gpu/config and DATA_DIR/runtime-config.json (issue
13): every key the API takes, the monitoring interval and the default reservation ttl
included, comes back after a restart; and a change that cannot be written there is
refused with a 500 naming the file and the error, and not applied."""

import json
import os
import shutil
import tempfile

from harness import http_json, run_tests, start_sim
from vramd_harness import start_vramd

sim = None


def setup_module():
    global sim
    sim = start_sim("--gpus", "8GiB", state_file=True, time_scale=100)


def teardown_module():
    sim.stop()


def gpu_config(v):
    status, body = http_json("GET", v.url + "/api/gpu/config")
    assert status == 200, (status, body)
    return body


def put(v, body):
    return http_json("PUT", v.url + "/api/gpu/config", json_body=body)


def test_api_keys_survive_restart():
    data = tempfile.mkdtemp(prefix="vramd-rtcfg-")
    v = start_vramd(sim, data_dir=data)
    try:
        cfg = gpu_config(v)
        assert cfg["monitoring_interval_ms"] == 1000, cfg
        assert cfg["reservation_default_ttl_s"] == 3600, cfg
        status, body = put(v, {"monitoring_interval_ms": 700,
                               "reservation_default_ttl_s": 120,
                               "history_size": 50, "safety_margin_mb": 1500,
                               "MODEL_CACHE_SIZE": 2})
        assert status == 200, (status, body)
        assert body["monitoring_interval_ms"] == 700, body
        assert body["reservation_default_ttl_s"] == 120, body
        kept = json.load(open(os.path.join(data, "runtime-config.json")))["config"]
        assert kept["MEMORY_MONITORING_INTERVAL"] == "700ms", kept
        assert kept["RESERVATION_DEFAULT_TTL_S"] == "120", kept
        # The new default ttl is the one a reservation without ttl_s gets.
        status, res = http_json("POST", v.url + "/api/gpu/memory/allocate",
                                json_body={"id": "rt-test", "mb": 64, "gpu": 0})
        assert status in (200, 201), (status, res)
        assert res.get("ttl_s") == 120, res
        v.proc.assert_clean_exit()
    finally:
        v.stop()

    v = start_vramd(sim, data_dir=data)
    try:
        cfg = gpu_config(v)
        assert cfg["monitoring_interval_ms"] == 700, cfg
        assert cfg["reservation_default_ttl_s"] == 120, cfg
        assert cfg["history_size"] == 50, cfg
        assert cfg["safety_margin_mb"] == 1500, cfg
        v.proc.assert_clean_exit()
    finally:
        v.stop()


def test_put_not_kept_is_not_applied():
    data = tempfile.mkdtemp(prefix="vramd-rtcfg-")
    v = start_vramd(sim, data_dir=data)
    path = os.path.join(data, "runtime-config.json")
    try:
        status, body = put(v, {"hysteresis_c": 4})
        assert status == 200, (status, body)
        # runtime-config.json replaced by a directory: the rename over it fails
        # (also as root, where a read-only directory would not stop the write).
        os.unlink(path)
        os.mkdir(path)
        status, body = put(v, {"hysteresis_c": 6, "reservation_default_ttl_s": 99})
        assert status == 500, (status, body)
        assert "runtime-config.json" in body["error"], body
        assert "Is a directory" in body["error"], body
        cfg = gpu_config(v)
        assert cfg["hysteresis_c"] == 4, cfg  # not applied
        assert cfg["reservation_default_ttl_s"] == 3600, cfg
        assert not os.path.exists(path + ".tmp")
        # A bad request is still a 400, not a 500.
        status, body = put(v, {"hysteresis_c": 50})
        assert status == 400, (status, body)
        # Once the file can be written again, the same PUT applies.
        os.rmdir(path)
        status, body = put(v, {"hysteresis_c": 6})
        assert status == 200 and body["hysteresis_c"] == 6, (status, body)
        kept = json.load(open(path))["config"]
        assert kept["HYSTERESIS_C"] == "6", kept
        v.proc.assert_clean_exit()
    finally:
        v.stop()
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    run_tests(globals())
