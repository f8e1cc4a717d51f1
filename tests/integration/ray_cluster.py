"""A multi-node Ray cluster on this machine, built as two hosts would be: the head in this
network namespace on one end of a veth pair, a second node in a network namespace of its
own on the other end, each with its own address, ports and temp dir, joined over TCP.
This machine's hostname resolves to loopback, so each node's workers are told their
interface for torch.distributed's Gloo (GLOO_SOCKET_IFNAME), as on hosts with several.

    with ray_cluster(nodes=2) as address:   # "10.213.Y.1:PORT", for RAY_ADDRESS
        ...

Each `ray start` runs as the leader of a new session, and the session ids are recorded
in the cluster's temp dir; at exit (and at the next start, for a run killed before its
exit) the processes of those sessions and of the namespace are killed by id, then the
namespace, the veth pair and the temp dir are deleted. It never runs `ray stop`, which
would end every Ray instance on the machine. Root only (netns, veth).
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from .stack import free_ports

#: Network names: cr<owner pid>n<count>, plus h (host end) or p (peer end) for the veth pair;
#: the temp dir /tmp/<tag> holds each node's Ray temp dir and SESSIONS.
TAG = re.compile(r"^cr(\d+)n\d+$")
SESSIONS = "sessions"
SUBNETS = ipaddress.ip_network("10.213.0.0/16")
_count = itertools.count()
_ours: set[str] = set()  # clusters this process has up now


class ClusterUnavailable(RuntimeError):
    """This machine cannot build the cluster (not root, no `ip netns`, no ray)."""


def unavailable() -> str:
    """Why this machine cannot build the cluster; empty when it can."""
    if os.geteuid() != 0:
        return "needs root (network namespaces and veth pairs)"
    if not shutil.which("ip"):
        return "needs iproute2's `ip`"
    if subprocess.run(["ip", "netns", "list"], capture_output=True).returncode != 0:
        return "`ip netns` is unavailable here"
    if not ray_binary():
        return "no `ray` command next to this Python"
    return ""


def ray_binary() -> str:
    beside = Path(sys.executable).with_name("ray")
    return str(beside) if beside.exists() else (shutil.which("ray") or "")


def _ip(*args: str, netns: str = "", check: bool = True) -> subprocess.CompletedProcess:
    cmd = ["ip", "netns", "exec", netns, "ip", *args] if netns else ["ip", *args]
    return subprocess.run(cmd, capture_output=True, text=True, check=check)


def _alive(pid: int) -> bool:
    """The process exists and has not exited (a zombie, not yet reaped, has)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _session_members(sessions: set[int]) -> set[int]:
    """Live processes in these sessions. Each `ray start` runs as a session leader, and every
    process a Ray node starts stays in its session (workers change process group, not session;
    sandboxes that start their own session die with their parent)."""
    members = set()
    for entry in Path("/proc").iterdir():
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[3]) in sessions:
            members.add(int(entry.name))
    return members


def _netns_members(tag: str) -> set[int]:
    return {int(pid) for pid in _ip("netns", "pids", tag, check=False).stdout.split() if pid.isdigit()}


def _kill(pids: set[int]) -> None:
    """SIGKILL at once: a test cluster has nothing to save, and Ray's GCS and raylets take
    many seconds to act on SIGTERM."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _teardown(tag: str) -> None:
    """Kill the cluster's processes by id, then delete its namespace, veth pair and temp dirs."""
    record = Path(tempfile.gettempdir()) / tag / SESSIONS
    sessions = {int(line) for line in record.read_text().split()} if record.exists() else set()
    deadline = time.monotonic() + 10
    while pids := _session_members(sessions) | _netns_members(tag):
        if time.monotonic() > deadline:
            raise RuntimeError(f"Ray cluster {tag}: processes {sorted(pids)} outlived SIGKILL")
        _kill(pids)
        time.sleep(0.2)
    _ip("netns", "delete", tag, check=False)  # takes the peer end, and so the whole pair, with it
    _ip("link", "delete", tag + "h", check=False)
    shutil.rmtree(Path(tempfile.gettempdir()) / tag, ignore_errors=True)


