"""The ports: what the service needs from the outside world, as Protocols. Adapters implement them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

from watchcentre.core.access import TokenRecord
from watchcentre.core.identifiers import Identifier
from watchcentre.core.labels import Label
from watchcentre.core.lifecycle import Case
from watchcentre.core.manual import ManualRecord, ManualRouting, Note, Tallies
from watchcentre.core.records import (
    AuditEvent,
    CaseCursor,
    DeadLetterView,
    MessageQuery,
    Outcome,
    StoredMessage,
    Visibility,
)
from watchcentre.core.replay import Decided
from watchcentre.core.retention import PurgeReport, RetentionRules
from watchcentre.core.routing import Original
from watchcentre.core.search import Clause, SearchHit, SearchQuery
from watchcentre.core.watches import Watch, WatchHit, WatchInput


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class OpsCounts:
    """What the on-call engineer asks the database, counted at one instant (`Store.ops_counts`)."""

    open_by_state: Mapping[str, int]
    """Open cases (an answer is awaited) by state."""
    ack_overdue: Mapping[str, int]
    """Open cases not acknowledged by their acknowledgement deadline, by priority (urgent, normal)."""
    answer_overdue: Mapping[str, int]
    """Open cases past their answer deadline, by priority."""
    warnings_pending: int
    """Open cases inside the warning window: `warn_at` passed, the answer not yet due."""
    triage_backlog: int
    """Accepted messages in triage that no one has routed by hand yet."""
    audit_head_seq: int
    """The seq of the newest audit record (0 when there is none)."""

    @classmethod
    def of_rows(cls, rows: Iterable[tuple[str, int]]) -> OpsCounts:
        """From (name, count) rows: `state:<state>`, `ack_overdue:<priority>`, `answer_overdue:<priority>`,
        else the field's name."""
        named = {str(k): int(v) for k, v in rows}
        return cls(
            open_by_state={k.removeprefix("state:"): v for k, v in named.items() if k.startswith("state:")},
            ack_overdue=_by_priority(named, "ack_overdue:"),
            answer_overdue=_by_priority(named, "answer_overdue:"),
            warnings_pending=named.get("warnings_pending", 0),
            triage_backlog=named.get("triage_backlog", 0),
            audit_head_seq=named.get("audit_head_seq", 0),
        )


def _by_priority(named: Mapping[str, int], prefix: str) -> dict[str, int]:
    return {"urgent": 0, "normal": 0} | {
        k.removeprefix(prefix): v for k, v in named.items() if k.startswith(prefix)
    }


class ReferenceTaken(Exception):
    """A request names a reference that another request already opened."""

    def __init__(self, existing: Case) -> None:
        super().__init__(f"reference {existing.reference} is already used by another request")
        self.existing = existing


ALERTS = ("ack_overdue", "warning", "overdue")
"""The deadline alerts a case can raise, each at most once (a DB flag): the acknowledgement deadline
passed, `warning_at` of the time to answer elapsed, the answer deadline passed."""


class TransientError(Exception):
    """A dependency (broker, database) is unavailable: retry later, the input is not at fault."""


@dataclass(frozen=True, slots=True)
class OutboundCopy:
    """One persistent message on the routed exchange that puts one copy in each recipient's queue
    (`routing_keys`): one publish and one confirm whatever the fan-out. Every copy has the same body
    (which names all the recipients) and the same AMQP message_id; recipients drop a copy whose id
    they have seen, each in its own queue."""

    routing_keys: tuple[str, ...]
    message_id: str
    body: bytes
    headers: Mapping[str, str]
    priority: int = 0


class Delivery(Protocol):
    """One input message from the intake queue, as the consumer hands it to the service."""

    @property
    def body(self) -> bytes: ...

    @property
    def attempts(self) -> int:
        """1 for the first delivery, 2 for the first redelivery, and so on."""
        ...

    @property
    def reply_to(self) -> str | None:
        """Where the sender wants its receipt (AMQP `reply_to`), if anywhere."""
        ...

    @property
    def user_id(self) -> str | None:
        """The broker user that published it (AMQP `user_id`, which the broker checks against the
        publishing connection's user), or None when the message does not state one."""
        ...

    async def ack(self) -> None: ...

    async def retry(self) -> None:
        """Return the message to the queue for another attempt."""
        ...


