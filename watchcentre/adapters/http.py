"""The HTTP API (aiohttp): health, metrics, the network, stored messages and the audit trail.

Every answer is JSON (except /metrics and the sign-in page), errors included:
`{"error": {"status": 400, "message": "...", "field": "limit"}}`. No HTML error page, no stack trace.

Security (docs/security.md): every route but /health and /signin needs a bearer token
(`Authorization: Bearer wct_…`) or the `wc_session` cookie set by POST /signin. 401 without a
valid one; 403 when the role may not use the route at all; 404 for what the principal may not see,
exactly as if it did not exist. Failed authentications are rate-limited per client address (429).
Every read of a message by a person is an audit event.
"""

from __future__ import annotations

import hmac
import re
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from html import escape
from typing import Any, TypeVar

import orjson
import structlog
from aiohttp import web
from pydantic import BaseModel, ValidationError

from watchcentre.adapters.openapi import RFC3339_PATTERN, SUMMARY_FIELDS, AuditQuery, SignIn, openapi_document
from watchcentre.core.access import (
    Area,
    Principal,
    can_see,
    may_use,
    visibility,
    visible_posts,
    visible_units,
)
from watchcentre.core.bounds import DEPTH_PROBLEM, time_problem, too_deep
from watchcentre.core.envelope import envelope_schema
from watchcentre.core.network import Network
from watchcentre.core.ports import AuditAnchor, Clock, Store, SystemClock
from watchcentre.core.records import EventType, MessageQuery
from watchcentre.core.routing import post_key, unit_key
from watchcentre.core.taxonomy import CRIME_CODES
from watchcentre.security import authenticate, record_list, record_read, verify_audit

log = structlog.get_logger("watchcentre.http")

MAX_REQUEST_BYTES = 1024 * 1024
MAX_SIGNIN_BYTES = 4 * 1024
SESSION_COOKIE = "wc_session"

SECURITY_HEADERS: dict[str, str] = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": (
        "default-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "Cache-Control": "no-store",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}

_RFC3339 = re.compile(RFC3339_PATTERN)
_ISO2 = re.compile(r"^[A-Za-z]{2}$")

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class HttpDeps:
    store: Store
    network: Network
    readiness: Callable[[], Awaitable[dict[str, bool]]]  # e.g. {"broker": True, "database": False}
    render_metrics: Callable[[], tuple[bytes, str]]
    version: str
    clock: Clock = field(default_factory=SystemClock)
    max_auth_failures: int = 10
    """Failed authentications per client address per minute before 429."""
    metrics_token: str | None = None
    """A static token a Prometheus scraper may present for /metrics only (operators' tokens work too)."""
    cookie_secure: bool = True
    """The session cookie's Secure flag: off only for a console served over plain http on localhost."""
    audit_anchor: AuditAnchor | None = None
    """The signed checkpoints `GET /api/audit/verify` checks the trail against (None: the chain only)."""


DEPS = web.AppKey("deps", HttpDeps)
OPENAPI = web.AppKey("openapi", bytes)
PRINCIPAL = web.RequestKey("principal", Principal)


class ApiError(Exception):
    """An error the client can act on; the middleware turns it into the JSON error body."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field


# -- helpers ------------------------------------------------------------------------------------


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def error_response(
    status: int, message: str, field: str | None = None, headers: dict[str, str] | None = None
) -> web.Response:
    body = {"error": {"status": status, "message": message, "field": field}}
    response = json_response(body, status=status)
    if headers:
        response.headers.update(headers)
    return response


def parse_query(request: web.Request, model: type[M]) -> M:
    """Validate the query string into `model`; 400 naming the first parameter at fault.

    An empty value (`?status=`) counts as absent; a parameter given twice is refused.
    """
    params: dict[str, str] = {}
    for key, value in request.query.items():
        if key in params:
            raise ApiError(400, "given more than once", key)
        if value != "":
            params[key] = value
    for key in ("since", "until"):
        if key in params:
            parse_time(params[key], key)
    try:
        return model.model_validate(params)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        field = ".".join(str(p) for p in first["loc"]) or "query"
        message = "unknown parameter" if first["type"] == "extra_forbidden" else str(first["msg"])
        raise ApiError(400, message, field) from None


def parse_time(text: str, field: str) -> datetime:
    """An RFC 3339 time with an offset, within the sane range (core/bounds.py); 400 naming `field`."""
    if not _RFC3339.match(text):
        raise ApiError(400, "expected an RFC 3339 time with an offset, e.g. 2024-05-01T08:00:00Z", field)
    try:
        at = datetime.fromisoformat(text)
    except ValueError:  # matches the pattern, yet no such day: 2024-02-30
        raise ApiError(400, "not a real date and time", field) from None
    problem = time_problem(at)
    if problem is not None:
        raise ApiError(400, problem, field)
    return at


def same_origin(request: web.Request) -> bool:
    """A browser's cross-site request carries a foreign Origin; no Origin is a non-browser client."""
    origin = request.headers.get("Origin")
    return origin is None or origin == f"{request.scheme}://{request.host}"


