"""Running `watchcentre serve` as a real process: start it with its environment, wait for /health,
kill it (SIGKILL) or stop it (SIGTERM), read its metrics and its peak memory."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

from tests.integration.harness import ROOT

WATCHCENTRE = [sys.executable, "-m", "watchcentre"]
"""The command, run from the tree under test (cwd = ROOT), whatever the venv has installed."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServeProcess:
    """One `watchcentre serve` subprocess; logs go to `log_path` (JSON lines)."""

    def __init__(
        self,
        *,
        prefix: str,
        database_url: str,
        schema: str = "public",
        name: str,
        log_dir: Path,
        amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/",
        config_dir: Path = ROOT / "config",
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.port = free_port()
        self.log_path = log_dir / f"{name}.log"
        self.metrics_token = f"scrape-{secrets.token_hex(16)}"  # /metrics needs a token (docs/security.md)
        self.env = {
            **os.environ,
            "WATCHCENTRE_AMQP_URL": amqp_url,
            "WATCHCENTRE_AMQP_PREFIX": prefix,
            "WATCHCENTRE_DATABASE_URL": database_url,
            "WATCHCENTRE_DATABASE_SCHEMA": schema,
            "WATCHCENTRE_HTTP_PORT": str(self.port),
            "WATCHCENTRE_CONFIG_DIR": str(config_dir),
            "WATCHCENTRE_INSTANCE_NAME": name,
            "WATCHCENTRE_LOG_FORMAT": "json",
            "WATCHCENTRE_METRICS_TOKEN": self.metrics_token,
            "WATCHCENTRE_AUDIT_ANCHOR_PATH": str(log_dir / f"{name}-audit-anchor.jsonl"),
            "WATCHCENTRE_AUDIT_ANCHOR_KEY_PATH": str(log_dir / "audit-anchor.key"),
            **(extra_env or {}),
        }
        self.proc: asyncio.subprocess.Process | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def start(self, healthy_within: float = 60.0) -> ServeProcess:
        self.starts += 1
        log = self.log_path.open("ab")
        self.proc = await asyncio.create_subprocess_exec(
            *WATCHCENTRE, "serve", env=self.env, stdout=log, stderr=log, cwd=str(ROOT)
        )
        log.close()
        await self.wait_health(True, within=healthy_within)
        return self

    async def health(self) -> tuple[int, dict[str, Any]]:
        """(status, body) of GET /health; (0, {}) when the HTTP server does not answer."""
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=8)) as http,
                http.get(f"{self.url}/health") as resp,
            ):
                return resp.status, await resp.json()
        except (aiohttp.ClientError, TimeoutError):
            return 0, {}

    async def wait_health(self, ready: bool, within: float = 30.0, check: str | None = None) -> float:
        """Poll /health until it says ready (200) or not ready (503, with `check` false if given);
        returns the seconds it took."""
        started = time.monotonic()
        deadline = started + within
        while True:
            assert self.proc is not None
            if self.proc.returncode is not None:
                raise AssertionError(f"{self.name} exited with {self.proc.returncode}; see {self.log_path}")
            status, body = await self.health()
            if ready and status == 200:
                return time.monotonic() - started
            if not ready and status == 503 and (check is None or body["checks"].get(check) is False):
                return time.monotonic() - started
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: /health never became {ready}: {status} {body}")
            await asyncio.sleep(0.1)

    async def metric(self, name: str) -> float:
        """Sum of every sample of one Prometheus metric (e.g. watchcentre_received_total)."""
        headers = {"Authorization": f"Bearer {self.metrics_token}"}
        async with aiohttp.ClientSession() as http, http.get(f"{self.url}/metrics", headers=headers) as resp:
            assert resp.status == 200, f"/metrics: {resp.status}"
            text = await resp.text()
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith(name) and (line[len(name)] in " {")
        )

    def peak_rss_mb(self) -> float:
        """VmHWM of the live process, in MB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        raise AssertionError("no VmHWM")

    async def kill(self) -> None:
        """SIGKILL: no clean-up of any kind, as in a crash."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()

    async def terminate(self, within: float = 30.0) -> tuple[int, float]:
        """SIGTERM; returns (exit code, seconds to exit)."""
        assert self.proc is not None
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(self.proc.wait(), within)
        return code, time.monotonic() - started

    async def ensure_stopped(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGKILL)
            await self.proc.wait()

    def log_lines(self, event: str) -> list[str]:
        """Log lines (JSON) whose event is `event`."""
        marker = f'"event": "{event}"'
        return [line for line in self.log_path.read_text(errors="replace").splitlines() if marker in line]


def async_true(check: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    """A plain condition as `poll_until` awaits it."""

    async def wrapped() -> bool:
        return check()

    return wrapped


async def poll_until(check: Callable[[], Awaitable[bool]], within: float, what: str) -> float:
    """Await `check()` until it is true (polled every 50 ms); fail after `within` seconds."""
    started = time.monotonic()
    while True:
        if await check():
            return time.monotonic() - started
        if time.monotonic() - started > within:
            raise AssertionError(f"not within {within}s: {what}")
        await asyncio.sleep(0.05)
