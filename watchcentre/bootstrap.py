"""The one place that reads settings and wires adapters to the service.

Every resource is opened in its own aiohttp `cleanup_ctx` (store, audit anchoring, broker connection
and channels, topology, batchers, consumer, deadline scheduler, live feed), so `run_app` opens them in
order and closes them in reverse, and a failed start closes exactly what was opened. Stopping: stop
consuming → finish in-flight work (up to the shutdown deadline, then cancel it: unacked, the broker
redelivers it) → flush the group commit → close the AMQP channels and connection → close the store.

While a dependency is out (a handler met a TransientError), an `OutageGuard` pauses the consumer,
probes the broker and the database with backoff, and resumes it when both answer.
"""

from __future__ import annotations

import asyncio
import gc
import re
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Generic, TypeVar, cast
from urllib.parse import urlparse

import structlog
from aio_pika.abc import AbstractChannel, AbstractQueue, AbstractRobustChannel, AbstractRobustConnection
from aiohttp import web
from yarl import URL

from watchcentre import __version__
from watchcentre.adapters import amqp
from watchcentre.adapters.audit_anchor import FileAnchor, load_key
from watchcentre.adapters.config_files import (
    Config,
    ConfigError,
    config_digest,
    file_digests,
    known_countries,
    load_config,
)
from watchcentre.adapters.gazetteer import PhoneFinder, PhoneTables, build_country_terms
from watchcentre.adapters.http_app import create_app
from watchcentre.adapters.http_base import HttpDeps
from watchcentre.adapters.http_cases import CASES
from watchcentre.adapters.http_console import CONSOLE, HUB_TYPES, ConsoleDeps, FeedHub
from watchcentre.adapters.http_screens import SUBMIT
from watchcentre.adapters.http_watch import WATCH
from watchcentre.adapters.identifier_checks import LibraryChecks
from watchcentre.adapters.metrics import MeteredPublisher, PrometheusMetrics
from watchcentre.adapters.phrase_index import AhoCorasickIndex
from watchcentre.adapters.sql import SqlStore
from watchcentre.adapters.vocabulary_cache import VocabularyCache, cache_key
from watchcentre.anchoring import AnchorWriter
from watchcentre.batching import Batcher
from watchcentre.cases import CaseDesk, DeadlineScheduler
from watchcentre.core.classify import Classifier, Vocabulary
from watchcentre.core.identifiers import IdentifierExtractor
from watchcentre.core.lifecycle import Case
from watchcentre.core.ports import (
    Clock,
    DeadLetters,
    Labels,
    Metrics,
    Publisher,
    ReferenceTaken,
    RetentionStore,
    Store,
    SystemClock,
    TransientError,
)
from watchcentre.core.records import AuditEvent, EventType, Outcome
from watchcentre.core.retention import PurgeCount, RetentionRules, purge_events, rule_text
from watchcentre.core.routing import CENTRE_INBOX, TRIAGE, post_key, unit_key
from watchcentre.core.rules import ConfigReload, Rules, RulesRef, competence_of
from watchcentre.core.senders import SenderPolicy
from watchcentre.ops import OpsGauges
from watchcentre.retention import DeadLetterPurge, RetentionScheduler
from watchcentre.service import (
    EnvelopeChecks,
    Intake,
    OperatorCommands,
    Outbox,
    Pipeline,
    ServiceSettings,
    Submissions,
)
from watchcentre.service.outbox import announcing
from watchcentre.service.watch import WatchCommands
from watchcentre.settings import Settings
from watchcentre.tasks import cancel_and_wait, where_tasks_wait

log = structlog.get_logger("watchcentre.bootstrap")

T = TypeVar("T")