def sweep_leftovers() -> None:
    """Tear down clusters whose owning process is gone (a run killed before its exit), and
    any that a process before this one with the same pid left."""
    tags = {entry.name for entry in Path(tempfile.gettempdir()).iterdir() if TAG.match(entry.name)}
    tags |= {line.split()[0] for line in _ip("netns", "list", check=False).stdout.splitlines() if line.strip()}
    tags |= {m.group(1) for m in re.finditer(r"\d+: (cr\d+n\d+)h[@:]", _ip("-o", "link", "show", check=False).stdout)}
    for tag in tags:
        match = TAG.match(tag)
        owner = int(match.group(1)) if match else 0
        if match and tag not in _ours and (owner == os.getpid() or not _alive(owner)):
            _teardown(tag)


def _free_subnet() -> ipaddress.IPv4Network:
    """A /24 of 10.213.0.0/16 that no address or route of this machine overlaps."""
    taken = []
    for line in _ip("-4", "-o", "addr", "show", check=False).stdout.splitlines():
        taken.append(ipaddress.ip_interface(line.split()[3]).network)
    for line in _ip("-4", "route", "show", check=False).stdout.splitlines():
        if line.split()[0] != "default":
            taken.append(ipaddress.ip_network(line.split()[0], strict=False))
    for subnet in SUBNETS.subnets(new_prefix=24):
        if not any(subnet.overlaps(net) for net in taken):
            return subnet
    raise ClusterUnavailable(f"no free /24 left in {SUBNETS}")


def _make_hosts(tag: str) -> tuple[str, str]:
    """The namespace and the veth pair; returns (host address, namespace address)."""
    lock_path = Path(tempfile.gettempdir()) / "coderanker-ray-cluster.lock"
    with open(lock_path, "a") as lock:  # two runs at once must not pick the same subnet
        fcntl.flock(lock, fcntl.LOCK_EX)
        subnet = _free_subnet()
        host_ip, peer_ip = (str(subnet.network_address + i) for i in (1, 2))
        _ip("netns", "add", tag)
        _ip("link", "add", tag + "h", "type", "veth", "peer", "name", tag + "p")
        _ip("link", "set", tag + "p", "netns", tag)
        _ip("addr", "add", f"{host_ip}/24", "dev", tag + "h")
        _ip("link", "set", tag + "h", "up")
    _ip("link", "set", "lo", "up", netns=tag)
    _ip("addr", "add", f"{peer_ip}/24", "dev", tag + "p", netns=tag)
    _ip("link", "set", tag + "p", "up", netns=tag)
    _ip("route", "add", "default", "via", host_ip, netns=tag)
    return host_ip, peer_ip


def _ray_start(tag: str, args: list[str], env: dict[str, str], netns: str = "") -> None:
    """`ray start` as the leader of a new session, recorded before it runs so that even a run
    killed now leaves what the next run needs to find its processes."""
    cmd = [ray_binary(), "start", "--disable-usage-stats", "--object-store-memory", str(100 * 2**20), *args]
    if netns:
        cmd = ["ip", "netns", "exec", netns, *cmd]
    process = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
    with open(Path(tempfile.gettempdir()) / tag / SESSIONS, "a") as record:
        record.write(f"{process.pid}\n")
    output, _ = process.communicate(timeout=120)
    (Path(tempfile.gettempdir()) / tag / f"ray-start-{'node' if netns else 'head'}.log").write_text(output)
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {process.returncode}:\n{output}")


def _keep_logs(temp: Path, logs: Path) -> None:
    """Copy `ray start` output and each node's session logs (temp/<node>/session_*/logs)."""
    logs.mkdir(parents=True, exist_ok=True)
    for started in temp.glob("ray-start-*.log"):
        shutil.copy(started, logs / started.name)
    for node in ("head", "node"):
        for session in (temp / node).glob("session_2*"):
            shutil.copytree(session / "logs", logs / f"ray-{node}", dirs_exist_ok=True, ignore_dangling_symlinks=True)


def auth_mode() -> str:
    """Ray's token authentication as this process has it: "token" once a local ray.init()
    here turned it on (Ray sets RAY_AUTH_MODE=token in the environment), else "disabled"."""
    return "token" if os.environ.get("RAY_AUTH_MODE", "").lower() == "token" else "disabled"


