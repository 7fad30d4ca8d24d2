"""Runs a private nginx (master + workers) with build/ngx_realtime_module.so.

Each Nginx instance lives in its own temporary prefix, listens only on
127.0.0.1 with `reuseport` (so connections spread over the workers) and on
ports picked at random among the ones nobody else is listening on.

An instance can also run inside a network namespace (Nginx(netns=...), see
NetNs): then it listens on 0.0.0.0 there, so it is reachable both on the
namespace's loopback and through a veth pair from this namespace.
"""

import contextlib
import ctypes
import ipaddress
import itertools
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MODULE = REPO / "build" / "ngx_realtime_module.so"
NGINX_BIN = os.environ.get("REALTIME_NGINX", "/usr/sbin/nginx")

# Lines that must never appear in an error log (nor on nginx's stderr).
BAD_LOG_PATTERNS = ("[alert]", "[emerg]", "[crit]", "exited on signal", "core dumped")

# Ports handed out in this process (never reused by two instances).
_used_ports = set()


class NginxError(Exception):
    pass


# --------------------------------------------------------------------------
# /proc helpers


def _proc_net_tcp(path="/proc/net/tcp"):
    """Yields (local_ip_hex, local_port, remote_port, state, inode) of IPv4 TCP
    sockets (of IPv6 ones from .../tcp6). path: /proc/PID/net/tcp for the
    table of PID's network namespace."""
    with open(path) as f:
        next(f)
        for line in f:
            parts = line.split()
            lip, lport = parts[1].split(":")
            _rip, rport = parts[2].split(":")
            yield lip, int(lport, 16), int(rport, 16), parts[3], int(parts[9])


def listening_inodes(port, path="/proc/net/tcp"):
    """Inodes of sockets listening on TCP port (any address, IPv4 or IPv6)."""
    inodes = set()
    for table in (path, path + "6"):
        if table.endswith("6") and not os.path.exists(table):
            continue  # no IPv6 in this kernel
        inodes |= {inode for _lip, lport, _rport, state, inode in _proc_net_tcp(table)
                   if lport == port and state == "0A"}
    return inodes


def socket_inodes(pid):
    """Inodes of the sockets pid has open."""
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            m = re.match(r"socket:\[(\d+)\]", target)
            if m:
                inodes.add(int(m.group(1)))
    except OSError:
        pass
    return inodes


def children(ppid):
    """[(pid, cmdline)] of the live processes whose parent is ppid."""
    result = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        # the command name is in parentheses and may contain spaces
        fields = stat[stat.rindex(")") + 2:].split()
        state, parent = fields[0], int(fields[1])
        if parent == ppid and state != "Z":
            result.append((int(entry), cmdline))
    return result


def pid_alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2:].split()[0] != "Z"


def pick_port():
    """A port nobody listens on; below the ephemeral range, so no client uses it."""
    for _ in range(1000):
        port = random.randint(20000, 32000)
        if port in _used_ports or listening_inodes(port):
            continue
        _used_ports.add(port)
        return port
    raise NginxError("no free port found")


