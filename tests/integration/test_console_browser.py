"""The operator console end to end in headless Chromium (Debian's /usr/bin/chromium, driven by
playwright; nothing is downloaded): a real watchcentre instance, real RabbitMQ, SQLite.

One browser and one instance for the module; each test opens its own page. The page reaches the
instance through a TCP proxy, so a test can cut its WebSocket as a network drop would.
Screenshots of each view go to artifacts/screenshots/.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import orjson
import pytest
import pytest_asyncio
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect

from tests.integration.harness import ROOT, Broker, Instance, envelope, fresh_prefix
from tests.integration.proxy import Proxy
from tests.unit.test_i18n_catalogs import catalog
from tests.unit.test_server_texts import explanation_lines, rejection_lines, render
from watchcentre.adapters.http_models import CASE_SUMMARY_FIELDS, CaseList
from watchcentre.core.access import Role
from watchcentre.core.ports import SystemClock
from watchcentre.core.records import AuditEvent
from watchcentre.core.watches import WatchInput, phrase_value
from watchcentre.security import issue_token
from watchcentre.settings import Settings

CHROMIUM = "/usr/bin/chromium"
SHOTS = ROOT / "artifacts" / "screenshots"

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

if not os.path.exists(CHROMIUM):  # fail, never skip: CI must run these (scripts/test installs it)
    raise RuntimeError(f"{CHROMIUM} is missing: apt-get install chromium (scripts/test does it)")


class Console:
    def __init__(
        self, instance: Instance, broker: Broker, proxy: Proxy, browser: Browser, token: str
    ) -> None:
        self.instance, self.broker, self.proxy, self.browser, self.token = (
            instance,
            broker,
            proxy,
            browser,
            token,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.proxy.port}"

    async def page(self, init_script: str | None = None) -> tuple[BrowserContext, Page, list[str]]:
        context = await self.browser.new_context(viewport={"width": 1500, "height": 900})
        if init_script is not None:  # runs before the page's own scripts
            await context.add_init_script(init_script)
        await context.add_cookies([{"name": "wc_session", "value": self.token, "url": self.url}])
        page = await context.new_page()
        problems: list[str] = []
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        await page.goto(self.url + "/")
        await expect(page.locator("body")).to_have_attribute("data-feed", "live")
        return context, page, problems

    async def routed(self, *message_ids: str, types: tuple[str, ...] = ("routed", "triaged")) -> None:
        wanted = set(message_ids)
        await self.broker.wait_events(
            lambda evs: wanted <= {e["message_id"] for e in evs if e["type"] in types}, within=30
        )


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def console(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Console]:
    prefix = fresh_prefix()
    settings = Settings(
        amqp_prefix=prefix,
        database_url=f"sqlite:///{tmp_path_factory.mktemp('console') / 'wc.db'}",  # type: ignore[arg-type]
        config_dir=str(ROOT / "config"),
        http_port=0,
        shutdown_deadline_s=5.0,
        cookie_secure=False,
    )
    broker = await Broker(prefix).open()
    await broker.watch_events()
    instance = await Instance(settings).start()
    proxy = await Proxy("127.0.0.1", instance.port).start()
    issued = await issue_token(
        instance.runtime.store,
        SystemClock(),
        role=Role.OPERATOR,
        subject=None,
        name="Alice",
        network=instance.runtime.config.network,
    )
    SHOTS.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield Console(instance, broker, proxy, browser, issued.token)
        finally:
            await browser.close()
            await proxy.close()
            await instance.stop()
            await broker.close()


def row(page: Page, message_id: str) -> Any:
    return page.locator(f'#feed-rows .row[data-message-id="{message_id}"]')


async def test_published_envelope_appears_in_the_feed_and_the_page_keeps_a_strict_csp(
    console: Console,
) -> None:
    context, page, problems = await console.page()
    try:
        response = await page.request.get(console.url + "/")
        csp = response.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "unsafe-inline" not in csp
        env = envelope(
            subject="Cocaïne saisie à Madrid, suspect espagnol", priority="urgent", countries=["ES"]
        )
        started = time.perf_counter()
        await console.broker.publish(env)
        line = row(page, env["message_id"])
        await expect(line).to_have_count(1, timeout=10_000)
        seen_after = time.perf_counter() - started
        await expect(line.locator('.c-recipients .tag[title="post.madrid"]')).to_have_text("madrid")
        await expect(line).to_contain_text("urgent")
        await expect(line).to_contain_text("routed")
        assert seen_after < 5, f"took {seen_after:.2f}s to appear"
        await page.screenshot(path=str(SHOTS / "feed.png"))
        # filters: by country, then by a priority it does not have
        await page.select_option("#filters select[name=country]", "DE")
        await expect(line).to_be_hidden()
        await expect(page.locator("#feed-stats")).to_contain_text(" shown of ")  # counts what is shown
        await page.select_option("#filters select[name=country]", "ES")
        await expect(line).to_be_visible()
        await expect(line.locator(".c-countries .tag[title=ES]")).to_have_text(
            "Spain"
        )  # words, code on hover
        await page.select_option("#filters select[name=priority]", "normal")
        await expect(line).to_be_hidden()
        await page.select_option("#filters select[name=priority]", "")
        await expect(line).to_be_visible()
        # no CSP violation, no script error (the 404 is /api/cases: the lifecycle API is not merged yet)
        assert not [p for p in problems if "404" not in p], problems
    finally:
        await context.close()


async def test_a_subject_with_markup_is_shown_as_text(console: Console) -> None:
    context, page, problems = await console.page()
    try:
        nasty = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2"> colis à Rabat'
        env = envelope(subject=nasty, body=f"Corps: {nasty}", countries=["MA"])
        await console.broker.publish(env)
        line = row(page, env["message_id"])
        await expect(line).to_have_count(1, timeout=10_000)
        assert await line.locator(".subject").text_content() == nasty
        await line.click()
        await expect(page.locator("#detail-subject")).to_have_text(nasty)
        await expect(page.locator("#detail-text")).to_contain_text(nasty)
        assert await page.evaluate("window.__pwned") is None
        assert await page.locator("#detail img, #feed-rows img, #feed-rows script").count() == 0
        assert not [p for p in problems if "404" not in p], problems
    finally:
        await context.close()


async def test_bidi_overrides_and_zero_width_characters_are_shown_not_obeyed(console: Console) -> None:
    context, page, problems = await console.page()
    try:
        # shown raw, U+202E makes "Facture gnp.exe" read "Facture exe.png"; U+200B hides in a word
        env = envelope(
            subject="Facture \u202egnp.exe",
            body="Pièce jointe: co\u200bcaïne \u2066x\u2069",
            countries=["MA"],
        )
        await console.broker.publish(env)
        line = row(page, env["message_id"])
        await expect(line).to_have_count(1, timeout=10_000)
        shown = line.locator(".subject")
        assert await shown.text_content() == "Facture ⟨U+202E⟩gnp.exe"
        assert await shown.get_attribute("title") == "Facture ⟨U+202E⟩gnp.exe"
        assert await shown.get_attribute("dir") == "auto"
        await line.click()
        await expect(page.locator("#detail-subject")).to_have_text("Facture ⟨U+202E⟩gnp.exe")
        await expect(page.locator("#detail-text")).to_contain_text("co⟨U+200B⟩caïne ⟨U+2066⟩x⟨U+2069⟩")
        text = await page.locator("body").inner_text()
        assert not any(c in text for c in "\u202e\u200b\u2066\u2069")
        assert not [p for p in problems if "404" not in p], problems
    finally:
        await context.close()


async def test_triage_item_routed_by_clicking_lands_in_the_posts_queue(console: Console) -> None:
    context, page, _ = await console.page()
    try:
        env = envelope(
            subject="Note de situation", body="Demande d'assistance sans autre précision sur le dossier."
        )
        await console.broker.publish(env)
        await console.routed(env["message_id"], types=("triaged",))
        await page.click("button[data-view=triage]")
        item = page.locator(f'#triage-rows tr[data-message-id="{env["message_id"]}"]')
        await item.click()
        form = page.locator("#route-form")
        await form.locator("input[type=search]").fill("lisbon")
        await form.locator('input[value="post.lisbon"]').check()
        await form.locator("button[type=submit]").click()
        await expect(form.locator(".error")).to_contain_text("reason")  # a reason is required
        await form.locator("textarea[name=reason]").fill("Suspect known to the Lisbon liaison officer")
        await page.screenshot(path=str(SHOTS / "triage-route.png"))
        await form.locator("button[type=submit]").click()
        await expect(page.locator("#detail-recipients")).to_contain_text("post.lisbon")
        await expect(page.locator("#detail-why")).to_contain_text("manual by operator:Alice: Suspect known")
        await console.broker.wait_events(
            lambda evs: any(
                e["type"] == "routed"
                and e["message_id"] == env["message_id"]
                and e["actor"] == "operator:Alice"
                for e in evs
            )
        )
        copies = [
            m
            for m in await console.broker.drain("post.lisbon")
            if m.headers.get("x-watchcentre-message-id") == env["message_id"]
        ]
        assert len(copies) == 1
        body = orjson.loads(copies[0].body)
        assert body["routing"]["recipients"] == ["post.lisbon"]
        assert (
            body["routing"]["explanation"][0]
            == "manual by operator:Alice: Suspect known to the Lisbon liaison officer"
        )
        await page.screenshot(path=str(SHOTS / "detail-routed.png"))
        await expect(page.locator(f'#triage-rows tr[data-message-id="{env["message_id"]}"]')).to_have_count(0)
    finally:
        await context.close()


async def test_detail_highlights_the_matched_phrases(console: Console) -> None:
    context, page, _ = await console.page()
    try:
        env = envelope(
            subject="Trafic de cocaïne entre le Maroc et l'Espagne",
            body="Un ressortissant colombien arrêté à Tanger avec 3 kg de cocaïne. Aucun lien avec le terrorisme.",
        )
        await console.broker.publish(env)
        line = row(page, env["message_id"])
        await expect(line).to_have_count(1, timeout=10_000)
        await line.click()
        marks = page.locator("#detail-text mark")
        await expect(marks.first).to_be_visible()
        texts = await marks.all_text_contents()
        assert any("cocaïne" in t.lower() for t in texts), texts
        assert any("tanger" in t.lower() for t in texts), texts
        await expect(page.locator("#detail-text mark.negated")).to_contain_text("terrorisme")
        await page.screenshot(path=str(SHOTS / "detail-highlights.png"))
    finally:
        await context.close()


async def test_missed_events_are_back_filled_after_the_websocket_drops(console: Console) -> None:
    context, page, _ = await console.page()
    try:
        first = envelope(subject="Avant la coupure", countries=["IT"])
        await console.broker.publish(first)
        await expect(row(page, first["message_id"])).to_have_count(1, timeout=10_000)
        console.proxy.cut()  # the network drops: the WebSocket dies, reconnections are refused
        await expect(page.locator("body")).to_have_attribute("data-feed", "down")
        missed = [envelope(subject=f"Pendant la coupure {i}", countries=["DE"]) for i in range(5)]
        for env in missed:
            await console.broker.publish(env)
        await console.routed(*(e["message_id"] for e in missed))
        for env in missed:
            assert await row(page, env["message_id"]).count() == 0
        console.proxy.restore()
        await expect(page.locator("body")).to_have_attribute("data-feed", "live", timeout=15_000)
        for env in missed:
            await expect(row(page, env["message_id"])).to_have_count(1)
        assert int(await page.locator("body").get_attribute("data-backfilled") or 0) >= len(missed)
        assert await row(page, first["message_id"]).count() == 1  # back-fill does not duplicate
        ids = [
            int(i)
            for i in await page.locator("#feed-rows .row").evaluate_all("rs => rs.map(r => r.dataset.id)")
        ]
        assert ids == sorted(ids, reverse=True)  # newest first, back-filled rows in their place
        await page.screenshot(path=str(SHOTS / "feed-backfilled.png"))
    finally:
        console.proxy.restore()
        await context.close()


# Measures the page from the outside: every animation-frame callback is timed, and counted as one of
# our DOM updates when it inserted rows into the feed (MutationObserver records taken right after it).
TIME_FEED_UPDATES = """(() => {
  const updates = { count: 0, totalMs: 0, maxMs: 0 };
  window.__feedUpdates = updates;
  const seen = new MutationObserver(() => {});
  seen.observe(document, { childList: true, subtree: true });
  const insertedRows = (records) => records.some((r) => r.target.id === "feed-rows" && r.addedNodes.length);
  const frame = window.requestAnimationFrame.bind(window);
  window.requestAnimationFrame = (callback) => frame((at) => {
    seen.takeRecords();
    const began = performance.now();
    try { callback(at); } finally {
      const took = performance.now() - began;
      if (insertedRows(seen.takeRecords())) {
        updates.count++; updates.totalMs += took; updates.maxMs = Math.max(updates.maxMs, took);
      }
    }
  });
})()"""


async def test_a_burst_of_100_messages_per_second_does_not_freeze_the_page(console: Console) -> None:
    context, page, _ = await console.page(TIME_FEED_UPDATES)
    try:
        await page.evaluate(
            """() => { window.__maxGap = 0; let last = performance.now();
                 window.__gaps = [];
                 window.__beat = setInterval(() => { const now = performance.now(); window.__gaps.push(now - last);
                   window.__maxGap = Math.max(window.__maxGap, now - last); last = now; }, 20); }"""
        )
        burst = [envelope(subject=f"Rafale {i}", countries=["ES" if i % 2 else "MA"]) for i in range(300)]
        started = time.perf_counter()
        for i, env in enumerate(burst):  # paced at 100 per second (the load, not a wait)
            await console.broker.publish(env)
            delay = started + (i + 1) / 100 - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        await expect(row(page, burst[-1]["message_id"])).to_have_count(1, timeout=20_000)
        caught_up = time.perf_counter() - started
        max_gap = await page.evaluate("window.__maxGap")
        p95_gap = await page.evaluate(
            "(() => { const g = [...window.__gaps].sort((a, b) => a - b); return g[Math.floor(g.length * 0.95)]; })()"
        )
        updates = await page.evaluate("window.__feedUpdates")
        shown = await page.locator("#feed-rows .row").count()
        print(
            f"burst: 300 messages at 100/s, page caught up after {caught_up:.2f}s; 20 ms timer: p95 gap"
            f" {p95_gap:.0f} ms, max {max_gap:.0f} ms; {updates['count']} DOM updates, mean"
            f" {updates['totalMs'] / updates['count']:.1f} ms, longest {updates['maxMs']:.1f} ms; {shown} rows"
        )
        # Wall-clock numbers on 2 cores shared with the service, RabbitMQ and the database during this
        # very burst: a single stall can be the machine's, not the page's. What must hold: the timer
        # keeps ticking (p95), our own DOM updates are short on average and batched (fewer updates than
        # messages), and nothing blocks for seconds.
        assert p95_gap < 250, f"the page's timer p95 gap is {p95_gap:.0f} ms"
        assert updates["count"] > 0, updates
        assert updates["totalMs"] / updates["count"] < 30, updates
        assert updates["count"] < len(burst), updates
        assert max_gap < 2000, f"the page froze for {max_gap:.0f} ms"
        assert shown <= 500
        # the page still answers clicks at once
        clicked = time.perf_counter()
        await page.click("button[data-view=glance]")
        await expect(page.locator("#view-glance")).to_be_visible()
        assert time.perf_counter() - clicked < 2
    finally:
        await context.close()


async def test_views_dead_letters_shift_log_glance_and_deadlines(console: Console) -> None:
    context, page, problems = await console.page()
    try:
        bad = envelope(subject="Pays inconnu", countries=["XX"])
        await console.broker.publish(bad)
        await console.routed(bad["message_id"], types=("rejected",))
        # dead letters: correct the country and re-inject
        await page.click("button[data-view=dead]")
        item = page.locator(".dead-item", has_text=bad["message_id"])
        await expect(item).to_contain_text("countries")
        await page.screenshot(path=str(SHOTS / "dead-letters.png"))
        await item.locator(".dead-summary").click()  # a compact line, opening to its editor
        corrected = {**bad, "countries": ["ES"]}
        await item.locator("textarea").fill(orjson.dumps(corrected, option=orjson.OPT_INDENT_2).decode())
        await item.locator("input[name=reason]").fill("sender typed XX for ES")
        await item.get_by_role("button", name="Re-inject corrected").click()
        await expect(page.locator(".okmsg")).to_contain_text(bad["message_id"])
        await console.routed(bad["message_id"], types=("routed",))
        # shift log: a note linked to a message, seen by the next shift first (the handover strip)
        await page.click("button[data-view=log]")
        await page.fill("#note-text", "Lisbon asked for a call back before 08:00 <b>urgent</b>")
        await page.fill("#note-form input[name=message_ids]", bad["message_id"])
        await page.fill("#note-form input[name=references]", "FR-2024-0042")
        await page.click("#note-form button[type=submit]")
        await expect(page.locator("#notes li").first).to_contain_text("<b>urgent</b>")
        await expect(page.locator("#handover")).to_contain_text("call back before 08:00")
        await page.screenshot(path=str(SHOTS / "shift-log.png"))
        # at a glance, with the map
        await page.click("button[data-view=glance]")
        await expect(page.locator("svg.map path[data-country=ES]")).to_have_count(1)
        fill = await page.locator("svg.map path[data-country=ES]").get_attribute("fill")
        assert fill != await page.locator("svg.map path[data-country=AU]").get_attribute("fill")
        await page.screenshot(path=str(SHOTS / "glance.png"), full_page=True)
        # deadlines: the corrected request opened a case; the board lists it with its time left
        await page.click("button[data-view=deadlines]")
        row = page.locator("#deadlines li", has_text="Pays inconnu")
        await expect(row).to_have_count(1)
        await expect(row).to_contain_text("Acknowledgement in")  # the first deadline: the acknowledgement
        await expect(page.locator("#lifecycle-missing")).to_have_count(0)
        await page.screenshot(path=str(SHOTS / "deadlines-live.png"))
        assert not [p for p in problems if "Content Security Policy" in p], problems
    finally:
        await context.close()


async def test_deadlines_board_puts_overdue_requests_on_top_and_unmissable(console: Console) -> None:
    context = await console.browser.new_context(viewport={"width": 1500, "height": 900})
    await context.add_cookies([{"name": "wc_session", "value": console.token, "url": console.url}])
    page = await context.new_page()
    cases: dict[str, Any] = {
        "items": [
            {
                "reference": "FR-2024-0007",
                "state": "routed",
                "priority": "urgent",
                "subject": "Demande urgente <i>identification</i>",
                "sender": "ofast",
                "crime_types": ["drug_trafficking"],
                "countries": ["ES"],
                "recipients": ["post.madrid"],
                "opened_at": "2024-05-01T08:00:00Z",
                "ack_due_at": "2024-05-01T09:00:00Z",
                "due_at": "2024-05-01T12:00:00Z",
                "time_left_seconds": -7300,
                "overdue": True,
                "acknowledged_at": None,
                "answered_at": None,
                "clarification_pending": False,
                "purged_at": None,
            },
            {
                "reference": "FR-2024-0009",
                "state": "acknowledged",
                "priority": "normal",
                "subject": "Vérification",
                "sender": "c3n",
                "crime_types": ["cybercrime"],
                "countries": ["DE"],
                "recipients": ["post.berlin"],
                "opened_at": "2024-05-01T08:00:00Z",
                "ack_due_at": "2024-05-01T09:00:00Z",
                "due_at": "2024-05-03T12:00:00Z",
                "time_left_seconds": 2000,
                "overdue": False,
                "acknowledged_at": "2024-05-01T08:30:00Z",
                "answered_at": None,
                "clarification_pending": False,
                "purged_at": None,
            },
        ],
        "next": None,
    }

    # Checked against the API's own response model, so it cannot drift from what /api/cases serves.
    assert all(set(item) == set(CASE_SUMMARY_FIELDS) for item in cases["items"]), (
        "fields the API does not serve"
    )
    served = CaseList.model_validate(cases).model_dump_json()

    async def fake_cases(route: Any) -> None:
        await route.fulfill(status=200, content_type="application/json", body=served)

    try:
        await page.route("**/api/cases?open=true", fake_cases)  # the shape the lifecycle API will serve
        await page.goto(console.url + "/")
        await expect(page.locator("body")).to_have_attribute("data-ready", "true")
        await page.click("button[data-view=deadlines]")
        first = page.locator(".deadline").first
        await expect(first).to_have_class("deadline overdue")
        await expect(first).to_contain_text("Acknowledgement LATE by")  # not acknowledged: that comes first
        await expect(first).to_contain_text("acknowledgement missed")
        await expect(first).to_contain_text("<i>identification</i>")
        await expect(page.locator(".deadline").nth(1)).to_contain_text("Answer in 33 min")
        await expect(page.locator("#overdue-banner")).to_be_visible()
        await expect(page.locator("#overdue-banner")).to_contain_text("1 request(s) overdue")
        await page.screenshot(path=str(SHOTS / "deadlines.png"))
        await page.click("button[data-view=glance]")
        await expect(page.locator("svg.map")).to_have_attribute("aria-label", "Open requests by country")
    finally:
        await context.close()


async def test_signing_in_through_the_form_opens_the_console(console: Console) -> None:
    context = await console.browser.new_context()
    page = await context.new_page()
    try:
        await page.goto(console.url + "/")
        await page.wait_for_url("**/signin?next=/")  # no session: to sign in, then back
        await page.fill("#token", console.token)
        await page.click("button[type=submit]")  # a real form post: the Origin check must accept it
        await expect(page.locator("body")).to_have_attribute("data-feed", "live")
        assert page.url == console.url + "/"
    finally:
        await context.close()


async def opened(console: Console, message_id: str) -> str:
    """The reference of the case the request `message_id` opened (its `routed` event carries it)."""

    def found(evs: list[dict[str, Any]]) -> bool:
        return any(e["type"] == "routed" and e["message_id"] == message_id and e["reference"] for e in evs)

    await console.broker.wait_events(found, within=30)
    [event] = [e for e in console.broker.events_of("routed") if e["message_id"] == message_id]
    return str(event["reference"])


async def test_a_missed_acknowledgement_is_announced_on_the_live_feed_until_an_operator_acknowledges_it(
    console: Console,
) -> None:
    context, page, problems = await console.page()
    try:
        env = envelope(subject="Go-fast à Algésiras", priority="urgent", countries=["ES"])
        await console.broker.publish(env)
        reference = await opened(console, env["message_id"])
        await expect(row(page, env["message_id"])).to_have_count(1, timeout=10_000)
        # the scheduler finds the acknowledgement (1 h for urgent) missed; the operator stays on the feed
        later = datetime.now(UTC) + timedelta(hours=2)
        await console.instance.runtime.scheduler.tick(later)
        alert = page.get_by_role("alert").filter(has_text=reference)
        await expect(alert).to_be_visible(timeout=5_000)
        await expect(alert).to_contain_text("acknowledgement missed")
        assert await page.locator("#view-feed").is_visible()  # announced without navigating
        line = page.locator(f'#alerts .alert-line[data-reference="{reference}"]')
        await page.screenshot(path=str(SHOTS / "console-alert-feed.png"))
        # it stays on a reload until acknowledged
        await page.reload()
        await expect(page.locator("body")).to_have_attribute("data-feed", "live")
        await expect(line).to_have_count(1)
        await line.get_by_role("button", name="Acknowledge alert").click()
        await console.broker.wait_events(
            lambda evs: any(
                e["type"] == "alert_acknowledged"
                and e["reference"] == reference
                and e["actor"] == "operator:Alice"
                for e in evs
            )
        )
        await expect(line).to_have_count(0)
        await page.reload()
        await expect(page.locator("body")).to_have_attribute("data-alerts", re.compile(r"\d+"))
        await expect(line).to_have_count(0)  # gone for good, from the store's record
        [event] = await console.instance.runtime.store.audit(
            reference=reference, event_type="alert_acknowledged"
        )
        assert (event.actor, event.details["deadline"]) == ("operator:Alice", "acknowledgement")
        assert not [p for p in problems if "404" not in p], problems
    finally:
        await context.close()


async def test_deadlines_board_filters_and_opens_the_case(console: Console) -> None:
    context, page, _ = await console.page()
    try:
        urgent = envelope(subject="Enlèvement signalé à Rabat", priority="urgent", countries=["MA"])
        normal = envelope(subject="Vérification d'identité à Lisbonne", countries=["PT"])
        for env in (urgent, normal):
            await console.broker.publish(env)
        ref_urgent, ref_normal = (
            await opened(console, urgent["message_id"]),
            await opened(console, normal["message_id"]),
        )
        await page.click("button[data-view=deadlines]")
        board = page.locator("#deadlines")
        await expect(board.locator(f'li[data-reference="{ref_normal}"]')).to_have_count(1)
        await expect(board.locator(f'li[data-reference="{ref_urgent}"]')).to_have_count(1)
        total = await board.locator("li.deadline").count()
        await page.check("#board-filters input[name=urgent]")
        await expect(board.locator(f'li[data-reference="{ref_normal}"]')).to_have_count(0)
        await expect(board.locator(f'li[data-reference="{ref_urgent}"]')).to_have_count(1)
        shown = await board.locator("li.deadline").count()
        await expect(page.locator("#board-stats")).to_have_text(f"{shown} shown of {total} open requests")
        await page.uncheck("#board-filters input[name=urgent]")
        await page.select_option("#board-filters select[name=post]", "post.lisbon")
        await expect(board.locator(f'li[data-reference="{ref_urgent}"]')).to_have_count(0)
        await expect(board.locator(f'li[data-reference="{ref_normal}"]')).to_have_count(1)
        await page.select_option("#board-filters select[name=post]", "")
        await page.check("#board-filters input[name=overdue]")
        await expect(board.locator(f'li[data-reference="{ref_normal}"]')).to_have_count(
            0
        )  # 24 h to acknowledge
        await page.uncheck("#board-filters input[name=overdue]")
        # the post acknowledges: the board follows the live feed (no reload, no poll)
        row_n = board.locator(f'li[data-reference="{ref_normal}"]')
        await expect(row_n).to_contain_text("Acknowledgement in")
        rt = console.instance.runtime
        lisbon = await issue_token(
            rt.store, SystemClock(), role=Role.POST, subject="lisbon", name="Bob", network=rt.config.network
        )
        ack = f"{console.instance.url}/api/cases/{ref_normal}/ack"
        async with (
            aiohttp.ClientSession(headers={"Authorization": f"Bearer {lisbon.token}"}) as post,
            post.post(ack, json={}) as r,
        ):
            assert r.status == 200, await r.text()
        await expect(row_n).to_contain_text("Answer in")
        await expect(row_n).to_contain_text("acknowledgement: done")
        await row_n.click()
        panel = page.locator("#detail")
        await expect(panel.locator("#case-title")).to_contain_text(ref_normal)
        await expect(panel.locator("#case-deadlines")).to_contain_text("(acknowledged ")
        await expect(panel.locator("#case-messages")).to_contain_text(normal["message_id"])
        href = await panel.get_by_role("link", name="Tracking page").get_attribute("href")
        assert href == f"/track/{ref_normal}"
        await panel.locator("#case-messages button").first.click()  # its message, with its case
        await expect(page.locator("#detail-case-state")).to_have_text("acknowledged")
    finally:
        await context.close()


async def test_inbox_marks_are_stored_and_shown_after_a_reload(console: Console) -> None:
    context, page, _ = await console.page()
    try:
        info = envelope(sender="madrid", kind="information", subject="Saisie record au port de Valence")
        await console.broker.publish(info)
        await page.click("button[data-view=inbox]")
        item = page.locator(f'#inbox-rows li[data-message-id="{info["message_id"]}"]')
        await expect(item).to_have_count(1, timeout=10_000)  # arrives live
        await expect(item).to_have_class(re.compile("unread"))
        await item.get_by_label("Read").check()
        await expect(item).to_contain_text("by operator:Alice")
        await item.get_by_label("Handled").check()
        await page.reload()
        await expect(page.locator("body")).to_have_attribute("data-feed", "live")
        await page.click("button[data-view=inbox]")
        await expect(item.get_by_label("Read")).to_be_checked()
        await expect(item.get_by_label("Handled")).to_be_checked()
        await page.check("#inbox-filters input[name=open]")
        await expect(item).to_have_count(0)  # handled ones hidden
        marks = await console.instance.runtime.store.audit(
            message_id=info["message_id"], event_type="inbox_marked"
        )
        assert [(e.actor, e.details["mark"]) for e in marks] == [
            ("operator:Alice", "read"),
            ("operator:Alice", "handled"),
        ]
    finally:
        await context.close()


async def test_composing_a_message_sends_it_through_the_pipeline(console: Console) -> None:
    context, page, _ = await console.page()
    try:
        await page.click("button[data-view=compose]")
        form = page.locator("#compose-form")
        await form.locator("button[type=submit]").click()
        await expect(page.locator("#compose-error")).to_contain_text("Write a subject.")
        await form.locator("input[name=subject]").fill("Vigilance : filière de faux papiers")
        await form.locator("textarea[name=body]").fill("Pour information des postes de la péninsule.")
        await form.locator("input[name=countries]").fill("es")
        await form.locator("button[type=submit]").click()
        await expect(page.locator("#compose-done")).to_contain_text("Madrid")
        await console.broker.wait_events(
            lambda evs: any(e["type"] == "composed" and e["actor"] == "operator:Alice" for e in evs)
        )
        [composed] = [e for e in console.broker.events_of("composed") if e["actor"] == "operator:Alice"][-1:]
        copies = [
            orjson.loads(m.body)
            for m in await console.broker.drain("post.madrid")
            if m.headers.get("x-watchcentre-message-id") == composed["message_id"]
        ]
        assert [(c["sender"], c["subject"]) for c in copies] == [
            ("centre", "Vigilance : filière de faux papiers")
        ]
        await expect(page.locator("#detail-subject")).to_have_text("Vigilance : filière de faux papiers")
    finally:
        await context.close()


async def test_reinjecting_as_it_was_a_letter_that_would_fail_again_is_refused(console: Console) -> None:
    context, page, _ = await console.page()
    try:
        bad = envelope(subject="Pays toujours inconnu", countries=["XX"])
        await console.broker.publish(bad)
        await console.routed(bad["message_id"], types=("rejected",))
        await page.click("button[data-view=dead]")
        item = page.locator(".dead-item", has_text=bad["message_id"])
        await item.locator(".dead-summary").click()
        await item.locator("input[name=reason]").fill("try again")
        await item.get_by_role("button", name="Re-inject as it was").click()
        await expect(item.locator(".error")).to_contain_text("would be dead-lettered again")
        await expect(item.locator(".error")).to_contain_text("countries")
        await expect(page.locator(".okmsg")).to_have_count(0)
    finally:
        await context.close()


SIZES = {"desktop": {"width": 1366, "height": 768}, "phone": {"width": 390, "height": 844}}
VIEWS = ("feed", "triage", "inbox", "deadlines", "compose", "glance", "dead", "log")


async def test_screenshots_of_every_view_in_both_languages(console: Console) -> None:
    """artifacts/screenshots/console-<view>-<lang>-<size>.png, with something in each view."""
    urgent = envelope(subject="Go-fast intercepté au large de Tarifa", priority="urgent", countries=["ES"])
    info = envelope(sender="rabat", kind="information", subject="Arrestation d'un passeur à Tanger")
    bad = envelope(subject="Pays mal saisi", countries=["XX"])
    vague = envelope(subject="Note de situation", body="Demande d'assistance sans autre précision.")
    for env in (urgent, info, bad, vague):
        await console.broker.publish(env)
    reference = await opened(console, urgent["message_id"])
    await console.routed(vague["message_id"], types=("triaged",))
    await console.routed(bad["message_id"], types=("rejected",))
    await console.instance.runtime.scheduler.tick(datetime.now(UTC) + timedelta(hours=2))
    for lang, locale in (("en", "en-GB"), ("fr", "fr-FR")):
        for size, viewport in SIZES.items():
            context = await console.browser.new_context(
                viewport=viewport, locale=locale, timezone_id="Europe/Paris", is_mobile=size == "phone"
            )
            await context.add_cookies([{"name": "wc_session", "value": console.token, "url": console.url}])
            page = await context.new_page()
            problems: list[str] = []
            page.on("pageerror", lambda e, seen=problems: seen.append(str(e)))
            try:
                await page.goto(console.url + "/")
                await expect(page.locator("body")).to_have_attribute("data-feed", "live")
                await expect(
                    page.locator(f'#alerts .alert-line[data-reference="{reference}"]')
                ).to_have_count(1)
                assert await page.locator("html").get_attribute("lang") == lang
                for view in VIEWS:
                    await page.click(f"button[data-view={view}]")
                    section = page.locator(f"#view-{view}")
                    await expect(section).to_be_visible()
                    if view == "glance":
                        await expect(page.locator("svg.map")).to_have_count(1)
                    if view == "deadlines":
                        await expect(
                            page.locator(f'#deadlines li[data-reference="{reference}"]')
                        ).to_have_count(1)
                    if view == "inbox":
                        await expect(
                            page.locator(f'#inbox-rows li[data-message-id="{info["message_id"]}"]')
                        ).to_have_count(1)
                    if view == "dead":
                        await expect(page.locator(".dead-item").first).to_be_visible()
                    await page.screenshot(path=str(SHOTS / f"console-{view}-{lang}-{size}.png"))
                await page.click("button[data-view=deadlines]")
                await page.locator(f'#deadlines li[data-reference="{reference}"]').click()
                await expect(page.locator("#case-title")).to_contain_text(reference)
                await page.screenshot(path=str(SHOTS / f"console-case-{lang}-{size}.png"))
                await page.locator("#case-messages button").first.click()
                await expect(page.locator("#detail-case-state")).to_be_visible()
                await page.screenshot(path=str(SHOTS / f"console-message-{lang}-{size}.png"))
                await page.click("#detail-close")
                await page.click("button[data-view=dead]")
                await page.locator(".dead-item .dead-summary").first.click()
                await page.screenshot(path=str(SHOTS / f"console-dead-open-{lang}-{size}.png"))
                assert problems == []
            finally:
                await context.close()


async def test_search_box_finds_highlights_as_text_and_the_detail_shows_related_messages(
    console: Console,
) -> None:
    context, page, problems = await console.page()
    try:
        nasty = '<img src=x onerror="window.__pwned = 3">'
        first = envelope(
            subject=f"Saisie à Carthagène {nasty}", body="Compte FR14 2004 1010 0505 0001 3M02 606."
        )
        second = envelope(
            subject="Virement suspect", body="Le compte fr1420041010050500013m02606 a reçu 9 000 €."
        )
        await console.broker.publish(first)
        await console.routed(first["message_id"])
        await console.broker.publish(second)
        await console.routed(second["message_id"])
        await page.click('.tab[data-view="search"]')
        await page.fill("#search input[name=q]", "carthagene")
        await page.click("#search button[type=submit]")
        hit = page.locator('#search .search-hit[data-id] >> text="Carthagène"')
        await expect(hit).to_have_count(1, timeout=10_000)
        assert await page.locator("#search mark").first.text_content() == "Carthagène"
        assert await page.locator("#search img").count() == 0
        await page.screenshot(path=str(SHOTS / "search.png"))
        await page.locator("#search .search-subject").first.click()
        panel = page.locator("#detail .related-panel")
        await expect(panel).to_contain_text("FR1420041010050500013M02606", timeout=10_000)
        await expect(panel.locator(".related li")).to_have_count(1)
        await expect(panel.locator(".related li")).to_contain_text("Virement suspect")
        assert await page.evaluate("window.__pwned") is None
        assert not [p for p in problems if "404" not in p], problems
    finally:
        await context.close()


async def test_the_feed_marks_cross_matches_and_a_watch_hit_raises_its_alert_until_acknowledged(
    console: Console,
) -> None:
    store, now = console.instance.runtime.store, datetime.now(UTC)
    ask = WatchInput(
        kind="phrase",
        value="cargaison de la Reina",
        label="Navire Reina",
        reason="OFAST 2026/207",
        expires_at=now + timedelta(days=30),
    )
    watch = await store.add_watch(
        ask,
        phrase_value(ask.value),
        "operator:Alice",
        now,
        AuditEvent(at=now, type="watch_added", actor="op"),
    )
    context, page, problems = await console.page()
    try:
        earlier = envelope(subject="Numéro suivi", body="Le pilote appelait le +34 699 111 222 la nuit.")
        await console.broker.publish(earlier)
        await console.routed(earlier["message_id"])
        later = envelope(
            subject="Cargaison de la Reina à Vigo",
            body="Même contact, 0034 699 111 222 : la cargaison de la Reina arrive jeudi.",
        )
        await console.broker.publish(later)
        await console.routed(later["message_id"])

        # the new message is marked in the feed as sharing an identifier with an earlier one
        mark = row(page, later["message_id"]).locator(".xmatch")
        await expect(mark).to_have_text("⇄ 1 earlier", timeout=10_000)
        await expect(row(page, earlier["message_id"]).locator(".xmatch")).to_have_count(0)
        # the watch hit is announced on the banner, on whatever view, like the deadline alerts
        line = page.locator(f'#alerts .alert-watch_hit[data-watch-id="{watch.id}"]')
        await expect(line).to_have_count(1, timeout=10_000)
        await expect(line).to_contain_text("Navire Reina")
        await expect(line).to_contain_text("cargaison de la reina")
        await expect(line).to_contain_text("Cargaison de la Reina à Vigo")
        await page.screenshot(path=str(SHOTS / "console-watch-hit-en.png"))

        # both stay after a reload: the mark from the snapshot, the alert from the store
        await page.reload()
        await expect(page.locator("body")).to_have_attribute("data-feed", "live")
        await expect(line).to_have_count(1, timeout=10_000)
        await expect(mark).to_have_text("⇄ 1 earlier")
        await line.get_by_role("button", name="Open").click()
        await expect(page.locator("#detail")).to_contain_text("+34699111222", timeout=10_000)

        # in French
        fr_context, fr_page, fr_problems = await console.page('localStorage.setItem("wc-lang", "fr")')
        try:
            fr_line = fr_page.locator(f'#alerts .alert-watch_hit[data-watch-id="{watch.id}"]')
            await expect(fr_line).to_contain_text("surveillé", timeout=10_000)
            await expect(fr_page.locator("#alerts")).to_contain_text("alerte(s) de surveillance")
            await expect(row(fr_page, later["message_id"]).locator(".xmatch")).to_have_text(
                "⇄ 1 antérieur(s)"
            )
            await fr_page.screenshot(path=str(SHOTS / "console-watch-hit-fr.png"))

            # acknowledged on one console: gone from both, for good
            await fr_line.get_by_role("button", name="Prendre en compte").click()
            await console.broker.wait_events(
                lambda evs: any(
                    e["type"] == "alert_acknowledged" and e["message_id"] == later["message_id"] for e in evs
                )
            )
            await expect(fr_line).to_have_count(0)
            await expect(line).to_have_count(0, timeout=10_000)
            assert not [p for p in fr_problems if "404" not in p], fr_problems
        finally:
            await fr_context.close()
        await page.reload()
        await expect(page.locator("body")).to_have_attribute("data-feed", "live")
        await expect(page.locator("body")).to_have_attribute("data-watch-hits", "0")
        assert not [p for p in problems if "404" not in p], problems
    finally:
        await context.close()
        await store.end_watch(watch.id, "op", now, AuditEvent(at=now, type="watch_ended", actor="op"))


async def test_in_french_the_servers_explanations_and_reasons_are_in_french(console: Console) -> None:
    """The routing explanation, a rejected row's and a dead letter's reason, in the screen's language
    (web/server-patterns.json); the server's own line stays on hover. The page's own serverText
    gives what the unit test's mirror of it gives, line for line, over every line that test makes."""
    routed = envelope(
        subject="Trafic de cocaïne entre Madrid et Marseille",
        body="Un ressortissant espagnol interpellé à Madrid avec 3 kg de cocaïne.",
        handling="restricted",
    )
    bad = envelope(subject="Pays inventé", countries=["XX"])
    for env in (routed, bad):
        await console.broker.publish(env)
    await console.routed(routed["message_id"])
    await console.routed(bad["message_id"], types=("rejected",))
    context = await console.browser.new_context(
        viewport={"width": 1366, "height": 900}, locale="fr-FR", timezone_id="Europe/Paris"
    )
    await context.add_cookies([{"name": "wc_session", "value": console.token, "url": console.url}])
    page = await context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(str(e)))
    try:
        await page.goto(console.url + "/")
        await expect(page.locator("body")).to_have_attribute("data-feed", "live")
        assert await page.locator("html").get_attribute("lang") == "fr"
        await expect(row(page, bad["message_id"]).locator(".why-rejected")).to_have_text(
            " — countries : pas un code de pays ISO 3166-1 réel : XX"
        )
        await row(page, routed["message_id"]).click()
        why = page.locator("#detail-why li")
        await expect(why.first).to_be_visible()
        lines = await why.all_text_contents()
        said = await why.evaluate_all("(items) => items.map((li) => li.title)")
        assert "to post.madrid: country ES" in " ".join(said)  # the server's line, on hover
        assert any(line.startswith("vers post.madrid : pays ES (") for line in lines), lines
        assert any(re.fullmatch(r"infraction drug_trafficking \(score [\d.]+\)", line) for line in lines), (
            lines
        )
        assert "marquage restricted : montré à chaque destinataire" in lines
        assert any("expression décisive « cocaïne » dans l'objet [" in line for line in lines), lines
        english = [line for line in lines if re.match(r"(to|country|crime|handling) |\S+: \w+ \"", line)]
        assert english == []
        await page.screenshot(path=str(SHOTS / "detail-why-fr.png"))
        await page.click("#detail-close")
        await page.click("button[data-view=dead]")
        dead = page.locator(".dead-item", has_text=bad["message_id"])
        await expect(dead.locator(".reason")).to_have_text(
            "countries : pas un code de pays ISO 3166-1 réel : XX"
        )
        await page.screenshot(path=str(SHOTS / "dead-letters-fr.png"))

        every = [*explanation_lines(), *rejection_lines()]
        shown = await page.evaluate(
            "async (lines) => { const { serverText } = await import('/console/i18n.js');"
            " return lines.map((line) => serverText(line)); }",
            every,
        )
        fr = catalog("fr")
        assert [(line, s) for line, s in zip(every, shown, strict=True) if s != render(line, fr)] == []
        assert problems == []
    finally:
        await context.close()
