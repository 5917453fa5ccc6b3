"""Token lifecycle, authentication and audit verification, through the Store port.

Used by the HTTP adapter (authenticate, record reads, verify) and by `watchcentre token|audit`.
Tokens: 32 random bytes (url-safe base64, prefix `wct_`), shown once at issue; the store keeps
only their SHA-256, the role, the post or unit, the person's name, the expiry and the revocation.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from watchcentre.core.access import (
    TOKEN_PREFIX,
    Principal,
    Role,
    TokenRecord,
    hash_token,
    new_token,
    role_problems,
)
from watchcentre.core.audit_chain import AnchorProblem, Checkpoint, TrailWalk, Verification, read_anchor
from watchcentre.core.network import Network
from watchcentre.core.ports import AuditAnchor, Clock, Store
from watchcentre.core.records import AuditEvent, EventType, StoredMessage

MAX_TOKEN_LENGTH = 200
DEFAULT_TTL = timedelta(days=30)
MAX_TTL = timedelta(days=366)


class TokenError(ValueError):
    """A token request that cannot be honoured (bad role, unknown post, bad lifetime)."""


@dataclass(frozen=True)
class Issued:
    record: TokenRecord
    token: str  # the secret: shown once, never stored


async def issue_token(
    store: Store,
    clock: Clock,
    *,
    role: Role,
    subject: str | None,
    name: str,
    ttl: timedelta = DEFAULT_TTL,
    network: Network | None = None,
    issued_by: str = "cli",
) -> Issued:
    problems = role_problems(role, subject, network)
    if not name.strip() or len(name) > 200:
        problems.append("--name: give the person's name (1 to 200 characters)")
    if not timedelta(0) < ttl <= MAX_TTL:
        problems.append(f"lifetime must be more than 0 and at most {MAX_TTL.days} days")
    if problems:
        raise TokenError("; ".join(problems))
    now = clock.now()
    token_id, secret = new_token()
    record = TokenRecord(
        id=token_id,
        name=name.strip(),
        role=role,
        subject=subject,
        created_at=now,
        expires_at=now + ttl,
        hash=hash_token(secret),
    )
    event = AuditEvent(
        at=now,
        type=EventType.TOKEN_ISSUED,
        actor=issued_by,
        details={
            "token_id": token_id,
            "role": record.principal().label,
            "name": record.name,
            "expires_at": record.expires_at.isoformat(),
        },
    )
    await store.add_token(record, event)
    return Issued(record, secret)


async def revoke_token(
    store: Store, clock: Clock, token_id: str, revoked_by: str = "cli"
) -> TokenRecord | None:
    now = clock.now()
    event = AuditEvent(at=now, type=EventType.TOKEN_REVOKED, actor=revoked_by, details={"token_id": token_id})
    return await store.revoke_token(token_id, now, event)


async def authenticate(store: Store, clock: Clock, token: str) -> tuple[Principal | None, str]:
    """(principal, "ok") for a valid token; (None, why) otherwise: malformed, unknown, expired, revoked."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > MAX_TOKEN_LENGTH or not token.isascii():
        return None, "malformed"
    record = await store.token_by_hash(hash_token(token))
    if record is None:
        return None, "unknown"
    problem = record.problem(clock.now())
    if problem is not None:
        return None, problem
    return record.principal(), "ok"


async def record_read(
    store: Store, clock: Clock, principal: Principal, message: StoredMessage, route: str
) -> None:
    """Audit one read of one message by a person: who, what, when."""
    await store.append_audit(
        [
            AuditEvent(
                at=clock.now(),
                type=EventType.ACCESSED,
                actor=principal.label,
                sender=message.sender,
                message_id=message.message_id,
                reference=message.reference,
                details={
                    "name": principal.name,
                    "token_id": principal.token_id,
                    "route": route,
                    "id": message.id,
                },
            )
        ]
    )


async def record_list(
    store: Store, clock: Clock, principal: Principal, ids: list[int], query: dict[str, Any], route: str
) -> None:
    """Audit one listing or search by a person: the query and the ids it returned."""
    await store.append_audit(
        [
            AuditEvent(
                at=clock.now(),
                type=EventType.LISTED,
                actor=principal.label,
                details={
                    "name": principal.name,
                    "token_id": principal.token_id,
                    "route": route,
                    "query": query,
                    "ids": ids,
                },
            )
        ]
    )


async def record_consultation(
    store: Store,
    clock: Clock,
    principal: Principal,
    route: str,
    event_type: str = EventType.LISTED,
    **what: Any,
) -> None:
    """Audit one consultation that is not one message's detail (a list, a feed frame, statistics,
    an export, the audit trail itself): who, where, and what was shown (ids, the query), never the
    content. Written before the answer is sent: no record, no answer."""
    await store.append_audit(
        [
            AuditEvent(
                at=clock.now(),
                type=event_type,
                actor=principal.label,
                details={"name": principal.name, "token_id": principal.token_id, "route": route, **what},
            )
        ]
    )


async def verify_audit(store: Store, anchor: AuditAnchor | None = None, page: int = 1000) -> Verification:
    """Walk the whole trail: links, gaps in seq and, given an anchor, its signed checkpoints."""
    checkpoints: list[Checkpoint] = []
    anchor_problems: list[AnchorProblem] = []
    data = await anchor.read() if anchor is not None else None
    if anchor is not None and data is not None:
        checkpoints, anchor_problems = read_anchor(data, anchor.key)
    walk = TrailWalk(checkpoints)
    after = 0
    while events := await store.audit(after_seq=after, limit=page):
        walk.feed(events)
        after = walk.last_seq or after
    return walk.finish(
        anchor_where=anchor.where if anchor else None,
        anchor_problems=anchor_problems,
        anchor_missing=data is None,
    )
