"""Start real servers as child processes on loopback and wait for their health endpoint (no sleeps)."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import requests


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """A child process with its log file; `start` returns once `health_url` answers 200."""

    def __init__(self, name: str, command: list[str], log_dir: Path, env: dict | None = None,
                 cwd: Path | None = None):
        self.name, self.command, self.cwd = name, command, cwd
        from assets.settings import NO_TELEMETRY

        self.env = {**NO_TELEMETRY, **os.environ, **(env or {})}  # a benchmark's servers report to no vendor either
        self.log_path = log_dir / f"{name}.log"
        self.process: subprocess.Popen | None = None

    def start(self, health_url: str, deadline_seconds: float = 90, auth: tuple[str, str] | None = None) -> "Server":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT, env=self.env,
                                        cwd=self.cwd, start_new_session=True)
        wait_until_healthy(health_url, deadline_seconds, self, auth)
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:]) if self.log_path.exists() else ""


def wait_until_healthy(url: str, deadline_seconds: float, server: Server | None = None,
                       auth: tuple[str, str] | None = None) -> None:
    """Poll `url` (with `auth`, behind a login) until it answers 200; fail with the server's log if it dies
    or the deadline passes."""
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        if server and server.process and server.process.poll() is not None:
            raise RuntimeError(f"{server.name} exited with {server.process.returncode}:\n{server.tail()}")
        try:
            if requests.get(url, timeout=2, auth=auth).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.25)  # polling interval of a health probe, not a wait for readiness
    raise TimeoutError(f"{url} not healthy after {deadline_seconds}s" + (f":\n{server.tail()}" if server else ""))


def web_config(path: Path, users: dict[str, str]) -> Path:
    """A --web.config.file for Prometheus, the Pushgateway or Alertmanager: bcrypt basic-auth users. Cost 4
    (scripts/up.sh's `caddy hash-password` uses 14): a refused login costs the server a full hash, which on
    these shared cores would outlast a test's timeouts."""
    import crypt  # noqa: PLC0415 - stdlib until 3.13; libxcrypt's bcrypt, which Go's bcrypt reads

    lines = ["basic_auth_users:"]
    for user, password in users.items():
        lines.append(f"  {user}: '{crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16))}'")
    path.write_text("\n".join(lines) + "\n")
    return path