def wait_for(predicate, timeout, interval=0.05):
    """Polls predicate until it returns a true value (returned) or timeout (None)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval)


# --------------------------------------------------------------------------


class Nginx:
    """One nginx instance built from an http-block snippet.

    Placeholders in the snippet: {port}, {port2}, {ssl_port} (free ports),
    {cert}, {key} (the TLS certificate, when given), {prefix}. Every `listen`
    is rewritten to 127.0.0.1:PORT and given `reuseport` (a `listen unix:`
    is left as it is).

    netns: the name of a network namespace (NetNs.name) to run in; the
    master is started with `ip netns exec`, and a `listen` without an
    address gets 0.0.0.0 instead of 127.0.0.1.
    """

    def __init__(self, snippet, workers=2, cert=None, key=None, main_extra="",
                 netns=None):
        self.snippet = snippet
        self.netns = netns
        self.listen_host = "0.0.0.0" if netns else "127.0.0.1"
        self.workers = workers
        self.cert = cert
        self.key = key
        self.main_extra = main_extra
        self.prefix = Path(tempfile.mkdtemp(prefix="realtime-itest-"))
        os.chmod(self.prefix, 0o755)  # workers run as nobody when we are root
        (self.prefix / "conf").mkdir()
        (self.prefix / "logs").mkdir()
        os.chmod(self.prefix / "logs", 0o755)
        self.proc = None
        self.ports = {}
        self.problems = []  # shutdown problems, reported by the test teardown
        self._log_mark = 0

    # ------------------------------------------------------------------ config

    @property
    def port(self):
        return self.ports["port"]

    @property
    def ssl_port(self):
        return self.ports["ssl_port"]

    @property
    def conf_path(self):
        return self.prefix / "conf" / "nginx.conf"

    @property
    def error_log_path(self):
        return self.prefix / "logs" / "error.log"

    def _render(self, new_ports=True):
        text = self.snippet
        if new_ports:
            self.ports = {}
        for name in ("port", "port2", "ssl_port"):
            if "{" + name + "}" in text:
                if name not in self.ports:
                    self.ports[name] = pick_port()
                text = text.replace("{" + name + "}", str(self.ports[name]))
        text = text.replace("{prefix}", str(self.prefix))
        if self.cert:
            text = text.replace("{cert}", str(self.cert)).replace("{key}", str(self.key))

        def fix_listen(m):
            args = m.group(2).split()
            addr = args[0]
            if addr.startswith("unix:"):
                return m.group(0)  # Linux has no SO_REUSEPORT for unix sockets
            if ":" not in addr:
                addr = self.listen_host + ":" + addr
            rest = [a for a in args[1:] if a != "reuseport"]
            return m.group(1) + " ".join([addr] + rest + ["reuseport"]) + ";"

        text = re.sub(r"(\blisten\s+)([^;]*);", fix_listen, text)
        logs = self.prefix / "logs"
        load = "" if os.environ.get("REALTIME_NO_MODULE") else f"load_module {MODULE};"
        conf = f"""{load}
daemon off;
master_process on;
worker_processes {self.workers};
error_log logs/error.log info;
pid logs/nginx.pid;
{self.main_extra}
events {{
    worker_connections 1024;
}}