def build_classifier(config: Config, cache_dir: Path | None = None) -> Classifier:
    """The classifier of a configuration: the one function that start, reload and what-if call. With
    `cache_dir`, its compiled vocabulary is read from there when it was compiled from the same config
    and code, else compiled and written there (a damaged or unwritable cache costs only the compile)."""
    cache = VocabularyCache(cache_dir) if cache_dir is not None else None
    key = cache_key(config.digest) if cache is not None else ""
    vocabulary, phones = None, None
    data = cache.load(key) if cache is not None else None
    if data is not None:
        try:
            vocabulary = Vocabulary.from_data(data["vocabulary"])
            phones = PhoneTables.from_data(data["phones"])
        except (KeyError, TypeError, ValueError, re.error) as exc:
            log.warning("vocabulary_cache_damaged", error=str(exc))
            vocabulary = None
    if vocabulary is None or phones is None:
        terms = build_country_terms(config.gazetteer)
        vocabulary = Vocabulary.compile(config.rules, terms, config.network.home, config.gazetteer.in_passing)
        phones = PhoneTables.build()
        if cache is not None:
            cache.save(key, {"vocabulary": vocabulary.to_data(), "phones": phones.to_data()})
    return Classifier(
        config.rules,
        (),
        home=config.network.home,
        extra_finders=[PhoneFinder(phones)],
        index_factory=AhoCorasickIndex,
        vocabulary=vocabulary,
    )


def build_rules(config: Config, classifier: Classifier, senders: SenderPolicy) -> Rules:
    """The immutable rules object the pipeline reads once per message (core/rules.py)."""
    return Rules(
        network=config.network,
        classifier=classifier,
        handling=config.handling,
        deadlines=config.deadlines,
        senders=senders,
        competence=competence_of(classifier),
        digest=config.digest,
        files=file_digests(config.directory),
    )


def recipient_keys(config: Config) -> list[str]:
    net = config.network
    return [*(post_key(p.id) for p in net.posts), *(unit_key(u.id) for u in net.units), CENTRE_INBOX, TRIAGE]


def sqlite_path(url: str) -> str:
    """sqlite:///./var/wc.db → ./var/wc.db ; sqlite:////var/lib/wc.db → /var/lib/wc.db"""
    return url.removeprefix("sqlite://").removeprefix("/") if url.startswith("sqlite:///") else url


async def open_store(settings: Settings) -> SqlStore:
    url = settings.database_url.get_secret_value()
    scheme = urlparse(url).scheme
    if scheme == "sqlite":
        return await SqlStore.sqlite(sqlite_path(url))
    if scheme in ("postgresql", "postgres"):
        return await SqlStore.postgres(url, schema=settings.database_schema)
    raise ValueError(
        f"WATCHCENTRE_DATABASE_URL: unsupported scheme '{scheme}' (use sqlite:/// or postgresql://)"
    )


def open_anchor(settings: Settings, *, create_key: bool) -> FileAnchor:
    """The audit anchor file and its key (AnchorKeyError when there is no usable key)."""
    secret = settings.audit_anchor_key.get_secret_value() if settings.audit_anchor_key else None
    key = load_key(secret, settings.audit_anchor_key_path, create=create_key)
    return FileAnchor(settings.audit_anchor_path, key)


async def connect_broker(settings: Settings, attempts: int = 30) -> AbstractRobustConnection:
    for attempt in range(1, attempts + 1):
        try:
            return await amqp.connect(settings.amqp_urls(), settings.instance_name)
        except TransientError as exc:
            log.warning(
                "broker_unreachable", url=settings.redacted_amqp_url(), attempt=attempt, error=str(exc)
            )
            if attempt == attempts:
                raise
            await asyncio.sleep(1.0)
    raise AssertionError("unreachable")


class OutageGuard:
    """Pauses intake while a dependency is out; probes with backoff; resumes when it answers.

    Good messages are then not handed back again and again while the database (or the broker) is
    away, which would burn their delivery count; at most `prefetch` deliveries wait, unacked."""

    def __init__(
        self,
        consumer: amqp.AmqpConsumer,
        probe: Callable[[], Awaitable[dict[str, bool]]],
        first_delay_s: float = 0.1,
        max_delay_s: float = 2.0,
        on_pause: Callable[[], None] | None = None,
    ) -> None:
        self._consumer = consumer
        self._on_pause = on_pause
        self._probe = probe
        self._first_s = first_delay_s
        self._max_s = max_delay_s
        self._task: asyncio.Task[None] | None = None
        self.pauses = 0

    @property
    def paused(self) -> bool:
        return self._task is not None and not self._task.done()

    def unavailable(self, exc: TransientError) -> None:
        if self.paused:
            return
        self.pauses += 1
        if self._on_pause is not None:
            self._on_pause()
        self._consumer.pause()
        self._task = asyncio.create_task(self._recover(str(exc)), name="intake-recovery")

    async def _recover(self, why: str) -> None:
        started = time.monotonic()
        delay_s = self._first_s
        while True:
            await asyncio.sleep(delay_s)
            try:
                checks = await self._probe()
            except Exception as exc:  # a probe must never end the recovery
                checks = {"probe": False}
                log.warning("probe_failed", error=repr(exc))
            if all(checks.values()):
                break
            log.warning("dependency_still_unavailable", checks=checks, retry_in_s=delay_s, cause=why)
            delay_s = min(delay_s * 2, self._max_s)
        log.info("dependency_back", after_s=round(time.monotonic() - started, 3))
        self._consumer.resume()

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)


