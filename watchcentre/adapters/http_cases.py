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
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import orjson
from aiohttp import web

from watchcentre.adapters.http_base import DEPS, ApiError, parse_time, principal_of
from watchcentre.adapters.http_models import (
    CASE_SUMMARY_FIELDS,
    CaseActionBody,
    CaseDetail,
    CaseList,
    CasePageQuery,
    CasesQuery,
    CaseSummary,
    CaseTimelineEvent,
    Stats,
    StatsQuery,
)
from watchcentre.cases import Actor, CaseDesk
from watchcentre.core.access import Principal, Role, case_visibility
from watchcentre.core.lifecycle import Action, Case
from watchcentre.core.network import CENTRE
from watchcentre.core.parties import principal_side
from watchcentre.core.records import AuditEvent, CaseCursor, EventType, Visibility
from watchcentre.core.routing import post_key
from watchcentre.core.stats import case_stats, stats_rows
from watchcentre.security import record_consultation

CASES = web.AppKey("cases", CaseDesk)
"""The case desk bootstrap builds (the service's own). Without it (an API-only app), actions on cases
answer 503: nothing acts on a case but that desk."""


def _desk(request: web.Request) -> CaseDesk:
    desk = request.app.get(CASES)
    if desk is None:
        raise ApiError(503, "case actions are not wired in this instance")
    return desk


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


STATS_PAGE = 5000
_NOT_TIMELINE = frozenset({EventType.ACCESSED.value, EventType.LISTED.value})


# -- views -----------------------------------------------------------------------------------------


def case_detail(case: Case, now: datetime, timeline: list[CaseTimelineEvent]) -> CaseDetail:
    left = case.time_left(now)
    return CaseDetail(
        reference=case.reference,
        state=case.state.value,
        priority=case.priority,
        access=case.access,
        subject=case.subject,
        sender=case.sender,
        message_id=case.message_id,
        crime_types=case.crime_types,
        countries=case.countries,
        recipients=case.recipients,
        opened_at=case.opened_at,
        ack_due_at=case.ack_due_at,
        due_at=case.due_at,
        legal_due_at=case.legal_due_at,
        expected_at=case.expected_at,
        extension_reason=case.extension_reason,
        time_left_seconds=None if left is None else round(left),
        overdue=case.overdue(now),
        clarification_pending=case.clarification_since is not None,
        clarification_since=case.clarification_since,
        paused_seconds=case.paused_seconds,
        acknowledged_at=case.acknowledged_at,
        answered_at=case.answered_at,
        closed_at=case.closed_at,
        answered_on_time=case.answered_on_time(),
        purged_at=case.purged_at,
        timeline=timeline,
    )


def case_summary(case: Case, now: datetime) -> CaseSummary:
    return CaseSummary.model_validate(case_detail(case, now, []).model_dump(include=set(CASE_SUMMARY_FIELDS)))


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


async def _timeline(request: web.Request, case: Case) -> list[CaseTimelineEvent]:
    events = await request.app[DEPS].store.audit(reference=case.reference, limit=10_000)
    return [
        CaseTimelineEvent.model_validate(_with_text(e, case), from_attributes=True)
        for e in events
        if e.type not in _NOT_TIMELINE
    ]


def _with_text(event: AuditEvent, case: Case) -> AuditEvent:
    """The event with its text (a question, an answer, a reason) put back from the case: the audit
    holds only its digest, so that a purge can erase the text and leave the chain intact."""
    text = case.texts.get(str(event.details.get("reason_sha256")))
    return event if text is None else event.model_copy(update={"details": {**event.details, "reason": text}})


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


async def _case_list(
    request: web.Request,
    query: CasePageQuery,
    visibility: Visibility | None,
    open_only: bool,
    what: dict[str, Any],
) -> CaseList:
    """One page of the cases `visibility` lets through, scoped in the store's query, with the next cursor."""
    now = request.app[DEPS].clock.now()
    found = await request.app[DEPS].store.list_cases(
        visibility=visibility, open_only=open_only, before=_cursor(query.before), limit=query.limit + 1
    )
    page = found[: query.limit]
    after = cursor_of(page[-1]) if len(found) > query.limit else None
    await _record(request, None, {"references": [c.reference for c in page], **what})
    return CaseList(
        items=[case_summary(c, now) for c in sorted(page, key=lambda c: _urgency(c, now))], next=after
    )


