"""The one place that reads settings and wires adapters to the service.

Every resource is an aiohttp `cleanup_ctx`, so `run_app` starts them in order and tears them down
in reverse: stop consuming → finish in-flight work (with a deadline) → flush the group commit →
close the AMQP channels and connection → close the store.

While a dependency is out (a handler met a TransientError), an `Intake` guard pauses the consumer,
probes the broker and the database with backoff, and resumes it when both answer.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from urllib.parse import urlparse

import structlog
from aio_pika.abc import AbstractRobustConnection
from aiohttp import web

from watchcentre import __version__
from watchcentre.adapters import amqp
from watchcentre.adapters.audit_anchor import FileAnchor, load_key
from watchcentre.adapters.config_files import Config, known_countries, load_config
from watchcentre.adapters.gazetteer import PhoneFinder, build_country_terms
from watchcentre.adapters.http import HttpDeps, create_app
from watchcentre.adapters.http_cases import CASES
from watchcentre.adapters.http_console import CONSOLE, FEED_TYPES, ConsoleDeps, FeedHub
from watchcentre.adapters.metrics import PrometheusMetrics
from watchcentre.adapters.phrase_index import AhoCorasickIndex
from watchcentre.adapters.sql import SqlStore
from watchcentre.anchoring import AnchorWriter
from watchcentre.cases import DeadlineScheduler
from watchcentre.core.classify import Classifier
from watchcentre.core.ports import Store, SystemClock, TransientError
from watchcentre.core.routing import CENTRE_INBOX, TRIAGE, post_key, unit_key
from watchcentre.core.senders import SenderPolicy
from watchcentre.service import RoutingService, ServiceSettings
from watchcentre.settings import Settings
from watchcentre.tasks import cancel_and_wait

log = structlog.get_logger("watchcentre.bootstrap")


def build_classifier(config: Config) -> Classifier:
    return Classifier(
        config.rules,
        build_country_terms(config.gazetteer),
        home=config.network.home,
        extra_finders=[PhoneFinder()],
        index_factory=AhoCorasickIndex,
    )


def recipient_keys(config: Config) -> list[str]:
    net = config.network
    return [*(post_key(p.id) for p in net.posts), *(unit_key(u.id) for u in net.units), CENTRE_INBOX, TRIAGE]


def sqlite_path(url: str) -> str:
    """sqlite:///./var/wc.db → ./var/wc.db ; sqlite:////var/lib/wc.db → /var/lib/wc.db"""
    return url.removeprefix("sqlite://").removeprefix("/") if url.startswith("sqlite:///") else url


async def open_store(settings: Settings) -> Store:
    url = settings.database_url.get_secret_value()
    scheme = urlparse(url).scheme
    if scheme == "sqlite":
        return await SqlStore.sqlite(sqlite_path(url))
    if scheme in ("postgresql", "postgres"):
        return await SqlStore.postgres(url, schema=settings.database_schema)
    raise ValueError(f"WATCHCENTRE_DATABASE_URL: unsupported scheme '{scheme}' (use sqlite:/// or postgresql://)")


def open_anchor(settings: Settings, *, create_key: bool) -> FileAnchor:
    """The audit anchor file and its key (AnchorKeyError when there is no usable key)."""
    secret = settings.audit_anchor_key.get_secret_value() if settings.audit_anchor_key else None
    key = load_key(secret, settings.audit_anchor_key_path, create=create_key)
    return FileAnchor(settings.audit_anchor_path, key)


async def connect_broker(settings: Settings, attempts: int = 30) -> AbstractRobustConnection:
    for attempt in range(1, attempts + 1):
        try:
            return await amqp.connect(settings.amqp_url.get_secret_value(), settings.instance_name)
        except TransientError as exc:
            log.warning("broker_unreachable", url=settings.redacted_amqp_url(), attempt=attempt, error=str(exc))
            if attempt == attempts:
                raise
            await asyncio.sleep(1.0)
    raise AssertionError("unreachable")


