"""The HTTP API's wire shapes: request validators (query strings and bodies) and response models.

The route table (`watchcentre.adapters.http_routes`) names these for each route; the glue validates
requests into them and serialises the handlers' answers from them, and the OpenAPI document is
generated from the same table, so the document and the server cannot drift apart.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, WithJsonSchema

from watchcentre.core.bounds import NOT_BLANK
from watchcentre.core.envelope import Routing
from watchcentre.core.labels import MAX_COUNTRIES, MAX_CRIME_TYPES
from watchcentre.core.lifecycle import Case
from watchcentre.core.manual import ManualRecord, Note, Tallies
from watchcentre.core.network import LiaisonOfficer
from watchcentre.core.records import AuditEvent, DeadLetterView, Status, StoredMessage
from watchcentre.core.search import Fragment
from watchcentre.core.taxonomy import CRIME_CODES
from watchcentre.core.watches import IdKindName, Watch

RFC3339_PATTERN = r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"
SANE_TIME_PATTERN = RFC3339_PATTERN.replace(r"^\d{4}", r"^20(0[1-9]|[1-8]\d|9[0-8])")
"""What the document promises is accepted: years 2001-2098, inside core/bounds.py's range whatever
the offset (the server checks the range itself, with its own message)."""

IsoTime = Annotated[
    datetime,
    PlainSerializer(lambda at: at.isoformat(), return_type=str, when_used="json"),
    WithJsonSchema({"format": "date-time", "type": "string"}),
]
"""A time as the case routes and sign-in have always written it (`+00:00`, Python's isoformat)."""

# -- wire shapes ---------------------------------------------------------------------------------


class ErrorDetail(BaseModel):
    status: int = Field(description="The HTTP status, repeated.")
    message: str
    field: str | None = Field(default=None, description="The query parameter or path part at fault.")


class ErrorBody(BaseModel):
    error: ErrorDetail


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    checks: dict[str, bool] = Field(description="Each dependency and whether it answers.")
    version: str
    config: str | None = Field(default=None, description="SHA-256 digest of the configuration in force.")


class PostView(BaseModel):
    id: str
    city: str
    country: str = Field(description="Host country of the embassy (ISO 3166-1 alpha-2).")
    countries: list[str] = Field(description="Countries covered (ISO 3166-1 alpha-2).")
    liaison_officers: list[LiaisonOfficer]
    routing_key: str = Field(description="Routing key on the routed exchange, `post.<id>`.")
    queue_suffix: str = Field(description="The post's queue is `<prefix>.<queue_suffix>`.")


class UnitView(BaseModel):
    id: str
    name: str
    crime_areas: list[str]
    routing_key: str = Field(description="Routing key on the routed exchange, `unit.<id>`.")
    queue_suffix: str = Field(description="The unit's queue is `<prefix>.<queue_suffix>`.")


class PostList(BaseModel):
    items: list[PostView]


class UnitList(BaseModel):
    items: list[UnitView]


class MessageSummary(BaseModel):
    """A stored message without its envelope (and so without its body) nor its routing detail."""

    id: int
    sender: str | None
    message_id: str | None
    kind: str | None
    priority: str | None
    reference: str | None
    subject: str | None
    status: Status
    received_at: datetime
    crime_types: list[str]
    countries: list[str]
    recipients: list[str]
    error: str | None
    handling: str | None = Field(description="The sender's handling marking, shown wherever the message is.")
    purged_at: datetime | None = Field(
        default=None, description="Set when its text was erased (retention): subject and body are then null."
    )


class MessagePage(BaseModel):
    items: list[MessageSummary] = Field(description="Newest first.")
    next_before_id: int | None = Field(description="Pass as `before_id` for the next page; null at the end.")


class SearchItem(MessageSummary):
    """A message that matched, with where: its subject whole and its body's best fragments, as
    segments ({text, hit}) a screen sets as text (never as markup)."""

    score: float = Field(description="Relevance (higher is better); comparable within one search only.")
    subject_fragments: list[Fragment]
    body_fragments: list[Fragment]


class SearchPage(BaseModel):
    items: list[SearchItem] = Field(description="Best first, then newest.")
    next: str | None = Field(description="Pass as `after` for the next page; null at the end.")


class IdentifierView(BaseModel):
    kind: str = Field(description="phone, email, iban, document, imo, plate, btc, eth")
    value: str = Field(description="Normalised: E.164 phone, compact IBAN, lower-case e-mail…")


class RelatedMessage(MessageSummary):
    """Another message the reader may see that shares identifiers with this one."""

    shared: list[IdentifierView] = Field(description="Why: the identifiers both hold.")


class MessageDetail(StoredMessage):
    timeline: list[AuditEvent] = Field(description="The message's audit events, oldest first.")
    identifiers: list[IdentifierView] = Field(
        default_factory=list, description="Identifiers found in its subject and body at intake."
    )
    related: list[RelatedMessage] = Field(
        default_factory=list,
        description="Other messages the reader may see that share an identifier, newest first (at most 100).",
    )


class WatchBody(BaseModel):
    """POST /api/watches: what to watch, why, until when."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["identifier", "phrase"]
    id_kind: IdKindName | None = Field(default=None, description="For an identifier: its kind.")
    value: str = Field(min_length=1, max_length=200, description="As written; normalised when stored.")
    label: str = Field(min_length=1, max_length=100, description="Shown on the alert.")
    reason: str = Field(min_length=1, max_length=500)
    expires_at: str = Field(
        description="RFC 3339 with an offset, in the future.", max_length=40, pattern=SANE_TIME_PATTERN
    )


class WatchList(BaseModel):
    items: list[Watch] = Field(description="Newest first.")


class WatchesQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    live: bool = Field(default=True, description="Only the watches neither ended nor expired.")


class AuditQuery(BaseModel):
    """Filters for reading the audit trail, oldest first."""

    model_config = ConfigDict(extra="forbid")

    after_seq: int = Field(
        default=0, ge=0, le=2**63 - 1, description="Page: events with a larger seq than this."
    )
    limit: int = Field(default=100, ge=1, le=500)
    message_id: str | None = None
    sender: str | None = None
    type: str | None = Field(default=None, description="Event type, e.g. received, routed, rejected.")
    actor: str | None = Field(default=None, description="Who: e.g. operator:Alice, post:madrid, watchcentre.")
    since: datetime | None = Field(default=None, description="Recorded at or after (RFC 3339).")
    until: datetime | None = Field(default=None, description="Recorded before (RFC 3339).")


class AuditPage(BaseModel):
    items: list[AuditEvent]
    next_after_seq: int | None = Field(description="Pass as `after_seq` for the next page; null at the end.")


class SignIn(BaseModel):
    """POST /signin as JSON (a form with the same field works too)."""

    model_config = ConfigDict(extra="forbid")

    token: str = Field(
        min_length=1, max_length=200, description="A bearer token from `watchcentre token issue`."
    )


class SignedIn(BaseModel):
    role: str = Field(description="operator, auditor, post:<ID> or unit:<ID>.")
    name: str
    expires_at: IsoTime


class Me(SignedIn):
    """GET /api/me: who the session speaks for (the screens' header)."""

    kind: Literal["operator", "post", "unit", "auditor"] = Field(description="The role without its id.")
    subject: str | None = Field(description="The post or unit id, for post and unit roles.")
    where: str | None = Field(description="The post's city or the unit's name, when known.")


class SignedOut(BaseModel):
    signed_out: bool


# -- the operator console (adapters/http_console.py) ----------------------------------------------


CrimeCode = Annotated[str, Field(max_length=40, json_schema_extra={"enum": sorted(CRIME_CODES)})]
"""A taxonomy code (the document lists them; the service checks them: 400 naming `crime_types`)."""


class RouteRequest(BaseModel):
    """POST /api/console/route: route a triage item, or re-route a message, to chosen recipients."""

    model_config = ConfigDict(extra="forbid")

    sender: str = Field(min_length=1, max_length=200)
    message_id: str = Field(min_length=1, max_length=200)
    recipients: list[str] = Field(
        max_length=50, description="Routing keys: post.<ID>, unit.<ID>, centre.inbox."
    )
    reason: str = Field(
        max_length=2000,
        pattern=NOT_BLANK,
        description="Required (not blank); recorded in the audit and the routing.",
    )
    revision: int | None = Field(
        default=None,
        ge=0,
        le=2**31 - 1,
        description="Manual decisions already taken on it, as the operator saw: 409 if stale.",
    )
    override_marking: bool = Field(
        default=False,
        description="Route it even where its handling marking (or its case's) does not allow these recipients;"
        " without it such a routing is refused (409, field `recipients`). Recorded in the audit event.",
    )
    override_reason: str | None = Field(
        default=None,
        max_length=2000,
        description="Why the marking is overridden: required with override_marking.",
    )
    crime_types: list[CrimeCode] | None = Field(
        default=None,
        max_length=MAX_CRIME_TYPES,
        description="The operator's correction of its crime types, primary first (taxonomy codes);"
        " absent: not corrected. Kept as a label (who, why) for `watchcentre eval`.",
    )
    countries: list[Annotated[str, Field(pattern=r"^[A-Za-z]{2}$")]] | None = Field(
        default=None,
        max_length=MAX_COUNTRIES,
        description="The operator's correction of its foreign countries (ISO 3166-1 alpha-2); absent: not corrected.",
    )


class RuleCount(BaseModel):
    rule: str = Field(description='`code: rule "phrase"` behind a wrong label, or `code: missed`.')
    count: int


class Corrections(BaseModel):
    """Which rules most often needed an operator's correction."""

    corrected: int = Field(description="Messages whose crime types or countries an operator corrected.")
    rules: list[RuleCount]


class RouteResult(BaseModel):
    routing: Routing
    events: list[AuditEvent] = Field(description="The committed `routed` event (actor, reason, copies).")


class ReinjectRequest(BaseModel):
    """POST /api/console/dead/{letter_id}/reinject."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(
        max_length=2000, pattern=NOT_BLANK, description="Required (not blank): what was corrected, and why."
    )
    envelope: dict[str, Any] | None = Field(
        default=None, description="The corrected envelope (must now be valid); absent: the original bytes."
    )


class ReinjectResult(BaseModel):
    letter: DeadLetterView
    events: list[AuditEvent] = Field(description="The committed `replayed` event.")


class DeadLetterList(BaseModel):
    items: list[DeadLetterView]


class TriageItem(MessageSummary):
    why: str = Field(description="Why the rules sent it to triage.")


class ConsolePage(BaseModel):
    items: list[TriageItem]


class Recipient(BaseModel):
    key: str
    label: str


class RecipientList(BaseModel):
    items: list[Recipient]
    crime_types: list[str]


class Segment(BaseModel):
    text: str
    mark: dict[str, Any] | None = Field(
        default=None, description="target, rule, negated_by of a matched phrase."
    )


class Highlights(BaseModel):
    subject: list[Segment]
    body: list[Segment]


class ConsoleMessage(MessageDetail):
    highlights: Highlights = Field(description="Subject and body cut into plain text and matched phrases.")
    evidence: list[str]
    manual: list[ManualRecord] = Field(description="Manual decisions taken on it, oldest first.")


class NoteList(BaseModel):
    items: list[Note] = Field(description="Newest first.")


class Glance(Tallies):
    hours: int
    triage: int = Field(description="Messages waiting in triage now.")


SUMMARY_FIELDS: frozenset[str] = frozenset(MessageSummary.model_fields)
"""The StoredMessage fields a list item carries."""


# -- the request lifecycle (adapters/http_cases.py, docs/lifecycle.md) -----------------------------


class CaseSummary(BaseModel):
    """One case in GET /api/cases and a post's inbox (the operator console depends on this shape)."""

    reference: str
    state: str = Field(
        description="routed, triage, acknowledged, in_progress, answered, closed, rejected, withdrawn."
    )
    priority: str
    subject: str = Field(description="Empty once the case's free text was erased (`purged_at`).")
    sender: str = Field(description="The unit (or the centre) that sent the request.")
    crime_types: list[str]
    countries: list[str]
    recipients: list[str] = Field(description="Routing keys the request was routed to.")
    opened_at: IsoTime
    ack_due_at: IsoTime
    due_at: IsoTime | None = Field(
        description="Effective answer due time; null while a clarification is pending."
    )
    time_left_seconds: int | None = Field(
        description="Until due_at (negative when late; frozen while suspended); null once no answer is awaited."
    )
    overdue: bool
    acknowledged_at: IsoTime | None
    answered_at: IsoTime | None
    purged_at: IsoTime | None = Field(
        default=None, description="Set once its free text was erased (retention); its dates and states stay."
    )
    clarification_pending: bool = Field(description="A clarification was asked and awaits its answer.")


CASE_SUMMARY_FIELDS: tuple[str, ...] = tuple(CaseSummary.model_fields)


class CaseList(BaseModel):
    items: list[CaseSummary] = Field(
        description="One page: the next `limit` cases newest first (by opened_at, then reference),"
        " shown overdue first, then the least time left."
    )
    next: str | None = Field(description="Pass as `before` for the next (older) page; null at the end.")


class CaseTimelineEvent(BaseModel):
    seq: int
    at: datetime
    type: str
    actor: str
    sender: str | None
    message_id: str | None
    reference: str | None
    details: dict[str, Any]


class CaseDetail(CaseSummary):
    """GET /api/requests/{reference} and the answer to a case action."""

    access: Literal["direct", "indirect"]
    message_id: str = Field(description="The request's message_id.")
    legal_due_at: IsoTime | None = Field(description="Due time by the rules (clarification pauses included).")
    expected_at: IsoTime | None = Field(description="A new expected time the post recorded, if any.")
    extension_reason: str | None
    clarification_since: IsoTime | None
    paused_seconds: float = Field(
        description="Time the clock was suspended for clarification (ended pauses)."
    )
    closed_at: IsoTime | None
    answered_on_time: bool | None = Field(description="Answered by legal_due_at; null while unanswered.")
    timeline: list[CaseTimelineEvent] = Field(description="Every audit event of the case, oldest first.")


class CaseActionBody(BaseModel):
    """Optional body of POST /api/cases/{reference}/{action}."""

    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, max_length=2000, description="Why (required for extend).")
    expected_at: str | None = Field(
        default=None, description="extend: the new expected answer time, RFC 3339 with an offset."
    )
    clarification: Literal["request", "answer"] | None = Field(
        default=None,
        description="clarification: request (a post; suspends the deadline) or answer (the unit).",
    )


class ConflictDetail(ErrorDetail):
    current_state: str = Field(description="The case's state, which does not allow the action.")


class ConflictBody(BaseModel):
    error: ConflictDetail


CASE_PAGE_MAX = 1000


class CasePageQuery(BaseModel):
    """Keyset paging of cases, newest first: GET /api/posts/{post_id}/inbox."""

    model_config = ConfigDict(extra="forbid")

    limit: int = Field(default=500, ge=1, le=CASE_PAGE_MAX, description="Cases per page (1 to 1000).")
    before: str | None = Field(
        default=None, max_length=400, description="The `next` of the previous page (an opaque cursor)."
    )


class CasesQuery(CasePageQuery):
    """GET /api/cases."""

    open: bool | None = Field(default=None, description="true: only cases still awaiting an answer.")


class StatsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    since: datetime | None = Field(default=None, description="Cases opened at or after (RFC 3339).")
    until: datetime | None = Field(default=None, description="Cases opened before (RFC 3339).")


class Durations(BaseModel):
    count: int
    median: float | None = Field(description="Seconds.")
    p90: float | None = Field(description="Seconds, 90th percentile (nearest rank).")


class Stats(BaseModel):
    since: IsoTime | None
    until: IsoTime | None
    total: int
    by_crime_type: dict[str, int]
    by_country: dict[str, int]
    by_post: dict[str, int] = Field(description="Post ids; `triage` for cases routed to no post.")
    by_state: dict[str, int]
    time_to_ack_seconds: Durations
    time_to_answer_seconds: Durations
    answered: int
    answered_on_time: int
    share_answered_on_time: float | None


# -- query strings of routes that had none declared before the route table ------------------------


class NoQuery(BaseModel):
    """A route that takes no query parameter: any is refused (400 naming it)."""

    model_config = ConfigDict(extra="forbid")


class MessageLookup(BaseModel):
    """GET /api/messages/{message_id}."""

    sender: str | None = Field(
        default=None, description="Disambiguates a message_id used by several senders."
    )


class ConsoleMessageQuery(BaseModel):
    """GET /api/console/message."""

    message_id: str = Field(min_length=1, max_length=200, description="The sender's message_id.")
    sender: str | None = Field(
        default=None, description="Disambiguates a message_id used by several senders."
    )


class FeedQuery(BaseModel):
    after: int | None = Field(
        default=None,
        ge=0,
        le=2**63 - 1,
        description="Resume after this audit seq (back-fill from the store).",
    )


class DeadLetterQuery(BaseModel):
    limit: int = Field(default=200, ge=1, le=1000, description="At most this many (1 to 1000).")


class NotesQuery(BaseModel):
    limit: int = Field(default=50, ge=1, le=500, description="1 to 500.")
    before_id: int | None = Field(
        default=None, ge=1, le=2**63 - 1, description="Page: notes older than this id."
    )


class GlanceQuery(BaseModel):
    hours: int = Field(default=24, ge=1, le=24 * 31, description="1 to 744.")


# -- data protection (docs/data-protection.md) ------------------------------------------------------


class SubjectQuery(BaseModel):
    """A person's request: every stored text that mentions an identifier."""

    model_config = ConfigDict(extra="forbid")

    q: str = Field(
        min_length=3,
        max_length=200,
        description="A name, a passport or phone number...: matched case-insensitively, separators"
        " of numbers (spaces, dots, dashes) ignored. The audit records its SHA-256, not the text.",
    )
    limit: int = Field(default=500, ge=1, le=5000, description="At most this many of each kind.")


class CaseMention(BaseModel):
    reference: str
    state: str
    opened_at: datetime
    closed_at: datetime | None
    purged_at: datetime | None


class NoteMention(BaseModel):
    id: int | None
    at: datetime
    author: str


class SubjectSearch(BaseModel):
    query_sha256: str = Field(description="What the audit recorded of the query.")
    messages: list[MessageSummary]
    cases: list[CaseMention]
    notes: list[NoteMention]
    truncated: bool = Field(description="More than `limit` of one kind: narrow the query.")


class SubjectExport(BaseModel):
    """Everything stored that mentions the identifier, whole: for the person, or an inspection."""

    exported_at: datetime
    exported_by: str
    query_sha256: str
    messages: list[StoredMessage]
    cases: list[Case]
    notes: list[Note]
    truncated: bool


class AuditExportQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    since: datetime | None = Field(default=None, description="From the first record at or after (RFC 3339).")
    until: datetime | None = Field(default=None, description="To the last record before (RFC 3339).")


LANGS: tuple[str, ...] = ("en", "fr")
"""The languages of the screens (web/locales/<lang>/)."""


class LabelsQuery(BaseModel):
    """GET /api/labels."""

    model_config = ConfigDict(extra="forbid")

    lang: Literal["en", "fr"] = Field(description="The language of the words: en or fr.")


class Labels(BaseModel):
    """The words for codes in one language: what the screens show, with the code on hover."""

    lang: str
    crime_types: dict[str, str] = Field(description="Taxonomy code → its label (config/taxonomy.yaml).")
    countries: dict[str, str] = Field(description="ISO 3166-1 alpha-2 → the country's name (pycountry).")


class SendBody(BaseModel):
    """POST /api/send: what a post or a unit writes; the sender is the session's party."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["information", "request"] = Field(description="information, or a request (opens a case).")
    subject: str = Field(min_length=1, max_length=1000, pattern=NOT_BLANK)
    body: str = Field(min_length=1, max_length=100_000, pattern=NOT_BLANK)
    priority: Literal["urgent", "normal"] = "normal"
    countries: list[str] = Field(default_factory=list, max_length=50, description="ISO alpha-2 hints.")
    crime_types: list[str] = Field(default_factory=list, max_length=20, description="Taxonomy code hints.")
    reference: str | None = Field(default=None, max_length=80, description="A case this is about.")
    access: Literal["direct", "indirect"] | None = Field(
        default=None, description="request: whether the information asked for is directly accessible."
    )


class SendResult(BaseModel):
    message: MessageSummary = Field(description="The message as routed (or sent to triage).")