class Late(Generic[T]):
    """A resource a cleanup_ctx opens at start-up, for what is wired before it: aiohttp takes the
    routes and their deps before it runs any cleanup_ctx. Any use before it is open fails loudly."""

    def __init__(self, what: str) -> None:
        self._what = what
        self._value: T | None = None

    def bind(self, value: T) -> T:
        self._value = value
        return value

    @property
    def value(self) -> T:
        if self._value is None:
            raise RuntimeError(f"{self._what} is not open (yet)")
        return self._value

    def __getattr__(self, name: str) -> Any:
        return getattr(self.value, name)


@dataclass(frozen=True)
class Service:
    """The service layer, wired: what the consumer, the console and the case routes call."""

    intake: Intake
    pipeline: Pipeline
    operator: OperatorCommands
    desk: CaseDesk
    outbox: Outbox
    seen: Batcher[tuple[str, str], bool]
    opener: Batcher[Case, tuple[Case, bool] | ReferenceTaken]
    committer: Batcher[Outcome, list[AuditEvent] | None]
    rules: RulesRef
    submissions: Submissions
    watch: WatchCommands

    async def start(self) -> None:
        for batcher in (self.seen, self.opener, self.committer):
            batcher.start()

    async def stop(self) -> None:
        """Flush what is pending: cases first, then the records that name them."""
        await self.opener.stop()
        await self.committer.stop()
        await self.seen.stop()


def build_service(
    *,
    config: Config,
    classifier: Classifier,
    store: Store,
    publisher: Publisher,
    metrics: Metrics,
    clock: Clock,
    settings: ServiceSettings,
    dead_letters: DeadLetters | None = None,
    on_unavailable: Callable[[TransientError], None] | None = None,
    max_batch: int = 500,
    labels: Labels | None = None,
) -> Service:
    """The one place the service layer is built (the batchers not started: `Service.start`)."""
    # the store is looked up at each flush: it may be a `Late` one, opened after this is built
    seen: Batcher[tuple[str, str], bool] = Batcher(
        lambda keys: store.seen_many(keys), max_batch=max_batch, name="seen"
    )
    opener: Batcher[Case, tuple[Case, bool] | ReferenceTaken] = Batcher(
        lambda cases: store.open_cases(cases), max_batch=max_batch, name="open-cases"
    )
    committer: Batcher[Outcome, list[AuditEvent] | None] = Batcher(
        announcing(lambda outcomes: store.save_batch(outcomes), publisher),
        max_batch=max_batch,
        name="commit",
        on_flush=metrics.committed,
    )
    rules = RulesRef(build_rules(config, classifier, settings.senders))
    desk = CaseDesk(
        store=store,
        publisher=publisher,
        clock=clock,
        network=config.network,
        rules=config.deadlines,
        opener=opener.submit,
        handling=config.handling,
        current=rules,
    )
    outbox = Outbox(
        store=store,
        publisher=publisher,
        commit=committer.submit,
        metrics=metrics,
        clock=clock,
        extract=IdentifierExtractor(LibraryChecks()).extract,
    )
    checks = EnvelopeChecks(rules=rules, known_countries=known_countries())
    pipeline = Pipeline(
        rules=rules,
        checks=checks,
        store=store,
        desk=desk,
        outbox=outbox,
        seen=seen.submit,
        metrics=metrics,
        clock=clock,
    )
    intake = Intake(
        pipeline=pipeline, outbox=outbox, metrics=metrics, settings=settings, on_unavailable=on_unavailable
    )
    operator = OperatorCommands(
        rules=rules,
        checks=checks,
        store=store,
        outbox=outbox,
        dead_letters=dead_letters,
        labels=labels,
    )
    submissions = Submissions(pipeline=pipeline, checks=checks, store=store, clock=clock)
    watch = WatchCommands(store=store, outbox=outbox, clock=clock, submissions=submissions, operator=operator)
    return Service(
        intake, pipeline, operator, desk, outbox, seen, opener, committer, rules, submissions, watch
    )


