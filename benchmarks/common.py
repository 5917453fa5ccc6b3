"""Shared helpers: names and topology, preload, queue counting, subprocesses, databases, machine info,
the results table and the JSON report."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import aio_pika
import yaml
from aio_pika.abc import AbstractChannel, AbstractConnection
from aiormq.exceptions import AMQPError, ChannelClosed
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from watchcentre.adapters import amqp as wc_amqp
from watchcentre.core.routing import CENTRE_INBOX, TRIAGE, post_key, unit_key

AMQP_URL = os.environ.get("WATCHCENTRE_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
PG_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REPO = Path(__file__).resolve().parent.parent
CONFIG_DIR = REPO / "config"
RESULTS_DIR = Path(__file__).resolve().parent / "results"

out = Console(width=None if sys.stdout.isatty() else 140)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 160)


class BenchError(Exception):
    """Something is broken (not merely slow): the run fails whatever the figures."""


# -- results -----------------------------------------------------------------------------------------


@dataclass
class Figure:
    scenario: str
    figure: str
    value: float
    unit: str
    reference: float | None = None
    target: str = ""
    passed: bool | None = None

    @property
    def ratio(self) -> float | None:
        return self.value / self.reference if self.reference else None


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit in ("ms", "s"):
        return f"{value:,.1f} {unit}"
    if unit == "×":
        return f"{value:.2f}×"
    return f"{value:,.0f} {unit}"


def render(figures: Sequence[Figure]) -> None:
    table = Table(title="watchcentre benchmarks")
    for col in ("scenario", "figure", "value", "reference", "ratio", "target", "pass/short"):
        table.add_column(col, justify="right" if col in ("value", "reference", "ratio") else "left")
    for f in figures:
        verdict = {True: "[green]pass[/]", False: "[red]short[/]", None: ""}[f.passed]
        ratio = f"{f.ratio:.2f}×" if f.ratio is not None else "—"
        table.add_row(
            f.scenario, f.figure, fmt(f.value, f.unit), fmt(f.reference, f.unit), ratio, f.target, verdict
        )
    out.print(table)


def write_json(path: Path, figures: Sequence[Figure], details: dict[str, Any], info: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "machine": info,
        "figures": [{**asdict(f), "ratio": f.ratio} for f in figures],
        "details": details,
    }
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    err.print(f"results written to {path}")


def progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=False,
    )


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return float("nan")
    rank = max(1, int(-(-q * len(sorted_values) // 1)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


# -- names and topology ------------------------------------------------------------------------------


def new_prefix() -> str:
    return f"bench-{secrets.token_hex(4)}"


@cache
def network(config_dir: Path = CONFIG_DIR) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((config_dir / "network.yaml").read_text(encoding="utf-8"))
    return data


def post_by_country(config_dir: Path = CONFIG_DIR) -> dict[str, str]:
    return {str(c): p["id"] for p in network(config_dir)["posts"] for c in p["countries"]}


def recipient_keys(config_dir: Path = CONFIG_DIR) -> list[str]:
    net = network(config_dir)
    return [
        *(post_key(p["id"]) for p in net["posts"]),
        *(unit_key(u["id"]) for u in net.get("units", [])),
        CENTRE_INBOX,
        TRIAGE,
    ]


def post_queues(prefix: str) -> list[str]:
    names = wc_amqp.Names(prefix)
    return [names.queue_for(post_key(p["id"])) for p in network()["posts"]]


def inbound_arguments(prefix: str) -> dict[str, Any]:
    """Exactly what the service declares `P.inbound` with (a second declare must match)."""
    return {
        "x-queue-type": "quorum",
        "x-delivery-limit": wc_amqp.DELIVERY_LIMIT,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": wc_amqp.Names(prefix).dead,
    }


class Broker:
    """The harness's own connection: declare, preload, count and delete one prefix's topology."""

    def __init__(self, prefix: str, url: str = AMQP_URL) -> None:
        self.prefix = prefix
        self.names = wc_amqp.Names(prefix)
        self.url = url
        self._connection: AbstractConnection | None = None
        self._channel: AbstractChannel | None = None

    async def __aenter__(self) -> Broker:
        try:
            self._connection = await aio_pika.connect(self.url)
        except (OSError, AMQPError) as exc:
            raise BenchError(f"cannot reach RabbitMQ at {self.url}: {exc}") from exc
        return self

    async def __aexit__(self, *_: object) -> None:
        try:
            await self.delete_all()
        finally:
            if self._connection is not None:
                await self._connection.close()

    @property
    def connection(self) -> AbstractConnection:
        assert self._connection is not None
        return self._connection

    async def channel(self) -> AbstractChannel:
        if self._channel is None or self._channel.is_closed:
            assert self._connection is not None
            self._channel = await self._connection.channel()
        return self._channel

    async def declare(self) -> None:
        """The service's own topology (same code, so its declares match), all queues bound."""
        await wc_amqp.declare_topology(await self.channel(), self.names, recipient_keys())
        # Same arguments as the service: a mismatch fails here, before anything is measured.
        await (await self.channel()).declare_queue(
            self.names.inbound, durable=True, arguments=inbound_arguments(self.prefix)
        )

    async def preload(self, bodies: Sequence[bytes], batch: int = 1000) -> None:
        assert self._connection is not None
        channel = await self._connection.channel(publisher_confirms=True)
        try:
            with progress() as bar:
                task = bar.add_task(f"preloading {self.names.inbound}", total=len(bodies))
                for start in range(0, len(bodies), batch):
                    chunk = bodies[start : start + batch]
                    await asyncio.gather(
                        *(
                            channel.default_exchange.publish(
                                aio_pika.Message(
                                    b,
                                    content_type="application/json",
                                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                                ),
                                routing_key=self.names.inbound,
                            )
                            for b in chunk
                        )
                    )
                    bar.advance(task, len(chunk))
        finally:
            await channel.close()
        ready = await self.depth(self.names.inbound)
        if ready != len(bodies):
            raise BenchError(f"preloaded {len(bodies)} messages but {self.names.inbound} holds {ready}")

    async def declare_ok(self, queue: str) -> tuple[int, int]:
        """(ready messages, consumers) by a passive declare; (-1, 0) if the queue does not exist."""
        try:
            q = await (await self.channel()).declare_queue(queue, passive=True)
        except ChannelClosed:
            self._channel = None
            return -1, 0
        result = q.declaration_result
        return int(result.message_count or 0), int(result.consumer_count or 0)

    async def depth(self, queue: str) -> int:
        return (await self.declare_ok(queue))[0]

    async def total(self, queues: Sequence[str]) -> int:
        return sum([max(0, await self.depth(q)) for q in queues])

    async def wait_consumer(self, queue: str, proc: Managed, within: float = 60.0) -> None:
        deadline = time.monotonic() + within
        while (await self.declare_ok(queue))[1] < 1:
            proc.check_alive()
            if time.monotonic() > deadline:
                raise BenchError(f"{proc.name}: no consumer on {queue} after {within:.0f} s")
            await asyncio.sleep(0.1)

    async def delete_all(self) -> None:
        if self._connection is None or self._connection.is_closed:
            return
        queues = [self.names.inbound, self.names.dead, *(self.names.queue_for(k) for k in recipient_keys())]
        for q in queues:
            with contextlib.suppress(AMQPError):
                await (await self.channel()).queue_delete(q)
        for x in (self.names.routed, self.names.events, self.names.intake):
            with contextlib.suppress(AMQPError):
                await (await self.channel()).exchange_delete(x)


