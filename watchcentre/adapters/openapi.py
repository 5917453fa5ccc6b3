"""The HTTP API's wire shapes and its OpenAPI 3.1 document.

The response models here are what `watchcentre.adapters.http` writes, so the document and the
server cannot drift apart. Regenerate the checked-in copy with:

    python -m watchcentre.adapters.openapi > docs/openapi.json
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from watchcentre import __version__
from watchcentre.core.audit_chain import Verification
from watchcentre.core.envelope import Envelope, Routing
from watchcentre.core.manual import ManualRecord, Note, NoteInput, Tallies
from watchcentre.core.network import LiaisonOfficer
from watchcentre.core.records import AuditEvent, DeadLetterView, MessageQuery, Status, StoredMessage
from watchcentre.core.taxonomy import CRIME_CODES

REF_TEMPLATE = "#/components/schemas/{model}"
RFC3339_PATTERN = r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"
SANE_TIME_PATTERN = RFC3339_PATTERN.replace(r"^\d{4}", r"^20(0[1-9]|[1-8]\d|9[0-8])")
"""What the document promises is accepted: years 2001-2098, inside core/bounds.py's range whatever
the offset (the server checks the range itself, with its own message)."""

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


class MessagePage(BaseModel):
    items: list[MessageSummary] = Field(description="Newest first.")
    next_before_id: int | None = Field(description="Pass as `before_id` for the next page; null at the end.")


class MessageDetail(StoredMessage):
    timeline: list[AuditEvent] = Field(description="The message's audit events, oldest first.")


class AuditQuery(BaseModel):
    """Filters for reading the audit trail, oldest first."""

    model_config = ConfigDict(extra="forbid")

    after_seq: int = Field(default=0, ge=0, le=2**63 - 1, description="Page: events with a larger seq than this.")
    limit: int = Field(default=100, ge=1, le=500)
    message_id: str | None = None
    sender: str | None = None
    type: str | None = Field(default=None, description="Event type, e.g. received, routed, rejected.")


class AuditPage(BaseModel):
    items: list[AuditEvent]
    next_after_seq: int | None = Field(description="Pass as `after_seq` for the next page; null at the end.")


class SignIn(BaseModel):
    """POST /signin as JSON (a form with the same field works too)."""

    model_config = ConfigDict(extra="forbid")

    token: str = Field(min_length=1, max_length=200, description="A bearer token from `watchcentre token issue`.")


class SignedIn(BaseModel):
    role: str = Field(description="operator, auditor, post:<ID> or unit:<ID>.")
    name: str
    expires_at: datetime


class SignedOut(BaseModel):
    signed_out: bool


# -- the operator console (adapters/http_console.py) ----------------------------------------------


class RouteRequest(BaseModel):
    """POST /api/console/route: route a triage item, or re-route a message, to chosen recipients."""

    model_config = ConfigDict(extra="forbid")

    sender: str = Field(min_length=1, max_length=200)
    message_id: str = Field(min_length=1, max_length=200)
    recipients: list[str] = Field(max_length=50, description="Routing keys: post.<ID>, unit.<ID>, centre.inbox.")
    reason: str = Field(
        max_length=2000, pattern=r"\S", description="Required (not blank); recorded in the audit and the routing."
    )
    revision: int | None = Field(
        default=None, ge=0, le=2**31 - 1, description="Manual decisions already taken on it, as the operator saw: 409 if stale."
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


class RouteResult(BaseModel):
    routing: Routing
    events: list[AuditEvent] = Field(description="The committed `routed` event (actor, reason, copies).")


class ReinjectRequest(BaseModel):
    """POST /api/console/dead/{letter_id}/reinject."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(
        max_length=2000, pattern=r"\S", description="Required (not blank): what was corrected, and why."
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
    mark: dict[str, Any] | None = Field(default=None, description="target, rule, negated_by of a matched phrase.")


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
    subject: str
    sender: str = Field(description="The unit (or the centre) that sent the request.")
    crime_types: list[str]
    countries: list[str]
    recipients: list[str] = Field(description="Routing keys the request was routed to.")
    opened_at: datetime
    ack_due_at: datetime
    due_at: datetime | None = Field(
        description="Effective answer due time; null while a clarification is pending."
    )
    time_left_seconds: int | None = Field(
        description="Until due_at (negative when late; frozen while suspended); null once no answer is awaited."
    )
    overdue: bool
    acknowledged_at: datetime | None
    answered_at: datetime | None


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
    legal_due_at: datetime | None = Field(
        description="Due time by the rules (clarification pauses included)."
    )
    expected_at: datetime | None = Field(description="A new expected time the post recorded, if any.")
    extension_reason: str | None
    clarification_pending: bool
    clarification_since: datetime | None
    paused_seconds: float = Field(
        description="Time the clock was suspended for clarification (ended pauses)."
    )
    closed_at: datetime | None
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
    since: datetime | None
    until: datetime | None
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


