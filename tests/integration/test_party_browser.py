"""The posts' and the units' screens end to end in headless Chromium (Debian's /usr/bin/chromium,
driven by playwright): a real watchcentre instance, real RabbitMQ, SQLite.

A post signs in, sees a new urgent case arrive without reloading, acknowledges it with the button,
asks for clarification and answers with text, while the unit's screen follows each step live; the
investigator follows a /track link through sign-in and back; a post never sees another post's case.
Every wait is an awaited condition (playwright's expect), never a sleep.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect

from tests.integration.harness import ROOT, Broker, Instance, envelope, fresh_prefix
from watchcentre.core.access import Role
from watchcentre.core.ports import SystemClock
from watchcentre.security import issue_token
from watchcentre.settings import Settings

CHROMIUM = "/usr/bin/chromium"
WAIT_MS = 15_000

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

if not os.path.exists(CHROMIUM):  # fail, never skip: CI must run these (scripts/test installs it)
    raise RuntimeError(f"{CHROMIUM} is missing: apt-get install chromium (scripts/test does it)")

WHO = {
    "madrid": (Role.POST, "madrid", "Inès Madrid"),
    "rome": (Role.POST, "rome", "Marco Rome"),
    "ofast": (Role.UNIT, "ofast", "Capitaine Ofast"),
    "auditor": (Role.AUDITOR, None, "Anne Audit"),
}


class Site:
    def __init__(self, instance: Instance, broker: Broker, browser: Browser, tokens: dict[str, str]) -> None:
        self.instance, self.broker, self.browser, self.tokens = instance, broker, browser, tokens

    @property
    def url(self) -> str:
        return self.instance.url

    async def context(self, locale: str = "en-GB", phone: bool = False) -> BrowserContext:
        viewport = {"width": 390, "height": 844} if phone else {"width": 1366, "height": 768}
        return await self.browser.new_context(viewport=viewport, locale=locale)

    async def open(self, context: BrowserContext, path: str, who: str | None) -> tuple[Page, list[str]]:
        """A page at `path`, signed in as `who` through the cookie (None: no session)."""
        if who is not None:
            await context.add_cookies([{"name": "wc_session", "value": self.tokens[who], "url": self.url}])
        page = await context.new_page()
        problems: list[str] = []
        page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        await page.goto(self.url + path)
        return page, problems


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def site(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Site]:
    prefix = fresh_prefix()
    tmp = tmp_path_factory.mktemp("parties")
    settings = Settings(
        amqp_prefix=prefix,
        database_url=f"sqlite:///{tmp / 'wc.db'}",  # type: ignore[arg-type]
        audit_anchor_path=str(tmp / "audit-anchor.jsonl"),  # one anchor per test database
        audit_anchor_key_path=str(tmp / "audit-anchor.key"),
        config_dir=str(ROOT / "config"),
        http_port=0,
        shutdown_deadline_s=5.0,
        cookie_secure=False,
    )
    broker = await Broker(prefix).open()
    await broker.watch_events()
    instance = await Instance(settings).start()
    tokens = {}
    for name, (role, subject, person) in WHO.items():
        issued = await issue_token(
            instance.runtime.store,
            SystemClock(),
            role=role,
            subject=subject,
            name=person,
            network=instance.runtime.config.network,
        )
        tokens[name] = issued.token
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield Site(instance, broker, browser, tokens)
        finally:
            await browser.close()
            await instance.stop()
            await broker.close()


def card(page: Page, subject: str) -> Any:
    return page.locator("li.card", has_text=subject)


async def reference_of(page: Page, subject: str) -> str:
    ref = await card(page, subject).get_attribute("data-reference")
    assert ref
    return ref


async def sign_in(page: Page, token: str) -> None:
    await page.fill("#token", token)
    await page.click("button[type=submit]")


async def test_a_post_works_a_case_from_its_inbox_and_the_unit_follows_live(site: Site) -> None:
    post_ctx, unit_ctx, rome_ctx = await site.context(), await site.context(), await site.context()
    try:
        # Rome has a case of its own, which Madrid must never see
        rome, rome_problems = await site.open(rome_ctx, "/", "rome")
        await expect(rome.locator("body")).to_have_attribute("data-feed", "live", timeout=WAIT_MS)
        theirs = envelope(sender="ofast", countries=["IT"], subject="Armes à Naples, pour Rome seulement")
        await site.broker.publish(theirs)
        await expect(card(rome, "pour Rome seulement")).to_have_count(1, timeout=WAIT_MS)
        rome_ref = await reference_of(rome, "pour Rome seulement")

        # the post signs in on the sign-in page and lands on its inbox
        post, post_problems = await site.open(post_ctx, "/", None)
        await expect(post).to_have_url(f"{site.url}/signin?next=/")
        await expect(post.locator("code", has_text="watchcentre token issue")).to_be_visible()
        await sign_in(post, site.tokens["madrid"])
        await expect(post).to_have_url(f"{site.url}/")
        await expect(post.locator("#inbox-title")).to_contain_text("Madrid")
        await expect(post.locator("#signed-in")).to_contain_text("Inès Madrid")
        await expect(post.get_by_role("button", name="Sign out")).to_be_visible()
        await expect(post.locator("body")).to_have_attribute("data-feed", "live", timeout=WAIT_MS)
        unit, unit_problems = await site.open(unit_ctx, "/", "ofast")
        await expect(unit.locator("#requests-title")).to_have_text("Your requests")
        await expect(unit.locator("body")).to_have_attribute("data-feed", "live", timeout=WAIT_MS)

        # a new urgent case arrives without a reload, first in the inbox, in words
        subject = "Go-fast Algeciras : identification urgente d'un suspect espagnol"
        await site.broker.publish(
            envelope(
                sender="ofast",
                countries=["ES"],
                priority="urgent",
                subject=subject,
                crime_types=["drug_trafficking"],
            )
        )
        mine = card(post, "Go-fast Algeciras")
        await expect(mine).to_have_count(1, timeout=WAIT_MS)
        await expect(post.locator("li.card").first).to_contain_text("Go-fast Algeciras")
        await expect(mine).to_contain_text("urgent")
        await expect(mine).to_contain_text("Spain")
        await expect(mine.locator(".tag[title=ES]")).to_have_text("Spain")
        await expect(mine).to_contain_text("Acknowledge by")
        ref = await reference_of(post, "Go-fast Algeciras")
        follows = card(unit, "Go-fast Algeciras")
        await expect(follows).to_have_count(1, timeout=WAIT_MS)
        await expect(follows.locator(".state")).to_have_text("routed")

        # Madrid never sees Rome's case: not in its inbox, not on its tracking page
        await expect(post.locator(f'li.card[data-reference="{rome_ref}"]')).to_have_count(0)
        other = await post.request.get(f"{site.url}/track/{rome_ref}")
        assert other.status == 404
        other = await post.request.get(f"{site.url}/api/requests/{rome_ref}")
        assert other.status == 404

        # acknowledge with the button: the unit's screen follows at once
        await mine.get_by_role("button", name="Acknowledge").click()
        await expect(mine.locator(".state")).to_have_text("acknowledged", timeout=WAIT_MS)
        await expect(mine.get_by_role("button", name="Acknowledge")).to_be_hidden()
        await expect(follows.locator(".state")).to_have_text("acknowledged", timeout=WAIT_MS)

        # ask for clarification: the unit is told it is its turn
        await mine.locator("summary", has_text="Ask for clarification").click()
        await mine.get_by_label("Your question to the requesting unit").fill("Quelle date de naissance ?")
        await mine.get_by_role("button", name="Send the question").click()
        await expect(mine).to_contain_text("the clock is stopped", timeout=WAIT_MS)
        await expect(follows).to_contain_text("asked for a clarification", timeout=WAIT_MS)

        # the unit opens the case and answers the question there; the post sees the clock run again
        await follows.locator("a.ref").click()
        await expect(unit).to_have_url(f"{site.url}/track/{ref}")
        await expect(unit.locator("#clarification")).to_contain_text("Quelle date de naissance ?")
        await unit.get_by_label("Your answer to the post's question").fill("Né le 3 mars 1990.")
        await unit.get_by_role("button", name="Send the answer").click()
        await expect(unit.locator("#clarification")).to_contain_text("Né le 3 mars 1990.", timeout=WAIT_MS)
        await expect(mine).to_contain_text("Answer by", timeout=WAIT_MS)

        # the post answers with text; the unit's tracking page shows it live
        await mine.locator("summary", has_text="Answer").click()
        await mine.get_by_label("The answer").fill("Identifié : Juan P., domicilié à Séville.")
        await mine.get_by_role("button", name="Send the answer").click()
        await expect(card(post, "Go-fast Algeciras")).to_have_count(
            0, timeout=WAIT_MS
        )  # answered: out of the inbox
        await expect(unit.locator("#state")).to_have_text("answered", timeout=WAIT_MS)
        await expect(unit.locator("#answer")).to_contain_text("Identifié : Juan P., domicilié à Séville.")
        events = await unit.locator("#timeline li").evaluate_all("(els) => els.map((e) => e.dataset.type)")
        assert events[0] == "case_opened"
        assert [e for e in events if e.startswith(("case_", "clarification_")) and e != "case_opened"] == [
            "case_acknowledged",
            "clarification_requested",
            "clarification_answered",
            "case_answered",
        ]
        await expect(unit.locator("#timeline li").first).to_contain_text("request opened")
        await unit.go_back()
        await expect(card(unit, "Go-fast Algeciras").locator(".state")).to_have_text("answered")

        # and on Rome's screen, nothing of Madrid's case
        await expect(card(rome, "Go-fast Algeciras")).to_have_count(0)
        for problems in (post_problems, unit_problems, rome_problems):
            assert not [p for p in problems if "404" not in p], problems
    finally:
        for ctx in (post_ctx, unit_ctx, rome_ctx):
            await ctx.close()


async def test_an_investigator_follows_a_track_link_through_sign_in_and_back(site: Site) -> None:
    setup = await site.context()
    phone = await site.context(locale="fr-FR", phone=True)
    try:
        unit, _ = await site.open(setup, "/", "ofast")
        await expect(unit.locator("body")).to_have_attribute("data-feed", "live", timeout=WAIT_MS)
        await site.broker.publish(
            envelope(sender="ofast", countries=["MA"], subject="Facture \u202egnp.exe à Tanger")
        )
        await expect(card(unit, "Tanger")).to_have_count(1, timeout=WAIT_MS)
        ref = await reference_of(unit, "Tanger")

        # a link from a mail, opened on a phone without a session: sign in, then back on the case
        page, problems = await site.open(phone, f"/track/{ref}", None)
        await expect(page).to_have_url(f"{site.url}/signin?next=/track/{ref}")
        await expect(page.locator("h2")).to_have_text("Connexion")  # a French-speaking browser
        await sign_in(page, site.tokens["ofast"])
        await expect(page).to_have_url(f"{site.url}/track/{ref}")
        await expect(page.locator("#reference")).to_have_text(ref)
        await expect(page.locator("#state")).to_have_text("transmise")
        await expect(page.locator("#timeline li").first).to_contain_text("demande ouverte")
        await expect(page.locator("#facts")).to_contain_text("Maroc")
        # the bidi override in the subject is shown as a marker, never obeyed
        await expect(page.locator("#subject")).to_have_text("Facture ⟨U+202E⟩gnp.exe à Tanger")
        # readable on a phone: nothing wider than the screen
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, width
        assert not problems, problems
    finally:
        await setup.close()
        await phone.close()


async def test_a_french_post_acknowledges_with_accuser_reception(site: Site) -> None:
    ctx = await site.context(locale="fr-FR")
    try:
        page, problems = await site.open(ctx, "/", "rome")
        await expect(page.locator("body")).to_have_attribute("data-feed", "live", timeout=WAIT_MS)
        await site.broker.publish(
            envelope(sender="ofast", countries=["IT"], subject="Fusils d'assaut à Bari")
        )
        mine = card(page, "Bari")
        await expect(mine).to_have_count(1, timeout=WAIT_MS)
        await expect(mine).to_contain_text("Italie")
        await expect(page.get_by_role("button", name="Se déconnecter")).to_be_visible()
        await mine.get_by_role("button", name="Accuser réception").click()
        await expect(mine.locator(".state")).to_have_text("réception accusée", timeout=WAIT_MS)
        # the switch keeps English for next time
        await page.get_by_role("button", name="English").click()
        await expect(page.get_by_role("button", name="Sign out")).to_be_visible()
        assert not [p for p in problems if "404" not in p], problems
    finally:
        await ctx.close()


async def test_an_auditor_lands_on_the_audit_trails_page(site: Site) -> None:
    ctx = await site.context()
    try:
        page, problems = await site.open(ctx, "/", "auditor")
        await expect(page.locator("h2")).to_have_text("The audit trail")
        await expect(page.locator("#verify")).to_contain_text("intact", timeout=WAIT_MS)
        await expect(page.locator("#signed-in")).to_contain_text("Anne Audit (auditor)")
        assert not problems, problems
    finally:
        await ctx.close()


async def test_a_post_searches_its_own_messages_and_never_finds_another_posts(site: Site) -> None:
    ours = envelope(
        sender="ofast",
        countries=["ES"],
        subject="Go-fast à Carthagène : le pilote recherché",
        body="Le pilote du go-fast appelait le +34 612 345 678 avant le départ de Carthagène.",
    )
    theirs = envelope(
        sender="ofast",
        countries=["IT"],
        subject="Armes de Carthagène pour Naples",
        body="Un lot de pistolets parti de Carthagène vers Naples, contact à Rome.",
    )
    en, fr, unit_ctx = await site.context(), await site.context(locale="fr-FR"), await site.context()
    try:
        post, problems = await site.open(en, "/", "madrid")
        await expect(post.locator("body")).to_have_attribute("data-feed", "live", timeout=WAIT_MS)
        await site.broker.publish(ours)
        await site.broker.publish(theirs)
        await expect(card(post, "Go-fast à Carthagène")).to_have_count(1, timeout=WAIT_MS)
        # the unit that sent both finds both: the same box, its own need-to-know
        unit, unit_problems = await site.open(unit_ctx, "/", "ofast")
        await unit.get_by_label("Words to search").fill("carthagene")
        await unit.get_by_role("button", name="Search", exact=True).click()
        await expect(unit.locator(".search-hit")).to_have_count(2, timeout=WAIT_MS)

        # the post finds its own, the accent-less word highlighted where it stands, never Rome's
        await post.get_by_label("Words to search").fill("carthagene")
        await post.get_by_role("button", name="Search", exact=True).click()
        hits = post.locator(".search-hit")
        await expect(hits).to_have_count(1, timeout=WAIT_MS)
        await expect(hits.first.locator(".search-subject")).to_have_text(
            "Go-fast à Carthagène : le pilote recherché"
        )
        await expect(hits.first.locator(".search-subject mark")).to_have_text("Carthagène")
        await expect(hits.first.locator(".search-body mark").first).to_have_text("Carthagène")
        await expect(post.locator(".search-hit", has_text="Naples")).to_have_count(0)
        # a word only Rome's message holds finds nothing at all
        await post.get_by_label("Words to search").fill("naples")
        await post.get_by_role("button", name="Search", exact=True).click()
        await expect(post.locator("#search [role=status]")).to_have_text("Nothing found.", timeout=WAIT_MS)
        await expect(hits).to_have_count(0)

        # in French, a phrase; the hit opens its identifiers (the phone, as E.164)
        page, fr_problems = await site.open(fr, "/", "madrid")
        await expect(page.locator("#search-title")).to_have_text("Rechercher dans vos messages")
        await page.get_by_label("Mots à rechercher").fill('"pilote recherché"')
        await page.get_by_role("button", name="Rechercher", exact=True).click()
        found = page.locator(".search-hit")
        await expect(found).to_have_count(1, timeout=WAIT_MS)
        await found.first.locator(".search-subject").click()
        detail = found.first.locator(".search-detail")
        await expect(detail).to_contain_text("Identifiants", timeout=WAIT_MS)
        await expect(detail.locator(".identifiers")).to_contain_text("téléphone +34612345678")
        await expect(detail).to_contain_text("Messages liés")
        for seen in (problems, unit_problems, fr_problems):
            assert not [p for p in seen if "404" not in p], seen
    finally:
        for ctx in (en, fr, unit_ctx):
            await ctx.close()


async def fill(form: Any, fields: dict[str, str]) -> None:
    """Each field of `form`, found by its label as the user reads it, filled in."""
    for label, value in fields.items():
        await form.get_by_label(label).fill(value)


async def test_a_unit_sends_a_request_and_a_post_sends_information_from_their_screens(site: Site) -> None:
    unit_ctx, fr = await site.context(), await site.context(locale="fr-FR")
    try:
        # the unit's form offers a request first; sent, it is routed and listed as its own request
        unit, unit_problems = await site.open(unit_ctx, "/", "ofast")
        form = unit.locator("#send-form")
        await expect(form.get_by_label("Kind")).to_have_value("request")
        await form.get_by_label("Priority").select_option("urgent")
        await fill(
            form,
            {
                "Subject": "Saisie de cocaïne à Valence : identité du capitaine",
                "Text": "Merci d'obtenir l'identité du capitaine du cargo saisi à Valence.",
                "Countries concerned (ISO codes, optional)": "es",
            },
        )
        await form.get_by_role("button", name="Send").click()
        await expect(unit.locator("#send-result")).to_contain_text("Sent and routed: WC-", timeout=WAIT_MS)
        await expect(form.get_by_label("Subject")).to_have_value("")  # the form is ready for the next one
        sent = card(unit, "identité du capitaine")
        await expect(sent).to_have_count(1, timeout=WAIT_MS)
        await expect(sent).to_contain_text("urgent")

        # the post, in French: information first; a country code that does not exist is named back
        post, post_problems = await site.open(fr, "/", "madrid")
        form = post.locator("#send-form")
        await expect(form.get_by_label("Type")).to_have_value("information")
        await expect(post.locator("#send-title")).to_have_text("Envoyer en France")
        await fill(
            form,
            {
                "Objet": "Réseau de faux permis démantelé à Séville",
                "Texte": "La police nationale a démantelé un réseau de faux permis à Séville.",
                "Pays concernés (codes ISO, facultatif)": "ZZ",
            },
        )
        await form.get_by_role("button", name="Envoyer").click()
        await expect(post.locator("#send-error")).to_contain_text("countries", timeout=WAIT_MS)
        await form.get_by_label("Pays concernés (codes ISO, facultatif)").fill("ES")
        await form.get_by_role("button", name="Envoyer").click()
        await expect(post.locator("#send-result")).to_contain_text("Envoyé", timeout=WAIT_MS)
        await expect(post.locator("#send-error")).to_have_text("")
        for seen in (unit_problems, post_problems):
            assert not [p for p in seen if "400" not in p], seen
    finally:
        for ctx in (unit_ctx, fr):
            await ctx.close()
