"""The install step and the Debian package: builds vramd without sanitizers in its
own build tree (prefix /usr, no tests), runs cpack -G DEB, and checks the package's
name, control fields (Depends from the shared libraries, adduser for postinst),
maintainer scripts and conffiles, its file list, that every man page renders without
a warning, that the installed vramd.conf loads, and that systemd-analyze verify
accepts the unit. As root, when no vramd package is installed already, it also
installs the package (apt-get, which waits for the dpkg lock), checks the system user
and /var/lib/vramd that postinst creates, and purges it again."""

import os
import re
import shutil
import subprocess
import tempfile

from harness import build_dir, run_tests, source_dir

PKG_BUILD = None
DEB = None
EXTRACTED = None


def run(argv, **kw):
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    r = subprocess.run(argv, **kw)
    assert r.returncode == 0, "%s exited %d:\n%s\n%s" % (argv, r.returncode, r.stdout[-4000:],
                                                        r.stderr[-4000:])
    return r


def version():
    text = open(os.path.join(source_dir(), "CMakeLists.txt")).read()
    return re.search(r"project\(vramd VERSION ([0-9.]+)", text).group(1)


def arch():
    return run(["dpkg", "--print-architecture"]).stdout.strip()


def multiarch():
    return run(["dpkg-architecture", "-qDEB_HOST_MULTIARCH"]).stdout.strip()


def setup_module():
    global PKG_BUILD, DEB, EXTRACTED
    for tool in ("cpack", "dpkg-deb", "dpkg-shlibdeps"):
        assert shutil.which(tool), "%s is missing (packages cmake, dpkg-dev)" % tool
    # Its own tree (kept between runs, so a second run only rebuilds what changed): the
    # package must not carry the sanitizers of the test build.
    PKG_BUILD = os.path.join(build_dir(), "package-build")
    run(["cmake", "-S", source_dir(), "-B", PKG_BUILD, "-DCMAKE_BUILD_TYPE=Release",
         "-DCMAKE_INSTALL_PREFIX=/usr", "-DVRAMD_BUILD_TESTS=OFF", "-DVRAMD_SANITIZE=OFF"])
    run(["cmake", "--build", PKG_BUILD, "-j2"])
    for old in os.listdir(PKG_BUILD):
        if old.endswith(".deb"):
            os.unlink(os.path.join(PKG_BUILD, old))
    run(["cpack", "-G", "DEB"], cwd=PKG_BUILD)
    DEB = os.path.join(PKG_BUILD, "vramd_%s_%s.deb" % (version(), arch()))
    assert os.path.exists(DEB), os.listdir(PKG_BUILD)
    EXTRACTED = tempfile.mkdtemp(prefix="vramd-deb-")
    run(["dpkg-deb", "-x", DEB, EXTRACTED])


def teardown_module():
    if EXTRACTED:
        shutil.rmtree(EXTRACTED, ignore_errors=True)


def field(name):
    return run(["dpkg-deb", "-f", DEB, name]).stdout.strip()


def test_control_fields():
    assert field("Package") == "vramd"
    assert field("Version") == version()
    assert field("Architecture") == arch()
    depends = [d.strip().split(" ")[0] for d in field("Depends").split(",")]
    # From dpkg-shlibdeps: the libraries vramd, vramctl and ollama-sim link.
    for lib in ("libc6", "libevent-2.1-7", "libcurl4", "libjansson4", "libsqlite3-0",
                "adduser"):
        assert lib in depends, (lib, depends)
    if "libsystemd" in run(["ldd", os.path.join(EXTRACTED, "usr/bin/vramd")]).stdout:
        assert "libsystemd0" in depends, depends
    # No sanitizer runtime sneaked in from the test build.
    assert not any(d.startswith(("libasan", "libubsan")) for d in depends), depends


def test_maintainer_scripts_and_conffiles():
    control = tempfile.mkdtemp(prefix="vramd-deb-control-")
    try:
        run(["dpkg-deb", "-e", DEB, control])
        conffiles = open(os.path.join(control, "conffiles")).read().split()
        assert conffiles == ["/etc/vramd/vramd.conf"], conffiles
        postinst = open(os.path.join(control, "postinst")).read()
        assert "adduser --system" in postinst and "/var/lib/vramd" in postinst, postinst
        for script in ("postinst", "prerm", "postrm"):
            path = os.path.join(control, script)
            assert os.access(path, os.X_OK), script
            run(["sh", "-n", path])
    finally:
        shutil.rmtree(control)


def test_file_list():
    listing = run(["dpkg-deb", "-c", DEB]).stdout
    files = {line.split()[-1].lstrip(".") for line in listing.splitlines()
             if not line.startswith("d")}
    lib = "/usr/lib/%s/vramd/sim/libnvidia-ml.so.1" % multiarch()
    expected = [
        "/usr/bin/vramd", "/usr/bin/vramctl", "/usr/bin/ollama-sim", lib,
        "/usr/lib/systemd/system/vramd.service", "/etc/vramd/vramd.conf",
        "/usr/share/man/man8/vramd.8", "/usr/share/man/man1/vramctl.1",
        "/usr/share/man/man1/ollama-sim.1", "/usr/share/man/man5/vramd.conf.5",
        "/usr/share/doc/vramd/README.md", "/usr/share/doc/vramd/install.md",
        "/usr/share/vramd/ollama-sim-catalogues/default.json",
    ]
    for path in expected:
        assert path in files, (path, sorted(files))
    # The simulated NVML never lands where the driver's library is looked up.
    assert not any(re.match(r"/usr/lib/([^/]+/)?libnvidia-ml", f) for f in files), files
    assert not any(f.startswith("/usr/local") for f in files), files


