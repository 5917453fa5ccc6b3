"""RabbitMQ's management HTTP API, for `watchcentre broker provision`: users and their permissions.

The management API rather than `rabbitmqctl`: it works from wherever the operator is (another host,
another container) with an administrator's credentials, needs no access to the broker node's Erlang
cookie, and answers each call in milliseconds (a `rabbitmqctl` call starts an Erlang VM: about a
second each, some 300 of them for the whole network).
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import aiohttp

from watchcentre.core.senders import Grant


class AdminError(Exception):
    """The management API refused or could not be reached (the message says which, never a password)."""


@dataclass(frozen=True)
class Provisioned:
    user: str
    senders: tuple[str, ...]
    password: str | None
    """Set only when this run created the user or rotated its password: shown once."""


class RabbitAdmin:
    def __init__(self, url: str, vhost: str = "/") -> None:
        parts = urlsplit(url)
        login = f"{unquote(parts.username or 'guest')}:{unquote(parts.password or '')}"
        self._auth = {"Authorization": "Basic " + base64.b64encode(login.encode()).decode()}
        host = parts.hostname or "127.0.0.1"
        self._base = f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")
        self._vhost = quote(vhost, safe="")
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> RabbitAdmin:
        self._session = aiohttp.ClientSession(headers=self._auth, timeout=aiohttp.ClientTimeout(total=30))
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> int:
        assert self._session is not None
        try:
            async with self._session.request(method, f"{self._base}/api/{path}", json=body) as resp:
                if resp.status >= 400 and resp.status != 404:
                    raise AdminError(f"{method} /api/{path}: {resp.status} {(await resp.text())[:200]}")
                return resp.status
        except aiohttp.ClientError as exc:
            raise AdminError(f"management API unreachable at {self._base}: {type(exc).__name__}") from exc

    async def user_exists(self, user: str) -> bool:
        return await self._call("GET", f"users/{quote(user, safe='')}") != 404

    async def delete_user(self, user: str) -> None:
        await self._call("DELETE", f"users/{quote(user, safe='')}")

    async def apply(self, grant: Grant, rotate: bool = False) -> Provisioned:
        """Create the user with a random password if it does not exist (or set a new one when asked
        to rotate), then (re-)apply its permissions: no tags, so no management access and no
        `impersonator` (which would let it set any user_id)."""
        user = quote(grant.user, safe="")
        password = None
        if rotate or not await self.user_exists(grant.user):
            password = secrets.token_urlsafe(24)
            await self._call("PUT", f"users/{user}", {"password": password, "tags": ""})
        await self._call(
            "PUT",
            f"permissions/{self._vhost}/{user}",
            {"configure": grant.configure, "write": grant.write, "read": grant.read},
        )
        return Provisioned(grant.user, grant.senders, password)
