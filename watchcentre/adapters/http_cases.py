"""The HTTP side of the request lifecycle (docs/lifecycle.md): cases, a post's inbox, actions,
investigator tracking (JSON and a phone-friendly page) and statistics.

Need-to-know as for messages: an operator sees every case; a post only the cases routed to it; a unit
only the requests it sent; anything else is 404, as if it did not exist. Auditors: 403. Lists are
scoped inside the store's query (`case_visibility`) and paged newest first by an opaque cursor
(`before` = the previous page's `next`); a page is shown overdue first, then the least time left.
Actions: `POST /api/cases/{reference}/{action}` with action ack|progress|answer|close|reject|withdraw|
clarification|extend and an optional JSON body {reason, expected_at, clarification}. A refused
transition is 409 with `error.current_state`.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from html import escape
from typing import Any

import orjson
from aiohttp import web

from watchcentre.adapters.http import (
    DEPS,
    ApiError,
    area,
    json_response,
    parse_json_body,
    parse_query,
    parse_time,
    principal_of,
)
from watchcentre.adapters.openapi import (
    CASE_SUMMARY_FIELDS,
    CaseActionBody,
    CasePageQuery,
    CasesQuery,
    StatsQuery,
)
from watchcentre.cases import Actor, CaseDesk, CaseNotFound, CaseRefused
from watchcentre.core.access import Area, Principal, Role, case_visibility
from watchcentre.core.bounds import visible
from watchcentre.core.lifecycle import Action, Case, DeadlineRules
from watchcentre.core.network import CENTRE
from watchcentre.core.parties import principal_side
from watchcentre.core.ports import OutboundCopy
from watchcentre.core.records import AuditEvent, CaseCursor, EventType, Visibility
from watchcentre.core.routing import post_key
from watchcentre.core.stats import case_stats, stats_rows

CASES = web.AppKey("cases", CaseDesk)
"""The case desk, set by bootstrap. Without it (an API-only app), actions still change cases and are
audited, but nothing is published."""


class _Silent:
    async def publish_routed(self, copies: Sequence[OutboundCopy]) -> None:
        return None

    async def publish_dead(self, body: bytes, reason: str, headers: Mapping[str, str]) -> None:
        return None

    async def publish_events(self, events: Sequence[AuditEvent]) -> None:
        return None

    async def publish_reply(self, to: str, body: bytes, correlation_id: str | None) -> None:
        return None


def _desk(app: web.Application) -> CaseDesk:
    desk = app.get(CASES)
    if desk is not None:
        return desk
    deps = app[DEPS]
    return CaseDesk(
        store=deps.store,
        publisher=_Silent(),
        clock=deps.clock,
        network=deps.network,
        rules=DeadlineRules.eu_default(),
    )


STATS_PAGE = 5000

ACTIONS: dict[str, Action | None] = {
    "ack": Action.ACK,
    "progress": Action.PROGRESS,
    "answer": Action.ANSWER,
    "close": Action.CLOSE,
    "reject": Action.REJECT,
    "withdraw": Action.WITHDRAW,
    "clarification": None,  # request or answer, from the body
    "extend": Action.EXTEND,
}


_NOT_TIMELINE = frozenset({EventType.ACCESSED.value, EventType.LISTED.value})


# -- views -----------------------------------------------------------------------------------------


def _iso(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat()


def case_view(case: Case, now: datetime) -> dict[str, Any]:
    left = case.time_left(now)
    return {
        "reference": case.reference,
        "state": case.state.value,
        "priority": case.priority,
        "access": case.access,
        "subject": case.subject,
        "sender": case.sender,
        "message_id": case.message_id,
        "crime_types": case.crime_types,
        "countries": case.countries,
        "recipients": case.recipients,
        "opened_at": _iso(case.opened_at),
        "ack_due_at": _iso(case.ack_due_at),
        "due_at": _iso(case.due_at),
        "legal_due_at": _iso(case.legal_due_at),
        "expected_at": _iso(case.expected_at),
        "extension_reason": case.extension_reason,
        "time_left_seconds": None if left is None else round(left),
        "overdue": case.overdue(now),
        "clarification_pending": case.clarification_since is not None,
        "clarification_since": _iso(case.clarification_since),
        "paused_seconds": case.paused_seconds,
        "acknowledged_at": _iso(case.acknowledged_at),
        "answered_at": _iso(case.answered_at),
        "closed_at": _iso(case.closed_at),
        "answered_on_time": case.answered_on_time(),
    }


def case_summary(case: Case, now: datetime) -> dict[str, Any]:
    view = case_view(case, now)
    return {k: view[k] for k in CASE_SUMMARY_FIELDS}


def _urgency(case: Case, now: datetime) -> tuple[int, float]:
    """Overdue first, then the least time left; cases no longer awaiting an answer last."""
    left = case.time_left(now)
    return (0 if case.overdue(now) else 1, math.inf if left is None else left)


# -- need-to-know ----------------------------------------------------------------------------------


def may_see(who: Principal, case: Case) -> bool:
    """Only a party sees a case (core/parties.py: the same rule as over AMQP)."""
    return principal_side(who, case) is not None


async def _visible_case(request: web.Request) -> Case:
    reference = request.match_info["reference"]
    case = await request.app[DEPS].store.get_case(reference)
    if case is None or not may_see(principal_of(request), case):
        raise ApiError(404, "no such case", "reference")
    return case


async def _timeline(request: web.Request, case: Case) -> list[dict[str, Any]]:
    events = await request.app[DEPS].store.audit(reference=case.reference, limit=10_000)
    return [
        e.model_dump(mode="json", exclude={"prev_hash", "hash"})
        for e in events
        if e.type not in _NOT_TIMELINE
    ]


async def _record(request: web.Request, case: Case | None, details: dict[str, Any]) -> None:
    deps, who = request.app[DEPS], principal_of(request)
    await deps.store.append_audit(
        [
            AuditEvent(
                at=deps.clock.now(),
                type=EventType.ACCESSED if case is not None else EventType.LISTED,
                actor=who.label,
                reference=None if case is None else case.reference,
                details={"name": who.name, "token_id": who.token_id, "route": request.path, **details},
            )
        ]
    )


# -- handlers --------------------------------------------------------------------------------------


def cursor_of(case: Case) -> str:
    """The opaque `next` cursor after `case`: where it stands in the newest-first order."""
    raw = orjson.dumps([case.opened_at.isoformat(), case.reference])
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _cursor(text: str | None) -> CaseCursor | None:
    """`before` back into a place in the order; a 400 naming it when it is not a cursor we gave."""
    if text is None:
        return None
    try:
        at, reference = orjson.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        opened_at = datetime.fromisoformat(at)
        if opened_at.tzinfo is None or not isinstance(reference, str) or not reference:
            raise ValueError("incomplete")
        return CaseCursor(opened_at.astimezone(UTC), reference)
    except (ValueError, TypeError, OverflowError, binascii.Error):  # orjson's error is a ValueError
        raise ApiError(400, "not a cursor: pass the `next` of the previous page", "before") from None


async def _case_page(
    request: web.Request, query: CasePageQuery, visibility: Visibility | None, open_only: bool
) -> tuple[list[Case], str | None]:
    """One page of the cases `visibility` lets through, scoped in the store's query; the next cursor."""
    found = await request.app[DEPS].store.list_cases(
        visibility=visibility, open_only=open_only, before=_cursor(query.before), limit=query.limit + 1
    )
    page = found[: query.limit]
    return page, cursor_of(page[-1]) if len(found) > query.limit else None


