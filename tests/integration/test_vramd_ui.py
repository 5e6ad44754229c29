"""The live dashboard at /ui (issue 13, part 2; docs/dashboard.md).

Over plain HTTP: the files built into vramd are served with their content types, a
Content-Security-Policy that forbids loading anything from elsewhere, revalidation
headers (ETag, 304), HEAD, 404s; /ui is public with API keys while the API is not, and
GET /api/whoami says who the page talks as.

In a browser: Debian's chromium (installed here when missing, as root) driven by
playwright-core from npm (tests/npm/ui.test.mjs through tests/npm/run.sh) loads the page
against ollama-sim with two simulated GPUs: no console error, both GPUs shown, a
temperature raised through ollama-sim shown within 2 s, admin actions (force to GPU,
unload, cancel), the queue; with API keys, the page asks for a key and shows admin
actions only to an admin key; in a fleet, a remote node's GPUs show in its card. The
screenshots are saved under the build directory's Testing/ui/ (the paths are printed).
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import build_dir, http, http_json, run_tests, source_dir, start_sim, wait_until  # noqa: E402
from vramd_harness import nvml_lib_path, start_vramd, wait_models_known  # noqa: E402

# Fast sampling and a short critical pause, as test_gpu_policy.py, so temperature
# changes show at once and a CRITICAL GPU recovers within the test.
VRAMD_ARGS = ["--monitor-interval", "100", "--loop-interval", "50", "--critical-pause", "3",
              "--throttle-cooldown", "1"]
ADMIN_KEY = "sk-ui-admin-0123456789abcdef"
USER_KEY = "sk-ui-user-0123456789abcdef0"


def ensure_chromium():
    """Debian's chromium, installed as the other tests install their packages."""
    path = shutil.which("chromium")
    if path:
        return path
    if os.geteuid() != 0:
        raise AssertionError("chromium is needed: sudo apt-get install -y chromium")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    # Other tests may be installing packages at the same time: wait for dpkg's lock.
    lock = ["-o", "DPkg::Lock::Timeout=300"]
    subprocess.run(["apt-get", *lock, "update", "-qq"], env=env, check=True, timeout=600)
    subprocess.run(["apt-get", *lock, "install", "-y", "-qq", "--no-install-recommends",
                    "chromium"], env=env, check=True, timeout=900)
    path = shutil.which("chromium")
    assert path, "apt-get installed chromium but it is not on PATH"
    return path


def artefact(name):
    d = os.path.abspath(os.path.join(build_dir(), "Testing", "ui"))
    os.makedirs(d, exist_ok=True)
    return os.path.join(d, name)


def run_browser(env):
    script = os.path.join(source_dir(), "tests", "npm", "run.sh")
    full = dict(os.environ, CHROMIUM=ensure_chromium(), **env)
    out = subprocess.run([script, "ui.test.mjs"], env=full, capture_output=True, text=True,
                         timeout=400)
    print(out.stdout[-6000:], out.stderr[-3000:])
    assert out.returncode == 0 and " 0 failed" in out.stdout, out.stdout[-3000:]
    assert os.path.getsize(env["UI_SCREENSHOT"]) > 10000, "the screenshot is missing"
    print("screenshot saved: %s" % env["UI_SCREENSHOT"])


def start_pair(*args, keys=False):
    sim = start_sim("--gpus", "8GiB,8GiB", state_file=True, time_scale=100)
    v = start_vramd(sim, *VRAMD_ARGS, *args)
    if not keys:  # wait_models_known asks without a key
        wait_models_known(v, timeout=30)
    return sim, v


def header(headers, name):
    return headers.get(name.lower())


def test_files_served_with_types_csp_and_caching():
    sim, v = start_pair()
    try:
        wanted = {"/ui": "text/html; charset=utf-8", "/ui/": "text/html; charset=utf-8",
                  "/ui/index.html": "text/html; charset=utf-8",
                  "/ui/app.js": "text/javascript; charset=utf-8",
                  "/ui/style.css": "text/css; charset=utf-8",
                  "/ui/favicon.svg": "image/svg+xml"}
        index = None
        for path, ctype in wanted.items():
            status, resp, body = http("GET", v.url + path)
            assert status == 200, (path, status, body[:200])
            assert header(resp, "Content-Type") == ctype, (path, resp)
            csp = header(resp, "Content-Security-Policy")
            assert csp and "default-src 'none'" in csp and "script-src 'self'" in csp, csp
            assert "http" not in csp and "*" not in csp and "unsafe" not in csp, csp
            assert "connect-src 'self'" in csp and "frame-ancestors 'none'" in csp, csp
            assert header(resp, "X-Content-Type-Options") == "nosniff", path
            assert header(resp, "Cache-Control") == "no-cache", path
            etag = header(resp, "ETag")
            assert etag and etag.startswith('"') and etag.endswith('"'), etag
            # Revalidation: the same ETag gets 304 and no body; another one the file.
            s2, r2, b2 = http("GET", v.url + path, headers={"If-None-Match": etag})
            assert s2 == 304 and b2 == b"" and header(r2, "ETag") == etag, (path, s2)
            s3, _, b3 = http("GET", v.url + path, headers={"If-None-Match": '"0000"'})
            assert s3 == 200 and b3 == body, path
            s4, r4, b4 = http("HEAD", v.url + path)
            assert s4 == 200 and b4 == b"" and header(r4, "Content-Type") == ctype, path
            assert int(header(r4, "Content-Length")) == len(body), path
            if path == "/ui":
                index = body.decode()
        # The page loads nothing from elsewhere (no CDN): every file is vramd's own.
        for name in ("index.html", "app.js", "style.css"):
            with open(os.path.join(source_dir(), "web", name)) as f:
                # The SVG namespace is a name, not something loaded.
                text = f.read().replace("http://www.w3.org/2000/svg", "")
            for bad in ("https://", "http://", "//cdn", "@import"):
                assert bad not in text, (name, bad)
        assert 'src="/ui/app.js"' in index and 'href="/ui/style.css"' in index, index
        for path, status in (("/ui/nope.js", 404), ("/uix", 404), ("/ui/sub/app.js", 404),
                             ("/ui/%2e%2e/api/stats", 404)):
            s, _, body = http("GET", v.url + path)
            assert s == status, (path, s, body)
            assert "error" in json.loads(body), body
        s, resp, _ = http("POST", v.url + "/ui", json_body={})
        assert s == 405 and "GET" in header(resp, "Allow"), s
        status, who = http_json("GET", v.url + "/api/whoami")
        assert status == 200 and who == {"api_keys": False, "key": None, "admin": True,
                                         "error": None}, who
        v.proc.assert_clean_exit()
    finally:
        v.stop()
        sim.stop()


