"""What-if's reads (core/ports.History) and the operators' labels (core/ports.Labels), in SQL written
once for both engines against the Dialect seam. Pages by row id (keyset), never OFFSET."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from watchcentre.adapters.sql.dialects import Dialect, Tx
from watchcentre.core.labels import Label
from watchcentre.core.records import SYSTEM_ACTOR
from watchcentre.core.replay import Decided

_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST = datetime(9999, 1, 1, tzinfo=UTC)
_PERIOD = "m.status <> 'rejected' AND m.received_at >= $1 AND m.received_at < $2"


def _json(value: Any) -> Any:
    return None if value is None else orjson.loads(value)


async def _automatic(d: Dialect, keys: list[tuple[str, str]]) -> dict[tuple[str, str], list[str]]:
    """The rules' own decision on messages later routed by hand: their first `routed`/`triaged` record
    by the service (the operator's decision is recorded under the operator's name)."""
    ids = sorted({m for _, m in keys})
    marks = ", ".join(f"${i + 2}" for i in range(len(ids)))
    rows = await d.fetch(
        "SELECT sender, message_id, details FROM audit WHERE type IN ('routed', 'triaged') AND actor = $1"
        f" AND message_id IN ({marks}) ORDER BY seq",
        SYSTEM_ACTOR,
        *ids,
    )
    wanted, out = set(keys), {}
    for sender, message_id, details in rows:
        key = (sender, message_id)
        if key in wanted and key not in out:
            out[key] = list(_json(details).get("recipients", []))
    return out


class SqlHistory:
    """What-if's reads and the operators' labels (core/ports.History, Labels)."""

    _d: Dialect

    async def count_decided(self, since: datetime | None, until: datetime | None) -> int:
        d = self._d
        rows = await d.fetch(
            f"SELECT count(*) FROM messages m WHERE {_PERIOD}",
            d.ts(since or _EARLIEST),
            d.ts(until or _LATEST),
        )
        return int(rows[0][0])

    async def decided_page(
        self, since: datetime | None, until: datetime | None, after_id: int, limit: int
    ) -> list[Decided]:
        d = self._d
        rows = await d.fetch(
            "SELECT m.id, m.sender, m.message_id, m.envelope, m.recipients, m.routing,"
            " EXISTS (SELECT 1 FROM manual_routes r WHERE r.sender = m.sender AND r.message_id = m.message_id)"
            f" FROM messages m WHERE {_PERIOD} AND m.id > $3 ORDER BY m.id LIMIT $4",
            d.ts(since or _EARLIEST),
            d.ts(until or _LATEST),
            after_id,
            limit,
        )
        manual = [(r[1], r[2]) for r in rows if r[6]]
        automatic = await _automatic(d, manual) if manual else {}
        out = []
        for r in rows:
            routing = _json(r[5]) or {}
            recipients = automatic.get((r[1], r[2])) if r[6] else None
            out.append(
                Decided(
                    id=int(r[0]),
                    sender=r[1],
                    message_id=r[2],
                    envelope=_json(r[3]),
                    recipients=recipients if recipients is not None else _json(r[4]) or [],
                    explanation=list(routing.get("explanation", [])),
                )
            )
        return out

    async def add_label(self, label: Label) -> None:
        d = self._d

        async def tx(t: Tx) -> None:
            await t.fetch(
                "INSERT INTO labels (sender, message_id, at, actor, reason, crime_types, countries, predicted, blamed)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                d.text(label.sender),
                d.text(label.message_id),
                d.ts(label.at),
                d.text(label.actor),
                d.text(label.reason),
                orjson.dumps(label.crime_types).decode(),
                orjson.dumps(label.countries).decode(),
                orjson.dumps(
                    {"crime_types": label.predicted_crime_types, "countries": label.predicted_countries}
                ).decode(),
                orjson.dumps(label.blamed).decode(),
            )

        await d.write(tx, serial=False)

    async def labels(self, limit: int = 10_000) -> list[tuple[Label, dict[str, Any] | None]]:
        d = self._d
        rows = await d.fetch(
            "SELECT l.sender, l.message_id, l.at, l.actor, l.reason, l.crime_types, l.countries, l.predicted,"
            " l.blamed, (SELECT m.envelope FROM messages m WHERE m.sender = l.sender AND m.message_id = l.message_id"
            " AND m.status <> 'rejected')"
            " FROM labels l WHERE NOT EXISTS (SELECT 1 FROM labels n WHERE n.sender = l.sender"
            " AND n.message_id = l.message_id AND n.id > l.id)"
            " ORDER BY l.id DESC LIMIT $1",
            limit,
        )
        out = []
        for r in rows:
            predicted = _json(r[7]) or {}
            label = Label(
                sender=r[0],
                message_id=r[1],
                at=d.at(r[2]),
                actor=r[3],
                reason=r[4],
                crime_types=_json(r[5]),
                countries=_json(r[6]),
                predicted_crime_types=predicted.get("crime_types", []),
                predicted_countries=predicted.get("countries", []),
                blamed=_json(r[8]) or [],
            )
            out.append((label, _json(r[9])))
        return out