# -- middleware ---------------------------------------------------------------------------------


@web.middleware
async def error_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        headers = {"WWW-Authenticate": 'Bearer realm="watchcentre"'} if exc.status == 401 else None
        return error_response(exc.status, exc.message, exc.field, headers=headers)
    except RateLimited as exc:
        return error_response(
            429, "too many failed authentications: try again later", headers={"Retry-After": str(exc.retry_after)}
        )
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        keep = {k: v for k, v in exc.headers.items() if k.lower() == "allow"}
        message = "request body over the 1 MiB limit" if exc.status == 413 else exc.reason
        return error_response(exc.status, message, headers=keep)
    except Exception:
        log.exception("http_handler_failed", method=request.method, path=request.path)
        return error_response(500, "internal error")


class FailureLimiter:
    """At most `limit` failed authentications per client address in a sliding `window` (seconds)."""

    def __init__(self, limit: int, window: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.window, self.clock = limit, window, clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, key: str) -> deque[float]:
        now = self.clock()
        q = self._failures.get(key)
        if q is None:
            return deque()
        while q and q[0] <= now - self.window:
            q.popleft()
        if not q:
            del self._failures[key]
        return q

    def retry_after(self, key: str) -> int | None:
        """Seconds to wait when this address is blocked; None when it may try."""
        q = self._recent(key)
        if len(q) < self.limit:
            return None
        return max(1, int(q[0] + self.window - self.clock()) + 1)

    def fail(self, key: str) -> None:
        q = self._failures.setdefault(key, deque())
        q.append(self.clock())
        self._failures.move_to_end(key)
        while len(self._failures) > 10_000:  # bounded memory under a spray of addresses
            self._failures.popitem(last=False)


LIMITER = web.AppKey("limiter", FailureLimiter)


def client_key(request: web.Request) -> str:
    """The peer address (X-Forwarded-For is not trusted: put the limiter's proxy rules there)."""
    return request.remote or "unknown"


def _bearer(request: web.Request) -> tuple[str | None, bool]:
    """(token, from_cookie). A malformed Authorization header gives an empty token."""
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, value = header.partition(" ")
        return (value.strip() if scheme.lower() == "bearer" else ""), False
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        return cookie, True
    return None, False


_PUBLIC: set[Callable[..., Any]] = set()
_AREAS: dict[Callable[..., Any], Area] = {}


def _challenge(message: str) -> ApiError:
    return ApiError(401, message)


