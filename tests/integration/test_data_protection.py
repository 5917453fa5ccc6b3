"""A person's request and an inspection, on each database against a real instance: the auditor finds
every message that mentions a name or a phone number however it was typed, exports them whole,
exports the audit trail of a period as a signed file that `watchcentre audit verify-export` checks
offline (and that fails once edited); each search and export is itself recorded, by the digest of
what was searched for, never the identifier."""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import aiohttp
import orjson
import pytest

from tests.integration.harness import Broker, envelope, running
from tests.integration.service_fixtures import CONFIG_DIR
from watchcentre.core.access import Role
from watchcentre.core.ports import SystemClock
from watchcentre.core.records import text_digest
from watchcentre.security import issue_token
from watchcentre.settings import Settings

pytestmark = pytest.mark.integration


async def _verify_export(settings: Settings, path: Path, *extra: str) -> tuple[int, str]:
    env = {
        **os.environ,
        "WATCHCENTRE_CONFIG_DIR": str(CONFIG_DIR),
        "WATCHCENTRE_AUDIT_ANCHOR_KEY_PATH": settings.audit_anchor_key_path,
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "watchcentre",
        "audit",
        "verify-export",
        str(path),
        *extra,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, err.decode()


async def test_a_persons_request_and_an_inspection(
    service_settings: Settings, broker: Broker, tmp_path: Path
) -> None:
    about = [
        envelope(subject="Identification de Jean DUPONTEL", body="Trafic de cocaïne vers l'Espagne."),
        envelope(
            kind="information", subject="Signalement", body="Joignable au +33 6 12-34-56-78 (dupontel)."
        ),
    ]
    other = envelope(subject="Vol de véhicule", body="Aucun nom.")
    started = datetime.now(UTC) - timedelta(seconds=1)
    async with running(service_settings) as inst, aiohttp.ClientSession() as http:
        store = inst.runtime.store
        token = (await issue_token(store, SystemClock(), role=Role.AUDITOR, subject=None, name="DPO")).token
        operator = (
            await issue_token(store, SystemClock(), role=Role.OPERATOR, subject=None, name="op")
        ).token

        async def get(path: str, who: str = token) -> aiohttp.ClientResponse:
            r = await http.get(inst.url + path, headers={"Authorization": f"Bearer {who}"})
            await r.read()
            return r

        for e in (*about, other):
            await broker.publish(e)
        await broker.wait_events(lambda evs: len([e for e in evs if e["type"] in ("routed", "triaged")]) >= 3)

        found = await (await get("/api/dpo/search?q=dupontel")).json()
        assert sorted(m["message_id"] for m in found["messages"]) == sorted(e["message_id"] for e in about)
        assert found["query_sha256"] == text_digest("dupontel") and not found["truncated"]
        assert [c["reference"] for c in found["cases"]] == [
            (await store.get_message(about[0]["message_id"])).reference  # type: ignore[union-attr]
        ]
        phone = await (await get(f"/api/dpo/search?q={quote('+33612345678')}")).json()
        assert [m["message_id"] for m in phone["messages"]] == [about[1]["message_id"]]
        assert (await get("/api/dpo/search?q=dupontel", operator)).status == 403
        assert (await get("/api/dpo/search?q=ab")).status == 400

        export = await (await get("/api/dpo/export?q=DUPONTEL")).json()
        bodies = {m["envelope"]["body"] for m in export["messages"]}
        assert bodies == {e["body"] for e in about} and export["exported_by"] == "auditor:DPO"

        searched = [
            e for e in await store.audit(actor="auditor", limit=1000) if e.type in ("searched", "exported")
        ]
        assert [e.type for e in searched] == ["searched", "searched", "exported"]
        assert "dupontel" not in orjson.dumps([e.details for e in searched]).decode().casefold()
        assert searched[2].details["ids"] == sorted(m["id"] for m in export["messages"])

        r = await get(f"/api/audit/export?since={quote(started.isoformat())}")
        assert r.status == 200 and r.content_type == "application/x-ndjson"
        data = await r.read()
        [exported] = [
            e for e in await store.audit(event_type="exported", limit=1000) if e.details.get("count")
        ]
        assert exported.details["count"] == data.count(b"\n") - 2
    path = tmp_path / "audit.jsonl"
    path.write_bytes(data)
    assert await _verify_export(service_settings, path) == (0, _ok(path))
    path.write_bytes(data.replace(b'"type":"routed"', b'"type":"triaged"', 1))
    code, err = await _verify_export(service_settings, path)
    assert code == 1 and "hash does not match" in err and "bad signature" in err


def _ok(path: Path) -> str:
    n = path.read_bytes().count(b"\n") - 2
    return f"{path}: intact: {n} record(s), chain links, signature checked\n"