http {{
    access_log logs/access.log;
    client_body_temp_path {logs}/client_body_temp;
    proxy_temp_path {logs}/proxy_temp;
    fastcgi_temp_path {logs}/fastcgi_temp;
    uwsgi_temp_path {logs}/uwsgi_temp;
    scgi_temp_path {logs}/scgi_temp;

{text}
}}
"""
        self.conf_path.write_text(conf)

    def write_snippet(self, snippet):
        """Replaces the http snippet keeping the ports (then reload() applies it)."""
        self.snippet = snippet
        self._render(new_ports=False)

    # ------------------------------------------------------------------ control

    def _cmd(self, *extra):
        return [NGINX_BIN, "-p", str(self.prefix) + "/", "-c", "conf/nginx.conf",
                "-e", "logs/error.log", *extra]

    @property
    def net_tcp_path(self):
        """The TCP table of the namespace nginx listens in."""
        if self.netns and self.proc is not None:
            return f"/proc/{self.proc.pid}/net/tcp"
        return "/proc/net/tcp"

    def start(self, timeout=10):
        for attempt in range(3):
            self._render()
            self.error_log_path.write_text("")
            stderr = open(self.prefix / "logs" / "stderr.log", "ab")
            # `ip netns exec` execs nginx: the pid is still the master's
            wrap = ["ip", "netns", "exec", self.netns] if self.netns else []
            self.proc = subprocess.Popen(wrap + self._cmd(), stdin=subprocess.DEVNULL,
                                         stdout=stderr, stderr=stderr)
            stderr.close()
            ok, why = self._wait_ready(timeout)
            if ok:
                return self
            log = self.error_log()
            self._kill_all()
            if "Address already in use" in log or why == "port taken":
                continue  # another process grabbed a port: new ports, again
            raise NginxError(f"nginx did not start ({why}); prefix {self.prefix}\n"
                             f"error.log:\n{log}\nstderr:\n{self.stderr_text()}")
        raise NginxError("nginx could not get free ports three times")

    def _wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False, f"master exited with {self.proc.returncode}"
            workers = self.worker_pids()
            if len(workers) == self.workers:
                mine = socket_inodes(self.proc.pid)
                ready = True
                for port in self.ports.values():
                    inodes = listening_inodes(port, self.net_tcp_path)
                    if not inodes:
                        ready = False
                    elif not inodes <= mine:
                        return False, "port taken"
                if ready:
                    return True, ""
            time.sleep(0.02)
        return False, "timeout"

    @property
    def master_pid(self):
        return self.proc.pid

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def processes(self):
        """[(pid, cmdline)] of the master's children."""
        if self.proc is None:
            return []
        return children(self.proc.pid)

    def worker_pids(self, shutting_down=True):
        """Pids of worker processes (with or without old ones that are shutting down)."""
        pids = []
        for pid, cmd in self.processes():
            if "worker process" not in cmd:
                continue
            if not shutting_down and "shutting down" in cmd:
                continue
            pids.append(pid)
        return sorted(pids)

    def signal_cmd(self, sig):
        """Runs `nginx -s sig` for this prefix."""
        res = subprocess.run(self._cmd("-s", sig), capture_output=True, text=True, timeout=20)
        if res.returncode != 0:
            raise NginxError(f"nginx -s {sig} failed: {res.stderr}")

    def reload(self, wait=True, timeout=10):
        """`nginx -s reload`; waits for a full set of new workers. Returns (old, new) pids."""
        old = set(self.worker_pids())
        self.signal_cmd("reload")
        if not wait:
            return old, set()

        def new_ready():
            new = set(self.worker_pids()) - old
            return new if len(new) == self.workers else None

        new = wait_for(new_ready, timeout)
        if new is None:
            raise NginxError(f"no new workers {timeout}s after reload; "
                             f"processes {self.processes()}\n{self.error_log()}")

        # An old worker accepts from the shared reuseport sockets until it
        # handles its SIGQUIT; it logs "gracefully shutting down" in the same
        # step that closes its listening sockets, so after that line (or its
        # exit) new connections can only reach new workers.
        def old_stopped_accepting():
            log = self.error_log()
            return all(not pid_alive(p) or f"{p}#{p}: gracefully shutting down" in log
                       for p in old)

        if not wait_for(old_stopped_accepting, timeout):
            raise NginxError(f"old workers did not start shutting down {timeout}s after "
                             f"reload; processes {self.processes()}")
        return old, new

    def quit(self):
        """`nginx -s quit` (graceful shutdown); does not wait."""
        self.signal_cmd("quit")

    def wait_exit(self, timeout):
        try:
            self.proc.wait(timeout)
            return True
        except subprocess.TimeoutExpired:
            return False

    def stop(self, timeout=6):
        """SIGQUIT, then TERM, then KILL. Records a problem if QUIT was not enough
        (a graceful shutdown needs at most the module's 3 s close wait)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            workers = self.worker_pids()
            self.proc.send_signal(signal.SIGQUIT)
            if not self.wait_exit(timeout):
                self.problems.append(f"nginx did not exit within {timeout}s of SIGQUIT; "
                                     f"processes {self.processes()}")
                self._kill_all(workers)
        # a worker that outlived its master would keep our ports busy
        for pid in self.worker_pids():
            os.kill(pid, signal.SIGKILL)

    def _kill_all(self, workers=None):
        workers = set(workers or []) | set(self.worker_pids())
        if self.proc.poll() is None:
            self.proc.terminate()
            if not self.wait_exit(2):
                self.proc.kill()
                self.proc.wait(5)
        for pid in workers:
            if pid_alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    # ------------------------------------------------------------------ logs

    def error_log(self):
        try:
            return self.error_log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stderr_text(self):
        try:
            return (self.prefix / "logs" / "stderr.log").read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def mark_log(self):
        """Remembers the current end of the error log (see log_since_mark)."""
        self._log_mark = len(self.error_log())

    def log_since_mark(self):
        return self.error_log()[self._log_mark:]

    def wait_log(self, predicate, timeout=5):
        """Waits for a line of the error log (after the mark) satisfying predicate."""
        def find():
            for line in self.log_since_mark().splitlines():
                if predicate(line):
                    return line
            return None
        return wait_for(find, timeout)

    def bad_log_lines(self):
        text = self.error_log() + "\n" + self.stderr_text()
        return [line for line in text.splitlines()
                if any(p in line for p in BAD_LOG_PATTERNS)]

    def cleanup(self):
        if os.environ.get("REALTIME_KEEP_PREFIX"):
            return
        shutil.rmtree(self.prefix, ignore_errors=True)

    # ------------------------------------------------------------------ sockets

    def worker_of(self, client_sock):
        """Pid of the worker holding the server end of client_sock's connection."""
        cport = client_sock.getsockname()[1]
        sport = client_sock.getpeername()[1]
        inodes = {inode for _lip, lport, rport, _st, inode
                  in _proc_net_tcp(self.net_tcp_path)
                  if lport == sport and rport == cport}
        for pid in self.worker_pids():
            if inodes & socket_inodes(pid):
                return pid
        return None


