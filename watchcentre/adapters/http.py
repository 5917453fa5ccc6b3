"""The HTTP API's own routes: health, metrics, the network, stored messages, the audit trail, the
reference documents and sign-in. Which route is which, who may use it and what it takes and answers
is in the route table (`http_routes.ROUTES`); the handlers here get validated inputs and return
response models.

Security (docs/security.md): every route but /health and /signin needs a bearer token
(`Authorization: Bearer wct_…`) or the `wc_session` cookie set by POST /signin (see `http_app`).
404 for what the principal may not see, exactly as if it did not exist. Every read of a message by
a person is an audit event.
"""

from __future__ import annotations

import re
from html import escape
from typing import TypeVar

import structlog
from aiohttp import web

from watchcentre.adapters.http_base import (
    DEPS,
    LIMITER,
    OPENAPI,
    SESSION_COOKIE,
    ApiError,
    RateLimited,
    Reply,
    client_key,
    json_response,
    parse_json_body,
    principal_of,
    safe_next,
    same_origin,
)
from watchcentre.adapters.http_models import (
    AuditExportQuery,
    AuditPage,
    AuditQuery,
    CaseMention,
    Health,
    IdentifierView,
    MessageDetail,
    MessageLookup,
    MessagePage,
    MessageSummary,
    NoQuery,
    NoteMention,
    PostList,
    PostView,
    RelatedMessage,
    SearchItem,
    SearchPage,
    SignedIn,
    SignedOut,
    SignIn,
    SubjectExport,
    SubjectQuery,
    SubjectSearch,
    UnitList,
    UnitView,
)
from watchcentre.core.access import can_see, visibility, visible_posts, visible_units
from watchcentre.core.audit_chain import Verification
from watchcentre.core.audit_export import export_file
from watchcentre.core.envelope import envelope_schema
from watchcentre.core.ports import Mentions, SubjectAccessStore
from watchcentre.core.records import AuditEvent, EventType, MessageQuery, text_digest
from watchcentre.core.routing import post_key, unit_key
from watchcentre.core.search import SearchCursor, SearchQuery, parse_query
from watchcentre.core.taxonomy import CRIME_CODES
from watchcentre.security import authenticate, record_consultation, record_list, record_read, verify_audit

log = structlog.get_logger("watchcentre.http")

MAX_SIGNIN_BYTES = 4 * 1024
ISO2_PATTERN = r"^[A-Za-z]{2}$"
_ISO2 = re.compile(ISO2_PATTERN)
EXPORT_PAGE = 5000
_NOT_TIMELINE = frozenset({EventType.ACCESSED.value, EventType.LISTED.value})
_Q = TypeVar("_Q", MessageQuery, SearchQuery)


async def health(request: web.Request) -> Health | Reply:
    deps = request.app[DEPS]
    try:
        checks = await deps.readiness()
    except Exception:
        log.exception("readiness_failed")
        checks = {"readiness": False}
    ok = all(checks.values())
    body = Health(
        status="ok" if ok else "unavailable", checks=checks, version=deps.version, config=deps.config_digest()
    )
    return body if ok else Reply(body, 503)