@web.middleware
async def auth_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    if request.content_length is not None and request.content_length > MAX_REQUEST_BYTES:
        raise ApiError(413, "request body over the 1 MiB limit")
    route_handler = request.match_info.route.handler
    if route_handler in _PUBLIC:
        return await handler(request)
    deps = request.app[DEPS]
    area = _AREAS.get(route_handler)
    token, from_cookie = _bearer(request)
    if (
        area is Area.METRICS
        and token
        and deps.metrics_token
        and hmac.compare_digest(token.encode(), deps.metrics_token.encode())
    ):
        return await handler(request)
    limiter = request.app[LIMITER]
    who = client_key(request)
    wait = limiter.retry_after(who)
    if wait is not None:
        raise RateLimited(wait)
    if token is None:
        raise _challenge("authentication required: a bearer token or a session cookie")
    principal, why = await authenticate(deps.store, deps.clock, token)
    if principal is None:
        limiter.fail(who)
        log.warning("authentication_failed", reason=why, client=who, path=request.path, cookie=from_cookie)
        raise _challenge("invalid, expired or revoked token")
    if from_cookie and request.method not in ("GET", "HEAD", "OPTIONS") and not same_origin(request):
        raise ApiError(403, "cross-origin request refused")
    if area is not None and not may_use(principal, area):
        raise ApiError(403, f"role {principal.label} may not use this route")
    request[PRINCIPAL] = principal
    return await handler(request)