_MODELS: list[tuple[type[BaseModel], JsonSchemaMode]] = [
    (ErrorBody, "serialization"),
    (Health, "serialization"),
    (PostList, "serialization"),
    (UnitList, "serialization"),
    (MessagePage, "serialization"),
    (MessageDetail, "serialization"),
    (AuditPage, "serialization"),
    (Verification, "serialization"),
    (SignIn, "validation"),
    (SignedIn, "serialization"),
    (SignedOut, "serialization"),
    (CaseList, "serialization"),
    (CaseDetail, "serialization"),
    (CaseActionBody, "validation"),
    (ConflictBody, "serialization"),
    (CasesQuery, "validation"),
    (CasePageQuery, "validation"),
    (Stats, "serialization"),
    (Envelope, "validation"),
    (MessageQuery, "validation"),
    (AuditQuery, "validation"),
    (RouteRequest, "validation"),
    (RouteResult, "serialization"),
    (ReinjectRequest, "validation"),
    (ReinjectResult, "serialization"),
    (DeadLetterList, "serialization"),
    (ConsolePage, "serialization"),
    (RecipientList, "serialization"),
    (ConsoleMessage, "serialization"),
    (NoteInput, "validation"),
    (Note, "serialization"),
    (NoteList, "serialization"),
    (Glance, "serialization"),
]

# -- the document --------------------------------------------------------------------------------


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF_TEMPLATE.format(model=model.__name__)}


def _json(model: type[BaseModel], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(model)}}}


def _query_parameters(schema: dict[str, Any]) -> list[dict[str, Any]]:
    """One `in: query` parameter per property of a query model's schema."""
    out: list[dict[str, Any]] = []
    for name, prop in schema["properties"].items():
        param: dict[str, Any] = {"name": name, "in": "query", "required": False, "schema": _not_null(prop)}
        if "description" in prop:
            param["description"] = prop["description"]
        out.append(param)
    return out


def _not_null(prop: dict[str, Any]) -> dict[str, Any]:
    """A parameter is absent rather than null: `anyOf: [X, null]` becomes X (keeping a real default)."""
    any_of = prop.get("anyOf")
    if isinstance(any_of, list) and len(any_of) == 2 and {"type": "null"} in any_of:
        out = dict(next(b for b in any_of if b != {"type": "null"}))
    else:
        out = {k: v for k, v in prop.items() if k not in ("title", "description")}
    if prop.get("default") is not None:
        out["default"] = prop["default"]
    return out


_BAD_REQUEST = {"400": _json(ErrorBody, "A query parameter is invalid; `field` names it.")}
_RATE_LIMITED = {
    "429": {
        **_json(ErrorBody, "Too many failed authentications from this address; see Retry-After."),
        "headers": {"Retry-After": {"schema": {"type": "string"}, "description": "Seconds to wait."}},
    }
}
_ERRORS = {
    "401": {
        **_json(ErrorBody, "No valid token (missing, unknown, expired or revoked)."),
        "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
    },
    "403": _json(ErrorBody, "The role may not use this route (see docs/security.md)."),
    **_RATE_LIMITED,
    "500": _json(ErrorBody, "Unexpected failure (no detail is disclosed)."),
}
_PUBLIC_ERRORS = {"500": _ERRORS["500"]}
_HTML = {"text/html": {"schema": {"type": "string"}}}


