"""The operator console: the page at `/`, its assets, and the API it uses (operators only).

* `GET /` and `GET /console/{asset}`: a static page and plain ES modules shipped in the package
  (`watchcentre/web/`); no data in them, so they are public; every call they make is authenticated.
* `GET /api/console/feed` (WebSocket): the live feed. Each instance subscribes to `P.events` with its
  own queue (bootstrap starts an `EventFeed` that calls `FeedHub.dispatch`), so an operator sees what
  every instance does. On connect the page gets a snapshot (recent messages and the audit seq they
  reflect), or with `?after=<seq>` the feed events recorded after that seq, read back from the
  audit store (a reconnect loses nothing); then live events. Items carry their audit `seq`: the
  page deduplicates by it.
* triage, manual (re-)routing, message detail with highlights, dead letters, shift log, counts.

Wiring: the route table (`http_routes`) lists these routes; bootstrap puts a `ConsoleDeps` under
`CONSOLE`. Without it (a bare `create_app`), the console API answers 503.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from importlib import resources
from typing import Any, Protocol

import orjson
import structlog
from aiohttp import WSMsgType, web

from watchcentre.adapters.http_base import DEPS, ApiError, parse_time, principal_of, same_origin
from watchcentre.adapters.http_models import (
    SUMMARY_FIELDS,
    ConsoleMessage,
    ConsoleMessageQuery,
    ConsolePage,
    Corrections,
    DeadLetterList,
    DeadLetterQuery,
    FeedQuery,
    Glance,
    GlanceQuery,
    Highlights,
    NoteList,
    NotesQuery,
    Recipient,
    RecipientList,
    ReinjectRequest,
    ReinjectResult,
    RouteRequest,
    RouteResult,
    RuleCount,
    Segment,
    TriageItem,
    WatchBody,
    WatchesQuery,
    WatchList,
)
from watchcentre.adapters.identifier_checks import LibraryChecks
from watchcentre.core.access import Principal, Role, sees_event
from watchcentre.core.classify import Classification
from watchcentre.core.envelope import Routing
from watchcentre.core.errors import Invalid, NotFound
from watchcentre.core.identifiers import IdKind, normalise
from watchcentre.core.lifecycle import CASE_EVENT_TYPES, DEADLINE_WARNING, OVERDUE
from watchcentre.core.manual import Note, NoteInput, allowed_recipients, clean_note
from watchcentre.core.ports import DeadLetters, Store
from watchcentre.core.records import (
    AuditEvent,
    DeadLetterView,
    EventType,
    MessageQuery,
    Status,
    StoredMessage,
)
from watchcentre.core.rules import ConfigReload
from watchcentre.core.taxonomy import CRIME_CODES
from watchcentre.core.watches import Watch, WatchInput, phrase_value
from watchcentre.security import record_consultation, record_list, record_read
from watchcentre.tasks import cancel_and_wait

log = structlog.get_logger("watchcentre.console")

FEED_TYPES = frozenset(
    {
        EventType.ROUTED,
        EventType.TRIAGED,
        EventType.REJECTED,
        EventType.REPLAYED,
        EventType.NOTE_ADDED,
        EventType.WATCH_HIT,
        OVERDUE,
        DEADLINE_WARNING,
        EventType.ALERT_ACKNOWLEDGED,
        EventType.INBOX_MARKED,
        *CASE_EVENT_TYPES,
    }
)
"""What the feed carries: the final state of each message (one event per message), operator acts,
the deadline alerts (announced on whatever view the operator is on) and case changes (the board)."""
PARTY_TYPES = frozenset({EventType.ROUTED, EventType.TRIAGED, *CASE_EVENT_TYPES, DEADLINE_WARNING, OVERDUE})
"""What a post's or a unit's feed carries: its messages and its cases changing, each event let through
by the API's need-to-know rule (core/access.py `sees_event`)."""
HUB_TYPES = FEED_TYPES | PARTY_TYPES
"""The event types an instance's feed subscribes to (`P.events` routing keys)."""
_WITH_MESSAGE = frozenset({EventType.ROUTED, EventType.TRIAGED, EventType.REJECTED, EventType.WATCH_HIT})
_NOT_TIMELINE = frozenset({EventType.ACCESSED, EventType.LISTED})
FEED_AUDIT_S = 0.25
"""The live feed gathers this long before recording what it shows (one audit record per gathering,
per page) and sending it: a page watching 150 messages a second costs 4 records a second, not 150."""
SNAPSHOT_SIZE = 300
BACKFILL_PAGE = 1000
BACKFILL_MAX = 20_000
"""Audit records read back on one reconnect at most; past that the page gets a fresh snapshot."""
CLIENT_BACKLOG = 2000
"""Frames waiting for one slow page; past that it is disconnected, and back-fills on reconnect."""