class Reloader:
    """Reads config/ again and puts it in force if valid: on SIGHUP, or an operator's request over HTTP.

    The files are read, validated and the classifier compiled off the event loop, while messages
    flow on the rules in force; queues for new posts or units are declared; then the change is
    recorded (`config_changed`: digests, who asked) and the new rules swapped in whole, between two
    messages. An invalid configuration is refused with every problem, recorded (`config_rejected`)
    and logged, and the running one kept. One reload at a time."""

    def __init__(
        self,
        *,
        settings: Settings,
        service: Service,
        store: Store,
        declare: Callable[[Config], Awaitable[None]],
        on_changed: Callable[[Rules], None],
        on_refused: Callable[[], None] = lambda: None,
    ) -> None:
        self._on_refused = on_refused
        self._settings = settings
        self._service = service
        self._store = store
        self._declare = declare
        self._on_changed = on_changed
        self._lock = asyncio.Lock()

    async def reload(self, by: str) -> ConfigReload:
        async with self._lock:
            return await self._reload(by)

    async def _reload(self, by: str) -> ConfigReload:
        ref = self._service.rules
        current = ref.current
        directory = self._settings.config_dir
        problems: list[str] = []
        if await asyncio.to_thread(_digest_or_none, directory) == current.digest:  # nothing to compile
            log.info("config_unchanged", digest=current.digest, by=by)
            return ConfigReload(outcome="unchanged", digest=current.digest, files=dict(current.files), by=by)
        try:
            config, classifier = await asyncio.to_thread(_build, directory)
        except ConfigError as exc:
            problems = list(exc.problems)
        except (ValueError, OSError) as exc:
            problems = [str(exc)]
        if not problems and config.digest == current.digest:
            log.info("config_unchanged", digest=current.digest, by=by)
            return ConfigReload(outcome="unchanged", digest=current.digest, files=dict(current.files), by=by)
        if not problems:
            try:
                await self._declare(config)  # the queues of new posts and units, before any copy goes there
            except (TransientError, RuntimeError) as exc:
                problems = [f"broker: the queues of the new network could not be declared ({exc})"]
        if problems:
            files = await asyncio.to_thread(_digests_or_none, directory)
            await self._record(
                EventType.CONFIG_REJECTED,
                by,
                {"problems": problems, "files": files, "in_force": current.digest},
            )
            self._on_refused()
            log.error("config_rejected", by=by, problems=problems, in_force=current.digest)
            return ConfigReload(
                outcome="rejected", digest=current.digest, files=files, problems=problems, by=by
            )
        rules = build_rules(config, classifier, sender_policy(self._settings, config))
        await self._record(
            EventType.CONFIG_CHANGED,
            by,
            {"digest": rules.digest, "previous": current.digest, "files": dict(rules.files)},
        )
        ref.swap(rules)  # the next message is decided with these
        self._on_changed(rules)
        log.info(
            "config_changed", by=by, digest=rules.digest, previous=current.digest, files=dict(rules.files)
        )
        return ConfigReload(
            outcome="changed", digest=rules.digest, previous=current.digest, files=dict(rules.files), by=by
        )

    async def _record(self, kind: EventType, by: str, details: dict[str, Any]) -> None:
        details = {**details, "instance": self._settings.instance_name}
        event = AuditEvent(at=SystemClock().now(), type=kind, actor=by, details=details)
        committed = await self._store.append_audit([event])
        await self._service.outbox.announce(committed)


def _build(directory: str | Path) -> tuple[Config, Classifier]:
    config = load_config(directory)
    return config, build_classifier(config)


def _digest_or_none(directory: str | Path) -> str | None:
    try:
        return config_digest(Path(directory))
    except OSError:
        return None


def _digests_or_none(directory: str | Path) -> dict[str, str]:
    try:
        return file_digests(Path(directory))
    except OSError:
        return {}


