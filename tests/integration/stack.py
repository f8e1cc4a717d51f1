"""Real servers for the scale-out tests, each started with its own data directory and port
and stopped by process id: PostgreSQL (Debian's package), an MLflow tracking server on it
with proxied artifacts, a Prefect server on it, and an OpenSSH server for the DVC remote."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

VENV_BIN = Path(sys.executable).parent
PG_BIN = Path("/usr/lib/postgresql/15/bin")


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """`count` distinct ports free on `host` now. Each socket stays bound until all are chosen:
    a port picked and released at once can be handed out again by the next bind (a Ray head
    once got the same port for GCS and its client server that way)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind((host, 0))
        return [sock.getsockname()[1] for sock in sockets]


def free_port(host: str = "127.0.0.1") -> int:
    return free_ports(1, host)[0]


def start(cmd: list[str], log: Path, env: dict | None = None, cwd: Path | None = None) -> subprocess.Popen:
    """A server in its own process group (so that stopping it stops what it forked)."""
    handle = log.open("w")
    return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)


def stop(process: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    try:
        os.killpg(process.pid, sig)
        process.wait(timeout=30)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


def wait_until(check, what: str, log: Path, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"{what} did not come up:\n{log.read_text()[-3000:]}"
        time.sleep(0.5)


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@dataclass
class Postgres:
    port: int
    process: subprocess.Popen

    def url(self, database: str, driver: str = "postgresql") -> str:
        return f"{driver}://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> None:
        subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-q", "-c",
                        f"CREATE DATABASE {name}"], check=True, capture_output=True)


@contextmanager
def postgres(logs: Path) -> Iterator[Postgres]:
    """PostgreSQL 15 on 127.0.0.1 with a throw-away cluster (trust auth on loopback). As
    root, the server runs as the `postgres` user, which PostgreSQL requires."""
    if not (PG_BIN / "postgres").exists():
        pytest.skip("PostgreSQL 15 is not installed (Debian package postgresql; `make setup` installs it)")
    root = Path(tempfile.mkdtemp(prefix="coderanker-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        os.chmod(root, 0o755)
        os.chown(root, user.pw_uid, user.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data = root / "data"
    subprocess.run([*as_user, str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
                   check=True, capture_output=True)
    port = free_port()
    process = start([*as_user, str(PG_BIN / "postgres"), "-D", str(data), "-p", str(port), "-k", str(root),
                     "-c", "listen_addresses=127.0.0.1"], logs / "postgres.log")
    try:
        wait_until(lambda: subprocess.run([str(PG_BIN / "pg_isready"), "-h", "127.0.0.1", "-p", str(port)],
                                          capture_output=True).returncode == 0, "PostgreSQL", logs / "postgres.log")
        yield Postgres(port, process)
    finally:
        stop(process, signal.SIGINT)  # PostgreSQL's fast shutdown
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def mlflow_server(db: Postgres, artifacts: Path, logs: Path) -> Iterator[str]:
    """`mlflow server` with a PostgreSQL backend store and proxied artifacts: clients send
    artifacts through the server (mlflow-artifacts:/), never to a path of their own."""
    db.create_database("mlflow")
    port = free_port()
    process = start([str(VENV_BIN / "mlflow"), "server", "--backend-store-uri", db.url("mlflow"),
                     "--artifacts-destination", artifacts.as_uri(), "--host", "127.0.0.1", "--port", str(port),
                     "--workers", "1"], logs / "mlflow.log", env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"})
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: http_ok(f"{url}/health"), "the MLflow server", logs / "mlflow.log")
        yield url
    finally:
        stop(process)


@contextmanager
def prefect_server(db: Postgres, home: Path, logs: Path) -> Iterator[dict]:
    """`prefect server start` on PostgreSQL; yields the environment its clients need."""
    db.create_database("prefect")
    port = free_port()
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
           "PREFECT_API_DATABASE_CONNECTION_URL": db.url("prefect", "postgresql+asyncpg"),
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false",
           "PREFECT_LOGGING_LEVEL": "INFO", "PATH": f"{VENV_BIN}:{os.environ['PATH']}"}
    process = start([str(VENV_BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                    logs / "prefect-server.log", env=env)
    try:
        wait_until(lambda: http_ok(f"http://127.0.0.1:{port}/api/health"), "the Prefect server",
                   logs / "prefect-server.log")
        yield {k: v for k, v in env.items() if k != "PREFECT_API_DATABASE_CONNECTION_URL"}
    finally:
        stop(process)


@dataclass
class SshRemote:
    url: str
    keyfile: Path


@contextmanager
def ssh_remote(root: Path, logs: Path) -> Iterator[SshRemote]:
    """An OpenSSH server on 127.0.0.1 (Debian's openssh-server) that accepts one generated
    key, and a directory on it for a DVC remote."""
    sshd = Path("/usr/sbin/sshd")
    if not sshd.exists():
        pytest.skip("OpenSSH server is not installed (Debian package openssh-server; `make setup` installs it)")
    if os.geteuid() != 0:
        pytest.skip("the test's sshd needs root (it serves the current user with its own host key)")
    root.mkdir(parents=True, exist_ok=True)
    for key in ("host_key", "client_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(root / key)], check=True)
    (root / "authorized_keys").write_text((root / "client_key.pub").read_text())
    Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege-separation directory
    port = free_port()
    config = root / "sshd_config"
    config.write_text(f"Port {port}\nListenAddress 127.0.0.1\nHostKey {root / 'host_key'}\n"
                      f"AuthorizedKeysFile {root / 'authorized_keys'}\nPidFile {root / 'sshd.pid'}\n"
                      "StrictModes no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
                      "PermitRootLogin prohibit-password\nUsePAM no\nSubsystem sftp internal-sftp\n")
    process = start([str(sshd), "-D", "-e", "-f", str(config)], logs / "sshd.log")
    storage = root / "storage"
    storage.mkdir()
    user = pwd.getpwuid(os.geteuid()).pw_name

    def accepts() -> bool:
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0

    try:
        wait_until(accepts, "sshd", logs / "sshd.log", timeout_s=30)
        yield SshRemote(f"ssh://{user}@127.0.0.1:{port}{storage}", root / "client_key")
    finally:
        stop(process)