def openapi_document(version: str = __version__) -> dict[str, Any]:
    """The OpenAPI 3.1 description of the HTTP API, schemas from the pydantic models."""
    _, top = models_json_schema(_MODELS, ref_template=REF_TEMPLATE)
    schemas: dict[str, Any] = top.get("$defs", {})
    message_params = _query_parameters(schemas["MessageQuery"])
    for p in message_params:
        if p["name"] in ("since", "until"):
            p["description"] = "RFC 3339 time with an offset, e.g. 2024-05-01T08:00:00Z."
            p["schema"] = {"type": "string", "format": "date-time", "pattern": SANE_TIME_PATTERN}
        elif p["name"] == "country":
            p["schema"] = {"type": "string", "pattern": "^[A-Za-z]{2}$"}
            p["description"] = "ISO 3166-1 alpha-2 (either case)."
        elif p["name"] == "crime_type":
            p["schema"] = {"type": "string", "enum": sorted(CRIME_CODES)}
    audit_params = _query_parameters(schemas["AuditQuery"])
    case_params = _query_parameters(schemas["CasesQuery"])
    page_params = _query_parameters(schemas["CasePageQuery"])

    paths: dict[str, Any] = {
        "/health": {
            "get": {
                "operationId": "health",
                "security": [],
                "summary": "Readiness of the service and its dependencies",
                "responses": {
                    "200": _json(Health, "Every check passes."),
                    "503": _json(Health, "At least one check fails."),
                    **_PUBLIC_ERRORS,
                },
            }
        },
        "/metrics": {
            "get": {
                "operationId": "metrics",
                "summary": "Prometheus metrics (an operator token, or the scraper token WATCHCENTRE_METRICS_TOKEN)",
                "responses": {
                    "200": {
                        "description": "Prometheus text exposition format.",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    **_ERRORS,
                },
            }
        },
        "/api/posts": {
            "get": {
                "operationId": "listPosts",
                "summary": "The posts abroad, the countries each covers, and their routing keys",
                "responses": {"200": _json(PostList, "Operators: every post; a post: itself; others: none."), **_ERRORS},
            }
        },
        "/api/units": {
            "get": {
                "operationId": "listUnits",
                "summary": "The French units, their crime areas, and their routing keys",
                "responses": {"200": _json(UnitList, "Operators: every unit; a unit: itself; others: none."), **_ERRORS},
            }
        },
        "/api/messages": {
            "get": {
                "operationId": "listMessages",
                "summary": "Stored messages the caller may see, newest first, filtered and paged (audited)",
                "parameters": message_params,
                "responses": {"200": _json(MessagePage, "One page of summaries."), **_BAD_REQUEST, **_ERRORS},
            }
        },
        "/api/messages/{message_id}": {
            "get": {
                "operationId": "getMessage",
                "summary": "One stored message with its routing explanation and audit timeline (audited)",
                "parameters": [
                    {
                        "name": "message_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                        "description": "The sender's message_id.",
                    },
                    {
                        "name": "sender",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string"},
                        "description": "Disambiguates a message_id used by several senders.",
                    },
                ],
                "responses": {
                    "200": _json(MessageDetail, "The message."),
                    "404": _json(ErrorBody, "No such message, or not one the caller may see."),
                    **_BAD_REQUEST,
                    **_ERRORS,
                },
            }
        },
        "/api/audit": {
            "get": {
                "operationId": "listAudit",
                "summary": "The audit trail, oldest first, filtered and paged",
                "parameters": audit_params,
                "responses": {"200": _json(AuditPage, "One page of events."), **_BAD_REQUEST, **_ERRORS},
            }
        },
        "/api/audit/verify": {
            "get": {
                "operationId": "verifyAudit",
                "summary": "Walk the audit trail: the hash chain, gaps in seq, the signed anchor of its head",
                "responses": {
                    "200": _json(Verification, "The verification; ok: false lists every finding in problems."),
                    **_BAD_REQUEST,
                    **_ERRORS,
                },
            }
        },
        "/signin": {
            "get": {
                "operationId": "signInPage",
                "summary": "The sign-in page (a form that takes a token)",
                "security": [],
                "responses": {"200": {"description": "An HTML form.", "content": _HTML}, **_PUBLIC_ERRORS},
            },
            "post": {
                "operationId": "signIn",
                "summary": "Check a token and keep it in the wc_session cookie (Secure, HttpOnly, SameSite=Strict)",
                "security": [],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": _ref(SignIn)},
                        "application/x-www-form-urlencoded": {"schema": _ref(SignIn)},
                    },
                },
                "responses": {
                    "200": _json(SignedIn, "Signed in (JSON request); the cookie is set."),
                    "303": {"description": "Signed in (form); the cookie is set; to the console."},
                    "400": _json(ErrorBody, "The body is not valid; `field` names the problem."),
                    "401": {
                        "description": "The token is invalid, expired or revoked.",
                        "content": {**_json(ErrorBody, "")["content"], **_HTML},
                    },
                    "403": _json(ErrorBody, "A cross-origin sign-in."),
                    "413": _json(ErrorBody, "The body is over 4 KiB."),
                    "415": _json(ErrorBody, "Neither a form nor JSON."),
                    **_RATE_LIMITED,
                    **_PUBLIC_ERRORS,
                },
            },
        },
        "/signout": {
            "post": {
                "operationId": "signOut",
                "summary": "Clear the wc_session cookie",
                "security": [],
                "responses": {"200": _json(SignedOut, "The cookie is cleared."), **_PUBLIC_ERRORS},
            }
        },
        "/api/schema/envelope": {
            "get": {
                "operationId": "envelopeSchema",
                "summary": "JSON Schema of the envelope senders publish",
                "responses": {
                    "200": {
                        "description": "A JSON Schema document.",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
                    **_ERRORS,
                },
            }
        },
        "/api/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document",
                "responses": {
                    "200": {
                        "description": "An OpenAPI 3.1 document.",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
                    **_ERRORS,
                },
            }
        },
    }
    paths.update(_case_paths(case_params, page_params))
    paths.update(_console_paths())
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "watchcentre",
            "version": version,
            "description": "Message routing for an international police-cooperation watch centre.",
        },
        "paths": paths,
        "security": [{"bearerAuth": []}, {"sessionCookie": []}],
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A token from `watchcentre token issue` (wct_…); roles in docs/security.md.",
                },
                "sessionCookie": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": "wc_session",
                    "description": "Set by POST /signin.",
                },
            },
        },
    }