@dataclass
class Runtime:
    """What a running instance holds; tests reach the service through it."""

    settings: Settings
    config: Config
    store: Store
    connection: AbstractRobustConnection
    service: Service
    consumer: amqp.AmqpConsumer
    names: amqp.Names
    guard: OutageGuard
    scheduler: DeadlineScheduler
    reloader: Reloader | None = None


@dataclass
class _Broker:
    """The connection and its channels, opened at start-up (`_broker`)."""

    connection: Late[AbstractRobustConnection]
    topology: Late[AbstractRobustChannel]
    consume: Late[AbstractRobustChannel]
    inbound: Late[AbstractQueue]


RUNTIME = web.AppKey("runtime", Runtime)


async def build_app(settings: Settings) -> web.Application:
    """The whole instance, nothing opened yet: aiohttp opens each resource in its cleanup_ctx, in
    order, and closes them in reverse, so a failed start closes exactly what was opened."""
    config = load_config(settings.config_dir)
    classifier = build_classifier(config, Path(settings.cache_dir) if settings.cache_dir else None)
    metrics = PrometheusMetrics()
    metrics.running(__version__, config.digest)
    anchor = open_anchor(settings, create_key=True)
    names = amqp.Names(settings.amqp_prefix)
    late_store: Late[Store] = Late("the store")
    broker = _Broker(
        Late("the AMQP connection"),
        Late("the topology channel"),
        Late("the consuming channel"),
        Late("the intake queue"),
    )
    store = cast(Store, late_store)
    connection = cast(AbstractRobustConnection, broker.connection)
    consume = cast(AbstractChannel, broker.consume)
    consumer = amqp.AmqpConsumer(consume, cast(AbstractQueue, broker.inbound), settings.prefetch)

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
            and consumer.consuming
        )
        return {"broker": broker_ok, "database": db_ok}

    guard = OutageGuard(consumer, readiness, on_pause=metrics.intake_paused)
    dead_letters = amqp.AmqpDeadLetters(connection, names)
    service = build_service(
        config=config,
        classifier=classifier,
        store=store,
        publisher=MeteredPublisher(amqp.AmqpPublisher(connection, names), metrics),
        metrics=metrics,
        clock=SystemClock(),
        settings=ServiceSettings(
            max_attempts=settings.max_attempts,
            handler_timeout_s=settings.handler_timeout_s,
            delivery_limit=amqp.DELIVERY_LIMIT,
            senders=sender_policy(settings, config),
        ),
        dead_letters=dead_letters,
        on_unavailable=guard.unavailable,
        labels=cast(Labels, late_store),
    )
    scheduler = DeadlineScheduler(service.desk, SystemClock(), settings.deadline_tick_s)

    async def declare(new: Config) -> None:
        await amqp.declare_topology(broker.topology.value, names, recipient_keys(new))

    reloader = Reloader(
        settings=settings,
        service=service,
        store=store,
        declare=declare,
        on_changed=lambda rules: metrics.running(__version__, rules.digest),
        on_refused=metrics.config_reload_refused,
    )
    retention = (
        None
        if config.retention is None
        else RetentionScheduler(
            cast(RetentionStore, late_store),
            config.retention,
            SystemClock(),
            dead_letter_purge(connection, names, store),
        )
    )
    runtime = Runtime(
        settings, config, store, connection, service, consumer, names, guard, scheduler, reloader
    )
    rules = service.rules
    anchoring = AnchorWriter(store, anchor, SystemClock(), settings.audit_anchor_interval_s, events=metrics)
    watched = {"inbound": names.inbound, "dead": names.dead}
    watched |= {"centre_inbox": names.queue_for(CENTRE_INBOX), "centre_triage": names.queue_for(TRIAGE)}
    gauges = OpsGauges(
        store=store,
        queue_depths=lambda: amqp.queue_depths(connection, watched),
        last_sent_at=lambda: consumer.last_sent_at,
        anchored_at=lambda: anchoring.confirmed_at,
        readiness=readiness,
        sink=metrics,
        clock=SystemClock(),
        ttl_s=settings.metrics_cache_s,
    )

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
            refresh_metrics=gauges.refresh,
            rules=lambda: (rules.current.network, rules.current.digest),
            crime_labels={code: r.label for code, r in config.rules.codes.items()},
        )
    )
    app[RUNTIME] = runtime
    app[CASES] = service.desk
    app[SUBMIT] = service.submissions
    app[WATCH] = service.watch
    hub = FeedHub(store)
    app[CONSOLE] = ConsoleDeps(
        actions=service.operator,
        hub=hub,
        classify=lambda *args: rules.current.classifier.classify(*args),
        dead_letters=dead_letters,
        reload=reloader.reload,
    )
    for ctx in (
        _store(settings, late_store),
        _anchoring(anchoring),
        _broker(settings, broker, on_reconnect=metrics.reconnected),
        _topology(config, names, broker),
        _batching(service),
        _consuming(runtime),
        _scheduling(scheduler),
        _retention(retention),
        _live_feed(hub, amqp.EventFeed(connection, names, hub.dispatch, HUB_TYPES, lambda: hub.listening)),
        _reloading(reloader),
        _task_dump(consumer),
    ):
        app.cleanup_ctx.append(ctx)
    return app