class ConsoleActions(Protocol):
    """What the console asks of the service layer (watchcentre.service.OperatorCommands)."""

    async def route_manually(
        self,
        *,
        sender: str,
        message_id: str,
        recipients: Sequence[str],
        reason: str,
        actor: str,
        expected_revision: int | None = None,
        override_marking: bool = False,
        override_reason: str | None = None,
        crime_types: Sequence[str] | None = None,
        countries: Sequence[str] | None = None,
    ) -> tuple[Routing, list[AuditEvent]]: ...

    async def most_corrected(self, limit: int = 10) -> tuple[int, list[tuple[str, int]]]: ...

    async def reinject_dead(
        self, *, letter_id: str, corrected: bytes | None, actor: str, note: str
    ) -> tuple[DeadLetterView, list[AuditEvent]]: ...


class FeedHub:
    """Fans this instance's `P.events` subscription out to the connected pages.

    Events are enriched once per instance (the message summary: subject, priority, state…), in
    batches, then handed to every page's bounded queue."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=100_000)
        self._clients: set[FeedClient] = set()
        self._task: asyncio.Task[None] | None = None

    @property
    def listening(self) -> bool:
        """Some page is open on this instance (else the feed need not decode `P.events`)."""
        return bool(self._clients)

    def dispatch(self, event: dict[str, Any]) -> None:
        """Called for each event from `P.events` (any instance's)."""
        kind = event.get("type")
        if not self._clients or kind not in HUB_TYPES:
            return
        if kind not in FEED_TYPES and all(c.types == FEED_TYPES for c in self._clients):
            return  # only the parties' pages want case events
        with contextlib.suppress(asyncio.QueueFull):  # pages back-fill from the store on reconnect
            self._incoming.put_nowait(event)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="console-feed")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)
        for client in list(self._clients):
            client.kick()

    def join(self, principal: Principal | None = None, wide: bool = False) -> FeedClient:
        client = FeedClient(principal, wide)
        self._clients.add(client)
        return client

    def leave(self, client: FeedClient) -> None:
        self._clients.discard(client)

    async def _run(self) -> None:
        while True:
            batch = [await self._incoming.get()]
            while len(batch) < 500 and not self._incoming.empty():
                batch.append(self._incoming.get_nowait())
            try:
                items = await enrich(self._store, batch)
                parties = any(not c.operator for c in self._clients)
                facts = await facts_of(self._store, items) if parties else None
            except Exception as exc:  # the feed is best effort: pages back-fill on reconnect
                log.warning("feed_enrich_failed", error=repr(exc))
                for client in list(self._clients):
                    client.kick()
                continue
            for client in list(self._clients):
                client.push(items, facts)


@dataclass(frozen=True, slots=True)
class Facts:
    """Who may see a feed item: the message it carries `(status, sender, recipients)`, else its case
    `(sender, recipients)`; neither for operators' acts (notes, re-injections)."""

    message: tuple[str, str | None, tuple[str, ...]] | None = None
    case: tuple[str, tuple[str, ...]] | None = None


async def facts_of(store: Store, items: Sequence[dict[str, Any]]) -> list[Facts]:
    """Each item's `Facts`, read once per batch (a case looked up once per reference)."""
    cases: dict[str, tuple[str, tuple[str, ...]] | None] = {}
    out = []
    for item in items:
        if item.get("type") in _WITH_MESSAGE:  # the message's own visibility, whatever its case
            m = item.get("message")
            facts = (
                Facts(message=(str(m["status"]), m.get("sender"), tuple(m.get("recipients") or ())))
                if isinstance(m, dict)
                else Facts()
            )
        elif isinstance(ref := item.get("reference"), str):
            if ref not in cases:
                case = await store.get_case(ref)
                cases[ref] = None if case is None else (case.sender, tuple(case.recipients))
            facts = Facts(case=cases[ref])
        else:
            facts = Facts()
        out.append(facts)
    return out