async def _case_list(
    request: web.Request,
    query: CasePageQuery,
    visibility: Visibility | None,
    open_only: bool,
    what: dict[str, Any],
) -> web.Response:
    now = request.app[DEPS].clock.now()
    page, after = await _case_page(request, query, visibility, open_only)
    await _record(request, None, {"references": [c.reference for c in page], **what})
    items = [case_summary(c, now) for c in sorted(page, key=lambda c: _urgency(c, now))]
    return json_response({"items": items, "next": after})


@area(Area.MESSAGES)
async def list_cases(request: web.Request) -> web.Response:
    query = parse_query(request, CasesQuery)
    visibility = case_visibility(principal_of(request))
    return await _case_list(request, query, visibility, bool(query.open), {"open": query.open})


@area(Area.MESSAGES)
async def post_inbox(request: web.Request) -> web.Response:
    post_id = request.match_info["post_id"]
    deps, who = request.app[DEPS], principal_of(request)
    allowed = who.role is Role.OPERATOR or (who.role is Role.POST and who.subject == post_id)
    if not allowed or post_id not in deps.network.posts_by_id:
        raise ApiError(404, "no such post", "post_id")
    query = parse_query(request, CasePageQuery)
    to_post = Visibility(senders=frozenset(), recipients=frozenset({post_key(post_id)}))
    return await _case_list(request, query, to_post, True, {"post": post_id})


