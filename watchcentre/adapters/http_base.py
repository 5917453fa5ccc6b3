"""What every HTTP route module shares: the dependencies, the request-parsing glue, the error type,
and the shape of a row of the route table (`http_routes.ROUTES`). Route modules depend on this module
and on `http_models`, never on each other nor on the app (`http_app`)."""

from __future__ import annotations

import re
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, TypeVar
from urllib.parse import quote

import orjson
from aiohttp import web
from pydantic import BaseModel, ValidationError

from watchcentre.adapters.http_models import RFC3339_PATTERN
from watchcentre.core.access import Area, Principal
from watchcentre.core.bounds import DEPTH_PROBLEM, NOT_BLANK, time_problem, too_deep
from watchcentre.core.network import Network
from watchcentre.core.ports import AuditAnchor, Clock, Store, SystemClock

MAX_REQUEST_BYTES = 1024 * 1024
SESSION_COOKIE = "wc_session"

_RFC3339 = re.compile(RFC3339_PATTERN)

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
    refresh_metrics: Callable[[], Awaitable[None]] | None = None
    """Brings the scrape-time gauges up to date (cached: watchcentre/ops.py) before /metrics renders."""
    rules: Callable[[], tuple[Network, str]] | None = None
    """The network and the config digest in force (a reload changes them); None: `network`, no digest."""

    def current_network(self) -> Network:
        return self.rules()[0] if self.rules is not None else self.network

    def config_digest(self) -> str | None:
        return self.rules()[1] if self.rules is not None else None

    crime_labels: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """Taxonomy code → {lang: words} (config/taxonomy.yaml), for GET /api/labels."""


DEPS = web.AppKey("deps", HttpDeps)
OPENAPI = web.AppKey("openapi", bytes)
PRINCIPAL = web.RequestKey("principal", Principal)


class ApiError(Exception):
    """An error about the HTTP exchange itself (auth, media type, size, a route's own checks); the
    middleware turns it into the JSON error body. Domain refusals are core.errors, mapped there too."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field


class RateLimited(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__("too many failed authentications")
        self.retry_after = retry_after


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def principal_of(request: web.Request) -> Principal:
    return request[PRINCIPAL]


def safe_next(value: object) -> str:
    """Where to go after signing in: a path on this site, else "/". The value comes from a link
    anyone can write: "//evil.example", "/\\evil.example" or "/", a tab, "/evil.example" (browsers drop
    the tab) would leave the site, so only "/" followed by no slash, backslash or control character."""
    if not isinstance(value, str) or len(value) > 2000 or not value.startswith("/"):
        return "/"
    if value.startswith("//") or any(c == "\\" or ord(c) < 0x21 or ord(c) == 0x7F for c in value):
        return "/"
    return value


def signin_location(request: web.Request) -> str:
    """/signin?next=<this path and query, as sent>, to come back here after signing in."""
    return "/signin?next=" + quote(safe_next(request.raw_path), safe="/")


def same_origin(request: web.Request, message: str = "cross-origin request refused") -> None:
    """403 when a browser says the request comes from another origin (the cookie rides along)."""
    origin = request.headers.get("Origin")
    if origin is not None and origin != f"{request.scheme}://{request.host}":
        raise ApiError(403, message)


# -- parsing: query strings and JSON bodies into the table's models ----------------------------------


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
        if key in params and key in model.model_fields:
            parse_time(params[key], key)
    try:
        return model.model_validate(params)
    except ValidationError as exc:
        raise _refusal(exc, "query", "unknown parameter") from None


def _refusal(exc: ValidationError, whole: str, unknown: str) -> ApiError:
    """The 400 for a request the model refused: its first problem, naming the field (`whole`: the
    request as a whole), in pydantic's words but for an unknown name and a blank text."""
    first = exc.errors(include_url=False)[0]
    where = ".".join(str(p) for p in first["loc"]) or whole
    if first["type"] == "extra_forbidden":
        message = unknown
    elif first["type"] == "string_pattern_mismatch" and first.get("ctx", {}).get("pattern") == NOT_BLANK:
        message = "must not be blank"
    else:
        message = str(first["msg"])
    return ApiError(400, message, where)