def _path_param(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
        "description": description,
    }


_REFERENCE = _path_param("reference", "The case reference, e.g. WC-2026-7KQ2M9XH4TF.")
_PERIOD = [
    {
        "name": name,
        "in": "query",
        "required": False,
        "schema": {"type": "string", "format": "date-time", "pattern": SANE_TIME_PATTERN},
        "description": f"Cases opened {'at or after' if name == 'since' else 'before'} (RFC 3339).",
    }
    for name in ("since", "until")
]
_NO_CASE = {"404": _json(ErrorBody, "No such case, or not one the caller may see.")}


def _case_paths(case_params: list[dict[str, Any]], page_params: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "/api/cases": {
            "get": {
                "operationId": "listCases",
                "summary": "Cases the caller may see, newest first in pages; in a page overdue first (audited)",
                "description": (
                    "Need-to-know is part of the query: an operator sees every case, a post the cases routed"
                    " to it, a unit the requests it sent. Follow `next` (as `before`) for older cases."
                ),
                "parameters": case_params,
                "responses": {"200": _json(CaseList, "One page of cases."), **_BAD_REQUEST, **_ERRORS},
            }
        },
        "/api/cases/{reference}/{action}": {
            "post": {
                "operationId": "actOnCase",
                "summary": "Acknowledge, progress, answer, close, reject, withdraw, clarification, extend",
                "description": (
                    "Posts: ack, progress, answer, reject, clarification (request), extend. Units: close, "
                    "withdraw, clarification (answer). Operators: all. See docs/lifecycle.md for the transitions."
                ),
                "parameters": [
                    _REFERENCE,
                    {
                        "name": "action",
                        "in": "path",
                        "required": True,
                        "schema": {
                            "type": "string",
                            "enum": [
                                "ack",
                                "progress",
                                "answer",
                                "close",
                                "reject",
                                "withdraw",
                                "clarification",
                                "extend",
                            ],
                        },
                    },
                ],
                "requestBody": {
                    "required": False,
                    "content": {"application/json": {"schema": _ref(CaseActionBody)}},
                },
                "responses": {
                    "200": _json(CaseDetail, "The case after the action."),
                    "400": _json(ErrorBody, "The body is not valid; `field` names the problem."),
                    **_NO_CASE,
                    "409": _json(ConflictBody, "The case's state (or the caller's side) does not allow it."),
                    "415": _json(ErrorBody, "A body that is not JSON."),
                    **_ERRORS,
                },
            }
        },
        "/api/posts/{post_id}/inbox": {
            "get": {
                "operationId": "postInbox",
                "summary": "Open requests routed to the post, newest first in pages; in a page overdue first (audited)",
                "parameters": [_path_param("post_id", "A post id (an operator, or that post)."), *page_params],
                "responses": {
                    "200": _json(CaseList, "One page of open cases."),
                    "404": _json(ErrorBody, "No such post, or not the caller's."),
                    **_BAD_REQUEST,
                    **_ERRORS,
                },
            }
        },
        "/api/requests/{reference}": {
            "get": {
                "operationId": "trackRequest",
                "summary": "A request's state, recipients, due times and time left, and its full timeline (audited)",
                "parameters": [_REFERENCE],
                "responses": {"200": _json(CaseDetail, "The case."), **_NO_CASE, **_ERRORS},
            }
        },
        "/track/{reference}": {
            "get": {
                "operationId": "trackPage",
                "summary": "The same as a small HTML page, readable on a phone (sign in first)",
                "parameters": [_REFERENCE],
                "responses": {
                    "200": {"description": "An HTML page.", "content": _HTML},
                    **_NO_CASE,
                    **_ERRORS,
                },
            }
        },
        "/api/stats": {
            "get": {
                "operationId": "stats",
                "summary": "Requests by crime type, country, post, state; time to ack and answer; on-time share",
                "description": "Operators only. Every case opened in [since, until).",
                "parameters": _PERIOD,
                "responses": {"200": _json(Stats, "The statistics."), **_BAD_REQUEST, **_ERRORS},
            }
        },
        "/api/stats.csv": {
            "get": {
                "operationId": "statsCsv",
                "summary": "The statistics as CSV rows (section, key, value)",
                "parameters": _PERIOD,
                "responses": {
                    "200": {"description": "CSV.", "content": {"text/csv": {"schema": {"type": "string"}}}},
                    **_BAD_REQUEST,
                    **_ERRORS,
                },
            }
        },
    }
