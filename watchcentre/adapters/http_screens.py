"""The parties' screens: `GET /` serves each party its own page (operators the console, a post its
inbox, a unit its requests, an auditor a page about the audit trail), and `POST /api/send` lets a
post or a unit send information or a request from its screen. The pages are static files of
`watchcentre/web/`; every call they make is authenticated and scoped like any other.
"""

from __future__ import annotations

from importlib import resources
from typing import Any, Protocol

from aiohttp import web

from watchcentre.adapters.http_base import ApiError, principal_of, same_origin
from watchcentre.adapters.http_models import MessageSummary, SendBody, SendResult
from watchcentre.core.access import Role
from watchcentre.core.records import StoredMessage

PAGES: dict[Role, str] = {
    Role.OPERATOR: "index.html",
    Role.POST: "post.html",
    Role.UNIT: "unit.html",
    Role.AUDITOR: "auditor.html",
}


def page(name: str) -> web.Response:
    body = resources.files("watchcentre.web").joinpath(name).read_bytes()
    return web.Response(body=body, content_type="text/html", charset="utf-8")


async def home_page(request: web.Request) -> web.Response:
    return page(PAGES[principal_of(request).role])


class Submit(Protocol):
    """What the screens ask of the service layer (watchcentre.service.Submissions)."""

    async def submit(self, fields: dict[str, Any], sender: str) -> StoredMessage: ...


SUBMIT = web.AppKey("submit", Submit)


async def send(request: web.Request, *, body: SendBody) -> SendResult:
    same_origin(request)
    who = principal_of(request)
    if who.role not in (Role.POST, Role.UNIT) or not who.subject:
        raise ApiError(403, f"role {who.label} may not send from a screen: posts and units only")
    submit = request.app.get(SUBMIT)
    if submit is None:
        raise ApiError(503, "sending is not wired in this instance")
    fields = body.model_dump(exclude_none=True)
    stored = await submit.submit(fields, who.subject)  # the sender is the session's, never the body's
    return SendResult(message=MessageSummary.model_validate(stored, from_attributes=True))
