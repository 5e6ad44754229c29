"""The docs and the code agree: every configuration key docs/configuration.md and
docs/scheduling.md document (the key tables and the seed names) is a key or alias vramd
knows (`vramd --help`), and every endpoint docs/api.md names is routed on a running
vramd (called with its method, it answers something other than 405 or the router's
"no such endpoint" 404)."""

import http.client
import json
import os
import re
import subprocess

from harness import run_tests, source_dir, start_sim
from vramd_harness import start_vramd, vramd_path

KEY = re.compile(r"^\|\s*`([A-Za-z][A-Za-z0-9_]+)`")
ENDPOINT = re.compile(r"\b(GET|POST|PUT|DELETE|HEAD)\s+(/[A-Za-z0-9_/{}.-]*)")


def read_doc(name):
    with open(os.path.join(source_dir(), "docs", name)) as f:
        return f.read()


def known_names():
    """Keys and aliases as `vramd --help` lists them."""
    out = subprocess.run([vramd_path(), "--help"], capture_output=True, text=True,
                         timeout=30).stdout
    keys = set(re.findall(r"key ([A-Z][A-Z0-9_]+)", out))
    aliases = set(re.findall(r"alias (\S+) = ([A-Z][A-Z0-9_]+)", out))
    assert len(keys) > 50 and aliases, out[-2000:]
    return keys, {a for a, _ in aliases}, {k for _, k in aliases}


def documented_keys():
    """First-column names of the key tables, and the seed-name table's names."""
    found = {}
    for doc in ("configuration.md", "scheduling.md"):
        key_table, prev = False, ""
        for n, line in enumerate(read_doc(doc).splitlines(), 1):
            # A table's first line says what it is: only tables headed "Key" (or the
            # seed names' table) list keys; other tables may quote values in backticks.
            if line.startswith("|") and not prev.startswith("|"):
                first = line.split("|")[1].strip().lower()
                key_table = "key" in first or "seed" in first
            prev = line
            m = KEY.match(line)
            if key_table and m and not line.startswith("| `-"):
                names = re.findall(r"`([A-Za-z][A-Za-z0-9_]+)`", line.split("|")[1])
                for name in names:
                    found.setdefault(name, "%s:%d" % (doc, n))
    return found


def test_every_documented_key_exists():
    keys, aliases, alias_targets = known_names()
    found = documented_keys()
    assert "QUEUE_MAX_SIZE" in found and "temp_throttle" in found, sorted(found)
    missing = [(name, where) for name, where in sorted(found.items())
               if name.upper() not in keys and name not in aliases]
    assert not missing, "documented but unknown to vramd: %r" % missing
    # And the other way round: every key and alias is documented.
    undocumented = sorted((keys | aliases) - set(found) - {k.upper() for k in found})
    assert not undocumented, "known to vramd but not in docs/configuration.md: %r" % undocumented
    assert alias_targets <= keys, alias_targets - keys


def documented_endpoints():
    """(method, path) for every endpoint docs/api.md names in a heading or in code."""
    text = read_doc("api.md")
    found = set()
    for line in text.splitlines():
        if line.startswith("### "):
            # "### POST /a, /b, /c" and "### GET /x and PUT /x"
            method = None
            for tok in re.findall(r"(GET|POST|PUT|DELETE|HEAD)|(/[A-Za-z0-9_/{}.-]+)", line):
                if tok[0]:
                    method = tok[0]
                elif method:
                    found.add((method, tok[1]))
    for method, path in ENDPOINT.findall(text):
        found.add((method, path.rstrip(".")))
    return sorted(found)


def call(v, method, path):
    """Status and (for errors) body of one request, without reading a stream."""
    conn = http.client.HTTPConnection("127.0.0.1", v.port, timeout=30)
    body = b"{}" if method in ("POST", "PUT", "DELETE") else None
    headers = {"Content-Type": "application/json"} if body else {}
    conn.request(method, path, body=body, headers=headers)
    resp = conn.getresponse()
    text = resp.read() if resp.status >= 400 and method != "HEAD" else b""
    conn.close()
    return resp.status, text


def test_every_documented_endpoint_is_routed():
    endpoints = documented_endpoints()
    paths = {p for _, p in endpoints}
    assert ("GET", "/api/stats") in endpoints and "/api/gpu/config" in paths, endpoints
    assert len(endpoints) > 30, endpoints
    sim = start_sim("--gpus", "8GiB", state_file=True)
    v = start_vramd(sim)
    try:
        bad = []
        for method, path in endpoints:
            concrete = path.replace("{id}", "no-such-id").replace("{name}", "no-such")
            status, text = call(v, method, concrete)
            if status == 405 or (status == 404 and b"no such endpoint" in text):
                bad.append((method, path, status, text[:120]))
        assert not bad, "documented but not routed: %r" % bad
        # The check can fail: an endpoint that does not exist is caught.
        status, text = call(v, "GET", "/api/no_such_thing")
        assert status == 404 and b"no such endpoint" in text, (status, text)
        status, _ = call(v, "DELETE", "/api/stats")
        assert status == 405, status
    finally:
        v.stop()
        sim.stop()


if __name__ == "__main__":
    run_tests(globals())