def sender_policy(settings: Settings, config: Config) -> SenderPolicy:
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
        service_user=URL(settings.amqp_urls()[0]).user,  # as aio-pika reads it (one user for all)
        prefix=settings.amqp_prefix,
    )


def settle_heap() -> None:
    """Move the start-up heap (config, the classifier's vocabulary: objects that live as long as the
    process) out of the garbage collector's sight, so full collections no longer walk it and pause
    the event loop (measurements: docs/performance.md). Later allocations are collected as usual."""
    gc.collect()
    gc.freeze()


Ctx = Callable[[web.Application], AsyncIterator[None]]


def _store(settings: Settings, store: Late[Store]) -> Ctx:
    async def ctx(_: web.Application) -> AsyncIterator[None]:
        opened = store.bind(await open_store(settings))
        yield
        await opened.close()
        log.info("closed", what="store")

    return ctx


def _broker(settings: Settings, broker: _Broker, on_reconnect: Callable[[], None]) -> Ctx:
    """The connection and its robust channels: the topology's (what is declared on it is declared
    again after a reconnection) and the consumer's (its intake queue is declared on it, so a
    reconnection restores the consumer), both watched. The publisher opens its own."""

    async def ctx(_: web.Application) -> AsyncIterator[None]:
        connection = broker.connection.bind(await connect_broker(settings))
        connection.reconnect_callbacks.add(lambda *_: on_reconnect())
        try:
            topology = broker.topology.bind(await connection.channel(publisher_confirms=False))
            consume = broker.consume.bind(await connection.channel(publisher_confirms=False))
            watch = amqp.ChannelWatch(connection, {"topology": topology, "consume": consume})
            watch.start()
            try:
                yield
            finally:
                await watch.stop()
        finally:
            await connection.close()  # its channels with it
            log.info("closed", what="amqp")

    return ctx


QUEUE_TYPE_RECHECK_S = 10.0


def _topology(config: Config, names: amqp.Names, broker: _Broker) -> Ctx:
    """Queues of another type than the service declares (classic ones from an older version) are
    not consumed from or published to: the instance waits, saying which and what to run, and starts
    once they are migrated (`watchcentre broker migrate-queues`), rather than exit and be restarted
    in a loop by its supervisor."""

    async def ctx(_: web.Application) -> AsyncIterator[None]:
        while True:
            try:
                await amqp.declare_topology(broker.topology.value, names, recipient_keys(config))
                break
            except amqp.QueueTypeMismatch as exc:
                log.error(
                    "queues_not_quorum",
                    count=len(exc.queues),
                    queues=exc.queues[:20],
                    fix="watchcentre broker migrate-queues",
                    retry_in_s=QUEUE_TYPE_RECHECK_S,
                )
                await asyncio.sleep(QUEUE_TYPE_RECHECK_S)
        broker.inbound.bind(await amqp.declare_inbound(broker.consume.value, names))
        yield

    return ctx


def _batching(service: Service) -> Ctx:
    """The group commit and the batched look-ups: stopped (flushed) after the consumer."""

    async def ctx(_: web.Application) -> AsyncIterator[None]:
        await service.start()
        yield
        await service.stop()

    return ctx