def test_man_pages_render_without_warnings():
    if not shutil.which("man"):
        print("SKIP: man (man-db) is not installed")
        return
    mandir = os.path.join(EXTRACTED, "usr/share/man")
    pages = [os.path.join(mandir, s, p) for s in sorted(os.listdir(mandir))
             for p in sorted(os.listdir(os.path.join(mandir, s)))]
    assert len(pages) == 4, pages
    for page in pages:
        r = run(["man", "--warnings", "-l", page], env=dict(os.environ, MANWIDTH="80"))
        assert r.stderr.strip() == "", (page, r.stderr)
        assert "NAME" in r.stdout and "SEE ALSO" in r.stdout, page
    conf5 = run(["man", "-l", os.path.join(mandir, "man5/vramd.conf.5")],
                env=dict(os.environ, MANWIDTH="200")).stdout
    assert "QUEUE_MAX_SIZE" in conf5 and "--queue-max-size" in conf5, conf5[:2000]


def test_installed_conf_loads():
    conf = os.path.join(EXTRACTED, "etc/vramd/vramd.conf")
    text = open(conf).read()
    assert "#QUEUE_MAX_SIZE = 1000" in text, text[:2000]
    # Every key uncommented is still a valid file (and the commented file too).
    uncommented = re.sub(r"(?m)^#([A-Z][A-Z0-9_]* =)", r"\1", text)
    path = os.path.join(EXTRACTED, "all-keys.conf")
    with open(path, "w") as f:
        f.write(uncommented)
    vramd = os.path.join(EXTRACTED, "usr/bin/vramd")
    for c in (conf, path):
        r = run([vramd, "--config", c, "--version"])
        assert r.stdout.startswith("vramd "), r.stdout


def test_systemd_unit_verifies():
    unit = open(os.path.join(EXTRACTED, "usr/lib/systemd/system/vramd.service")).read()
    assert "ExecStart=/usr/bin/vramd --config /etc/vramd/vramd.conf" in unit, unit
    for option in ("ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
                   "NoNewPrivileges=yes", "RestrictAddressFamilies=", "StateDirectory=vramd",
                   "DeviceAllow=char-nvidia-frontend rw", "ExecReload=", "User=vramd"):
        assert option in unit, option
    if "libsystemd" in run(["ldd", os.path.join(EXTRACTED, "usr/bin/vramd")]).stdout:
        assert "Type=notify" in unit and "WatchdogSec=" in unit, unit
    if not shutil.which("systemd-analyze"):
        print("SKIP: systemd-analyze is not installed (package systemd)")
        return
    # verify checks that ExecStart's program exists: point it at the extracted one
    # (the only change), and let it find the man pages of Documentation= there too.
    work = tempfile.mkdtemp(prefix="vramd-unit-")
    try:
        copy = os.path.join(work, "vramd.service")
        with open(copy, "w") as f:
            f.write(unit.replace("ExecStart=/usr/bin/vramd",
                                 "ExecStart=" + os.path.join(EXTRACTED, "usr/bin/vramd")))
        env = dict(os.environ, MANPATH=os.path.join(EXTRACTED, "usr/share/man") + ":")
        r = subprocess.run(["systemd-analyze", "verify", copy], capture_output=True,
                           text=True, env=env)
        assert r.returncode == 0 and r.stderr.strip() == "" and r.stdout.strip() == "", \
            (r.returncode, r.stdout, r.stderr)
        # The hardening as systemd rates it (lower is safer; 10 is an unhardened unit).
        r = subprocess.run(["systemd-analyze", "security", "--offline=yes", copy],
                           capture_output=True, text=True, env=env)
        m = re.search(r"Overall exposure level for vramd.service: ([0-9.]+)", r.stdout)
        if m:
            assert float(m.group(1)) <= 3.0, r.stdout[-2000:]
    finally:
        shutil.rmtree(work)


def test_install_creates_user_and_data_dir():
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        print("SKIP: installing the package needs root and apt-get")
        return
    q = subprocess.run(["dpkg-query", "-W", "-f=${Status}", "vramd"], capture_output=True,
                       text=True)
    if "installed" in q.stdout:
        print("SKIP: a vramd package is installed on this machine; not replacing it")
        return
    lock = ["-o", "DPkg::Lock::Timeout=300"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    try:
        run(["apt-get", "install", "-y", "-qq", "--no-install-recommends"] + lock + [DEB],
            env=env)
        run(["getent", "passwd", "vramd"])
        st = os.stat("/var/lib/vramd")
        import pwd
        assert pwd.getpwuid(st.st_uid).pw_name == "vramd", st
        conffiles = run(["dpkg-query", "-W", "-f=${Conffiles}", "vramd"]).stdout
        assert "/etc/vramd/vramd.conf" in conffiles, conffiles
        r = run(["/usr/bin/vramd", "--config", "/etc/vramd/vramd.conf", "--version"])
        assert r.stdout.strip() == "vramd " + version(), r.stdout
    finally:
        subprocess.run(["apt-get", "purge", "-y", "-qq"] + lock + ["vramd"], env=env,
                       capture_output=True)
    assert not os.path.exists("/usr/bin/vramd")
    assert not os.path.exists("/var/lib/vramd")
    assert subprocess.run(["getent", "passwd", "vramd"], capture_output=True).returncode != 0


if __name__ == "__main__":
    run_tests(globals())