async def metrics(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    if deps.refresh_metrics is not None:
        await deps.refresh_metrics()
    body, content_type = deps.render_metrics()
    response = web.Response(body=body)
    response.headers["Content-Type"] = content_type
    return response


async def list_posts(request: web.Request) -> PostList:
    posts = visible_posts(principal_of(request), request.app[DEPS].current_network())
    return PostList(
        items=[
            PostView(**post.model_dump(), routing_key=post_key(post.id), queue_suffix=post_key(post.id))
            for post in posts
        ]
    )


async def list_units(request: web.Request) -> UnitList:
    units = visible_units(principal_of(request), request.app[DEPS].current_network())
    return UnitList(
        items=[
            UnitView(**unit.model_dump(), routing_key=unit_key(unit.id), queue_suffix=unit_key(unit.id))
            for unit in units
        ]
    )


async def list_messages(request: web.Request, *, query: MessageQuery) -> MessagePage:
    query = _checked_filters(query)
    deps, who = request.app[DEPS], principal_of(request)
    # One more than asked: whether a next page exists, without an empty last page.
    found = await deps.store.list_messages(
        query.model_copy(update={"limit": query.limit + 1}), visibility(who)
    )
    page = [m for m in found[: query.limit] if can_see(who, m)]  # the store scoped it; belt and braces
    next_before_id = page[-1].id if len(found) > query.limit and page else None
    await record_list(
        deps.store,
        deps.clock,
        who,
        [m.id for m in page],
        query.model_dump(mode="json", exclude_defaults=True),
        request.path,
    )
    return MessagePage(
        items=[MessageSummary.model_validate(m, from_attributes=True) for m in page],
        next_before_id=next_before_id,
    )


async def search(request: web.Request, *, query: SearchQuery) -> SearchPage:
    """Full-text search within need-to-know (in the query itself), audited as a listing."""
    clauses = parse_query(query.q)
    query = _checked_filters(query)
    deps, who = request.app[DEPS], principal_of(request)
    found = await deps.store.search(
        query.model_copy(update={"limit": query.limit + 1}), clauses, visibility(who)
    )
    page = [h for h in found[: query.limit] if can_see(who, h.message)]  # scoped by the store already
    last = page[-1] if page else None
    more = len(found) > query.limit and last is not None
    await record_list(
        deps.store,
        deps.clock,
        who,
        [h.message.id for h in page],
        query.model_dump(mode="json", exclude_defaults=True),
        request.path,
    )
    log.info("searched", actor=who.label, clauses=len(clauses), hits=len(page))
    return SearchPage(
        items=[
            SearchItem(
                **MessageSummary.model_validate(h.message, from_attributes=True).model_dump(),
                score=h.score,
                subject_fragments=h.subject,
                body_fragments=h.body,
            )
            for h in page
        ],
        next=SearchCursor(last.score, last.message.id).text() if more and last is not None else None,
    )


def _checked_filters(query: _Q) -> _Q:
    """The crime type and country filters checked (400 naming the field), the country upper-cased."""
    if query.crime_type is not None and query.crime_type not in CRIME_CODES:
        raise ApiError(400, "unknown crime type code", "crime_type")
    if query.country is not None:
        if not _ISO2.match(query.country):
            raise ApiError(400, "not an ISO 3166-1 alpha-2 code", "country")
        query = query.model_copy(update={"country": query.country.upper()})
    return query


async def get_message(request: web.Request, *, query: MessageLookup) -> MessageDetail:
    message_id = request.match_info["message_id"]
    deps, who = request.app[DEPS], principal_of(request)
    message = await deps.store.get_message(message_id, query.sender, visibility(who))
    if message is None or not can_see(who, message):
        raise ApiError(404, "no such message", "message_id")
    events = await deps.store.audit(message_id=message_id, sender=message.sender or query.sender, limit=1000)
    found = await deps.store.identifiers(message.id)
    shown = await deps.store.related(message.id, visibility(who)) if found else []
    related = [(m, shared) for m, shared in shown if can_see(who, m)]  # scoped by the store already
    await record_read(deps.store, deps.clock, who, message, request.path)
    if related:  # their summaries are shown too: a listing
        ids = [m.id for m, _ in related]
        await record_list(deps.store, deps.clock, who, ids, {"related_to": message.id}, request.path)
    return MessageDetail(
        **dict(message),
        timeline=[e for e in events if e.type not in _NOT_TIMELINE],
        identifiers=[IdentifierView(kind=i.kind, value=i.value) for i in found],
        related=[
            RelatedMessage(
                **MessageSummary.model_validate(m, from_attributes=True).model_dump(),
                shared=[IdentifierView(kind=i.kind, value=i.value) for i in shared],
            )
            for m, shared in related
        ],
    )


async def list_audit(request: web.Request, *, query: AuditQuery) -> AuditPage:
    deps = request.app[DEPS]
    events = await deps.store.audit(
        after_seq=query.after_seq,
        limit=query.limit + 1,
        sender=query.sender,
        message_id=query.message_id,
        event_type=query.type,
        actor=query.actor,
        since=query.since,
        until=query.until,
    )
    page = events[: query.limit]
    await record_consultation(
        deps.store,
        deps.clock,
        principal_of(request),
        request.path,
        query=query.model_dump(mode="json", exclude_defaults=True),
        seqs=[e.seq for e in page],
    )
    return AuditPage(items=page, next_after_seq=page[-1].seq if len(events) > query.limit else None)


async def get_audit_verify(request: web.Request, *, query: NoQuery) -> Verification:
    deps = request.app[DEPS]
    verification = await verify_audit(deps.store, deps.audit_anchor)
    await record_consultation(deps.store, deps.clock, principal_of(request), request.path, query={})
    return verification


# -- data protection: a person's request, an inspection (docs/data-protection.md) ---------------------


def _subject_store(request: web.Request) -> SubjectAccessStore:
    store = request.app[DEPS].store
    if not isinstance(store, SubjectAccessStore):
        raise ApiError(503, "this store cannot search its texts")
    return store


async def _mentions(request: web.Request, query: SubjectQuery, event_type: str) -> Mentions:
    deps = request.app[DEPS]
    found = await _subject_store(request).mentions(query.q, query.limit)
    await record_consultation(  # what was searched for: its digest (the identifier is personal data)
        deps.store,
        deps.clock,
        principal_of(request),
        request.path,
        event_type,
        query_sha256=text_digest(query.q),
        ids=[m.id for m in found.messages],
        references=[c.reference for c in found.cases],
        notes=[n.id for n in found.notes],
    )
    return found


async def subject_search(request: web.Request, *, query: SubjectQuery) -> SubjectSearch:
    found = await _mentions(request, query, EventType.SEARCHED)
    return SubjectSearch(
        query_sha256=text_digest(query.q),
        messages=[MessageSummary.model_validate(m, from_attributes=True) for m in found.messages],
        cases=[CaseMention.model_validate(c, from_attributes=True) for c in found.cases],
        notes=[NoteMention.model_validate(n, from_attributes=True) for n in found.notes],
        truncated=found.truncated,
    )


async def subject_export(request: web.Request, *, query: SubjectQuery) -> SubjectExport:
    found = await _mentions(request, query, EventType.EXPORTED)
    who = principal_of(request)
    return SubjectExport(
        exported_at=request.app[DEPS].clock.now(),
        exported_by=f"{who.label}:{who.name}",
        query_sha256=text_digest(query.q),
        messages=found.messages,
        cases=found.cases,
        notes=found.notes,
        truncated=found.truncated,
    )


async def audit_export(request: web.Request, *, query: AuditExportQuery) -> web.Response:
    """The records from the first one at or after `since` to the last one before `until`, every seq
    in between (so that the chain links), signed with the anchor's key."""
    deps, who = request.app[DEPS], principal_of(request)
    if deps.audit_anchor is None:
        raise ApiError(503, "no audit anchor key here: an export cannot be signed")
    events: list[AuditEvent] = []
    first = await deps.store.audit(since=query.since, until=query.until, limit=1)
    if first and first[0].seq is not None:
        after = first[0].seq - 1
        while page := await deps.store.audit(after_seq=after, limit=EXPORT_PAGE):
            events += page
            after = page[-1].seq or after
        if query.until is not None:
            before = [i for i, e in enumerate(events) if e.at < query.until]
            events = events[: before[-1] + 1] if before else []
    await record_consultation(
        deps.store,
        deps.clock,
        who,
        request.path,
        EventType.EXPORTED,
        query=query.model_dump(mode="json", exclude_defaults=True),
        seqs=[events[0].seq, events[-1].seq] if events else [],
        count=len(events),
    )
    body = export_file(
        events,
        deps.audit_anchor.key,
        since=query.since,
        until=query.until,
        exported_at=deps.clock.now(),
        exported_by=f"{who.label}:{who.name}",
    )
    return web.Response(
        body=body,
        content_type="application/x-ndjson",
        headers={"Content-Disposition": 'attachment; filename="watchcentre-audit-export.jsonl"'},
    )


async def get_envelope_schema(request: web.Request) -> web.Response:
    return json_response(envelope_schema())


async def get_openapi(request: web.Request) -> web.Response:
    return web.Response(body=request.app[OPENAPI], content_type="application/json")


# -- sign-in ------------------------------------------------------------------------------------

_SIGNIN_PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>watchcentre · sign in</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="/console/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/console/style.css">
<link rel="stylesheet" href="/console/parties.css">
<script type="module" src="/console/signin.js"></script>
</head>
<body class="signin-page">
<main class="signin">
<div class="signin-head"><h1>watchcentre</h1><span id="lang-slot"></span></div>
<h2 data-i18n="common.signin.title">Sign in</h2>
{message}
<form method="post" action="/signin" autocomplete="off" class="signin-form">
<input type="hidden" name="next" value="{next}">
<label for="token" data-i18n="common.signin.token">Access token</label>
<input id="token" name="token" type="password" required maxlength="200" autofocus>
<button type="submit" class="primary" data-i18n="common.signin.submit">Sign in</button>
</form>
<section class="signin-help">
<p data-i18n="common.signin.where">Ask the centre's duty officer for a token. Tokens are issued with:</p>
<pre><code>watchcentre token issue</code></pre>
<p class="muted" data-i18n="common.signin.who">Operators, posts abroad, investigating units and auditors each sign in
with their own token.</p>
<p class="muted" data-i18n="common.signin.privacy">The token is kept in a cookie for this site only until it expires
or you sign out.</p>
</section>
</main>
</body>
</html>
"""


def _signin_page(message: str | None = None, status: int = 200, next_path: str = "/") -> web.Response:
    note = (
        f'<p role="alert" class="error" data-i18n="common.signin.failed">{escape(message)}</p>'
        if message
        else ""
    )
    # With Referrer-Policy no-referrer a browser posts the form with `Origin: null`, which the
    # cross-origin check refuses: on this page only, same-origin (nothing leaks to other sites).
    headers = {"Referrer-Policy": "same-origin"}
    page = _SIGNIN_PAGE.format(message=note, next=escape(safe_next(next_path), quote=True))
    return web.Response(text=page, status=status, content_type="text/html", headers=headers)


async def get_signin(request: web.Request) -> web.Response:
    return _signin_page(next_path=safe_next(request.query.get("next")))


async def post_signin(request: web.Request) -> web.StreamResponse:
    """Take a token (form or JSON), check it, keep it in the wc_session cookie."""
    deps, limiter, who = request.app[DEPS], request.app[LIMITER], client_key(request)
    as_json = request.content_type == "application/json"
    same_origin(request, "cross-origin sign-in refused")
    wait = limiter.retry_after(who)
    if wait is not None:
        raise RateLimited(wait)
    next_path = "/"
    if as_json:
        token = (await parse_json_body(request, SignIn, MAX_SIGNIN_BYTES)).token
    elif request.content_type == "application/x-www-form-urlencoded":
        if request.content_length is None or request.content_length > MAX_SIGNIN_BYTES:
            raise ApiError(413, f"request body over the {MAX_SIGNIN_BYTES}-byte limit")
        form = await request.post()
        value = form.get("token")
        token = value if isinstance(value, str) else ""
        next_path = safe_next(form.get("next"))
    else:
        raise ApiError(415, "expected a form (application/x-www-form-urlencoded) or application/json")
    principal, why = await authenticate(deps.store, deps.clock, token.strip())
    if principal is None:
        limiter.fail(who)
        log.warning("signin_failed", reason=why, client=who)
        if as_json:
            raise ApiError(401, "invalid, expired or revoked token")
        return _signin_page(
            "Sign-in failed: the token is invalid, expired or revoked.", status=401, next_path=next_path
        )
    expires = principal.expires_at or deps.clock.now()
    max_age = max(0, int((expires - deps.clock.now()).total_seconds()))
    response: web.StreamResponse
    if as_json:
        signed_in = SignedIn(role=principal.label, name=principal.name, expires_at=expires)
        response = json_response(signed_in.model_dump(mode="json"))
    else:
        response = web.Response(status=303, headers={"Location": next_path})
    response.set_cookie(
        SESSION_COOKIE,
        token.strip(),
        max_age=max_age,
        path="/",
        secure=deps.cookie_secure,
        httponly=True,
        samesite="Strict",
    )
    log.info("signed_in", role=principal.label, token_id=principal.token_id, client=who)
    return response


async def post_signout(request: web.Request) -> web.Response:
    # Public (an expired session may still sign out), so the middleware's Origin check does not run:
    # without this, any site could sign a user out.
    same_origin(request, "cross-origin sign-out refused")
    response = json_response(SignedOut(signed_out=True).model_dump(mode="json"))
    secure = request.app[DEPS].cookie_secure
    response.del_cookie(SESSION_COOKIE, path="/", secure=secure, httponly=True, samesite="Strict")
    return response