class Intake:
    """Pauses intake while a dependency is out; probes with backoff; resumes when it answers.

    Good messages are then not handed back again and again while the database (or the broker) is
    away, which would burn their delivery count; at most `prefetch` deliveries wait, unacked."""

    def __init__(
        self,
        consumer: amqp.AmqpConsumer,
        probe: Callable[[], Awaitable[dict[str, bool]]],
        first_delay: float = 0.1,
        max_delay: float = 2.0,
    ) -> None:
        self._consumer = consumer
        self._probe = probe
        self._first = first_delay
        self._max = max_delay
        self._task: asyncio.Task[None] | None = None
        self.pauses = 0

    @property
    def paused(self) -> bool:
        return self._task is not None and not self._task.done()

    def unavailable(self, exc: TransientError) -> None:
        if self.paused:
            return
        self.pauses += 1
        self._consumer.pause()
        self._task = asyncio.create_task(self._recover(str(exc)), name="intake-recovery")

    async def _recover(self, why: str) -> None:
        started = time.monotonic()
        delay = self._first
        while True:
            await asyncio.sleep(delay)
            try:
                checks = await self._probe()
            except Exception as exc:  # a probe must never end the recovery
                checks = {"probe": False}
                log.warning("probe_failed", error=repr(exc))
            if all(checks.values()):
                break
            log.warning("dependency_still_unavailable", checks=checks, retry_in=delay, cause=why)
            delay = min(delay * 2, self._max)
        log.info("dependency_back", after=round(time.monotonic() - started, 3))
        self._consumer.resume()

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)


@dataclass
class Runtime:
    """What a running instance holds; tests reach the service through it."""

    settings: Settings
    config: Config
    store: Store
    connection: AbstractRobustConnection
    service: RoutingService
    consumer: amqp.AmqpConsumer
    names: amqp.Names
    intake: Intake | None = None
    scheduler: DeadlineScheduler | None = None


RUNTIME = web.AppKey("runtime", Runtime)


async def build_app(settings: Settings) -> web.Application:
    config = load_config(settings.config_dir)
    classifier = build_classifier(config)
    metrics = PrometheusMetrics()
    anchor = open_anchor(settings, create_key=True)
    store = await open_store(settings)
    try:
        connection = await connect_broker(settings)
    except BaseException:
        await store.close()
        raise
    names = amqp.Names(settings.amqp_prefix)
    confirm = await connection.channel(publisher_confirms=True, on_return_raises=True)
    plain = await connection.channel(publisher_confirms=False)
    consume = await connection.channel(publisher_confirms=False)
    await amqp.declare_topology(confirm, names, recipient_keys(config))
    inbound = await amqp.declare_inbound(consume, names)  # on this channel: its consumer is restored
    service = RoutingService(
        network=config.network,
        classifier=classifier,
        known_countries=known_countries(),
        store=store,
        publisher=amqp.AmqpPublisher(confirm, plain, names),
        metrics=metrics,
        clock=SystemClock(),
        settings=ServiceSettings(
            max_attempts=settings.max_attempts, senders=sender_policy(settings, config, connection)
        ),
        handling=config.handling,
        deadlines=config.deadlines,
    )
    consumer = amqp.AmqpConsumer(consume, inbound, settings.prefetch)
    dead_letters = amqp.AmqpDeadLetters(connection, names)
    service.dead_letters = dead_letters

    async def readiness() -> dict[str, bool]:
        db_ok = True
        try:
            await store.ping()
        except TransientError:
            db_ok = False
        broker_ok = (
            not connection.is_closed
            and connection.connected.is_set()
            and not consume.is_closed
            and not confirm.is_closed
            and consumer.consuming
        )
        return {"broker": broker_ok, "database": db_ok}

    intake = Intake(consumer, readiness)
    service.on_unavailable = intake.unavailable
    scheduler = DeadlineScheduler(service.cases, service.clock, settings.deadline_tick)
    runtime = Runtime(settings, config, store, connection, service, consumer, names, intake, scheduler)

    app = create_app(
        HttpDeps(
            store=store,
            network=config.network,
            readiness=readiness,
            render_metrics=metrics.render,
            version=__version__,
            metrics_token=settings.metrics_token.get_secret_value() if settings.metrics_token else None,
            cookie_secure=settings.cookie_secure,
            audit_anchor=anchor,
        )
    )
    app[RUNTIME] = runtime
    app[CASES] = service.cases
    hub = FeedHub(store)
    app[CONSOLE] = ConsoleDeps(actions=service, hub=hub, classify=classifier.classify, dead_letters=dead_letters)
    app.cleanup_ctx.append(_closing("store", store.close))
    anchoring = AnchorWriter(store, anchor, SystemClock(), settings.audit_anchor_interval_s)
    app.cleanup_ctx.append(_anchoring(anchoring))
    app.cleanup_ctx.append(_closing("amqp", connection.close))
    app.cleanup_ctx.append(_consuming(runtime))
    app.cleanup_ctx.append(_scheduling(scheduler))
    app.cleanup_ctx.append(_live_feed(hub, amqp.EventFeed(connection, names, hub.dispatch, FEED_TYPES)))
    return app


