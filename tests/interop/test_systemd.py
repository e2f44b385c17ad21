"""systemd integration and graceful shutdown (issue 5, items 4 and 5).

  UnitFiles     systemd-analyze verify on systemd/wimsed.service (ExecStart pointed at the
                built binary), its hardening directives, sysusers.d/tmpfiles.d applied to a
                scratch root, the production default config
  Privileges    the daemon as a non-root uid with only the unit's ambient capabilities
                attests a root process by path and by the hash of a 0711 binary (and does
                not without them)
  UnitFromCgroup  systemd:unit as sd_pid_get_unit reads it, for grpcio clients moved into
                cgroups of the test's making (root, writable cgroup v2): a unit below a
                user's manager or inside a Delegate=yes service is never the unit
  Install       `cmake --install` with DESTDIR puts every file in its place
  Notify        a fake NOTIFY_SOCKET (AF_UNIX datagrams): READY=1+STATUS= once serving,
                RELOADING=1 then READY=1 on SIGHUP, WATCHDOG=1 every WATCHDOG_USEC/2,
                STOPPING=1 on SIGTERM
  Shutdown      SIGTERM with open FetchX509SVID streams, an in-flight unary call, an
                in-flight token exchange and an idle HTTP keep-alive connection: new
                connections refused, the unary call and the exchange complete, streams end
                with UNAVAILABLE, exit 0 within 5 s, sockets removed

Environment: as the other interop tests (wimsed_harness), plus WIMSED_BUILD (the build
directory, for cmake --install).
"""

import configparser
import json
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wimsed_harness as h  # noqa: E402
import grpc  # noqa: E402

REPO = h.REPO
UNIT = os.path.join(REPO, "systemd", "wimsed.service")
SYSUSERS = os.path.join(REPO, "systemd", "wimsed.sysusers.conf")
TMPFILES = os.path.join(REPO, "systemd", "wimsed.tmpfiles.conf")
PROD_CONF = os.path.join(REPO, "conf", "wimsed.json")
BUILD = os.environ.get("WIMSED_BUILD") or os.path.dirname(h.WIMSED)
IS_ROOT = os.geteuid() == 0
CAPS = "+sys_ptrace,+dac_read_search"   # the unit's AmbientCapabilities=
GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
TT = "urn:ietf:params:oauth:token-type:"


def systemd_tool(name):
    path = shutil.which(name) or shutil.which(name, path="/usr/bin:/bin:/usr/sbin:/sbin")
    if not path:
        raise unittest.SkipTest(f"{name} not installed (Debian package systemd)")
    return path


def unit_sections(path):
    """The unit as {section: {key: [values...]}} (keys may repeat)."""
    out, sec = {}, None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("["):
                sec = out.setdefault(line.strip("[]"), {})
                continue
            k, _, v = line.partition("=")
            sec.setdefault(k.strip(), []).append(v.strip())
    return out