@area(Area.MESSAGES)
async def get_request(request: web.Request) -> web.Response:
    case = await _visible_case(request)
    body = case_view(case, request.app[DEPS].clock.now())
    body["timeline"] = await _timeline(request, case)
    await _record(request, case, {})
    return json_response(body)


@area(Area.MESSAGES)
async def post_case_action(request: web.Request) -> web.Response:
    name = request.match_info["action"]
    if name not in ACTIONS:
        raise ApiError(404, f"no such action: use one of {', '.join(ACTIONS)}", "action")
    desk = _desk(request.app)
    case = await _visible_case(request)  # first: what the caller may not see does not exist, body or not
    body = await parse_json_body(request, CaseActionBody) if request.body_exists else CaseActionBody()
    expected_at = None if body.expected_at is None else parse_time(body.expected_at, "expected_at")
    action = ACTIONS[name]
    if action is None:
        if body.clarification is None:
            raise ApiError(400, "required: request or answer", "clarification")
        action = Action.CLARIFY_REQUEST if body.clarification == "request" else Action.CLARIFY_ANSWER
    if action is Action.EXTEND:
        if expected_at is None:
            raise ApiError(400, "required for extend", "expected_at")
        if not body.reason or not body.reason.strip():
            raise ApiError(400, "required for extend", "reason")
    who = principal_of(request)
    side = principal_side(who, case)
    if side is None:  # unreachable past _visible_case; never act for a non-party
        raise ApiError(404, "no such case", "reference")
    try:
        actor = Actor(side, who.label if who.role is not Role.OPERATOR else f"operator:{who.name}")
        after, committed = await desk.act(
            case.reference, action, actor, expected_at=expected_at, reason=body.reason
        )
    except CaseNotFound:
        raise ApiError(404, "no such case", "reference") from None
    except CaseRefused as refused:
        status = 409 if refused.current is not None else 400
        error = {"status": status, "message": refused.problem, "field": refused.field}
        if refused.current is not None:
            error["current_state"] = refused.current
        return json_response({"error": error}, status=status)
    if committed:  # the other side hears of it over AMQP as if it had been sent there
        await desk.notify(after, side, action, who.subject or CENTRE, committed[0])
    view = case_view(after, request.app[DEPS].clock.now())
    view["timeline"] = await _timeline(request, after)
    return json_response(view)


def _period(request: web.Request) -> StatsQuery:
    query = parse_query(request, StatsQuery)
    if principal_of(request).role is not Role.OPERATOR:
        raise ApiError(403, f"role {principal_of(request).label} may not use this route")
    return query