# -- subprocesses ------------------------------------------------------------------------------------

_RUNNING: set[Managed] = set()


class Managed:
    """A subprocess with its output in a temp file; stopped with SIGTERM, then SIGKILL after a deadline."""

    def __init__(self, name: str, argv: Sequence[str], env: dict[str, str] | None = None) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = env
        self.log = Path(tempfile.mkstemp(prefix=f"{name}-", suffix=".log")[1])
        self.proc: asyncio.subprocess.Process | None = None
        self.http_port: int | None = None  # watchcentre's HTTP port

    async def start(self) -> None:
        with self.log.open("wb") as sink:
            self.proc = await asyncio.create_subprocess_exec(
                *self.argv, stdin=subprocess.DEVNULL, stdout=sink, stderr=sink, env=self.env, cwd=REPO
            )
        _RUNNING.add(self)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.returncode is not None:
            raise BenchError(f"{self.name} exited with status {self.proc.returncode}:\n{self.tail()}")

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def status_kb(self, key: str) -> int | None:
        """VmRSS / VmHWM of the process in kB, from /proc/<pid>/status."""
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith(key + ":"):
                    return int(line.split()[1])
        except (OSError, ValueError):
            pass
        return None

    async def stop(self, deadline: float = 15.0) -> None:
        if self.proc is None:
            return
        try:
            if self.proc.returncode is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(self.proc.wait(), deadline)
                except TimeoutError:
                    err.print(f"[yellow]{self.name} ignored SIGTERM for {deadline:.0f} s: SIGKILL[/]")
                    self.proc.kill()
                    await self.proc.wait()
        finally:
            _RUNNING.discard(self)
            self.log.unlink(missing_ok=True)


