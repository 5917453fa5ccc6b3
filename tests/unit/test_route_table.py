"""The HTTP API is written once: the route table registers every route the app serves and generates
every path of the OpenAPI document, and each handler takes and returns what its row says."""

from __future__ import annotations

import types
import typing
from typing import Any

from aiohttp import web

from watchcentre.adapters.http_app import create_app
from watchcentre.adapters.http_base import HttpDeps, Json
from watchcentre.adapters.http_routes import ROUTES
from watchcentre.adapters.openapi import openapi_document
from watchcentre.core.errors import Conflict, DomainError, Invalid, NotFound
from watchcentre.service import ManualError


def _app() -> web.Application:
    async def ready() -> dict[str, bool]:
        return {}

    deps = HttpDeps(
        store=None,  # type: ignore[arg-type]  # never called: nothing is served here
        network=None,  # type: ignore[arg-type]
        readiness=ready,
        render_metrics=lambda: (b"", "text/plain"),
        version="t",
    )
    return create_app(deps)


def test_every_served_route_is_in_the_table_and_the_document_and_vice_versa() -> None:
    served = {
        (route.method, route.resource.canonical)
        for route in _app().router.routes()
        if route.method != "HEAD" and route.resource is not None
    }
    table = {(r.method, r.path) for r in ROUTES}
    documented = {
        (method.upper(), path) for path, ops in openapi_document()["paths"].items() for method in ops
    }
    assert served == table == documented
    assert len(table) == len(ROUTES), "a (method, path) twice in the table"


_SET_COOKIES = {"signIn", "signOut"}
"""They answer their model with a cookie set, so they build the response themselves."""


def _hints(route: Any) -> dict[str, Any]:
    return typing.get_type_hints(route.handler)


def _members(annotation: Any) -> set[Any]:
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return set(typing.get_args(annotation))
    return {annotation}


def test_each_handler_takes_the_inputs_and_returns_the_models_its_row_names() -> None:
    for route in ROUTES:
        hints = _hints(route)
        where = f"{route.method} {route.path}"
        assert (hints.get("query") is route.query) if route.query else "query" not in hints, where
        parsed = route.body is not None and route.body.parse
        if parsed:
            assert route.body is not None
            wanted = route.body.model if route.body.required else route.body.model | None
            assert hints.get("body") == wanted, where
        else:
            assert "body" not in hints, where
        ok = route.responses[route.ok_status]
        if isinstance(ok, Json) and route.operation_id not in _SET_COOKIES:
            assert ok.model in _members(hints["return"]), where
        else:
            assert _members(hints["return"]) & {web.Response, web.StreamResponse}, where


def test_operation_ids_are_unique() -> None:
    ids = [r.operation_id for r in ROUTES]
    assert len(ids) == len(set(ids))


def test_domain_errors_say_their_kind_and_the_older_errors_too() -> None:
    assert (NotFound("x", "y").kind, Conflict("x", "y", "open").kind, Invalid("x", "y").kind) == (
        "not_found",
        "conflict",
        "invalid",
    )
    assert Conflict("state", "no", "closed").current == "closed"
    kinds = {status: ManualError(status, "f", "p").kind for status in (404, 409, 400)}
    assert kinds == {404: "not_found", 409: "conflict", 400: "invalid"}
    assert isinstance(ManualError(404, "f", "p"), DomainError)