# --------------------------------------------------------------------------
# conf-examples/ as snippets for Nginx

EXAMPLES_DIR = REPO / "conf-examples"

# What the harness's own main config and http block already set.
_HARNESS_OWNS = re.compile(r"^\s*(access_log|error_log|pid|client_body_temp_path|proxy_temp_path|"
                           r"fastcgi_temp_path|uwsgi_temp_path|scgi_temp_path)\b[^;]*;[ \t]*\n?",
                           re.M)


def _block_body(text, start):
    """The text between the brace that opens at or after start and its match."""
    i = text.index("{", start)
    depth = 0
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1:j]
    raise ValueError("unbalanced braces")


def _strip_comments(text):
    return re.sub(r"#[^\n]*", "", text)


def example_snippet(name, replace=()):
    """conf-examples/<name> as an http snippet for Nginx, and how its ports map.

    A whole nginx.conf (the demo) is reduced to its http block without what
    the harness sets itself (logs, temp paths); its @PREFIX@/@HTML@/@CLIENTS@
    are filled in. Every distinct port of a `listen` becomes a placeholder
    ({ssl_port} for an ssl listener, else {port}, then {port2}), on
    127.0.0.1. replace: (old, new) pairs applied first (key files,
    upstream addresses). Returns (snippet, {example port: placeholder name}).
    """
    text = _strip_comments((EXAMPLES_DIR / name).read_text())
    for old, new in replace:
        text = text.replace(old, new)
    if re.search(r"^\s*load_module\b", text, re.M):
        text = _block_body(text, re.search(r"^\s*http\s*\{", text, re.M).start())
        text = _HARNESS_OWNS.sub("", text)
        text = (text.replace("@HTML@", str(REPO / "demo"))
                .replace("@CLIENTS@", str(REPO / "clients" / "js"))
                .replace("@PREFIX@", "{prefix}"))
    ports = {}
    free = ["port", "port2"]

    def listen(m):
        args = m.group(2).split()
        port = int(args[0].rsplit(":", 1)[-1])
        if port not in ports:
            if "ssl" in args[1:] and "ssl_port" not in ports.values():
                ports[port] = "ssl_port"
            else:
                if not free:
                    raise NginxError(f"{name}: more listen ports than the harness has")
                ports[port] = free.pop(0)
        return m.group(1) + " ".join(["127.0.0.1:{" + ports[port] + "}"] + args[1:]) + ";"

    text = re.sub(r"(\blisten\s+)([^;]*);", listen, text)
    return text, ports


def example_locations(snippet, directive):
    """[(location argument, placeholder name of its server's first listen)]
    of the locations of an example_snippet() that contain directive (e.g.
    "realtime_publish"): tests find the publish API wherever an example puts it."""
    found = []
    for m in re.finditer(r"^\s*server\s*\{", snippet, re.M):
        body = _block_body(snippet, m.start())
        lm = re.search(r"\blisten\s+127\.0\.0\.1:\{(\w+)\}", body)
        for loc in re.finditer(r"\blocation\s+([^{]*?)\s*\{", body):
            inner = _block_body(body, loc.start())
            if re.search(r"(^|[\s;{])" + re.escape(directive) + r"\b", inner):
                arg = loc.group(1).split()
                found.append((arg[-1], lm.group(1) if lm else None))
    return found


