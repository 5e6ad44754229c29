#!/usr/bin/env python3
"""A throw-away PostgreSQL server for the tests (python3, standard library only).

Starts Debian's PostgreSQL (initdb in a temporary directory, pg_ctl on a free
loopback port, its socket in that directory), and stops it and removes the directory
at the end. PostgreSQL refuses to run as root, so as root the server runs as the
`postgres` user that Debian's package creates.

Two ways to use it:
  - as a wrapper, for C tests registered with CTest:
        python3 tests/pgserver.py -- build/tests/test-store
    runs the command with VRAMD_TEST_PG_URL=postgresql://vramd@127.0.0.1:PORT/vramd
    and exits with its status; VRAMD_TEST_PG_CTL is a shell command prefix that runs
    pg_ctl on that server (add "-w -m fast restart", "-w -m fast stop", or
    "-w -o \"$VRAMD_TEST_PG_OPTS\" start"), for tests of a server going away;
  - as a module, for the python integration tests:
        with PgServer() as pg:
            url = pg.create_database("t1")

The server is tuned for tests (fsync on, as production; small shared buffers) and
trusts loopback connections as the superuser `vramd`.
"""

import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time


def _bindir():
    """The directory of initdb and pg_ctl: PG_BINDIR, else Debian's newest version."""
    if os.environ.get("PG_BINDIR"):
        return os.environ["PG_BINDIR"]
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(p.split("/")[4]))
    if not found:
        raise RuntimeError("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb); "
                           "install Debian's postgresql package")
    return os.path.dirname(found[-1])


def _free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class PgServer:
    """One PostgreSQL server; start() then stop(), or use it as a context manager."""

    def __init__(self, user="vramd"):
        self.user = user
        self.port = None
        self.dir = None
        self._run_as = None
        self.opts = None

    def _cmd(self, args, **kw):
        """Runs a PostgreSQL program, as `postgres` when we are root."""
        if self._run_as is not None:
            pw = self._run_as

            def demote():
                os.setgid(pw.pw_gid)
                os.setuid(pw.pw_uid)
            kw["preexec_fn"] = demote
            kw.setdefault("env", dict(os.environ, HOME=self.dir))
        return subprocess.run(args, check=True, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, **kw)

    def start(self):
        bindir = _bindir()
        self.dir = tempfile.mkdtemp(prefix="vramd-pg-")
        if os.geteuid() == 0:
            self._run_as = pwd.getpwnam("postgres")
            os.chown(self.dir, self._run_as.pw_uid, self._run_as.pw_gid)
        data = os.path.join(self.dir, "data")
        self._cmd([os.path.join(bindir, "initdb"), "-D", data, "-U", self.user,
                   "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"])
        for attempt in range(5):
            self.port = _free_port()
            opts = ("-c listen_addresses=127.0.0.1 -c port=%d -c unix_socket_directories=%s "
                    "-c shared_buffers=16MB -c max_connections=200 -c fsync=on" %
                    (self.port, self.dir))
            self.opts = opts
            try:
                self._cmd([os.path.join(bindir, "pg_ctl"), "-D", data, "-o", opts, "-w",
                           "-t", "60", "-l", os.path.join(self.dir, "server.log"), "start"])
                break
            except subprocess.CalledProcessError:
                if attempt == 4:
                    raise RuntimeError("PostgreSQL did not start:\n" + self.log_tail())
        self.create_database("vramd")
        return self

    def ctl_command(self):
        """A shell command prefix running this server's pg_ctl (as `postgres` when root)."""
        prefix = "runuser -u postgres -- " if self._run_as is not None else ""
        return "%s%s -D %s -l %s" % (prefix, os.path.join(_bindir(), "pg_ctl"),
                                     os.path.join(self.dir, "data"),
                                     os.path.join(self.dir, "server.log"))

    def log_tail(self, n=40):
        try:
            with open(os.path.join(self.dir, "server.log"), errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return "(no server log)"

    def url(self, database="vramd"):
        return "postgresql://%s@127.0.0.1:%d/%s" % (self.user, self.port, database)

    def psql(self, sql, database="vramd"):
        """Runs SQL through psql and returns its unaligned output."""
        psql = os.path.join(_bindir(), "psql")
        out = subprocess.run([psql, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                              "-d", self.url(database), "-c", sql],
                             check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
        return out.stdout.strip()

    def create_database(self, name):
        """Creates an empty database and returns its URL."""
        self.psql('CREATE DATABASE "%s"' % name, database="postgres")
        return self.url(name)

    def stop(self):
        if self.dir is None:
            return
        data = os.path.join(self.dir, "data")
        if os.path.exists(os.path.join(data, "postmaster.pid")):
            try:
                self._cmd([os.path.join(_bindir(), "pg_ctl"), "-D", data, "-m", "immediate",
                           "-w", "stop"])
            except subprocess.CalledProcessError:
                pass
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def main(argv):
    if "--" not in argv or argv.index("--") == len(argv) - 1:
        print("usage: pgserver.py -- COMMAND [ARGS...]", file=sys.stderr)
        return 2
    cmd = argv[argv.index("--") + 1:]
    with PgServer() as pg:
        env = dict(os.environ, VRAMD_TEST_PG_URL=pg.url(), VRAMD_TEST_PG_CTL=pg.ctl_command(),
                   VRAMD_TEST_PG_OPTS=pg.opts)
        started = time.monotonic()
        rc = subprocess.call(cmd, env=env)
        if rc != 0:
            print("pgserver: %s exited %d after %.1f s; server log tail:\n%s" %
                  (cmd[0], rc, time.monotonic() - started, pg.log_tail()), file=sys.stderr)
        return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
