"""Screenshots of the parties' screens (sign-in, a post's inbox, a unit's requests, the tracking
page, a search with a hit opened on its identifiers and related messages) in English and French, at 1366×768 and on a phone (390×844), into artifacts/screenshots/.

    PYTHONPATH=. .venv/bin/python scripts/screenshots.py

Needs RabbitMQ (WATCHCENTRE_AMQP_URL, as the tests) and Debian's chromium. It starts one instance on
SQLite, sends a few requests from a unit, works them as a post over the API, then photographs.
"""

from __future__ import annotations

import asyncio
import tempfile
from typing import Any

import aiohttp
from playwright.async_api import Browser, async_playwright, expect

from tests.integration.harness import ROOT, Broker, Instance, delete_prefix, envelope, fresh_prefix
from watchcentre.core.access import Role
from watchcentre.core.ports import SystemClock
from watchcentre.security import issue_token
from watchcentre.settings import Settings

SHOTS = ROOT / "artifacts" / "screenshots"
SIZES = {"desktop": {"width": 1366, "height": 768}, "phone": {"width": 390, "height": 844}}
LOCALES = {"en": "en-GB", "fr": "fr-FR"}

REQUESTS = [
    {
        "subject": "Go-fast Algeciras : identification urgente d'un suspect espagnol",
        "priority": "urgent",
        "countries": ["ES"],
        "body": "Interpellé hier avec 400 kg de résine de cannabis ; identité et antécédents en Espagne ?"
        " Son téléphone : +34 612 345 678.",
    },
    {
        "subject": "Enlèvement d'enfant : passage probable par Irun ce soir",
        "priority": "urgent",
        "countries": ["ES"],
        "body": "Enfant de 6 ans enlevé par son père à Bordeaux ; véhicule signalé vers Irun. Contrôles ?",
    },
    {
        "subject": "Vol de véhicules de luxe, filière vers Valence",
        "countries": ["ES"],
        "body": "Trois SUV volés à Lyon retrouvés au port de Valence : propriétaires des conteneurs ?",
    },
    {
        "subject": "Escroquerie au faux président : comptes ouverts à Madrid",
        "countries": ["ES"],
        "body": "Virements frauduleux vers deux comptes espagnols ; titulaires et mouvements ? Le suspect"
        " rappelait au 0034 612 345 678.",
    },
]


async def act(session: aiohttp.ClientSession, base: str, ref: str, action: str, body: Any = None) -> None:
    async with session.post(f"{base}/api/cases/{ref}/{action}", json=body) as r:
        assert r.status == 200, (action, r.status, await r.text())


async def shoot(
    browser: Browser, base: str, token: str | None, path: str, name: str, ready: str, search: str = ""
) -> None:
    for lang, locale in LOCALES.items():
        for size, viewport in SIZES.items():
            context = await browser.new_context(viewport=viewport, locale=locale)  # type: ignore[arg-type]
            if token is not None:
                await context.add_cookies([{"name": "wc_session", "value": token, "url": base}])
            page = await context.new_page()
            await page.goto(base + path)
            await expect(page.locator(ready).first).to_be_visible(timeout=15_000)
            if token is not None:
                await expect(page.locator("#signed-in")).to_be_attached()  # hidden on a phone (style.css)
                await expect(page.locator("body")).to_have_attribute("data-feed", "live", timeout=15_000)
            if search:  # the search box used, its first hit opened
                await page.locator("#search input[type=search]").fill(search)
                await page.locator("#search button[type=submit]").click()
                await page.locator("#search .search-subject").first.click()
                await expect(page.locator(".search-detail .related, .search-detail p").first).to_be_visible()
            await page.screenshot(path=str(SHOTS / f"{name}-{lang}-{size}.png"), full_page=True)
            await context.close()


async def main() -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    prefix = fresh_prefix()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            amqp_prefix=prefix,
            database_url=f"sqlite:///{tmp}/wc.db",  # type: ignore[arg-type]
            audit_anchor_path=f"{tmp}/audit-anchor.jsonl",
            audit_anchor_key_path=f"{tmp}/audit-anchor.key",
            config_dir=str(ROOT / "config"),
            http_port=0,
            shutdown_deadline_s=5.0,
            cookie_secure=False,
            broker_trust="development",  # the demo's units publish as guest
        )
        broker = await Broker(prefix).open()
        await broker.watch_events()
        instance = await Instance(settings).start()
        try:
            store, network = instance.runtime.store, instance.runtime.config.network
            tokens = {}
            for key, role, subject, person in (
                ("madrid", Role.POST, "madrid", "Inès Duval"),
                ("ofast", Role.UNIT, "ofast", "Cne Martin"),
            ):
                issued = await issue_token(
                    store, SystemClock(), role=role, subject=subject, name=person, network=network
                )
                tokens[key] = issued.token
            sent = [envelope(sender="ofast", **r) for r in REQUESTS]
            for env in sent:
                await broker.publish(env)
            ids = {e["message_id"] for e in sent}
            done = ("routed", "triaged", "rejected")
            try:
                await broker.wait_events(
                    lambda evs: ids <= {e["message_id"] for e in evs if e["type"] in done}
                )
            except TimeoutError:
                raise SystemExit(
                    f"not routed: {[(e['type'], e.get('message_id')) for e in broker.events]}"
                ) from None
            refs = [
                next(e["reference"] for e in broker.events if e["type"] in done and e["message_id"] == m)
                for m in (e["message_id"] for e in sent)
            ]
            base = instance.url
            post = aiohttp.ClientSession(headers={"Authorization": f"Bearer {tokens['madrid']}"})
            unit = aiohttp.ClientSession(headers={"Authorization": f"Bearer {tokens['ofast']}"})
            try:
                # the first: worked through to its answer; the third: a clarification waiting
                await act(post, base, refs[0], "ack")
                question = {"clarification": "request", "reason": "Date de naissance du suspect ?"}
                await act(post, base, refs[0], "clarification", question)
                await act(
                    unit,
                    base,
                    refs[0],
                    "clarification",
                    {"clarification": "answer", "reason": "3 mars 1990."},
                )
                await act(post, base, refs[0], "progress")
                await act(
                    post,
                    base,
                    refs[0],
                    "answer",
                    {"reason": "Identifié : Juan P., connu pour trafic à Cadix."},
                )
                await act(post, base, refs[2], "ack")
                question = {"clarification": "request", "reason": "Numéros de châssis ?"}
                await act(post, base, refs[2], "clarification", question)
            finally:
                await post.close()
                await unit.close()
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
                try:
                    await shoot(browser, base, None, "/signin?next=/", "signin", "#token")
                    await shoot(browser, base, tokens["madrid"], "/", "post-inbox", "li.card")
                    await shoot(browser, base, tokens["ofast"], "/", "unit-requests", "li.card")
                    await shoot(browser, base, tokens["madrid"], "/", "post-search", "li.card", "suspect")
                    await shoot(browser, base, tokens["ofast"], "/", "unit-search", "li.card", "espagnol*")
                    await shoot(
                        browser, base, tokens["ofast"], f"/track/{refs[0]}", "track", "#answer blockquote"
                    )
                finally:
                    await browser.close()
        finally:
            await instance.stop()
            await delete_prefix(prefix)
    print(f"screenshots in {SHOTS}")


if __name__ == "__main__":
    asyncio.run(main())
