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
    AuditPage,
    AuditQuery,
    Health,
    MessageDetail,
    MessageLookup,
    MessagePage,
    MessageSummary,
    NoQuery,
    PostList,
    PostView,
    SignedIn,
    SignedOut,
    SignIn,
    UnitList,
    UnitView,
)
from watchcentre.core.access import can_see, visibility, visible_posts, visible_units
from watchcentre.core.audit_chain import Verification
from watchcentre.core.envelope import envelope_schema
from watchcentre.core.records import EventType, MessageQuery
from watchcentre.core.routing import post_key, unit_key
from watchcentre.core.taxonomy import CRIME_CODES
from watchcentre.security import authenticate, record_list, record_read, verify_audit

log = structlog.get_logger("watchcentre.http")

MAX_SIGNIN_BYTES = 4 * 1024
ISO2_PATTERN = r"^[A-Za-z]{2}$"
_ISO2 = re.compile(ISO2_PATTERN)
_NOT_TIMELINE = frozenset({EventType.ACCESSED.value, EventType.LISTED.value})


async def health(request: web.Request) -> Health | Reply:
    deps = request.app[DEPS]
    try:
        checks = await deps.readiness()
    except Exception:
        log.exception("readiness_failed")
        checks = {"readiness": False}
    ok = all(checks.values())
    body = Health(status="ok" if ok else "unavailable", checks=checks, version=deps.version)
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
    posts = visible_posts(principal_of(request), request.app[DEPS].network)
    return PostList(
        items=[
            PostView(**post.model_dump(), routing_key=post_key(post.id), queue_suffix=post_key(post.id))
            for post in posts
        ]
    )


async def list_units(request: web.Request) -> UnitList:
    units = visible_units(principal_of(request), request.app[DEPS].network)
    return UnitList(
        items=[
            UnitView(**unit.model_dump(), routing_key=unit_key(unit.id), queue_suffix=unit_key(unit.id))
            for unit in units
        ]
    )


async def list_messages(request: web.Request, *, query: MessageQuery) -> MessagePage:
    if query.crime_type is not None and query.crime_type not in CRIME_CODES:
        raise ApiError(400, "unknown crime type code", "crime_type")
    if query.country is not None:
        if not _ISO2.match(query.country):
            raise ApiError(400, "not an ISO 3166-1 alpha-2 code", "country")
        query = query.model_copy(update={"country": query.country.upper()})
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


async def get_message(request: web.Request, *, query: MessageLookup) -> MessageDetail:
    message_id = request.match_info["message_id"]
    deps, who = request.app[DEPS], principal_of(request)
    message = await deps.store.get_message(message_id, query.sender, visibility(who))
    if message is None or not can_see(who, message):
        raise ApiError(404, "no such message", "message_id")
    events = await deps.store.audit(message_id=message_id, sender=message.sender or query.sender, limit=1000)
    await record_read(deps.store, deps.clock, who, message, request.path)
    return MessageDetail(**dict(message), timeline=[e for e in events if e.type not in _NOT_TIMELINE])


async def list_audit(request: web.Request, *, query: AuditQuery) -> AuditPage:
    events = await request.app[DEPS].store.audit(
        after_seq=query.after_seq,
        limit=query.limit + 1,
        sender=query.sender,
        message_id=query.message_id,
        event_type=query.type,
    )
    page = events[: query.limit]
    return AuditPage(items=page, next_after_seq=page[-1].seq if len(events) > query.limit else None)


async def get_audit_verify(request: web.Request, *, query: NoQuery) -> Verification:
    deps = request.app[DEPS]
    return await verify_audit(deps.store, deps.audit_anchor)


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
