"""Totals a test wants to compare, read through the Store's own API (the port has no counting
method: nothing in the service needs one)."""

from __future__ import annotations

from watchcentre.core.ports import Store as MessageStore
from watchcentre.core.records import MessageQuery, Status


async def totals(store: MessageStore) -> dict[str, int]:
    """Messages by status, and audit records: {"routed", "triage", "rejected", "audit_events"}."""
    out: dict[str, int] = {}
    for status in Status:
        n, before = 0, None
        while page := await store.list_messages(MessageQuery(status=status, before_id=before, limit=500)):
            n, before = n + len(page), page[-1].id
        out[status.value] = n
    n, after = 0, 0
    while page := await store.audit(after_seq=after, limit=1000):
        n, after = n + len(page), page[-1].seq or 0
    return out | {"audit_events": n}


async def seen(store: MessageStore, sender: str, message_id: str) -> bool:
    return (await store.seen_many([(sender, message_id)]))[0]