# network namespaces


_CLONE_NEWNET = 0x40000000
_netns_seq = itertools.count(1)


def _ip(*args, check=True):
    res = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=20)
    if check and res.returncode != 0:
        raise NginxError(f"ip {' '.join(args)} failed: {res.stderr.strip()}")
    return res


class NetNs:
    """A network namespace joined to this one by a veth pair on a /30.

    The host end gets .1 and the namespace end .2 of a /30 in 203.0.113.0/24
    (TEST-NET-3) that no interface here uses; the namespace's loopback is
    brought up. Only the new veth gets an address: never an existing
    interface. remove() deletes the veth and the namespace and may be
    called more than once (and after a failed create())."""

    NET = "203.0.113."

    def __init__(self):
        seq = next(_netns_seq)
        self.name = f"rt-itest-{os.getpid()}-{seq}"
        # interface names have at most 15 characters
        self.veth_host = f"rt{os.getpid()}h{seq}"
        self.veth_ns = f"rt{os.getpid()}n{seq}"
        self.host_addr = None
        self.ns_addr = None

    def _free_subnet(self):
        """(host, ns) addresses of a /30 that overlaps no address or route here."""
        taken = []
        for line in _ip("-o", "-4", "addr", "show").stdout.splitlines():
            m = re.search(r"\binet (\S+)", line)
            if m:
                taken.append(ipaddress.ip_network(m.group(1), strict=False))
        for line in _ip("-4", "route", "show", "table", "all").stdout.splitlines():
            dest = line.split()[0] if line.split() else ""
            if dest in ("default", "broadcast", "local", "unreachable"):
                dest = line.split()[1] if len(line.split()) > 1 else ""
            try:
                taken.append(ipaddress.ip_network(dest, strict=False))
            except ValueError:
                continue
        start = os.getpid() % 63
        for i in range(63):
            base = 4 * (1 + (start + i) % 63)  # 203.0.113.0/30 left alone
            net = ipaddress.ip_network(f"{self.NET}{base}/30")
            if not any(net.overlaps(t) for t in taken
                       if t.prefixlen > 0):
                return str(net[1]), str(net[2])
        raise NginxError("no free /30 in 203.0.113.0/24")

    def create(self):
        try:
            self.host_addr, self.ns_addr = self._free_subnet()
            _ip("netns", "add", self.name)
            _ip("link", "add", self.veth_host, "type", "veth", "peer", "name", self.veth_ns)
            _ip("link", "set", self.veth_ns, "netns", self.name)
            _ip("addr", "add", self.host_addr + "/30", "dev", self.veth_host)
            _ip("link", "set", self.veth_host, "up")
            _ip("-n", self.name, "addr", "add", self.ns_addr + "/30", "dev", self.veth_ns)
            _ip("-n", self.name, "link", "set", self.veth_ns, "up")
            _ip("-n", self.name, "link", "set", "lo", "up")
        except Exception:
            self.remove()
            raise
        return self

    def remove(self):
        # deleting either end removes the pair; the namespace end goes with it
        _ip("link", "del", self.veth_host, check=False)
        _ip("netns", "del", self.name, check=False)

    def exists(self):
        return self.name in _ip("netns", "list", check=False).stdout.split()

    @contextlib.contextmanager
    def entered(self):
        """Sockets created inside the with-block (by this thread) belong to
        the namespace and stay there; the thread returns to its own
        namespace afterwards, even on an exception."""
        libc = ctypes.CDLL(None, use_errno=True)
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        target = os.open(f"/run/netns/{self.name}", os.O_RDONLY)
        try:
            if libc.setns(target, _CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"setns({self.name}): {os.strerror(err)}")
            try:
                yield self
            finally:
                if libc.setns(own, _CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    # a thread stuck in the test namespace would poison every
                    # later test: stop here
                    sys.stderr.write(f"setns back failed: {os.strerror(err)}\n")
                    os._exit(70)
        finally:
            os.close(target)
            os.close(own)