def nodes_that_ran_tasks(address: str, function: str | None = None) -> dict[str, int]:
    """Finished tasks per node id (of `function` only, when given) over every job the
    cluster at `address` ran, from Ray's state API; this process need not be a driver.
    Task events reach the API a moment after a task ends."""
    from ray.util.state import list_tasks

    filters = [("state", "=", "FINISHED")] + ([("func_or_class_name", "=", function)] if function else [])
    per_node: dict[str, int] = {}
    for task in list_tasks(address=address, filters=filters, detail=True, limit=10_000,
                           raise_on_missing_output=False):
        per_node[task.node_id] = per_node.get(task.node_id, 0) + 1
    return per_node


def alive_nodes(address: str) -> list[dict]:
    """The cluster's alive nodes, as ray.nodes() lists them, seen from a separate process
    (this one need not become a Ray driver)."""
    script = ("import json, sys, ray; ray.init(address=sys.argv[1], log_to_driver=False, configure_logging=False);"
              "print(json.dumps([n for n in ray.nodes() if n['Alive']]))")
    done = subprocess.run([sys.executable, "-c", script, address], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})
    return json.loads(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 and done.stdout.strip() else []


@contextlib.contextmanager
def ray_cluster(nodes: int = 2, cpus_per_node: int = 1, logs: str | os.PathLike | None = None,
                timeout_s: float = 120.0) -> Iterator[str]:
    """Yield the address of a Ray cluster of `nodes` nodes (1: the head alone, 2: the head
    and a node in its own namespace), each with `cpus_per_node` CPUs. A Ray driver this
    process started is shut down before the cluster starts and before it goes. With `logs`,
    each node's Ray logs and `ray start` output are copied there at exit."""
    if nodes not in (1, 2):
        raise ValueError(f"nodes must be 1 or 2, not {nodes}")
    if why := unavailable():
        raise ClusterUnavailable(why)
    sweep_leftovers()
    tag = f"cr{os.getpid()}n{next(_count)}"
    temp = Path(tempfile.gettempdir()) / tag
    # Token authentication as this process has it, so that it and the processes it starts
    # (which inherit its environment) can join: off, as for `ray start` on a machine without
    # ~/.ray/auth_token, unless a local ray.init() here has turned it on (Ray then sets
    # RAY_AUTH_MODE=token in this process's environment, and the token is in that file).
    auth = auth_mode()
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": auth}
    env.pop("RAY_ADDRESS", None)
    if "ray" in sys.modules and sys.modules["ray"].is_initialized():
        sys.modules["ray"].shutdown()  # this process's driver is to join the new cluster
    _ours.add(tag)
    try:
        temp.mkdir()
        host_ip, peer_ip = _make_hosts(tag)
        flags = ("--port", "--dashboard-port", "--ray-client-server-port", "--dashboard-agent-listen-port")
        ports = dict(zip(flags, free_ports(len(flags), host_ip), strict=True))  # not Ray defaults: others may hold them
        address = f"{host_ip}:{ports['--port']}"
        head = ["--head", "--include-dashboard", "true", "--dashboard-host", host_ip]
        for flag, port in ports.items():
            head += [flag, str(port)]
        _ray_start(tag, [*head, "--node-ip-address", host_ip, "--num-cpus", str(cpus_per_node),
                         "--temp-dir", str(temp / "head")], {**env, "GLOO_SOCKET_IFNAME": tag + "h"})
        if nodes > 1:
            _ray_start(tag, ["--address", address, "--node-ip-address", peer_ip, "--num-cpus", str(cpus_per_node),
                             "--temp-dir", str(temp / "node")], {**env, "GLOO_SOCKET_IFNAME": tag + "p"}, netns=tag)
        deadline = time.monotonic() + timeout_s
        while len(alive_nodes(address)) < nodes:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the Ray cluster at {address} did not reach {nodes} alive nodes in {timeout_s} s")
            time.sleep(1)
        yield address
    finally:
        if "ray" in sys.modules and sys.modules["ray"].is_initialized():
            sys.modules["ray"].shutdown()
        if logs is not None:
            _keep_logs(temp, Path(logs))
        _teardown(tag)
        _ours.discard(tag)


def two_node_cluster(logs: str | os.PathLike | None = None,
                     cpus_per_node: int = 1) -> contextlib.AbstractContextManager[str]:
    """The head and a second node in its own network namespace: ray_cluster(nodes=2)."""
    return ray_cluster(nodes=2, cpus_per_node=cpus_per_node, logs=logs)