class RateLimited(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__("too many failed authentications")
        self.retry_after = retry_after


def public(fn: Callable[..., Any]) -> Callable[..., Any]:
    _PUBLIC.add(fn)
    return fn


def area(a: Area) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def mark(fn: Callable[..., Any]) -> Callable[..., Any]:
        _AREAS[fn] = a
        return fn

    return mark


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: runs for every response, streamed ones and error pages included."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)


# -- handlers -----------------------------------------------------------------------------------


def principal_of(request: web.Request) -> Principal:
    return request[PRINCIPAL]


@public
async def health(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    try:
        checks = await deps.readiness()
    except Exception:
        log.exception("readiness_failed")
        checks = {"readiness": False}
    ok = all(checks.values())
    body = {"status": "ok" if ok else "unavailable", "checks": checks, "version": deps.version}
    return json_response(body, status=200 if ok else 503)


@area(Area.METRICS)
async def metrics(request: web.Request) -> web.Response:
    body, content_type = request.app[DEPS].render_metrics()
    response = web.Response(body=body)
    response.headers["Content-Type"] = content_type
    return response


@area(Area.NETWORK)
async def list_posts(request: web.Request) -> web.Response:
    items = [
        {**post.model_dump(mode="json"), "routing_key": post_key(post.id), "queue_suffix": post_key(post.id)}
        for post in visible_posts(principal_of(request), request.app[DEPS].network)
    ]
    return json_response({"items": items})


@area(Area.NETWORK)
async def list_units(request: web.Request) -> web.Response:
    items = [
        {**unit.model_dump(mode="json"), "routing_key": unit_key(unit.id), "queue_suffix": unit_key(unit.id)}
        for unit in visible_units(principal_of(request), request.app[DEPS].network)
    ]
    return json_response({"items": items})


@area(Area.MESSAGES)
async def list_messages(request: web.Request) -> web.Response:
    query = parse_query(request, MessageQuery)
    if query.crime_type is not None and query.crime_type not in CRIME_CODES:
        raise ApiError(400, "unknown crime type code", "crime_type")
    if query.country is not None:
        if not _ISO2.match(query.country):
            raise ApiError(400, "not an ISO 3166-1 alpha-2 code", "country")
        query = query.model_copy(update={"country": query.country.upper()})
    deps, who = request.app[DEPS], principal_of(request)
    # One more than asked: whether a next page exists, without an empty last page.
    found = await deps.store.list_messages(query.model_copy(update={"limit": query.limit + 1}), visibility(who))
    page = [m for m in found[: query.limit] if can_see(who, m)]  # the store scoped it; belt and braces
    items = [m.model_dump(mode="json", include=set(SUMMARY_FIELDS)) for m in page]
    next_before_id = page[-1].id if len(found) > query.limit and page else None
    await record_list(
        deps.store, deps.clock, who, [m.id for m in page], query.model_dump(mode="json", exclude_defaults=True),
        request.path,
    )
    return json_response({"items": items, "next_before_id": next_before_id})


_NOT_TIMELINE = frozenset({EventType.ACCESSED.value, EventType.LISTED.value})


@area(Area.MESSAGES)
async def get_message(request: web.Request) -> web.Response:
    message_id = request.match_info["message_id"]
    sender = request.query.get("sender") or None
    deps, who = request.app[DEPS], principal_of(request)
    message = await deps.store.get_message(message_id, sender, visibility(who))
    if message is None or not can_see(who, message):
        raise ApiError(404, "no such message", "message_id")
    events = await deps.store.audit(message_id=message_id, sender=message.sender or sender, limit=1000)
    body = message.model_dump(mode="json")
    body["timeline"] = [e.model_dump(mode="json") for e in events if e.type not in _NOT_TIMELINE]
    await record_read(deps.store, deps.clock, who, message, request.path)
    return json_response(body)


@area(Area.AUDIT)
async def list_audit(request: web.Request) -> web.Response:
    query = parse_query(request, AuditQuery)
    events = await request.app[DEPS].store.audit(
        after_seq=query.after_seq,
        limit=query.limit + 1,
        sender=query.sender,
        message_id=query.message_id,
        event_type=query.type,
    )
    page = events[: query.limit]
    next_after_seq = page[-1].seq if len(events) > query.limit else None
    return json_response(
        {"items": [e.model_dump(mode="json") for e in page], "next_after_seq": next_after_seq}
    )


@area(Area.AUDIT)
async def get_audit_verify(request: web.Request) -> web.Response:
    parse_query(request, _NoQuery)
    deps = request.app[DEPS]
    result = await verify_audit(deps.store, deps.audit_anchor)
    return json_response(result.model_dump(mode="json"))


class _NoQuery(BaseModel):
    model_config = {"extra": "forbid"}


@area(Area.REFERENCE)
async def get_envelope_schema(request: web.Request) -> web.Response:
    return json_response(envelope_schema())


@area(Area.REFERENCE)
async def get_openapi(request: web.Request) -> web.Response:
    return web.Response(body=request.app[OPENAPI], content_type="application/json")


# -- sign-in ------------------------------------------------------------------------------------

_SIGNIN_PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>watchcentre: sign in</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body>
<main>
<h1>watchcentre</h1>
{message}
<form method="post" action="/signin" autocomplete="off">
<label for="token">Access token</label>
<input id="token" name="token" type="password" required maxlength="200" autofocus>
<button type="submit">Sign in</button>
</form>
</main>
</body>
</html>
"""


def _signin_page(message: str | None = None, status: int = 200) -> web.Response:
    note = f'<p role="alert">{escape(message)}</p>' if message else ""
    # With Referrer-Policy no-referrer a browser posts the form with `Origin: null`, which the
    # cross-origin check refuses: on this page only, same-origin (nothing leaks to other sites).
    headers = {"Referrer-Policy": "same-origin"}
    return web.Response(
        text=_SIGNIN_PAGE.format(message=note), status=status, content_type="text/html", headers=headers
    )


@public
async def get_signin(request: web.Request) -> web.Response:
    return _signin_page()


def _integral(value: Any) -> Any:
    """JSON numbers with no fractional part as ints: JSON Schema counts 6187.0 as an integer, and
    the strict validation below would refuse it where an integer is expected (a float field takes an
    int either way)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**63:
        return int(value)
    if isinstance(value, dict):
        return {k: _integral(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_integral(v) for v in value]
    return value


async def parse_json_body(request: web.Request, model: type[M], max_bytes: int = MAX_REQUEST_BYTES) -> M:
    """A JSON object body validated strictly into `model`: 413 over the limit, 415 not JSON,
    400 naming the field at fault (unknown fields refused)."""
    if request.content_length is not None and request.content_length > max_bytes:
        raise ApiError(413, f"request body over the {max_bytes}-byte limit")
    if request.content_type != "application/json":
        raise ApiError(415, "expected Content-Type: application/json")
    raw = await request.content.read(max_bytes + 1)
    if len(raw) > max_bytes:
        raise ApiError(413, f"request body over the {max_bytes}-byte limit")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if "depth" in str(exc):  # orjson's own cap (1024), above ours
            raise ApiError(400, DEPTH_PROBLEM, "body") from None
        raise ApiError(400, "not valid JSON", "body") from None
    if not isinstance(data, dict):
        raise ApiError(400, "expected a JSON object", "body")
    if too_deep(data):  # before anything recursive (`_integral`, validation) walks it
        raise ApiError(400, DEPTH_PROBLEM, "body")
    try:
        return model.model_validate(_integral(data), strict=True)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        message = "unknown field" if first["type"] == "extra_forbidden" else str(first["msg"])
        raise ApiError(400, message, where) from None


@public
async def post_signin(request: web.Request) -> web.StreamResponse:
    """Take a token (form or JSON), check it, keep it in the wc_session cookie."""
    deps, limiter, who = request.app[DEPS], request.app[LIMITER], client_key(request)
    as_json = request.content_type == "application/json"
    if not same_origin(request):
        raise ApiError(403, "cross-origin sign-in refused")
    wait = limiter.retry_after(who)
    if wait is not None:
        raise RateLimited(wait)
    if as_json:
        token = (await parse_json_body(request, SignIn, MAX_SIGNIN_BYTES)).token
    elif request.content_type == "application/x-www-form-urlencoded":
        if request.content_length is None or request.content_length > MAX_SIGNIN_BYTES:
            raise ApiError(413, f"request body over the {MAX_SIGNIN_BYTES}-byte limit")
        form = await request.post()
        value = form.get("token")
        token = value if isinstance(value, str) else ""
    else:
        raise ApiError(415, "expected a form (application/x-www-form-urlencoded) or application/json")
    principal, why = await authenticate(deps.store, deps.clock, token.strip())
    if principal is None:
        limiter.fail(who)
        log.warning("signin_failed", reason=why, client=who)
        if as_json:
            raise _challenge("invalid, expired or revoked token")
        return _signin_page("Sign-in failed: the token is invalid, expired or revoked.", status=401)
    expires = principal.expires_at or deps.clock.now()
    max_age = max(0, int((expires - deps.clock.now()).total_seconds()))
    response: web.StreamResponse
    if as_json:
        response = json_response({"role": principal.label, "name": principal.name, "expires_at": expires.isoformat()})
    else:
        response = web.Response(status=303, headers={"Location": "/"})
    response.set_cookie(
        SESSION_COOKIE, token.strip(), max_age=max_age, path="/", secure=deps.cookie_secure, httponly=True,
        samesite="Strict",
    )  # fmt: skip
    log.info("signed_in", role=principal.label, token_id=principal.token_id, client=who)
    return response


@public
async def post_signout(request: web.Request) -> web.Response:
    # Public (an expired session may still sign out), so the middleware's Origin check does not run:
    # without this, any site could sign a user out.
    if not same_origin(request):
        raise ApiError(403, "cross-origin sign-out refused")
    response = json_response({"signed_out": True})
    secure = request.app[DEPS].cookie_secure
    response.del_cookie(SESSION_COOKIE, path="/", secure=secure, httponly=True, samesite="Strict")
    return response


# -- the application ----------------------------------------------------------------------------


def create_app(deps: HttpDeps) -> web.Application:
    app = web.Application(client_max_size=MAX_REQUEST_BYTES, middlewares=[error_middleware, auth_middleware])
    app[DEPS] = deps
    app[OPENAPI] = orjson.dumps(openapi_document(deps.version))
    app[LIMITER] = FailureLimiter(deps.max_auth_failures)
    app.on_response_prepare.append(security_headers)
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/signin", get_signin)
    app.router.add_post("/signin", post_signin)
    app.router.add_post("/signout", post_signout)
    app.router.add_get("/api/posts", list_posts)
    app.router.add_get("/api/units", list_units)
    app.router.add_get("/api/messages", list_messages)
    app.router.add_get("/api/messages/{message_id}", get_message)
    app.router.add_get("/api/audit", list_audit)
    app.router.add_get("/api/audit/verify", get_audit_verify)
    app.router.add_get("/api/schema/envelope", get_envelope_schema)
    app.router.add_get("/api/openapi.json", get_openapi)
    from watchcentre.adapters.http_cases import add_case_routes  # imports this module: not at the top

    add_case_routes(app)
    from watchcentre.adapters.http_console import add_console_routes

    add_console_routes(app)
    return app
