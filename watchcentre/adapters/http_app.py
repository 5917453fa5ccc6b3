"""The HTTP application: the routes of the table (`http_routes.ROUTES`), served with authentication,
validation, serialisation and the error mapping done once, here.

Every answer is JSON (except the pages, /metrics, CSV and the feed), errors included:
`{"error": {"status": 400, "message": "...", "field": "limit"}}`. No HTML error page, no stack
trace. A domain refusal (core/errors.py) is 404, 409 (with `current_state` when there is one) or 400.

Security (docs/security.md): every route but the public ones needs a bearer token
(`Authorization: Bearer wct_…`) or the `wc_session` cookie set by POST /signin. 401 without a
valid one; 403 when the role may not use the route's area at all. Failed authentications are
rate-limited per client address (429).
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import structlog
from aiohttp import web

from watchcentre.adapters.http_base import (
    DEPS,
    LIMITER,
    MAX_REQUEST_BYTES,
    OPENAPI,
    PRINCIPAL,
    PUBLIC,
    SESSION_COOKIE,
    ApiError,
    FailureLimiter,
    HttpDeps,
    RateLimited,
    Reply,
    Route,
    client_key,
    json_response,
    parse_json_body,
    parse_query,
    signin_location,
)
from watchcentre.adapters.http_console import close_feeds
from watchcentre.adapters.http_routes import ROUTES
from watchcentre.adapters.openapi import openapi_document
from watchcentre.core.access import Area, may_use
from watchcentre.core.errors import DomainError
from watchcentre.security import authenticate

log = structlog.get_logger("watchcentre.http")

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

_DOMAIN_STATUS = {"not_found": 404, "conflict": 409, "invalid": 400}
ROUTE = web.AppKey("routes", dict)
"""The aiohttp handler of each table route → its row (what the auth middleware asks of a request)."""

WebHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_response(
    status: int,
    message: str,
    field: str | None = None,
    headers: dict[str, str] | None = None,
    more: dict[str, Any] | None = None,
) -> web.Response:
    error = {"status": status, "message": message, "field": field, **(more or {})}
    response = json_response({"error": error}, status)
    if headers:
        response.headers.update(headers)
    return response


# -- middleware ---------------------------------------------------------------------------------


@web.middleware
async def error_middleware(request: web.Request, handler: WebHandler) -> web.StreamResponse:
    """Every error as the one JSON body: the HTTP ones, the domain refusals, and 500 without detail."""
    try:
        return await handler(request)
    except ApiError as exc:
        headers = {"WWW-Authenticate": 'Bearer realm="watchcentre"'} if exc.status == 401 else None
        return error_response(exc.status, exc.message, exc.field, headers=headers)
    except DomainError as exc:
        more: dict[str, Any] = {"current_state": exc.current} if exc.current is not None else {}
        return error_response(_DOMAIN_STATUS[exc.kind], exc.problem, exc.field, more=more)
    except RateLimited as exc:
        return error_response(
            429,
            "too many failed authentications: try again later",
            headers={"Retry-After": str(exc.retry_after)},
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


@web.middleware
async def auth_middleware(request: web.Request, handler: WebHandler) -> web.StreamResponse:
    if request.content_length is not None and request.content_length > MAX_REQUEST_BYTES:
        raise ApiError(413, "request body over the 1 MiB limit")
    route: Route | None = request.app[ROUTE].get(request.match_info.route.handler)
    if route is not None and route.access == PUBLIC:
        return await handler(request)
    area = route.access if route is not None and isinstance(route.access, Area) else None
    deps = request.app[DEPS]
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
    page = route is not None and route.page
    if token is None:
        if page:  # a browser without a session: to sign in, then back here
            raise web.HTTPSeeOther(signin_location(request))
        raise ApiError(401, "authentication required: a bearer token or a session cookie")
    principal, why = await authenticate(deps.store, deps.clock, token)
    if principal is None:
        limiter.fail(who)
        log.warning("authentication_failed", reason=why, client=who, path=request.path, cookie=from_cookie)
        if page:
            raise web.HTTPSeeOther(signin_location(request))
        raise ApiError(401, "invalid, expired or revoked token")
    if from_cookie and request.method not in ("GET", "HEAD", "OPTIONS"):
        origin = request.headers.get("Origin")
        if origin is not None and origin != f"{request.scheme}://{request.host}":
            raise ApiError(403, "cross-origin request refused")
    if area is not None and not may_use(principal, area):
        raise ApiError(403, f"role {principal.label} may not use this route")
    request[PRINCIPAL] = principal
    return await handler(request)


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: runs for every response, streamed ones and error pages included."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)


# -- the glue between a row of the table and aiohttp --------------------------------------------------


def endpoint(route: Route) -> WebHandler:
    """The aiohttp handler of `route`: validated inputs in, the answer model serialised out."""

    async def serve(request: web.Request) -> web.StreamResponse:
        inputs: dict[str, Any] = {}
        if route.query is not None:
            inputs["query"] = parse_query(request, route.query)
        if route.body is not None and route.body.parse:
            present = request.body_exists or route.body.required
            inputs["body"] = (
                await parse_json_body(request, route.body.model, route.body.max_bytes) if present else None
            )
        answer = await route.handler(request, **inputs)
        if isinstance(answer, web.StreamResponse):
            return answer
        if isinstance(answer, Reply):
            return json_response(answer.model.model_dump(mode="json"), answer.status)
        return json_response(answer.model_dump(mode="json"), route.ok_status)

    serve.__name__ = serve.__qualname__ = route.handler.__name__
    return serve


def create_app(deps: HttpDeps) -> web.Application:
    app = web.Application(client_max_size=MAX_REQUEST_BYTES, middlewares=[error_middleware, auth_middleware])
    app[DEPS] = deps
    app[OPENAPI] = orjson.dumps(openapi_document(deps.version))
    app[LIMITER] = FailureLimiter(deps.max_auth_failures)
    routes: dict[Any, Route] = {}
    for route in ROUTES:
        serve = endpoint(route)
        routes[serve] = route
        if route.method == "GET":
            app.router.add_get(route.router_path, serve)  # and HEAD
        else:
            app.router.add_route(route.method, route.router_path, serve)
    app[ROUTE] = routes
    app.on_response_prepare.append(security_headers)
    app.on_shutdown.append(close_feeds)
    return app