# ---- unit, sysusers, tmpfiles, config --------------------------------------------
class UnitFiles(unittest.TestCase):
    def test_systemd_analyze_verify(self):
        tool = systemd_tool("systemd-analyze")
        d = h.make_workdir("wimsed-unit-")
        # verify requires ExecStart's binary to exist: the built one stands in for /usr/bin.
        with open(UNIT) as f:
            text = f.read()
        self.assertIn("/usr/bin/wimsed --config /etc/wimsed/wimsed.json", text)
        path = os.path.join(d, "wimsed.service")
        with open(path, "w") as f:
            f.write(text.replace("/usr/bin/wimsed", h.WIMSED))
        r = subprocess.run([tool, "verify", path], capture_output=True, text=True, timeout=60)
        ours = [l for l in (r.stdout + r.stderr).splitlines() if "wimsed" in l]
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(ours, [], "systemd-analyze verify warned about the unit")

    def test_verify_catches_mistakes(self):
        """The check above is not vacuous: a missing binary fails verify."""
        tool = systemd_tool("systemd-analyze")
        d = h.make_workdir("wimsed-unit-")
        path = os.path.join(d, "wimsed.service")
        with open(UNIT) as f:
            text = f.read()
        with open(path, "w") as f:
            f.write(text.replace("/usr/bin/wimsed", os.path.join(d, "nonexistent")))
        r = subprocess.run([tool, "verify", path], capture_output=True, text=True, timeout=60)
        self.assertNotEqual(r.returncode, 0)

    def test_directives(self):
        u = unit_sections(UNIT)
        s = u["Service"]
        want = {
            "Type": "notify", "NotifyAccess": "main",
            "ExecStart": "/usr/bin/wimsed --config /etc/wimsed/wimsed.json",
            "ExecReload": "/bin/kill -HUP $MAINPID", "WatchdogSec": "30s",
            "Restart": "on-failure", "RuntimeDirectory": "wimsed",
            "RuntimeDirectoryMode": "0755", "StateDirectory": "wimsed",
            "StateDirectoryMode": "0700", "User": "wimsed", "Group": "wimsed",
            "ProtectSystem": "strict", "ProtectHome": "read-only", "PrivateTmp": "yes",
            "NoNewPrivileges": "yes", "ProtectKernelTunables": "yes",
            "ProtectKernelModules": "yes", "ProtectKernelLogs": "yes",
            "ProtectControlGroups": "yes", "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
            "SystemCallFilter": "@system-service", "SystemCallArchitectures": "native",
            "LockPersonality": "yes", "MemoryDenyWriteExecute": "yes",
            "RestrictRealtime": "yes", "RestrictNamespaces": "yes", "UMask": "0077",
            # glibc's malloc cache, set so the daemon need not re-execute itself for it.
            "Environment": "GLIBC_TUNABLES=glibc.malloc.tcache_count=128",
        }
        for k, v in want.items():
            self.assertIn(k, s, f"[Service] {k}= missing")
            self.assertIn(v, s[k], f"[Service] {k}={s[k]}, want {v}")
        caps = {"CAP_SYS_PTRACE", "CAP_DAC_READ_SEARCH"}
        self.assertEqual(set(" ".join(s["CapabilityBoundingSet"]).split()), caps)
        self.assertEqual(set(" ".join(s["AmbientCapabilities"]).split()), caps)
        # Attestation reads other users' /proc/<pid>: these would break it.
        for k in ("ProtectProc", "ProcSubset", "PrivateUsers", "PrivateNetwork"):
            self.assertNotIn(k, s)
        self.assertEqual(u["Install"]["WantedBy"], ["multi-user.target"])

    def test_sysusers_and_tmpfiles(self):
        sysusers = systemd_tool("systemd-sysusers")
        tmpfiles = systemd_tool("systemd-tmpfiles")
        if not IS_ROOT:
            self.skipTest("needs root (systemd-tmpfiles --root chowns)")
        root = h.make_workdir("wimsed-root-")
        os.makedirs(os.path.join(root, "etc"))
        for f in ("passwd", "group"):
            open(os.path.join(root, "etc", f), "w").close()
        r = subprocess.run([sysusers, "--root=" + root, SYSUSERS], capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(os.path.join(root, "etc", "passwd")) as f:
            users = {l.split(":")[0]: l.strip().split(":") for l in f if l.strip()}
        self.assertIn("wimsed", users)
        uid, gid = int(users["wimsed"][2]), int(users["wimsed"][3])
        self.assertLess(uid, 1000, "a system uid")
        self.assertEqual(users["wimsed"][6], "/usr/sbin/nologin")
        os.makedirs(os.path.join(root, "run"))
        os.makedirs(os.path.join(root, "var", "lib"))
        r = subprocess.run([tmpfiles, "--root=" + root, "--create", TMPFILES],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        for rel, mode in (("var/lib/wimsed", 0o700), ("run/wimsed", 0o755)):
            st = os.stat(os.path.join(root, rel))
            self.assertEqual(stat.S_IMODE(st.st_mode), mode, rel)
            self.assertEqual((st.st_uid, st.st_gid), (uid, gid), rel)

    def test_default_config(self):
        r = subprocess.run([h.WIMSED, "--config", PROD_CONF, "--check-config"],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(PROD_CONF) as f:
            c = json.load(f)
        self.assertEqual(c["trust_domain"], "example.org")
        self.assertEqual(c["data_dir"], "/var/lib/wimsed")
        self.assertTrue(c["workload_socket"].startswith("/run/wimsed/"))
        self.assertTrue(c["txn"]["exchange_socket"].startswith("/run/wimsed/"))
        self.assertFalse(c["txn"].get("dev_issuer", False), "no dev issuer in production")
        sels = [s for e in c["entries"] for s in e["selectors"]]
        self.assertIn("systemd:unit:agent.service", sels)


# ---- the privilege choice, exercised -----------------------------------------------
@unittest.skipUnless(IS_ROOT, "needs root (daemon as another uid with ambient capabilities)")
class Privileges(unittest.TestCase):
    """wimsed.service runs as a non-root user with AmbientCapabilities=CAP_SYS_PTRACE
    CAP_DAC_READ_SEARCH under NoNewPrivileges: check that this attests another uid's
    (root's) process by path and by the hash of a binary the daemon's uid cannot read."""

    DAEMON_UID = 65534

    @classmethod
    def setUpClass(cls):
        cls.bindir = h.make_workdir("wimsed-exe-")
        cls.exe = os.path.join(cls.bindir, "python3-private")
        shutil.copy2(h.python_exe_path(), cls.exe)
        os.chmod(cls.exe, 0o711)   # not readable by the daemon's uid without DAC_READ_SEARCH
        cls.exe_sha = h.sha256_file(cls.exe)

    def run_daemon(self, caps):
        w = h.make_workdir("wimsed-priv-")
        os.chown(w, self.DAEMON_UID, self.DAEMON_UID)
        entries = [
            {"spiffe_id": h.TD_ID + "/root", "selectors": ["unix:uid:0"]},
            {"spiffe_id": h.TD_ID + "/by-path", "selectors": ["unix:uid:0", "unix:path:" + self.exe]},
            {"spiffe_id": h.TD_ID + "/by-hash",
             "selectors": ["unix:uid:0", "unix:sha256:" + self.exe_sha]},
        ]
        d = h.Daemon(workdir=w, entries=entries)
        setpriv = ["setpriv", f"--reuid={self.DAEMON_UID}", f"--regid={self.DAEMON_UID}",
                   "--clear-groups", "--no-new-privs"]
        if caps:
            setpriv += [f"--inh-caps=-all,{caps}", f"--ambient-caps=-all,{caps}",
                        f"--bounding-set=-all,{caps}"]
        else:
            setpriv += ["--inh-caps=-all", "--bounding-set=-all"]
        start_with_wrapper(d, setpriv, env=h.daemon_env(GLIBC_TUNABLES=None))
        self.addCleanup(d.kill)
        return d

    def ids_seen_by_private_exe(self, d):
        script = ("import sys; sys.path[:0] = %r\n"
                  "import wimsed_harness as h\n"
                  "r = h.fetch_x509_svid(%r)\n"
                  "print(' '.join(sorted(s.spiffe_id for s in r.svids)))\n"
                  % ([os.path.dirname(os.path.abspath(__file__))], d.target))
        r = subprocess.run([self.exe, "-c", script], capture_output=True, text=True, timeout=30,
                           env=dict(os.environ, WIMSED_PYSTUBS=h.PYSTUBS))
        self.assertEqual(r.returncode, 0, r.stderr + d.log_tail())
        return set(r.stdout.split())

    def test_ambient_caps_suffice(self):
        d = self.run_daemon(CAPS)
        with open(f"/proc/{d.pid}/status") as f:
            st = dict(l.split(":\t", 1) for l in f if ":\t" in l)
        self.assertEqual(int(st["Uid"].split()[0]), self.DAEMON_UID)
        self.assertEqual(int(st["CapEff"], 16), (1 << 19) | (1 << 2))  # SYS_PTRACE, DAC_READ_SEARCH
        # Started without the malloc tunable, it re-executed itself in place: uid and
        # capabilities above are the re-executed process's (core/malloc_tune.h).
        self.assertIn(b"\0GLIBC_TUNABLES=glibc.malloc.tcache_count=128\0", d.environ())
        self.assertEqual(self.ids_seen_by_private_exe(d),
                         {h.TD_ID + "/root", h.TD_ID + "/by-path", h.TD_ID + "/by-hash"})
        d.stop()

    def daemon_uid_cmd(self, *argv):
        """argv run as the daemon's uid, without groups or capabilities."""
        return ["setpriv", f"--reuid={self.DAEMON_UID}", f"--regid={self.DAEMON_UID}", "--clear-groups",
                "--inh-caps=-all", "--bounding-set=-all", *argv]

    def as_daemon_uid(self, code):
        """Runs python code as the daemon's uid; the finished process."""
        return subprocess.run(self.daemon_uid_cmd(sys.executable, "-c", code), capture_output=True, text=True,
                              timeout=30)

    def test_memory_closed_to_its_own_uid(self):
        """A process of the daemon's own uid cannot read its memory or environment (the
        daemon is not dumpable), and it leaves no core file."""
        d = self.run_daemon(CAPS)
        # A non-dumpable process's private /proc files belong to root (the
        # world-readable directory keeps its owner).
        st = os.stat(f"/proc/{d.pid}/environ")
        self.assertEqual((st.st_uid, st.st_gid), (0, 0), "non-dumpable: /proc/<pid>/environ belongs to root")
        probe = ("import sys\n"
                 "for name in ('environ', 'mem'):\n"
                 "    try:\n"
                 "        open('/proc/%d/' + name, 'rb').read(1)\n"
                 "    except PermissionError:\n"
                 "        continue\n"
                 "    sys.exit('read ' + name)\n" % d.pid)
        r = self.as_daemon_uid(probe)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        with open(f"/proc/{d.pid}/limits") as f:
            core = [l.split()[4:6] for l in f if l.startswith("Max core file size")]
        self.assertEqual(core, [["0", "0"]])
        # Control: the same probe reads an ordinary process of that uid.
        other = subprocess.Popen(self.daemon_uid_cmd("sleep", "30"))
        self.addCleanup(other.kill)
        deadline = time.time() + 10
        while os.stat(f"/proc/{other.pid}/environ").st_uid != self.DAEMON_UID and time.time() < deadline:
            time.sleep(0.01)  # until setpriv has changed uid and exec'd sleep
        with open(f"/proc/{other.pid}/comm") as f:
            while f.read().strip() != "sleep" and time.time() < deadline:
                time.sleep(0.01)
                f.seek(0)
        r = self.as_daemon_uid(probe.replace(str(d.pid), str(other.pid)))
        self.assertNotEqual(r.returncode, 0, "the probe reads a dumpable process of its uid")
        d.stop()

    def test_without_caps_exe_selectors_are_missing(self):
        """Control: the capabilities are what makes /proc/<pid>/exe readable."""
        d = self.run_daemon(None)
        self.assertEqual(self.ids_seen_by_private_exe(d), {h.TD_ID + "/root"})
        d.stop()


def start_with_wrapper(d, wrapper, env=None):
    """Daemon.start(), but launched through `wrapper` (argv prefix) and with env."""
    with open(d.config_path, "w") as f:
        json.dump(d.config, f, indent=2)
    d.starts += 1
    d._log = open(d.log_path, "ab")
    d.proc = subprocess.Popen(wrapper + [h.WIMSED, "--config", d.config_path], cwd=d.workdir,
                              stdin=subprocess.DEVNULL, stdout=d._log, stderr=d._log, env=env)
    h._DAEMONS.append(d)
    d.wait_ready()
    return d


# ---- make install --------------------------------------------------------------------
def cgroup2_dir():
    """The calling process's cgroup v2 directory when this process may create cgroups
    below it (root, a writable cgroup2 mount: unified or hybrid), else None."""
    if not IS_ROOT:
        return None
    mnt = None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            parts = line.split()
            sep = parts.index("-")
            if parts[sep + 1] == "cgroup2":
                mnt = parts[4]
                break
    with open("/proc/self/cgroup") as f:
        cur = next((ln.strip()[3:] for ln in f if ln.startswith("0::")), None)
    if not mnt or cur is None:
        return None
    d = os.path.join(mnt, cur.lstrip("/"))
    probe = os.path.join(d, f"wimsed-probe-{os.getpid()}")
    try:
        os.mkdir(probe)
        os.rmdir(probe)
    except OSError:
        return None
    return d


# A client placed in a cgroup of our making: moves itself in, fetches its X.509-SVIDs
# with grpcio, prints their SPIFFE IDs (or the gRPC status) as JSON.
CGROUP_CLIENT = """
import json, os, sys
sys.path.insert(0, sys.argv[3])
with open(os.path.join(sys.argv[1], "cgroup.procs"), "w") as f:
    f.write(str(os.getpid()))
import grpc, wimsed_harness as h
try:
    print(json.dumps([s.spiffe_id for s in h.fetch_x509_svid(sys.argv[2]).svids]))
except grpc.RpcError as e:
    print(json.dumps(e.code().name))
"""


@unittest.skipUnless(cgroup2_dir(), "needs root and a writable cgroup v2 hierarchy")
class UnitFromCgroup(unittest.TestCase):
    """systemd:unit is the system manager's unit (sd_pid_get_unit): a process in a unit named
    agent.service below a user's manager (which the user may name at will) is not given an
    entry on systemd:unit:agent.service; it reads user@UID.service."""

    @classmethod
    def setUpClass(cls):
        cls.d = h.start_daemon(cls, entries=[
            {"spiffe_id": h.TD_ID + "/agent", "selectors": ["systemd:unit:agent.service"]},
            {"spiffe_id": h.TD_ID + "/user-4242", "selectors": ["systemd:unit:user@4242.service"]},
        ])
        cls.base = os.path.join(cgroup2_dir(), f"wimsed-test-{os.getpid()}.slice")
        cls.made = []

    @classmethod
    def tearDownClass(cls):
        for d in reversed(cls.made):
            try:
                os.rmdir(d)
            except OSError:
                pass

    def ids_in(self, rel):
        cg = os.path.dirname(self.base)
        for part in [os.path.basename(self.base)] + rel.split("/"):
            cg = os.path.join(cg, part)
            if not os.path.isdir(cg):
                os.mkdir(cg)
                self.made.append(cg)
        r = subprocess.run([sys.executable, "-c", CGROUP_CLIENT, cg, self.d.target, os.path.dirname(__file__)],
                           capture_output=True, text=True, timeout=30, env=os.environ)
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(r.stdout)

    def test_system_unit(self):
        self.assertEqual(self.ids_in("agent.service"), [h.TD_ID + "/agent"])
        # below a unit (Delegate=yes): still that unit, whatever the sub-cgroup is named
        self.assertEqual(self.ids_in("agent.service/payload"), [h.TD_ID + "/agent"])

    def test_user_manager_units_are_not_system_units(self):
        for rel in ("user@4242.service/app.slice/agent.service", "user@4242.service/agent.service",
                    "user@4242.service/init.scope"):
            with self.subTest(cgroup=rel):
                self.assertEqual(self.ids_in(rel), [h.TD_ID + "/user-4242"])
        # a Delegate=yes service's own sub-cgroups cannot make an agent.service either
        self.assertEqual(self.ids_in("docker.service/agent.service"), "PERMISSION_DENIED")


class Install(unittest.TestCase):
    def test_destdir_install(self):
        if not os.path.isfile(os.path.join(BUILD, "cmake_install.cmake")):
            self.skipTest(f"{BUILD} is not a cmake build directory (set WIMSED_BUILD)")
        dest = h.make_workdir("wimsed-destdir-")
        r = subprocess.run(["cmake", "--install", BUILD, "--prefix", "/usr"],
                           env=dict(os.environ, DESTDIR=dest), capture_output=True, text=True,
                           timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        files = {
            "usr/bin/wimsed": (0o755, h.WIMSED),
            "usr/bin/wimsectl": (0o755, h.WIMSECTL),
            "usr/lib/systemd/system/wimsed.service": (0o644, UNIT),
            "usr/lib/sysusers.d/wimsed.conf": (0o644, SYSUSERS),
            "usr/lib/tmpfiles.d/wimsed.conf": (0o644, TMPFILES),
            "etc/wimsed/wimsed.json": (0o644, PROD_CONF),
        }
        found = set()
        for top, _, names in os.walk(dest):
            for n in names:
                found.add(os.path.relpath(os.path.join(top, n), dest))
        self.assertEqual(found, set(files), "exactly these files are installed")
        for rel, (mode, src) in files.items():
            p = os.path.join(dest, rel)
            self.assertEqual(stat.S_IMODE(os.stat(p).st_mode), mode, rel)
            with open(p, "rb") as a, open(src, "rb") as b:
                self.assertEqual(a.read(), b.read(), f"{rel} differs from {src}")
        # An operator's edited config survives a reinstall.
        conf = os.path.join(dest, "etc/wimsed/wimsed.json")
        with open(conf, "w") as f:
            f.write("{}\n")
        r = subprocess.run(["cmake", "--install", BUILD, "--prefix", "/usr"],
                           env=dict(os.environ, DESTDIR=dest), capture_output=True, text=True,
                           timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        with open(conf) as f:
            self.assertEqual(f.read(), "{}\n")


# ---- sd_notify -------------------------------------------------------------------------
class FakeNotifySocket:
    """What systemd listens on: an AF_UNIX datagram socket; records every message."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.msgs = []          # (monotonic time, {key: value})
        self.cv = threading.Condition()
        self._stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        self.sock.settimeout(0.1)
        while not self._stop:
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            kv = dict(l.split("=", 1) for l in data.decode().splitlines() if "=" in l)
            with self.cv:
                self.msgs.append((time.monotonic(), kv))
                self.cv.notify_all()

    def wait_for(self, key, since=0, timeout=5.0):
        """Index and message of the first message at index >= since that has key=1."""
        deadline = time.monotonic() + timeout
        with self.cv:
            while True:
                for i in range(since, len(self.msgs)):
                    if self.msgs[i][1].get(key) == "1":
                        return i, self.msgs[i][1]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {key}=1 within {timeout} s; got {self.snapshot()}")
                self.cv.wait(left)

    def snapshot(self):
        with self.cv:
            return [m for _, m in self.msgs]

    def count(self, key, since=0):
        with self.cv:
            return sum(1 for _, m in self.msgs[since:] if m.get(key) == "1")

    def close(self):
        self._stop = True
        self.sock.close()
        self.thread.join(2)


class Notify(unittest.TestCase):
    def start(self, watchdog_usec=None, watchdog_pid="self"):
        d = h.Daemon()
        n = FakeNotifySocket(os.path.join(d.workdir, "notify.sock"))
        self.addCleanup(n.close)
        env = dict(os.environ, NOTIFY_SOCKET=n.path)
        wrapper = ["setpriv", "--pdeathsig", "TERM"]
        if watchdog_usec is not None:
            env["WATCHDOG_USEC"] = str(watchdog_usec)
            if watchdog_pid == "self":
                # The daemon's own pid, as systemd sets it: the shell execs into wimsed.
                wrapper = ["sh", "-c", 'WATCHDOG_PID=$$ exec "$@"', "sh"] + wrapper
            else:
                env["WATCHDOG_PID"] = str(watchdog_pid)
        self.addCleanup(d.kill)
        start_with_wrapper(d, wrapper, env=env)
        return d, n

    def test_ready_reload_stopping(self):
        d, n = self.start()
        i, m = n.wait_for("READY")
        # NOTIFY_SOCKET set: libsystemd was opened for sd_notify (daemon/notify.c).
        libs = d.mapped_libraries()
        self.assertTrue(any(x.startswith("libsystemd.so.0") for x in libs), sorted(libs))
        self.assertIn("STATUS", m, m)
        self.assertIn(d.socket, m["STATUS"])
        self.assertEqual(n.count("READY"), 1)
        # READY=1 means serving: the socket answers at once.
        self.assertEqual(h.health_check(d.target), h.health_pb2.HealthCheckResponse.SERVING)
        # SIGHUP: RELOADING=1 (with MONOTONIC_USEC, sd_notify(3)), then READY=1.
        d.proc.send_signal(signal.SIGHUP)
        j, m = n.wait_for("RELOADING", since=i + 1)
        self.assertTrue(m.get("MONOTONIC_USEC", "").isdigit(), m)
        k, m = n.wait_for("READY", since=j + 1)
        self.assertIn("STATUS", m)
        # A config that fails to load: still READY=1 again, the old config keeps serving.
        with open(d.config_path, "w") as f:
            f.write("{ not json")
        d.proc.send_signal(signal.SIGHUP)
        j, _ = n.wait_for("RELOADING", since=k + 1)
        k, _ = n.wait_for("READY", since=j + 1)
        self.assertEqual(h.health_check(d.target), h.health_pb2.HealthCheckResponse.SERVING)
        self.assertEqual(n.count("WATCHDOG"), 0, "no keep-alives unless asked for")
        d.stop()
        _, m = n.wait_for("STOPPING", since=k + 1, timeout=1)
        names = [next(iter(x for x in ("READY", "RELOADING", "STOPPING") if msg.get(x) == "1"))
                 for msg in n.snapshot() if any(msg.get(x) == "1"
                                                for x in ("READY", "RELOADING", "STOPPING"))]
        self.assertEqual(names, ["READY", "RELOADING", "READY", "RELOADING", "READY", "STOPPING"])

    def test_watchdog_keepalives(self):
        usec = 1_000_000
        d, n = self.start(watchdog_usec=usec)
        i, _ = n.wait_for("READY")
        time.sleep(3.0)
        with n.cv:
            times = [t for t, m in n.msgs if m.get("WATCHDOG") == "1"]
            stat_ok = all("STATUS" in m for _, m in n.msgs if m.get("WATCHDOG") == "1")
        # Every usec/2 = 500 ms: about 6 in 3 s; systemd would kill us after 1 s without.
        self.assertGreaterEqual(len(times), 4, f"keep-alives: {len(times)}")
        gaps = [b - a for a, b in zip(times, times[1:])]
        self.assertLess(max(gaps), usec / 1e6, f"a gap of {max(gaps):.3f} s")
        self.assertTrue(stat_ok, "each keep-alive carries a STATUS= line")
        d.stop()
        n.wait_for("STOPPING", timeout=1)

    def test_libsystemd_missing_fails_at_once(self):
        """A manager waits for READY=1: without libsystemd none can come, so the daemon
        says so and exits instead of being killed at the start timeout."""
        d = h.Daemon()
        n = FakeNotifySocket(os.path.join(d.workdir, "notify.sock"))
        self.addCleanup(n.close)
        env = h.daemon_env(NOTIFY_SOCKET=n.path, LD_LIBRARY_PATH=h.bogus_library_dir("libsystemd.so.0"))
        r = d.run_to_exit(env)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("NOTIFY_SOCKET is set but libsystemd.so.0 cannot be loaded", r.stderr)
        # and why, from the loader (glibc's text for the empty stand-in)
        self.assertIn("libsystemd.so.0: file too short", r.stderr)
        self.assertFalse(os.path.exists(d.socket), "it never served")
        self.assertEqual(n.snapshot(), [])

    def test_no_watchdog_for_another_pid(self):
        """WATCHDOG_PID names a different process (e.g. a wrapper): sd_watchdog_enabled
        says no, and no keep-alives are sent."""
        d, n = self.start(watchdog_usec=200_000, watchdog_pid=1)
        n.wait_for("READY")
        time.sleep(0.6)
        self.assertEqual(n.count("WATCHDOG"), 0)
        d.stop()


# ---- graceful shutdown -----------------------------------------------------------------
UnixHTTP = h.UnixHTTP


SLOW_UNARY = r'''
import sys, time
sys.path[:0] = [%(here)r]
import wimsed_harness as h, grpc
print("calling", flush=True)
try:
    r = h.fetch_jwt_svid(%(target)r, ["shutdown-test"], timeout=20)
    print("OK", len(r.svids), flush=True)
except grpc.RpcError as e:
    print(e.code().name, e.details(), flush=True)
'''


class Shutdown(unittest.TestCase):
    STREAMS = 4
    BIG_EXE_BYTES = 300 * 1024 * 1024   # sparse: hashing it keeps a unary call in flight

    @classmethod
    def setUpClass(cls):
        cls.r = r = {}
        try:
            import idp as idplib
        except ImportError as e:
            raise unittest.SkipTest(f"tests/interop/idp.py not importable: {e}")
        w = h.make_workdir("wimsed-shutdown-")
        # A slow JWKS keeps one token exchange in flight across SIGTERM.
        idp = idplib.IdP("https://shutdown.idp.test/")
        idp.slow_seconds = 1.5
        idp.start("slow")
        cls.addClassCleanup(idp.stop)
        # A big executable (sparse) whose hash keeps a unary Workload API call busy.
        big = os.path.join(w, "python3-big")
        shutil.copy2(h.python_exe_path(), big)
        os.truncate(big, cls.BIG_EXE_BYTES)
        entries = h.default_entries()
        entries[0]["txn"] = {"allowed_scopes": ["calendar.read"], "max_ttl": "5m"}
        xsock = os.path.join(w, "exchange.sock")
        d = h.Daemon(workdir=w, entries=entries,
                     txn={"exchange_socket": xsock, "issuers": [idp.issuer_config()]})
        cls.addClassCleanup(d.kill)
        d.start()

        # Several open FetchX509SVID streams, each past its first message.
        chans, streams = [], []
        for _ in range(cls.STREAMS):
            ch = h.channel(d.target)
            cls.addClassCleanup(ch.close)
            s = h.x509_svid_stream(ch, timeout=60)
            next(s)
            chans.append(ch)
            streams.append(s)
        # An idle HTTP/1.1 keep-alive connection to the token service.
        idle = UnixHTTP(xsock)
        cls.addClassCleanup(idle.close)
        idle.request("GET", "/.well-known/oauth-authorization-server")
        m = idle.getresponse()
        m.read()
        if m.status != 200:
            raise AssertionError(f"metadata: HTTP {m.status}")
        # An exchange waiting on the slow JWKS.
        result = r

        def exchange():
            form = [("grant_type", GRANT), ("requested_token_type", TT + "txn_token"),
                    ("audience", h.TRUST_DOMAIN), ("scope", "calendar.read"),
                    ("subject_token", idp.token()), ("subject_token_type", TT + "access_token")]
            c = UnixHTTP(xsock, timeout=20)
            try:
                c.request("POST", "/token", body=urllib.parse.urlencode(form),
                          headers={"Content-Type": "application/x-www-form-urlencoded"})
                resp = c.getresponse()
                result["exchange"] = (resp.status, resp.read())
            except OSError as e:
                result["exchange"] = ("error", repr(e))
            finally:
                c.close()
        xt = threading.Thread(target=exchange)
        xt.start()
        # A unary call from the big executable (its first attestation hashes 300 MB).
        unary = subprocess.Popen(
            [big, "-c", SLOW_UNARY % {"here": os.path.dirname(os.path.abspath(__file__)),
                                      "target": d.target}],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=dict(os.environ, WIMSED_PYSTUBS=h.PYSTUBS))
        cls.addClassCleanup(unary.kill)
        if unary.stdout.readline().strip() != "calling":
            raise AssertionError("the unary client did not start: " + unary.stderr.read())
        deadline = time.monotonic() + 5
        while idp.requests == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        if idp.requests == 0:
            raise AssertionError("the exchange never reached the JWKS endpoint")
        time.sleep(0.3)   # the unary call is now being attested

        t0 = time.monotonic()
        d.proc.send_signal(signal.SIGTERM)
        # Stops accepting at once: a new call fails fast, it does not hang.
        time.sleep(0.2)
        r["draining"] = d.proc.poll() is None
        r["new_call"] = (h.rpc_error_code(lambda: h.health_check(d.target, timeout=2.0))
                         if r["draining"] else grpc.StatusCode.UNAVAILABLE)
        r["streams"] = []
        for s in streams:
            try:
                next(s)
                r["streams"].append("message")
            except grpc.RpcError as e:
                r["streams"].append(e.code())
        try:
            r["rc"] = d.proc.wait(10.0)
        except subprocess.TimeoutExpired:
            r["rc"] = "timeout"
            d.kill()
        r["elapsed"] = time.monotonic() - t0
        d._close_log()
        r["log"] = d.log_tail()
        out, err = unary.communicate(timeout=20)
        r["unary"] = (out, err[-2000:])
        xt.join(20)
        r["sockets_left"] = [p for p in (d.socket, xsock) if os.path.exists(p)]
        idle.sock.settimeout(2)
        try:
            r["idle"] = idle.sock.recv(1)
        except OSError as e:
            r["idle"] = repr(e)

    def test_exit_0_within_5s(self):
        self.assertEqual(self.r["rc"], 0, self.r["log"])
        self.assertLess(self.r["elapsed"], 5.0, self.r["log"])

    def test_new_calls_refused_while_draining(self):
        self.assertTrue(self.r["draining"], "the daemon was still draining 0.2 s after SIGTERM")
        self.assertEqual(self.r["new_call"], grpc.StatusCode.UNAVAILABLE)

    def test_streams_end_unavailable(self):
        self.assertEqual(self.r["streams"], [grpc.StatusCode.UNAVAILABLE] * self.STREAMS)

    def test_inflight_unary_call_completes(self):
        out, err = self.r["unary"]
        self.assertTrue(out.startswith("OK"), f"in-flight FetchJWTSVID: {out!r} {err}")

    def test_sockets_removed(self):
        self.assertEqual(self.r["sockets_left"], [])

    def test_idle_http_connection_closed(self):
        self.assertEqual(self.r["idle"], b"")

    # An exchange computed after SIGTERM is still answered (the connection is then
    # closed rather than kept alive), so an issued token is never lost.
    def test_inflight_exchange_completes(self):
        status, body = self.r.get("exchange", (None, b""))
        self.assertEqual(status, 200, f"in-flight exchange: {status} {body!r}")


if __name__ == "__main__":
    h.main()