async def _stats(request: web.Request, query: StatsQuery) -> dict[str, Any]:
    """Over every case of the period the caller may see, read page by page (no cap to truncate it)."""
    store, visibility = request.app[DEPS].store, case_visibility(principal_of(request))
    cases: list[Case] = []
    before: CaseCursor | None = None
    while True:
        page = await store.list_cases(
            visibility=visibility, since=query.since, until=query.until, before=before, limit=STATS_PAGE
        )
        cases += page
        if len(page) < STATS_PAGE:
            break
        before = CaseCursor(page[-1].opened_at, page[-1].reference)
    return {"since": _iso(query.since), "until": _iso(query.until), **case_stats(cases)}


@area(Area.MESSAGES)
async def get_stats(request: web.Request) -> web.Response:
    return json_response(await _stats(request, _period(request)))


@area(Area.MESSAGES)
async def get_stats_csv(request: web.Request) -> web.Response:
    stats = await _stats(request, _period(request))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["section", "key", "value"])
    writer.writerows(stats_rows(stats))
    return web.Response(
        text=out.getvalue(),
        content_type="text/csv",
        headers={"Content-Disposition": 'attachment; filename="watchcentre-stats.csv"'},
    )


# -- the tracking page -----------------------------------------------------------------------------

_PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>{reference}: {state}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body>
<main>
<h1>{reference}</h1>
<p><strong dir="auto">{subject}</strong></p>
<dl>
{facts}
</dl>
<h2>Timeline</h2>
<ol>
{timeline}
</ol>
</main>
</body>
</html>
"""


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    late, s = seconds < 0, abs(int(seconds))
    days, rest = divmod(s, 86400)
    text = (
        f"{days} d {rest // 3600} h {rest % 3600 // 60} min"
        if days
        else f"{rest // 3600} h {rest % 3600 // 60} min"
    )
    return f"late by {text}" if late else text


@area(Area.MESSAGES)
async def track_page(request: web.Request) -> web.Response:
    case = await _visible_case(request)
    view = case_view(case, request.app[DEPS].clock.now())
    facts = [
        ("State", view["state"] + (" (waiting for clarification)" if view["clarification_pending"] else "")),
        ("Priority", view["priority"]),
        ("Sent by", view["sender"]),
        ("Sent to", ", ".join(view["recipients"])),
        ("Opened", view["opened_at"]),
        ("Acknowledgement due", view["ack_due_at"]),
        ("Acknowledged", view["acknowledged_at"] or "not yet"),
        ("Answer due", view["due_at"] or "suspended"),
        ("Time left", _duration(view["time_left_seconds"])),
        ("Answered", view["answered_at"] or "not yet"),
    ]
    if view["expected_at"]:
        facts.append(("New expected time", f"{view['expected_at']} ({view['extension_reason']})"))
    timeline = await _timeline(request, case)
    html = _PAGE.format(
        reference=escape(case.reference),
        state=escape(view["state"]),
        subject=escape(visible(case.subject)),
        facts="\n".join(
            f'<dt>{escape(k)}</dt><dd dir="auto">{escape(visible(str(v)))}</dd>' for k, v in facts
        ),
        timeline="\n".join(
            f"<li><time>{escape(str(e['at']))}</time> {escape(str(e['type']))} by "
            f"<bdi>{escape(visible(str(e['actor'])))}</bdi></li>"
            for e in timeline
        ),
    )
    await _record(request, case, {"page": "track"})
    return web.Response(text=html, content_type="text/html")


def add_case_routes(app: web.Application) -> None:
    app.router.add_get("/api/cases", list_cases)
    app.router.add_post(
        "/api/cases/{reference:.+}/{action:[a-z]+}", post_case_action
    )  # references may hold '/'
    app.router.add_get("/api/posts/{post_id}/inbox", post_inbox)
    app.router.add_get("/api/requests/{reference:.+}", get_request)
    app.router.add_get("/api/stats", get_stats)
    app.router.add_get("/api/stats.csv", get_stats_csv)
    app.router.add_get("/track/{reference:.+}", track_page)