def party_item(item: dict[str, Any]) -> dict[str, Any]:
    """What a post or a unit is told of an event it may see: that it happened (its page reads the
    rest through the API, audited): no actor, no details."""
    keep = {k: item.get(k) for k in ("seq", "at", "type", "reference", "message_id")}
    if isinstance(item.get("message"), dict):
        keep["message"] = item["message"]
    return keep


@dataclass(eq=False)
class FeedClient:
    principal: Principal | None = None
    """None or an operator: the console's feed (FEED_TYPES, everything); a post or a unit: its own."""
    wide: bool = False
    """An operator on /api/feed (a tracking page): case events too."""
    queue: asyncio.Queue[list[dict[str, Any]] | None] = field(
        default_factory=lambda: asyncio.Queue(maxsize=CLIENT_BACKLOG)
    )

    @property
    def operator(self) -> bool:
        return self.principal is None or self.principal.role is Role.OPERATOR

    @property
    def types(self) -> frozenset[str]:
        if self.operator:
            return HUB_TYPES if self.wide else FEED_TYPES
        return PARTY_TYPES

    def choose(self, items: Sequence[dict[str, Any]], facts: Sequence[Facts] | None) -> list[dict[str, Any]]:
        """The items this page may have: need-to-know per event record (not per frame)."""
        if self.operator:
            return [i for i in items if i.get("type") in self.types]
        if facts is None or self.principal is None:
            return []
        who = self.principal
        return [
            party_item(i)
            for i, f in zip(items, facts, strict=True)
            if i.get("type") in PARTY_TYPES and sees_event(who, message=f.message, case=f.case)
        ]

    def push(self, items: list[dict[str, Any]], facts: Sequence[Facts] | None = None) -> None:
        chosen = self.choose(items, facts)
        if not chosen:
            return
        try:
            self.queue.put_nowait(chosen)
        except asyncio.QueueFull:
            self.kick()

    def kick(self) -> None:
        """Make the page reconnect (and back-fill): it fell behind, or the feed broke."""
        with contextlib.suppress(asyncio.QueueFull):
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(None)


def summary(message: StoredMessage) -> dict[str, Any]:
    out = message.model_dump(mode="json", include=set(SUMMARY_FIELDS))
    why = (message.routing or {}).get("explanation") or [""]
    out["manual"] = str(why[0]).startswith("manual by ")  # the feed marks a hand-routed message
    return out