@contextlib.asynccontextmanager
async def managed(
    name: str, argv: Sequence[str], env: dict[str, str] | None = None
) -> AsyncIterator[Managed]:
    proc = Managed(name, argv, env)
    await proc.start()
    try:
        yield proc
    finally:
        await asyncio.shield(proc.stop())


def kill_all_sync(deadline: float = 10.0) -> None:
    """Last resort (Ctrl-C, crash): SIGTERM whatever is still running, SIGKILL after `deadline`."""
    procs = [p for p in _RUNNING if p.proc is not None and p.proc.returncode is None]
    for p in procs:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p.pid, signal.SIGTERM)
    end = time.monotonic() + deadline
    for p in procs:
        while time.monotonic() < end and Path(f"/proc/{p.pid}").exists() and not _is_zombie(p.pid):
            time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError):
            os.kill(p.pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(p.pid, os.WNOHANG)
        p.log.unlink(missing_ok=True)
    _RUNNING.clear()


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
    except (OSError, IndexError):
        return True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- databases and the two routers ------------------------------------------------------------------


@dataclass
class Database:
    engine: str
    url: str
    schema: str = "public"


@contextlib.asynccontextmanager
async def database(engine: str) -> AsyncIterator[Database]:
    """A temp SQLite file, or a fresh PostgreSQL schema dropped afterwards."""
    if engine == "sqlite":
        directory = tempfile.mkdtemp(prefix="bench-db-")
        try:
            yield Database("sqlite", f"sqlite:///{directory}/watchcentre.db")
        finally:
            shutil.rmtree(directory, ignore_errors=True)
        return
    import asyncpg

    schema = f"bench_{secrets.token_hex(4)}"
    try:
        conn = await asyncpg.connect(PG_URL)
        await conn.close()
    except (OSError, asyncpg.PostgresError) as exc:
        raise BenchError(f"cannot reach PostgreSQL at {PG_URL}: {exc}") from exc
    try:
        yield Database("postgres", PG_URL, schema)
    finally:
        conn = await asyncpg.connect(PG_URL)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()


def watchcentre_env(db: Database) -> dict[str, str]:
    return {
        **os.environ,
        "WATCHCENTRE_DATABASE_URL": db.url,
        "WATCHCENTRE_DATABASE_SCHEMA": db.schema,
        "WATCHCENTRE_CONFIG_DIR": str(CONFIG_DIR),
    }


async def operator_token(db: Database) -> str:
    """`watchcentre token issue --role operator` against `db`: the token it prints last."""
    argv = [*_watchcentre_argv()[:-1], "token", "issue", "--role", "operator", "--name", "benchmark"]
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=watchcentre_env(db), cwd=REPO
    )
    out, errors = await proc.communicate()
    if proc.returncode != 0:
        raise BenchError(f"token issue failed: {errors.decode(errors='replace')}")
    return out.decode().strip().splitlines()[-1]


def _watchcentre_argv() -> list[str]:
    script = Path(sys.executable).parent / "watchcentre"
    return [str(script), "serve"] if script.exists() else [sys.executable, "-m", "watchcentre", "serve"]


@contextlib.asynccontextmanager
async def watchcentre(
    prefix: str, db: Database, startup: float = 90.0, name: str | None = None
) -> AsyncIterator[Managed]:
    """`watchcentre serve` on a free port, yielded once GET /health answers 200. `name`: its AMQP
    connection name (WATCHCENTRE_INSTANCE_NAME), to find its connection with rabbitmqctl."""
    import aiohttp

    port = free_port()
    env = {
        **os.environ,
        "WATCHCENTRE_AMQP_URL": AMQP_URL,
        "WATCHCENTRE_AMQP_PREFIX": prefix,
        "WATCHCENTRE_DATABASE_URL": db.url,
        "WATCHCENTRE_DATABASE_SCHEMA": db.schema,
        "WATCHCENTRE_HTTP_HOST": "127.0.0.1",
        "WATCHCENTRE_HTTP_PORT": str(port),
        "WATCHCENTRE_CONFIG_DIR": str(CONFIG_DIR),
        "WATCHCENTRE_LOG_LEVEL": "WARNING",
        "WATCHCENTRE_BROKER_TRUST": "development",  # the load generators publish as guest, for every sender
        **({"WATCHCENTRE_INSTANCE_NAME": name} if name else {}),
    }
    async with managed(f"watchcentre-{db.engine}", _watchcentre_argv(), env) as proc:
        proc.http_port = port
        deadline = time.monotonic() + startup
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
            while True:
                proc.check_alive()
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with http.get(f"http://127.0.0.1:{port}/health") as resp:
                        if resp.status == 200:
                            break
                if time.monotonic() > deadline:
                    raise BenchError(f"watchcentre not healthy after {startup:.0f} s:\n{proc.tail()}")
                await asyncio.sleep(0.02)  # the start time is measured on this: keep it fine-grained
        yield proc