class Publisher(Protocol):
    async def publish_routed(self, copies: Sequence[OutboundCopy]) -> None:
        """Publish persistent copies, each to all its recipients; return only when the broker has
        confirmed every one, each delivered to at least one queue."""
        ...

    async def publish_dead(self, body: bytes, reason: str, headers: Mapping[str, str]) -> None:
        """Dead-letter an input with its reason (header x-watchcentre-error); confirmed."""
        ...

    async def publish_events(self, events: Sequence[AuditEvent]) -> None:
        """Publish committed audit events for live consumers (best effort: the store is the record)."""
        ...

    async def publish_reply(self, to: str, body: bytes, correlation_id: str | None) -> None:
        """Send a sender its receipt on the queue it named, which the service checked it owns (best
        effort: the store is the record)."""
        ...


class MessageStore(Protocol):
    """The messages and their audit trail.

    Invariants: an accepted (sender, message_id) is stored once, and so are the exact bytes of a
    rejection; a message and its audit events are committed together or not at all. The audit trail
    is append-only: `seq` increases in commit order (a reader paging by `after_seq` never misses a
    record), and each record carries the hash of its predecessor (`core.audit_chain`), extended in
    seq order in the transaction that inserts it. Every write of every aggregate that records events
    extends the same chain."""

    async def seen_many(self, keys: Sequence[tuple[str, str]]) -> list[bool]:
        """For each (sender, message_id), whether it was already accepted: one query for many."""
        ...

    async def seen_rejection(self, digest: str) -> bool:
        """Whether these exact bytes were already dead-lettered."""
        ...

    async def originals(self, message_id: str) -> list[Original]:
        """Accepted messages with this message_id (any sender), newest first."""
        ...

    async def save_batch(self, outcomes: Sequence[Outcome]) -> list[list[AuditEvent] | None]:
        """Record outcomes in one transaction; per outcome, its committed events (with seq, prev_hash and
        hash: the audit chain is extended in that transaction, in seq order) or None for a duplicate (an
        accepted (sender, message_id) already stored, or a rejection of the same bytes)."""
        ...

    async def append_audit(self, events: Sequence[AuditEvent]) -> list[AuditEvent]:
        """Append events that belong to no message outcome (reads, token changes), chained; committed."""
        ...

    async def get_message(
        self, message_id: str, sender: str | None = None, visibility: Visibility | None = None
    ) -> StoredMessage | None:
        """The newest message with this message_id (and sender) among those `visibility` lets through."""
        ...

    async def list_messages(
        self, query: MessageQuery, visibility: Visibility | None = None
    ) -> list[StoredMessage]: ...

    async def audit(
        self,
        *,
        after_seq: int = 0,
        limit: int = 100,
        sender: str | None = None,
        message_id: str | None = None,
        event_type: str | None = None,
        reference: str | None = None,
        actor: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[AuditEvent]:
        """Oldest first, after `after_seq`; each filter given narrows it (`since` inclusive,
        `until` exclusive, on the record's time)."""
        ...

    async def last_seq(self) -> int:
        """The seq of the newest audit record (0 when there is none)."""
        ...

    async def tallies(self, since: datetime) -> Tallies:
        """Accepted messages received since `since`, counted by crime type and by country."""
        ...


class CaseStore(Protocol):
    """Cases: the request lifecycle's state.

    Invariants: one case per request (sender, message_id), one request per reference; a change is
    stored only over the version it was computed from (optimistic concurrency), with its audit
    events in the same transaction; each deadline alert is raised at most once, whatever the number
    of instances; need-to-know is part of every list query, before its LIMIT."""

    async def open_case(self, case: Case, events: Sequence[AuditEvent]) -> tuple[Case, bool]:
        """Open a case and record its events in one transaction, unless its request (sender,
        message_id) already opened one: (the case, whether it is new). An empty reference is
        generated (`core.references.new_reference`: random, unique by the primary key, drawn again
        on a collision) and set on the events. ReferenceTaken when the reference belongs to another
        request."""
        ...

    async def open_cases(self, cases: Sequence[Case]) -> list[tuple[Case, bool] | ReferenceTaken]:
        """`open_case` for many cases, without events, in one transaction (batched like `save_batch`):
        per case, in order, what `open_case` would have returned, or the ReferenceTaken it would have
        raised (nothing is written for that case; the others are)."""
        ...

    async def get_case(self, reference: str) -> Case | None: ...

    async def update_case(
        self, case: Case, expected_version: int, events: Sequence[AuditEvent], reset_alerts: bool = False
    ) -> list[AuditEvent] | None:
        """Store the case (version + 1) and its events in one transaction if its stored version is still
        `expected_version`; None when another writer changed it first. The alert flags are kept, or
        cleared with `reset_alerts` (an extension moved the due time)."""
        ...

    async def list_cases(
        self,
        *,
        visibility: Visibility | None = None,
        open_only: bool = False,
        since: datetime | None = None,
        until: datetime | None = None,
        before: CaseCursor | None = None,
        limit: int = 1000,
    ) -> list[Case]:
        """At most `limit` cases that `visibility` lets through (None: every case), opened in
        [since, until), open ones only if asked, newest first (opened_at, then reference, descending),
        coming after `before` in that order. Need-to-know is part of the query, before the LIMIT."""
        ...

    async def due_alerts(self, now: datetime) -> list[tuple[str, str]]:
        """(reference, alert) for every alert (see ALERTS) due by `now` and not yet raised."""
        ...

    async def raise_alert(
        self, reference: str, alert: str, now: datetime, event: AuditEvent
    ) -> AuditEvent | None:
        """Set the alert's flag if it is still unset and still due, and record its event, in one
        transaction (a conditional UPDATE: several instances raise it once); the event, or None."""
        ...


class TokenStore(Protocol):
    """Bearer tokens, only their SHA-256 stored. Invariants: a token's hash is unique; every issue
    and revocation is audited in the same transaction; a revoked token stays revoked."""

    async def add_token(self, token: TokenRecord, event: AuditEvent) -> None:
        """Store a new token and its audit event in one transaction."""
        ...

    async def token_by_hash(self, token_hash: str) -> TokenRecord | None: ...

    async def tokens(self) -> list[TokenRecord]:
        """Every token, newest first."""
        ...

    async def revoke_token(self, token_id: str, at: datetime, event: AuditEvent) -> TokenRecord | None:
        """Mark a token revoked (and record the event) unless it already is; the token, or None if unknown."""
        ...


class ConsoleStore(Protocol):
    """The operator console's records: manual routings and the shift log. Invariants: a manual
    routing is recorded once per (message, revision), and moves the message, its recipients, its
    request's case and its audit events in one transaction; a note is audited in the transaction
    that stores it."""

    async def apply_manual(self, decision: ManualRouting) -> list[AuditEvent] | None:
        """Record a manual routing in one transaction: the decision (unique per message and revision),
        the message's new status (routed), routing and recipients, its request's case (`decision.case`,
        written only if still at `case.version`), and its audit events (chained). Returns the committed
        events, or None when that revision was already recorded or the case changed meanwhile (then
        nothing is written)."""
        ...

    async def manual_routings(self, sender: str, message_id: str) -> list[ManualRecord]:
        """The manual decisions taken on one message, oldest first."""
        ...

    async def claim_manual(
        self, sender: str, message_id: str, revision: int, claim: str, now: datetime, stale_s: float
    ) -> bool:
        """Reserve (message, revision) for the decision `claim` before its copies are published, so
        that of two instances deciding at once only one publishes. False when another holds it; a
        claim older than `stale_s` (its holder died) may be taken over. `apply_manual` clears the
        message's claims in its transaction."""
        ...

    async def release_manual(self, sender: str, message_id: str, revision: int, claim: str) -> None:
        """Give up a claim whose decision was not recorded (its publish failed, or it lost a race)."""
        ...

    async def add_note(self, note: Note, event: AuditEvent) -> tuple[Note, list[AuditEvent]]:
        """Store a shift-log note and its audit event in one transaction; the note with its id."""
        ...

    async def notes(self, limit: int = 50, before_id: int | None = None) -> list[Note]:
        """Shift-log notes, newest first."""
        ...


class History(Protocol):
    """The decisions stored, read back for a what-if replay: accepted messages received in
    [since, until), in pages by row id (keyset), each with the rules' decision (for a message routed by
    hand, the automatic decision before it, from its audit record)."""

    async def count_decided(self, since: datetime | None, until: datetime | None) -> int: ...

    async def decided_page(
        self, since: datetime | None, until: datetime | None, after_id: int, limit: int
    ) -> list[Decided]:
        """The next `limit` accepted messages with a row id above `after_id`, by id."""
        ...


class Labels(Protocol):
    """Operators' corrections (core/labels.py). Invariant: a label is never changed; a later one on
    the same message supersedes it (the newest per message is the truth)."""

    async def add_label(self, label: Label) -> None: ...

    async def labels(self, limit: int = 10_000) -> list[tuple[Label, dict[str, Any] | None]]:
        """The newest label of each message (newest first, at most `limit`), with the message's
        envelope as stored (None when it is gone)."""
        ...


class SearchStore(Protocol):
    """Full-text search, identifiers, cross-matching and watch lists (docs/search.md). Invariant:
    need-to-know is applied inside each query, as for lists."""

    async def search(
        self, query: SearchQuery, clauses: tuple[Clause, ...], visibility: Visibility | None = None
    ) -> list[SearchHit]:
        """One page of the messages matching every clause that `visibility` lets the caller see, best
        first (then newest), after the cursor `query.after`."""
        ...

    async def identifiers(self, message_pk: int) -> list[Identifier]:
        """The identifiers found in one stored message (by its row id), sorted."""
        ...

    async def related(
        self, message_pk: int, visibility: Visibility | None = None, limit: int = 100
    ) -> list[tuple[StoredMessage, list[Identifier]]]:
        """The other messages `visibility` lets the caller see that share an identifier with this
        one, newest first, each with the identifiers shared."""
        ...

    async def cross_match_counts(self, message_pks: Sequence[int]) -> dict[int, int]:
        """{id: how many earlier messages share an identifier with it}, for those of `message_pks`
        that have any (the count a new message's routed/triaged event carries)."""
        ...

    async def add_watch(
        self, watch: WatchInput, value: str, actor: str, at: datetime, event: AuditEvent
    ) -> Watch:
        """Store a watch (its `value` normalised) and its audit event in one transaction."""
        ...

    async def watches(self, live_at: datetime | None = None) -> list[Watch]:
        """Every watch, newest first; with `live_at`, only those neither ended nor expired then."""
        ...

    async def end_watch(self, watch_id: int, actor: str, at: datetime, event: AuditEvent) -> Watch | None:
        """End a watch (its event recorded once, if it was live); the watch, or None if no such id."""
        ...

    async def pending_watch_hits(self, limit: int = 200) -> list[tuple[WatchHit, StoredMessage]]:
        """The watch hits no operator has acknowledged yet, oldest first, each with its message."""
        ...

    async def acknowledge_watch_hit(
        self, watch_id: int, message_pk: int, actor: str, at: datetime, event: AuditEvent
    ) -> tuple[WatchHit | None, AuditEvent | None]:
        """Acknowledge a hit and record `event` (its details gain `raised_at`) in one transaction:
        (None, None) when there is no such hit; (hit, None) when it was acknowledged already."""
        ...


class Store(MessageStore, CaseStore, TokenStore, ConsoleStore, SearchStore, Protocol):
    """Every aggregate in one database (SQLite or PostgreSQL): what the wiring opens and closes."""

    # -- operations (metrics computed on scrape) --------------------------------------------------------

    async def ops_counts(self, now: datetime) -> OpsCounts:
        """The gauges /metrics reports, from a handful of count queries over indexed columns."""
        ...

    async def ping(self) -> None:
        """Raise TransientError when the database cannot be reached."""
        ...

    async def close(self) -> None: ...


class RetentionStore(Protocol):
    """The purge (config/retention.yaml, docs/data-protection.md)."""

    async def purge(
        self,
        rules: RetentionRules,
        now: datetime,
        *,
        at: datetime | None = None,
        dry_run: bool = False,
        actor: str = ...,
    ) -> PurgeReport:
        """Erase, as of `now` (at the wall-clock time `at`, default `now`: `purged_at` and the
        audit records), the text of what is past its limit: from every table, then from the
        database files; what stays (that a message existed, sender, times, routing decision, its
        case's dates and states) is marked `purged_at`. A message attached to a case still open is
        kept. One transaction with its `purged` audit records (rule, count, ids); the audit trail
        itself is not touched (it holds no purgeable text). Safe to run from several instances at
        once: each item is erased and recorded once. `dry_run`: count only, write nothing."""
        ...


@dataclass(frozen=True, slots=True)
class Mentions:
    """What the store holds that mentions an identifier (a person's request)."""

    messages: list[StoredMessage]
    cases: list[Case]
    notes: list[Note]
    truncated: bool
    """True when one kind had more than the limit asked for."""


@runtime_checkable
class SubjectAccessStore(Protocol):
    async def mentions(self, needle: str, limit: int = 500) -> Mentions:
        """Every message (subject, body, raw input, rejection), case and note whose text contains
        `needle`, case-insensitively and whatever the separators of a number; oldest first."""
        ...


class AuditAnchor(Protocol):
    """Where signed audit checkpoints are kept outside the database (an append-only file). The key
    that signs them is the anchor's, never the database's."""

    where: str
    """The anchor's name for people (a path)."""
    key: bytes

    async def read(self) -> bytes | None:
        """Everything written so far; None when nothing ever was (no file)."""
        ...

    async def append(self, line: bytes) -> None:
        """Append one line durably (fsynced before returning); b"" only makes sure the anchor exists."""
        ...


class DeadLetters(Protocol):
    """The dead-letter queue as a work queue: browse it, and move one letter back to intake."""

    async def list(self, limit: int = 200) -> list[DeadLetterView]: ...

    async def reinject(
        self,
        letter_id: str,
        body: bytes | None,
        headers: Mapping[str, str],
        on_reinjected: Callable[[DeadLetterView], Awaitable[None]],
    ) -> DeadLetterView | None:
        """Publish `body` (a corrected copy; None: the original bytes) to intake, confirmed; then await
        `on_reinjected` (the audit); only then take the letter out of the dead-letter queue.
        None when no letter with this id is there (already re-injected by someone else)."""
        ...


class Metrics(Protocol):
    """Operational counters; the adapter exposes them (Prometheus)."""

    def received(self) -> None:
        """One input taken from the intake queue."""
        ...

    def routed(self, status: str, seconds: float) -> None:
        """One input acked as routed or sent to triage, `seconds` after receipt."""
        ...

    def rejected(self, field: str) -> None:
        """One input dead-lettered; `field` is the field at fault."""
        ...

    def duplicate(self) -> None:
        """One input already handled (same sender and message_id, or same rejected bytes)."""
        ...

    def failed(self) -> None:
        """One handling attempt that raised (retried or dead-lettered)."""
        ...

    def in_flight(self, delta: int) -> None:
        """Inputs being handled now: +1 on start, -1 on end."""
        ...

    def committed(self, seconds: float, items: int) -> None:
        """One group commit of `items` outcomes took `seconds`."""
        ...