def parse_time(text: str, field: str) -> datetime:
    """An RFC 3339 time with an offset, within the sane range (core/bounds.py); 400 naming `field`."""
    if not _RFC3339.match(text):
        raise ApiError(400, "expected an RFC 3339 time with an offset, e.g. 2024-05-01T08:00:00Z", field)
    try:
        at = datetime.fromisoformat(text.upper())  # RFC 3339 allows a lower-case t and z; Python does not
    except ValueError:  # matches the pattern, yet no such day: 2024-02-30
        raise ApiError(400, "not a real date and time", field) from None
    problem = time_problem(at)
    if problem is not None:
        raise ApiError(400, problem, field)
    return at


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
        raise _refusal(exc, "body", "unknown field") from None


# -- the route table's rows ------------------------------------------------------------------------

PUBLIC: Literal["public"] = "public"
"""No authentication: the route is open to anyone (health, sign-in, the console's static page)."""


@dataclass(frozen=True)
class Json:
    """A JSON answer serialised from `model`."""

    model: type[BaseModel]
    description: str


@dataclass(frozen=True)
class Content:
    """Any other answer: `content` maps media types to their JSON Schema (an HTML page, CSV, text)."""

    description: str
    content: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    headers: Mapping[str, Any] = field(default_factory=dict)


Response = Json | Content


@dataclass(frozen=True)
class Body:
    """A request body: `parse` lets the glue validate it (JSON only) before the handler runs; a route
    that also takes a form (sign-in) parses its body itself, into the same model."""

    model: type[BaseModel]
    required: bool = True
    media_types: tuple[str, ...] = ("application/json",)
    parse: bool = True
    max_bytes: int = MAX_REQUEST_BYTES


@dataclass(frozen=True)
class PathParam:
    name: str
    description: str | None = None
    schema: Mapping[str, Any] = field(default_factory=lambda: {"type": "string"})
    pattern: str | None = None
    """The router's pattern for it, when not the default `[^{}/]+` (e.g. references hold '/')."""


@dataclass(frozen=True)
class Reply:
    """A handler's answer with a status other than the route's first success status (e.g. 503)."""

    model: BaseModel
    status: int


Handler = Callable[..., Awaitable[BaseModel | Reply | web.StreamResponse]]


@dataclass(frozen=True)
class Route:
    """One row of the route table: how the route is served and how the OpenAPI document lists it.

    The glue validates `query` (the handler gets it as `query=`) and `body` (as `body=`), runs the
    handler, and serialises a returned model with the first 2xx status of `responses`. Standard
    errors are added to the document from `access`: 401/403/429 unless public, 400 with a query or
    a body, 500 always."""

    method: str
    path: str
    handler: Handler
    operation_id: str
    summary: str
    access: Area | Literal["public"]
    responses: Mapping[int, Response]
    query: type[BaseModel] | None = None
    body: Body | None = None
    path_params: tuple[PathParam, ...] = ()
    description: str | None = None
    tags: tuple[str, ...] = ()
    page: bool = False
    """A page for a browser: without a valid session it answers 303 to /signin?next=<its path>,
    which brings the reader back after signing in (rather than a JSON 401)."""
    param_schemas: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Document-only refinements of query parameters the model cannot say (e.g. an RFC 3339 pattern
    checked by `parse_query`, an enum checked by the handler)."""

    @property
    def router_path(self) -> str:
        path = self.path
        for p in self.path_params:
            if p.pattern is not None:
                path = path.replace("{" + p.name + "}", "{" + p.name + ":" + p.pattern + "}")
        return path

    @property
    def ok_status(self) -> int:
        return min(s for s in self.responses if s < 400)


# -- failed authentications ------------------------------------------------------------------------


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