async def enrich(store: Store, events: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Feed items: each event with, for a message's final state, the message summary (as stored now)."""
    out = []
    cache: dict[tuple[str, str], dict[str, Any] | None] = {}
    for e in events:
        item = {
            k: e.get(k)
            for k in ("seq", "at", "type", "actor", "sender", "message_id", "reference", "details")
        }
        sender, message_id = e.get("sender"), e.get("message_id")
        if e.get("type") in _WITH_MESSAGE and isinstance(message_id, str):
            key = (sender or "", message_id)
            if key not in cache:
                found = await store.get_message(message_id, sender if isinstance(sender, str) else None)
                cache[key] = summary(found) if found is not None else None
            item["message"] = cache[key]
        out.append(item)
    return out


@dataclass(frozen=True)
class ConsoleDeps:
    actions: ConsoleActions
    hub: FeedHub
    classify: Callable[[str, str, list[str], list[str]], Classification]
    dead_letters: DeadLetters | None = None
    reload: Callable[[str], Awaitable[ConfigReload]] | None = None
    """Reads config/ again and puts it in force if valid; the argument names who asked."""


CONSOLE = web.AppKey("console", ConsoleDeps)


def _console(request: web.Request) -> ConsoleDeps:
    deps = request.app.get(CONSOLE)
    if deps is None:
        raise ApiError(503, "the console is not wired in this instance")
    return deps


def actor_of(who: Principal) -> str:
    """How an operator is named in the audit and in a manual routing's explanation."""
    return f"{who.label}:{who.name}"


# -- the page ------------------------------------------------------------------------------------------

ASSETS: dict[str, str] = {
    "app.js": "text/javascript",
    "i18n.js": "text/javascript",
    "server-patterns.json": "application/json",
    "header.js": "text/javascript",
    "parties.js": "text/javascript",
    "post.js": "text/javascript",
    "unit.js": "text/javascript",
    "track.js": "text/javascript",
    "signin.js": "text/javascript",
    "auditor.js": "text/javascript",
    "parties.css": "text/css",
    "dom.js": "text/javascript",
    "map.js": "text/javascript",
    "search.js": "text/javascript",
    "style.css": "text/css",
    "countries-110m.json": "application/json",
    "countries.json": "application/json",
    "LICENSE-world-atlas.txt": "text/plain",
    "favicon.svg": "image/svg+xml",
}


def _asset(name: str) -> bytes:
    return resources.files("watchcentre.web").joinpath(name).read_bytes()


async def console_page(request: web.Request) -> web.Response:
    return web.Response(body=_asset("index.html"), content_type="text/html", charset="utf-8")


async def console_asset(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    content_type = ASSETS.get(name)
    if content_type is None:
        raise ApiError(404, "no such asset", "name")
    charset = None if content_type in ("application/json", "image/svg+xml") else "utf-8"
    return web.Response(body=_asset(name), content_type=content_type, charset=charset)


# -- the live feed -------------------------------------------------------------------------------------


async def _send(ws: web.WebSocketResponse, frame: dict[str, Any]) -> None:
    await ws.send_str(orjson.dumps(frame).decode())


async def _snapshot(request: web.Request, ws: web.WebSocketResponse, store: Store, client: FeedClient) -> int:
    cursor = await store.last_seq()  # before the read: anything later comes live (or is in it)
    if not client.operator:  # a post's or a unit's page reads its lists through the API
        await _send(ws, {"type": "snapshot", "cursor": cursor, "messages": []})
        return cursor
    messages = await store.list_messages(MessageQuery(limit=SNAPSHOT_SIZE))
    who, deps = principal_of(request), request.app[DEPS]
    await record_list(store, deps.clock, who, [m.id for m in messages], {"feed": "snapshot"}, request.path)
    marks = await store.cross_match_counts([m.id for m in messages])
    rows = [summary(m) | ({"cross_matches": marks[m.id]} if m.id in marks else {}) for m in messages]
    await _send(ws, {"type": "snapshot", "cursor": cursor, "messages": rows})
    return cursor


async def _backfill(
    request: web.Request, ws: web.WebSocketResponse, store: Store, after: int, client: FeedClient
) -> int:
    """The feed events recorded after `after`, from the audit store; the last seq read."""
    cursor, read, sent = after, 0, 0
    while True:
        events = await store.audit(after_seq=cursor, limit=BACKFILL_PAGE)
        if not events:
            break
        cursor = events[-1].seq or cursor
        read += len(events)
        wanted = [e.model_dump(mode="json") for e in events if e.type in client.types]
        items = await enrich(store, wanted) if wanted else []
        items = client.choose(items, await facts_of(store, items) if not client.operator else None)
        if items:
            sent += len(items)
            await _record_shown(request, store, "backfill", items)
            await _send(ws, {"type": "backfill", "cursor": cursor, "items": items})
        if len(events) < BACKFILL_PAGE:
            break
        if read >= BACKFILL_MAX:
            return await _snapshot(request, ws, store, client)
    await _send(ws, {"type": "backfilled", "cursor": cursor, "count": sent})
    return cursor


async def _record_shown(request: web.Request, store: Store, part: str, items: list[dict[str, Any]]) -> None:
    """Audit what a feed frame shows, before it is sent: the messages (row ids) and cases."""
    ids = sorted({m["id"] for i in items if isinstance(m := i.get("message"), dict) and "id" in m})
    refs = sorted({r for i in items if isinstance(r := i.get("reference"), str)})
    await record_consultation(
        store,
        request.app[DEPS].clock,
        principal_of(request),
        request.path,
        feed=part,
        ids=ids,
        references=refs,
    )


async def _gather(queue: asyncio.Queue[list[dict[str, Any]] | None]) -> list[dict[str, Any]] | None:
    """The next items, and whatever else arrives within FEED_AUDIT_S; None: resync."""
    first = await queue.get()
    if first is None:
        return None
    items = list(first)
    deadline = asyncio.get_running_loop().time() + FEED_AUDIT_S
    while (left := deadline - asyncio.get_running_loop().time()) > 0:
        try:
            more = await asyncio.wait_for(queue.get(), left)
        except TimeoutError:
            break
        if more is None:
            return None
        items += more
    return items


async def feed(request: web.Request, *, query: FeedQuery) -> web.StreamResponse:
    """/api/console/feed: the console's."""
    return await _feed(request, query, wide=False)


async def feed_for_all(request: web.Request, *, query: FeedQuery) -> web.StreamResponse:
    """/api/feed: every party's, each within need-to-know (operators get case events too)."""
    return await _feed(request, query, wide=True)


async def _feed(request: web.Request, query: FeedQuery, *, wide: bool) -> web.StreamResponse:
    same_origin(request)  # a WebSocket carries the cookie cross-site: refuse other origins
    console, store = _console(request), request.app[DEPS].store
    after = query.after
    ws = web.WebSocketResponse(heartbeat=15.0, max_msg_size=4096)
    await ws.prepare(request)
    client = console.hub.join(principal_of(request), wide)
    try:
        if after is None:
            cursor = await _snapshot(request, ws, store, client)
        else:
            cursor = await _backfill(request, ws, store, after, client)
        await _send(ws, {"type": "live", "cursor": cursor})

        async def pump() -> None:
            while True:
                items = await _gather(client.queue)
                if items is None:
                    await ws.close(code=4000, message=b"resync")
                    return
                fresh = [i for i in items if not isinstance(i.get("seq"), int) or i["seq"] > cursor]
                if fresh:
                    await _record_shown(request, store, "live", fresh)  # no record: the page resyncs
                    await _send(ws, {"type": "events", "items": fresh})

        sender = asyncio.create_task(pump())
        try:
            async for msg in ws:  # the page says nothing; this notices it leaving
                if msg.type == WSMsgType.ERROR:
                    break
                if sender.done():
                    break
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await sender
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        console.hub.leave(client)
        if not ws.closed:
            await ws.close()
    return ws


# -- triage, detail, manual routing --------------------------------------------------------------------


async def triage(request: web.Request) -> ConsolePage:
    store, who = request.app[DEPS].store, principal_of(request)
    found = await store.list_messages(MessageQuery(status=Status.TRIAGE, limit=500))
    await record_list(
        store, request.app[DEPS].clock, who, [m.id for m in found], {"status": "triage"}, request.path
    )
    fields = set(SUMMARY_FIELDS)
    return ConsolePage(items=[TriageItem(**m.model_dump(include=fields), why=_why_triage(m)) for m in found])


def _why_triage(message: StoredMessage) -> str:
    """The rule's words for sending it to triage (`to centre.triage: <why>`)."""
    lines = (message.routing or {}).get("explanation") or []
    for line in lines:
        if isinstance(line, str) and line.startswith("to centre.triage: "):
            return line.removeprefix("to centre.triage: ")
    return ""


async def recipients(request: web.Request) -> RecipientList:
    net = request.app[DEPS].current_network()
    posts = {f"post.{p.id}": f"{p.city} ({', '.join(p.countries)})" for p in net.posts}
    units = {f"unit.{u.id}": u.name for u in net.units}
    items = [
        Recipient(key=key, label=posts.get(key) or units.get(key) or "the centre's inbox")
        for key in allowed_recipients(net)
    ]
    return RecipientList(items=items, crime_types=sorted(CRIME_CODES))


def segments(text: str, spans: list[tuple[int, int, dict[str, Any]]]) -> list[Segment]:
    """`text` cut into plain and marked pieces (the page shows them as text, never as markup)."""
    out: list[Segment] = []
    pos = 0
    for start, end, mark in sorted(spans, key=lambda s: (s[0], -s[1])):
        if start < pos or end <= start or end > len(text):
            continue  # overlapping or out of range: keep the first, longest
        if start > pos:
            out.append(Segment(text=text[pos:start]))
        out.append(Segment(text=text[start:end], mark=mark))
        pos = end
    if pos < len(text):
        out.append(Segment(text=text[pos:]))
    return out


def highlights(cls: Classification, subject: str, body: str) -> Highlights:
    spans: dict[str, list[tuple[int, int, dict[str, Any]]]] = {"subject": [], "body": []}
    for e in cls.evidence:
        if e.field in spans:
            mark = {"target": e.target, "rule": e.rule, "negated_by": e.negated_by}
            spans[e.field].append((e.start, e.end, mark))
    return Highlights(subject=segments(subject, spans["subject"]), body=segments(body, spans["body"]))


async def message_detail(request: web.Request, *, query: ConsoleMessageQuery) -> ConsoleMessage:
    console, deps, who = _console(request), request.app[DEPS], principal_of(request)
    message = await deps.store.get_message(query.message_id, query.sender)
    if message is None:
        raise ApiError(404, "no such message", "message_id")
    env = message.envelope or {}
    subject = env.get("subject") if isinstance(env.get("subject"), str) else ""
    text = env.get("body") if isinstance(env.get("body"), str) else ""
    if message.status is not Status.REJECTED:
        hints = [c for c in env.get("countries", []) if isinstance(c, str)]
        crimes = [c for c in env.get("crime_types", []) if isinstance(c, str)]
        cls = console.classify(subject or "", text or "", hints, crimes)
        marked, evidence = highlights(cls, subject or "", text or ""), [e.describe() for e in cls.evidence]
    else:
        marked, evidence = Highlights(subject=segments(subject or "", []), body=segments(text or "", [])), []
    events = await deps.store.audit(message_id=query.message_id, sender=message.sender, limit=1000)
    manual = await deps.store.manual_routings(message.sender, query.message_id) if message.sender else []
    await record_read(deps.store, deps.clock, who, message, request.path)
    return ConsoleMessage(
        **dict(message),
        timeline=[e for e in events if e.type not in _NOT_TIMELINE],
        highlights=marked,
        evidence=evidence,
        manual=manual,
    )


async def route(request: web.Request, *, body: RouteRequest) -> RouteResult:
    same_origin(request)
    console, who = _console(request), principal_of(request)
    # a refusal (NotFound, Conflict, Invalid) is answered by the error middleware
    routing, events = await console.actions.route_manually(
        sender=body.sender,
        message_id=body.message_id,
        recipients=body.recipients,
        reason=body.reason,
        actor=actor_of(who),
        expected_revision=body.revision,
        override_marking=body.override_marking,
        override_reason=body.override_reason,
        crime_types=body.crime_types,
        countries=body.countries,
    )
    return RouteResult(routing=routing, events=events)


async def corrections(request: web.Request) -> Corrections:
    corrected, rules = await _console(request).actions.most_corrected(10)
    return Corrections(corrected=corrected, rules=[RuleCount(rule=r, count=n) for r, n in rules])


async def reload_config(request: web.Request) -> ConfigReload:
    """Read every config file again; a valid configuration replaces the running one between two
    messages (audited `config_changed`), an invalid one is refused with every problem
    (`config_rejected`) and the running one kept."""
    same_origin(request)
    console, who = _console(request), principal_of(request)
    if console.reload is None:
        raise ApiError(503, "configuration reload is not wired in this instance")
    return await console.reload(actor_of(who))


# -- dead letters ------------------------------------------------------------------------------------


async def dead_letters(request: web.Request, *, query: DeadLetterQuery) -> DeadLetterList:
    console = _console(request)
    if console.dead_letters is None:
        raise ApiError(503, "no dead-letter queue in this instance")
    letters = await console.dead_letters.list(query.limit)
    deps = request.app[DEPS]
    await record_consultation(  # the list shows each letter whole: which ones were shown
        deps.store, deps.clock, principal_of(request), request.path, dead_letters=[d.id for d in letters]
    )
    return DeadLetterList(items=letters)


async def reinject(request: web.Request, *, body: ReinjectRequest) -> ReinjectResult:
    same_origin(request)
    console, who = _console(request), principal_of(request)
    corrected = orjson.dumps(body.envelope) if body.envelope is not None else None
    letter, events = await console.actions.reinject_dead(
        letter_id=request.match_info["letter_id"], corrected=corrected, actor=actor_of(who), note=body.reason
    )
    return ReinjectResult(letter=letter, events=events)


# -- shift log, counts ---------------------------------------------------------------------------------


async def list_notes(request: web.Request, *, query: NotesQuery) -> NoteList:
    deps = request.app[DEPS]
    notes = await deps.store.notes(query.limit, query.before_id)
    await record_consultation(
        deps.store, deps.clock, principal_of(request), request.path, notes=[n.id for n in notes]
    )
    return NoteList(items=notes)


async def add_note(request: web.Request, *, body: NoteInput) -> Note:
    same_origin(request)
    deps, who, console = request.app[DEPS], principal_of(request), _console(request)
    ask = clean_note(body)  # ManualRoutingError is an Invalid: 400 naming the field
    now = deps.clock.now()
    note = Note(
        at=now, author=actor_of(who), text=ask.text, message_ids=ask.message_ids, references=ask.references
    )
    event = AuditEvent(
        at=now,
        type=EventType.NOTE_ADDED,
        actor=actor_of(who),
        details={"message_ids": ask.message_ids, "references": ask.references, "length": len(ask.text)},
    )
    stored, events = await deps.store.add_note(note, event)
    for item in await enrich(deps.store, [e.model_dump(mode="json") for e in events]):
        for client in list(console.hub._clients):  # this instance's pages at once; others via P.events
            client.push([item])
    return stored


async def glance(request: web.Request, *, query: GlanceQuery) -> Glance:
    deps = request.app[DEPS]
    tallies = await deps.store.tallies(deps.clock.now() - timedelta(hours=query.hours))
    triage = len(await deps.store.list_messages(MessageQuery(status=Status.TRIAGE, limit=500)))
    await record_consultation(deps.store, deps.clock, principal_of(request), request.path, hours=query.hours)
    return Glance(**dict(tallies), hours=query.hours, triage=triage)


# -- watch lists (docs/search.md) ----------------------------------------------------------------------

_CHECKS = LibraryChecks()


async def list_watches(request: web.Request, *, query: WatchesQuery) -> WatchList:
    deps = request.app[DEPS]
    items = await deps.store.watches(deps.clock.now() if query.live else None)
    await record_consultation(  # a watched value may be a person's name or number
        deps.store, deps.clock, principal_of(request), request.path, watches=[w.id for w in items]
    )
    return WatchList(items=items)


async def add_watch(request: web.Request, *, body: WatchBody) -> Watch:
    same_origin(request)
    deps, who = request.app[DEPS], principal_of(request)
    now = deps.clock.now()
    expires_at = parse_time(body.expires_at, "expires_at")
    if expires_at <= now:
        raise Invalid("expires_at", "must be in the future")
    if body.kind == "identifier":
        if body.id_kind is None:
            raise Invalid("id_kind", "required to watch an identifier: phone, email, iban, …")
        value = normalise(IdKind(body.id_kind), body.value, _CHECKS)
        if value is None:
            raise Invalid("value", f"not a valid {body.id_kind}")
    else:
        if body.id_kind is not None:
            raise Invalid("id_kind", "only for an identifier")
        value = phrase_value(body.value)
        if not value:
            raise Invalid("value", "a phrase needs at least one word")
    event = AuditEvent(
        at=now,
        type=EventType.WATCH_ADDED,
        actor=actor_of(who),
        details={
            "kind": body.kind,
            "id_kind": body.id_kind,
            "label": body.label,
            "expires_at": body.expires_at,
        },
    )
    ask = WatchInput(**body.model_dump(exclude={"expires_at"}), expires_at=expires_at)
    watch = await deps.store.add_watch(ask, value, actor_of(who), now, event)
    log.info("watch_added", actor=who.label, watch_id=watch.id, kind=watch.kind, id_kind=watch.id_kind)
    return watch


async def end_watch(request: web.Request) -> Watch:
    same_origin(request)
    deps, who = request.app[DEPS], principal_of(request)
    raw = request.match_info["watch_id"]
    if not raw.isdigit() or len(raw) > 18:
        raise NotFound("watch_id", "no such watch")
    now = deps.clock.now()
    event = AuditEvent(
        at=now, type=EventType.WATCH_ENDED, actor=actor_of(who), details={"watch_id": int(raw)}
    )
    watch = await deps.store.end_watch(int(raw), actor_of(who), now, event)
    if watch is None:
        raise NotFound("watch_id", "no such watch")
    log.info("watch_ended", actor=who.label, watch_id=watch.id)
    return watch


async def close_feeds(app: web.Application) -> None:
    """on_shutdown: tell every open page to go (it reconnects elsewhere or later) so that shutting
    down does not wait for the WebSockets."""
    deps = app.get(CONSOLE)
    if deps is not None:
        for client in list(deps.hub._clients):
            client.kick()


__all__ = ["CONSOLE", "HUB_TYPES", "ConsoleDeps", "FeedHub", "close_feeds"]