async def list_cases(request: web.Request, *, query: CasesQuery) -> CaseList:
    visibility = case_visibility(principal_of(request))
    return await _case_list(request, query, visibility, bool(query.open), {"open": query.open})


async def post_inbox(request: web.Request, *, query: CasePageQuery) -> CaseList:
    post_id = request.match_info["post_id"]
    deps, who = request.app[DEPS], principal_of(request)
    allowed = who.role is Role.OPERATOR or (who.role is Role.POST and who.subject == post_id)
    if not allowed or post_id not in deps.current_network().posts_by_id:
        raise ApiError(404, "no such post", "post_id")
    to_post = Visibility(senders=frozenset(), recipients=frozenset({post_key(post_id)}))
    return await _case_list(request, query, to_post, True, {"post": post_id})


async def get_request(request: web.Request) -> CaseDetail:
    case = await _visible_case(request)
    detail = case_detail(case, request.app[DEPS].clock.now(), await _timeline(request, case))
    await _record(request, case, {})
    return detail


async def post_case_action(request: web.Request, *, body: CaseActionBody | None) -> CaseDetail:
    name = request.match_info["action"]
    if name not in ACTIONS:
        raise ApiError(404, f"no such action: use one of {', '.join(ACTIONS)}", "action")
    case = await _visible_case(request)
    desk = _desk(request)
    body = body or CaseActionBody()
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
    actor = Actor(side, who.label if who.role is not Role.OPERATOR else f"operator:{who.name}")
    # a refusal (CaseNotFound, CaseRefused) is a domain error: the error middleware answers it
    after, committed = await desk.act(
        case.reference, action, actor, expected_at=expected_at, reason=body.reason
    )
    if committed:  # the other side hears of it over AMQP as if it had been sent there
        await desk.notify(after, side, action, who.subject or CENTRE, committed[0], body.reason)
    return case_detail(after, request.app[DEPS].clock.now(), await _timeline(request, after))


def _operators_only(request: web.Request) -> None:
    if principal_of(request).role is not Role.OPERATOR:
        raise ApiError(403, f"role {principal_of(request).label} may not use this route")


async def _stats(request: web.Request, query: StatsQuery) -> Stats:
    _operators_only(request)
    store, visibility = request.app[DEPS].store, case_visibility(principal_of(request))
    cases: list[Case] = []
    before: CaseCursor | None = None
    while True:  # every case of the period the caller may see, page by page (no cap to truncate it)
        page = await store.list_cases(
            visibility=visibility, since=query.since, until=query.until, before=before, limit=STATS_PAGE
        )
        cases += page
        if len(page) < STATS_PAGE:
            break
        before = CaseCursor(page[-1].opened_at, page[-1].reference)
    deps = request.app[DEPS]
    await record_consultation(  # counts only, but over every case of the period: recorded
        deps.store,
        deps.clock,
        principal_of(request),
        request.path,
        query=query.model_dump(mode="json", exclude_defaults=True),
        cases=len(cases),
    )
    return Stats.model_validate({"since": query.since, "until": query.until, **case_stats(cases)})


async def get_stats(request: web.Request, *, query: StatsQuery) -> Stats:
    return await _stats(request, query)


async def get_stats_csv(request: web.Request, *, query: StatsQuery) -> web.Response:
    stats = (await _stats(request, query)).model_dump(mode="json")
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


async def track_page(request: web.Request) -> web.Response:
    """The page (web/track.html): it reads the case from /api/requests/{reference} and follows the
    feed. The case is checked here too, so a reference one may not see is a 404 like the API's."""
    case = await _visible_case(request)
    await _record(request, case, {"page": "track"})
    page = resources.files("watchcentre.web").joinpath("track.html").read_bytes()
    return web.Response(body=page, content_type="text/html", charset="utf-8")