def test_dashboard_in_chromium():
    sim, v = start_pair()
    try:
        wait_until(lambda: len(http_json("GET", v.url + "/api/gpu/status")[1]["gpus"]) == 2,
                   timeout=10, what="two GPUs sampled")
        run_browser({"VRAMD_URL": v.url, "SIM_URL": sim.url, "UI_MODE": "open",
                     "UI_SCREENSHOT": artefact("dashboard.png")})
        v.proc.assert_clean_exit()
    finally:
        v.stop()
        sim.stop()


def test_dashboard_with_api_keys():
    keys_dir = tempfile.mkdtemp(prefix="vramd-ui-keys-")
    keys_file = os.path.join(keys_dir, "keys.json")
    with open(keys_file, "w") as f:
        json.dump([{"key": ADMIN_KEY, "name": "ops", "admin": True},
                   {"key": USER_KEY, "name": "user"}], f)
    os.chmod(keys_file, 0o600)
    sim, v = start_pair("--api-keys-file", keys_file, keys=True)
    try:
        # The page is public; what it reads is not.
        status, _, body = http("GET", v.url + "/ui")
        assert status == 200 and b"<html" in body, status
        status, _, _ = http("GET", v.url + "/api/stats")
        assert status == 401, status
        status, who = http_json("GET", v.url + "/api/whoami")
        assert status == 200 and who["api_keys"] is True and who["key"] is None, who
        assert who["admin"] is False and "API key is required" in who["error"], who
        status, who = http_json("GET", v.url + "/api/whoami",
                                headers={"Authorization": "Bearer " + USER_KEY})
        assert who == {"api_keys": True, "key": "user", "admin": False, "error": None}, who
        status, who = http_json("GET", v.url + "/api/whoami",
                                headers={"Authorization": "Bearer " + ADMIN_KEY})
        assert who == {"api_keys": True, "key": "ops", "admin": True, "error": None}, who
        status, who = http_json("GET", v.url + "/api/whoami",
                                headers={"Authorization": "Bearer sk-not-a-key-000000000"})
        assert who["key"] is None and who["error"] == "unknown API key", who
        run_browser({"VRAMD_URL": v.url, "UI_MODE": "keys", "UI_ADMIN_KEY": ADMIN_KEY,
                     "UI_USER_KEY": USER_KEY, "UI_SCREENSHOT": artefact("dashboard-keys.png")})
        v.proc.assert_clean_exit()
    finally:
        v.stop()
        sim.stop()



def test_remote_node_gpus_in_its_card():
    # As test_vramd_fleet.py: node a is this host's (one GPU through the simulated NVML),
    # node b's 16 GiB GPU is read from the vramd on its machine (telemetry_url).
    a = start_sim("--gpus", "8GiB", state_file=True)
    b = start_sim("--gpus", "16GiB", state_file=True)
    vb = start_vramd(b)
    nodes_dir = tempfile.mkdtemp(prefix="vramd-ui-nodes-")
    nodes_file = os.path.join(nodes_dir, "nodes.json")
    with open(nodes_file, "w") as f:
        json.dump({"nodes": [{"name": "a", "url": a.url},
                             {"name": "b", "url": b.url, "telemetry_url": vb.url}]}, f)
    v = start_vramd(None, "--nvml-lib", nvml_lib_path(), "--nodes-file", nodes_file,
                    *VRAMD_ARGS, env={"OLLAMA_SIM_STATE": a.state_file})
    try:
        wait_models_known(v)
        run_browser({"VRAMD_URL": v.url, "UI_MODE": "fleet",
                     "UI_SCREENSHOT": artefact("dashboard-fleet.png")})
        v.proc.assert_clean_exit()
    finally:
        v.stop()
        vb.stop()
        a.stop()
        b.stop()

if __name__ == "__main__":
    run_tests(globals())