def _console_paths() -> dict[str, Any]:
    """The operator console's routes: operators only (403 for every other role)."""

    def op(operation_id: str, summary: str, ok: dict[str, Any], **more: Any) -> dict[str, Any]:
        return {"operationId": operation_id, "summary": summary, "tags": ["console"], **more,
                "responses": {**ok, **_BAD_REQUEST, **_ERRORS}}

    def body(model: type[BaseModel]) -> dict[str, Any]:
        return {"required": True, "content": {"application/json": {"schema": _ref(model)}}}

    def query(
        name: str, description: str, required: bool = False, kind: str = "string", bounds: tuple[int, int] | None = None
    ) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": kind, **({"minLength": 1} if required and kind == "string" else {})}
        if bounds is not None:
            schema |= {"minimum": bounds[0], "maximum": bounds[1]}
        return {"name": name, "in": "query", "required": required, "schema": schema, "description": description}

    not_found = {"404": _json(ErrorBody, "No such message or dead letter (or already re-injected).")}
    # fmt: off
    return {
        "/": {
            "get": {
                "operationId": "consolePage",
                "summary": "The operator console (a static page; its assets are under /console/)",
                "security": [],
                "responses": {"200": {"description": "The page.", "content": _HTML}, **_PUBLIC_ERRORS},
            }
        },
        "/api/console/feed": {
            "get": op(
                "consoleFeed",
                "Live feed (WebSocket): a snapshot, or with ?after=<seq> the feed events after that audit seq"
                " (back-fill), then live events from P.events; every item carries its seq",
                {"101": {"description": "Switching to the WebSocket protocol."}},
                parameters=[query("after", "Resume after this audit seq (back-fill from the store).", kind="integer", bounds=(0, 2**63 - 1))],
            )
        },
        "/api/console/triage": {
            "get": op("consoleTriage", "Messages waiting in triage, newest first (audited)",
                      {"200": _json(ConsolePage, "The triage queue.")})
        },
        "/api/console/recipients": {
            "get": op("consoleRecipients", "Recipients an operator may choose, and the crime type codes",
                      {"200": _json(RecipientList, "Posts, units and the centre's inbox.")})
        },
        "/api/console/message": {
            "get": op(
                "consoleMessage",
                "One message: envelope, routing, matched phrases, manual decisions, audit timeline (audited)",
                {"200": _json(ConsoleMessage, "The message."), **not_found},
                parameters=[query("message_id", "The sender's message_id.", required=True),
                            query("sender", "Disambiguates a message_id used by several senders.")],
            )
        },
        "/api/console/route": {
            "post": op(
                "consoleRoute",
                "Route a triage item, or re-route a message, to chosen recipients with a reason (audited)",
                {"200": _json(RouteResult, "Published (confirmed) and recorded."), **not_found,
                 "409": _json(ErrorBody, "Another manual decision was taken (or its case changed) meanwhile:"
                              " reload; or its handling marking does not allow these recipients (field"
                              " `recipients`): set override_marking with override_reason.")},
                requestBody=body(RouteRequest),
            )
        },
        "/api/console/dead": {
            "get": op("consoleDeadLetters", "The dead-letter queue as a work queue (nothing is removed)",
                      {"200": _json(DeadLetterList, "Dead letters, oldest first.")},
                      parameters=[query("limit", "At most this many (1 to 1000).", kind="integer", bounds=(1, 1000))])
        },
        "/api/console/dead/{letter_id}/reinject": {
            "post": op(
                "consoleReinject",
                "Re-inject one dead letter, as it was or corrected (audited; at most once)",
                {"200": _json(ReinjectResult, "Back in intake, recorded, out of the dead-letter queue."), **not_found},
                requestBody=body(ReinjectRequest),
                parameters=[{"name": "letter_id", "in": "path", "required": True, "schema": {"type": "string"}}],
            )
        },
        "/api/console/notes": {
            "get": op("consoleNotes", "The shift log, newest first",
                      {"200": _json(NoteList, "Handover notes.")},
                      parameters=[query("limit", "1 to 500.", kind="integer", bounds=(1, 500)),
                                  query("before_id", "Page: notes older than this id.", kind="integer", bounds=(1, 2**63 - 1))]),
            "post": op("consoleAddNote", "Write a handover note, linked to messages and cases (audited)",
                       {"201": _json(Note, "The note as stored.")}, requestBody=body(NoteInput)),
        },
        "/api/console/glance": {
            "get": op("consoleGlance", "Counts by crime type and by country over the last hours (24 by default)",
                      {"200": _json(Glance, "The counts.")},
                      parameters=[query("hours", "1 to 744.", kind="integer", bounds=(1, 744))])
        },
    }
    # fmt: on


if __name__ == "__main__":
    import sys

    import orjson

    sys.stdout.buffer.write(orjson.dumps(openapi_document(), option=orjson.OPT_INDENT_2) + b"\n")