def sender_policy(settings: Settings, config: Config, connection: AbstractRobustConnection) -> SenderPolicy:
    development = settings.broker_trust == "development"
    if development:
        log.warning(
            "BROKER_TRUST_DEVELOPMENT",
            warning="every broker user, guest included, may send as any post, unit or the centre: never in "
            "production (unset WATCHCENTRE_BROKER_TRUST, provision users: `watchcentre broker provision`)",
        )
    return SenderPolicy(
        users=config.broker,
        development=development,
        service_user=amqp.user_of(connection),
        prefix=settings.amqp_prefix,
    )


def settle_heap() -> None:
    """Move the start-up heap (config, the classifier's vocabulary: ~85,000 objects that live as long
    as the process) out of the garbage collector's sight: a full collection over it pauses the event
    loop for ~75 ms each time one runs. `gc.freeze` keeps those objects out of every later
    collection; what the service allocates afterwards is collected as usual. (At 100 msg/s the
    latency's p99 did not move beyond noise: full collections are rare at that pace.)"""
    gc.collect()
    gc.freeze()


def _scheduling(scheduler: DeadlineScheduler) -> Callable[[web.Application], AsyncIterator[None]]:
    """The deadline scheduler: started after the consumer, stopped before it (cleanup runs in reverse)."""

    async def ctx(_: web.Application) -> AsyncIterator[None]:
        scheduler.start()
        yield
        await scheduler.stop()

    return ctx


def _anchoring(writer: AnchorWriter) -> Callable[[web.Application], AsyncIterator[None]]:
    """Audit checkpoints: stopped after the consumer and the HTTP site (no more writers), before the
    store closes, so the last one anchors the final head."""

    async def ctx(_: web.Application) -> AsyncIterator[None]:
        await writer.start()
        yield
        await writer.stop()

    return ctx


def _live_feed(hub: FeedHub, events: amqp.EventFeed) -> Callable[[web.Application], AsyncIterator[None]]:
    """The console's live feed: this instance's queue on P.events, fanned out to the open pages."""

    async def ctx(_: web.Application) -> AsyncIterator[None]:
        hub.start()
        await events.start()
        yield
        await events.stop()
        await hub.stop()

    return ctx


def _closing(
    what: str, close: Callable[[], object]
) -> Callable[[web.Application], AbstractAsyncContextManager[None]]:
    async def ctx(_: web.Application) -> AsyncIterator[None]:
        yield
        result = close()
        if asyncio.iscoroutine(result):
            await result
        log.info("closed", what=what)

    return ctx  # type: ignore[return-value]


def _consuming(rt: Runtime) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(_: web.Application) -> AsyncIterator[None]:
        await rt.service.start()
        settle_heap()
        await rt.consumer.start(rt.service.on_delivery)
        log.info(
            "started",
            prefix=rt.names.prefix,
            posts=len(rt.config.network.posts),
            units=len(rt.config.network.units),
            amqp=rt.settings.redacted_amqp_url(),
            database=rt.settings.redacted_database_url(),
        )
        yield
        unfinished = await rt.consumer.stop(rt.settings.shutdown_deadline)
        if rt.intake is not None:
            await rt.intake.stop()
        await rt.service.stop()
        log.info("stopped_consuming", unfinished=unfinished)

    return ctx