@contextlib.asynccontextmanager
async def reference_router(prefix: str) -> AsyncIterator[Managed]:
    argv = [sys.executable, "-m", "benchmarks.reference_router", "--prefix", prefix, "--url", AMQP_URL]
    async with managed("reference-router", argv) as proc:
        yield proc


@contextlib.asynccontextmanager
async def router(kind: str, prefix: str, engine: str = "sqlite") -> AsyncIterator[Managed]:
    """kind 'reference' or 'watchcentre' (with a fresh database of `engine`)."""
    if kind == "reference":
        async with reference_router(prefix) as proc:
            yield proc
        return
    async with database(engine) as db, watchcentre(prefix, db) as proc:
        yield proc


# -- machine information ----------------------------------------------------------------------------


def _run(argv: Sequence[str], timeout: float = 20.0) -> str | None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.strip() or None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_total_mb() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    except (OSError, ValueError):
        pass
    return None


async def _postgres_version() -> str | None:
    try:
        import asyncpg

        conn = await asyncio.wait_for(asyncpg.connect(PG_URL), 5)
        try:
            return str(await conn.fetchval("SHOW server_version"))
        finally:
            await conn.close()
    except Exception:
        return None


async def machine_info() -> dict[str, Any]:
    import orjson

    import watchcentre

    rabbit = await asyncio.to_thread(_run, ["rabbitmqctl", "version"])
    commit = _run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    dirty = _run(["git", "-C", str(REPO), "status", "--porcelain"])
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "watchcentre": watchcentre.__version__,
        "git_commit": f"{commit}{'-dirty' if dirty else ''}" if commit else None,
        "aio_pika": aio_pika.__version__,
        "orjson": orjson.__version__,
        "rabbitmq": rabbit,
        "postgres": await _postgres_version(),
        "nproc": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "cpu_model": _cpu_model(),
        "mem_total_mb": _mem_total_mb(),
        "kernel": platform.release(),
    }


# -- CPU per input --------------------------------------------------------------------------------

_TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int, waited: bool = False) -> float | None:
    """utime + stime of one process (every thread), in seconds, from /proc/<pid>/stat; `waited`:
    and of its children that ended (PostgreSQL's backends, reaped by the postmaster)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
    except (OSError, IndexError):
        return None
    ticks = sum(int(f) for f in fields[11 : 15 if waited else 13])
    return ticks * _TICK_S


def _listening_inodes(port: int) -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                cols = line.split()
                if cols[1].rsplit(":", 1)[1] == f"{port:04X}" and cols[3] == "0A":  # LISTEN
                    inodes.add(cols[9])
    return inodes


@cache
def server_pids(port: int) -> tuple[int, ...]:
    """The process listening on 127.0.0.1:`port` and its children (PostgreSQL's backends): only
    the server this benchmark uses, not another broker or database on the same machine."""
    sockets = {f"socket:[{inode}]" for inode in _listening_inodes(port)}
    owner = None
    for entry in Path("/proc").iterdir():
        if owner is None and entry.name.isdigit():
            with contextlib.suppress(OSError):
                if any(os.readlink(fd) in sockets for fd in (entry / "fd").iterdir()):
                    owner = int(entry.name)
    return (owner,) if owner is not None else ()


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                if int(entry.joinpath("stat").read_text().rsplit(") ", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
    return found


CPU_PORTS = {"broker": 5672, "postgres": 5432}
"""The shared servers whose CPU is counted per input, by the port they listen on (the whole
process, and for PostgreSQL its backends: other work on the same server in the same window is
counted too)."""


def cpu_snapshot(router_pid: int) -> dict[str, float]:
    """CPU seconds so far of the router process, the broker and PostgreSQL (with its backends)."""
    snap = {"router": cpu_s(router_pid) or 0.0}
    for owner, port in CPU_PORTS.items():
        tops = server_pids(port)
        snap[owner] = sum(cpu_s(top, waited=True) or 0.0 for top in tops) + sum(
            cpu_s(child) or 0.0 for top in tops for child in _children(top)
        )
    return snap


@dataclass
class Drained:
    """How a drain went: timings from queue polling, and what ended where."""

    messages: int
    seconds: float
    copies: int
    dead: int
    peak_rss_mb: float | None
    samples: list[tuple[float, int, float | None]] = field(default_factory=list)
    cpu_ms: dict[str, float] = field(default_factory=dict)
    """CPU milliseconds per input, from first consumption to the last copy: router, broker, postgres."""

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds > 0 else float("inf")

    @property
    def copy_rate(self) -> float:
        return self.copies / self.seconds if self.seconds > 0 else float("inf")


async def watch_drain(
    broker: Broker,
    proc: Managed,
    n: int,
    *,
    exact_copies: bool,
    label: str,
    poll: float = 0.1,
    idle_timeout: float = 60.0,
    settle: float = 3.0,
    rss_every: float | None = None,
) -> Drained:
    """Poll `P.inbound` (ready count) every `poll` s until empty, then the post queues until every
    copy has landed. Start = between the last poll at N and the first below N; end = likewise around
    the last change of the copy count. `exact_copies`: the router makes exactly one copy per message
    (the reference); otherwise the count must reach N and then stay still for `settle` s."""
    inbound, posts = broker.names.inbound, post_queues(broker.prefix)
    t0 = time.perf_counter()
    before_start: float | None = t0
    t_first: float | None = None
    last_ready, last_change = n, t0
    samples: list[tuple[float, int, float | None]] = []
    next_rss = t0
    cpu_before = cpu_snapshot(proc.pid)  # replaced at the first consumption
    with progress() as bar:
        task = bar.add_task(f"{label}: drained", total=n)
        while True:
            tick = time.perf_counter()
            ready = await broker.depth(inbound)
            now = time.perf_counter()
            if ready < 0:
                raise BenchError(f"{inbound} disappeared")
            if t_first is None:
                if ready < n:
                    t_first = (before_start + now) / 2 if before_start else now
                else:
                    before_start = now
                    cpu_before = cpu_snapshot(proc.pid)
            if rss_every is not None and now >= next_rss:
                rss = proc.status_kb("VmRSS")
                samples.append((now - t0, n - ready, rss / 1024 if rss else None))
                next_rss = now + rss_every
            if ready < last_ready:
                last_ready, last_change = ready, now
                bar.update(task, completed=n - ready)
            if ready == 0:
                break
            proc.check_alive()
            if now - last_change > idle_timeout:
                raise BenchError(
                    f"{label}: {ready} of {n} messages still in {inbound} after {idle_timeout:.0f} s idle"
                )
            await asyncio.sleep(max(0.0, poll - (time.perf_counter() - tick)))
    assert t_first is not None
    # The tail: the last prefetched messages are in flight; wait for their copies.
    copies, before_end, t_last = -1, time.perf_counter(), time.perf_counter()
    cpu_after = cpu_snapshot(proc.pid)
    while True:
        tick = time.perf_counter()
        total = await broker.total(posts)
        now = time.perf_counter()
        if total != copies:
            copies, t_last = total, (before_end + now) / 2
            cpu_after = cpu_snapshot(proc.pid)
        before_end = now
        if exact_copies and copies >= n:
            break
        if not exact_copies and copies >= n and now - t_last >= settle:
            break
        proc.check_alive()
        if now - t_last > idle_timeout:
            raise BenchError(f"{label}: only {copies} copies in the post queues for {n} messages")
        await asyncio.sleep(max(0.0, poll - (time.perf_counter() - tick)))
    hwm = proc.status_kb("VmHWM")
    return Drained(
        messages=n,
        seconds=t_last - t_first,
        copies=copies,
        dead=max(0, await broker.depth(broker.names.dead)),
        peak_rss_mb=hwm / 1024 if hwm else None,
        samples=samples,
        cpu_ms={k: (cpu_after[k] - cpu_before[k]) * 1000 / n for k in cpu_after},
    )