def dead_letter_purge(
    connection: AbstractRobustConnection, names: amqp.Names, store: Store
) -> DeadLetterPurge:
    """Retention of `P.dead`: each letter past the limit is recorded `purged`, then dropped."""

    async def purge(
        now: datetime, at: datetime, rules: RetentionRules, dry_run: bool, actor: str
    ) -> PurgeCount:
        async def record(letters: list[amqp.DeadLetter]) -> None:
            count = PurgeCount(erased=len(letters), ids=sorted(d.id for d in letters))
            rule = rule_text(rules, "dead_letters")
            await store.append_audit(purge_events(at, now, actor, "dead_letters", rule, count))

        cutoff = now - rules.dead_letters.delta
        letters, undated = await amqp.drop_dead_before(connection, names, cutoff, None if dry_run else record)
        return PurgeCount(erased=len(letters), review_due=undated, ids=sorted(d.id for d in letters))

    return purge


def _retention(scheduler: RetentionScheduler | None) -> Ctx:
    """The retention passes (none without config/retention.yaml): started last, stopped first."""

    async def ctx(_: web.Application) -> AsyncIterator[None]:
        if scheduler is None:
            log.warning("retention_off", reason="no config/retention.yaml: nothing is ever erased")
        else:
            scheduler.start()
        yield
        if scheduler is not None:
            await scheduler.stop()

    return ctx


def _scheduling(scheduler: DeadlineScheduler) -> Ctx:
    """The deadline scheduler: started after the consumer, stopped before it (cleanup runs in reverse)."""

    async def ctx(_: web.Application) -> AsyncIterator[None]:
        scheduler.start()
        yield
        await scheduler.stop()

    return ctx


def _anchoring(writer: AnchorWriter) -> Ctx:
    """Audit checkpoints: stopped after the consumer and the HTTP site (no more writers), before the
    store closes, so the last one anchors the final head."""

    async def ctx(_: web.Application) -> AsyncIterator[None]:
        await writer.start()
        yield
        await writer.stop()

    return ctx


def _live_feed(hub: FeedHub, events: amqp.EventFeed) -> Ctx:
    """The console's live feed: this instance's queue on P.events, fanned out to the open pages."""

    async def ctx(_: web.Application) -> AsyncIterator[None]:
        hub.start()
        await events.start()
        yield
        await events.stop()
        await hub.stop()

    return ctx


def _reloading(reloader: Reloader) -> Ctx:
    """SIGHUP reloads config/ (the convention of nginx, Prometheus, Alertmanager); one at a time."""

    async def ctx(_: web.Application) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        pending: set[asyncio.Task[ConfigReload]] = set()

        def on_hup() -> None:
            task = asyncio.create_task(reloader.reload("signal:SIGHUP"), name="config-reload")
            pending.add(task)
            task.add_done_callback(pending.discard)

        loop.add_signal_handler(signal.SIGHUP, on_hup)
        yield
        loop.remove_signal_handler(signal.SIGHUP)
        for task in list(pending):
            await cancel_and_wait(task)

    return ctx


def _task_dump(consumer: amqp.AmqpConsumer) -> Ctx:
    """SIGUSR1 logs where every task waits (`task_waits`, one line each), then the consumer's state
    (`consumer_state`): an instance gone silent says what it waits for, without a restart that would
    lose the answer."""

    async def ctx(_: web.Application) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()

        def dump() -> None:
            for name, chain in sorted(where_tasks_wait()):
                log.warning("task_waits", task=name, awaits=chain)
            log.warning("consumer_state", **consumer.state())  # last: the dump is whole once it is there

        loop.add_signal_handler(signal.SIGUSR1, dump)
        yield
        loop.remove_signal_handler(signal.SIGUSR1)

    return ctx


def _consuming(rt: Runtime) -> Ctx:
    async def ctx(_: web.Application) -> AsyncIterator[None]:
        settle_heap()
        await rt.consumer.start(rt.service.intake.on_delivery)
        log.info(
            "started",
            prefix=rt.names.prefix,
            posts=len(rt.config.network.posts),
            units=len(rt.config.network.units),
            amqp=rt.settings.redacted_amqp_url(),
            database=rt.settings.redacted_database_url(),
        )
        yield
        unfinished = await rt.consumer.stop(rt.settings.shutdown_deadline_s)  # then cancelled
        await rt.guard.stop()
        log.info("stopped_consuming", unfinished=unfinished)

    return ctx
