"""The OpenAPI 3.1 document, generated from the route table (`http_routes.ROUTES`) with pydantic's
own `models_json_schema`. Regenerate the checked-in copy with:

    python -m watchcentre.adapters.openapi > docs/openapi.json
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

import orjson
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from watchcentre import __version__
from watchcentre.adapters.http_base import PUBLIC, Json, Response, Route
from watchcentre.adapters.http_models import ConflictBody, ErrorBody
from watchcentre.adapters.http_routes import EXTRA_SCHEMAS, ROUTES

REF_TEMPLATE = "#/components/schemas/{model}"


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF_TEMPLATE.format(model=model.__name__)}


def _response(answer: Response) -> dict[str, Any]:
    if isinstance(answer, Json):
        return {
            "description": answer.description,
            "content": {"application/json": {"schema": _ref(answer.model)}},
        }
    out: dict[str, Any] = {"description": answer.description}
    if answer.content:
        out["content"] = {k: dict(v) for k, v in answer.content.items()}
    if answer.headers:
        out["headers"] = dict(answer.headers)
    return out


_BAD_REQUEST = Json(ErrorBody, "A query parameter is invalid; `field` names it.")
_RATE_LIMITED = {
    **_response(Json(ErrorBody, "Too many failed authentications from this address; see Retry-After.")),
    "headers": {"Retry-After": {"schema": {"type": "string"}, "description": "Seconds to wait."}},
}
_UNAUTHENTICATED = {
    **_response(Json(ErrorBody, "No valid token (missing, unknown, expired or revoked).")),
    "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
}
_FORBIDDEN = Json(ErrorBody, "The role may not use this route (see docs/security.md).")
_FAILED = Json(ErrorBody, "Unexpected failure (no detail is disclosed).")


def _responses(route: Route) -> dict[str, Any]:
    out = {str(status): _response(answer) for status, answer in route.responses.items()}
    if route.query is not None or route.body is not None:
        out.setdefault("400", _response(_BAD_REQUEST))
    if route.access != PUBLIC:
        out.setdefault("401", _UNAUTHENTICATED)
        out.setdefault("403", _response(_FORBIDDEN))
    if "429" in out or route.access != PUBLIC:
        out["429"] = _RATE_LIMITED
    out.setdefault("500", _response(_FAILED))
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


def _parameters(route: Route, schemas: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for p in route.path_params:
        param: dict[str, Any] = {"name": p.name, "in": "path", "required": True, "schema": dict(p.schema)}
        if p.description:
            param["description"] = p.description
        out.append(param)
    if route.query is not None:
        schema = schemas[route.query.__name__]
        required = set(schema.get("required", []))
        for name, prop in schema.get("properties", {}).items():
            param = {"name": name, "in": "query", "required": name in required, "schema": _not_null(prop)}
            if "description" in prop:
                param["description"] = prop["description"]
            param.update(route.param_schemas.get(name, {}))
            out.append(param)
    return out


def _operation(route: Route, schemas: dict[str, Any]) -> dict[str, Any]:
    op: dict[str, Any] = {"operationId": route.operation_id, "summary": route.summary}
    if route.description:
        op["description"] = route.description
    if route.tags:
        op["tags"] = list(route.tags)
    if route.access == PUBLIC:
        op["security"] = []
    parameters = _parameters(route, schemas)
    if parameters:
        op["parameters"] = parameters
    if route.body is not None:
        model = route.body.model
        op["requestBody"] = {
            "required": route.body.required,
            "content": {t: {"schema": _ref(model)} for t in route.body.media_types},
        }
    op["responses"] = _responses(route)
    return op


def schema_models(routes: Iterable[Route]) -> list[tuple[type[BaseModel], JsonSchemaMode]]:
    """Every model the routes name: requests as validated, answers as serialised (each once)."""
    wanted: dict[type[BaseModel], JsonSchemaMode] = {
        ErrorBody: "serialization",
        ConflictBody: "serialization",
    }
    for route in routes:
        for answer in route.responses.values():
            if isinstance(answer, Json):
                wanted.setdefault(answer.model, "serialization")
        if route.query is not None:
            wanted.setdefault(route.query, "validation")
        if route.body is not None:
            wanted.setdefault(route.body.model, "validation")
    for model in EXTRA_SCHEMAS:
        wanted.setdefault(model, "validation")
    return list(wanted.items())


def openapi_document(version: str = __version__, routes: Iterable[Route] = ROUTES) -> dict[str, Any]:
    """The OpenAPI 3.1 description of the HTTP API: paths from the route table, schemas from its models."""
    routes = tuple(routes)
    _, top = models_json_schema(schema_models(routes), ref_template=REF_TEMPLATE)
    schemas: dict[str, Any] = top.get("$defs", {})
    paths: dict[str, Any] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route, schemas)
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


def main() -> None:
    sys.stdout.buffer.write(orjson.dumps(openapi_document(), option=orjson.OPT_INDENT_2) + b"\n")


if __name__ == "__main__":
    main()
