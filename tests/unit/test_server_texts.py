"""What the server writes in English and a screen shows (routing explanations, rejection reasons, API
refusals) is translated on the screen by pattern (web/server-patterns.json, web/i18n.js `serverText`).

The lines here come from the real code wherever it can be called: the classification corpus routed
with the shipped config/ by every kind of sender, replies, markings, manual routings; envelopes
refused by the decoder, the sender checks, case transitions refused by the lifecycle. Each must match
a pattern whose words exist in both languages; in English the translation gives the line back as the
server wrote it (so the patterns cut it where they should), in French no English sentence is left.
`render` mirrors `serverText`; the browser test runs the real one over these same lines."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from tests.unit.fakes import a_case
from tests.unit.test_i18n_catalogs import WEB, catalog
from watchcentre.adapters.config_files import load_config
from watchcentre.bootstrap import build_classifier
from watchcentre.core.classify import Classification, Classifier
from watchcentre.core.envelope import Envelope, Rejection, decode_envelope
from watchcentre.core.lifecycle import (
    Action,
    CaseState,
    InvalidTransition,
    Side,
    apply,
)
from watchcentre.core.manual import ManualRoutingError, NoteInput, decide_manually, marking_override
from watchcentre.core.network import Network
from watchcentre.core.routing import Competence, Original, decide
from watchcentre.core.senders import BrokerUsers, SenderPolicy

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Pattern:
    rx: re.Pattern[str]
    key: str
    nested: tuple[str, ...]
    words: dict[str, str]


@cache
def patterns() -> list[Pattern]:
    data = json.loads((WEB / "server-patterns.json").read_text(encoding="utf-8"))
    out = []
    for p in data:
        assert set(p) <= {"pattern", "key", "nested", "words"}, p
        assert "(?P" not in p["pattern"] and "(?<=" not in p["pattern"], f"not a JS regex: {p['pattern']}"
        assert p["pattern"].startswith("^") and p["pattern"].endswith("$"), p["key"]
        # the same syntax for JS and Python, but for the named groups' spelling
        rx = re.compile(re.sub(r"\(\?<(?=[A-Za-z_])", "(?P<", p["pattern"]))
        out.append(Pattern(rx, p["key"], tuple(p.get("nested", ())), dict(p.get("words", {}))))
    return out


def match(line: str, words: dict[str, str]) -> tuple[Pattern, dict[str, str]] | None:
    for p in patterns():
        if p.key in words and (m := p.rx.match(line)):
            return p, m.groupdict()
    return None


def sentences(line: str, words: dict[str, str]) -> list[tuple[str, tuple[Pattern, dict[str, str]] | None]]:
    """The line and the server sentences within it (its "nested" groups), each with its match."""
    out = []
    stack = [line]
    while stack:
        found = match(text := stack.pop(), words)
        out.append((text, found))
        if found is not None:
            stack += [found[1][name] for name in found[0].nested]
    return out


def render(line: str, words: dict[str, str]) -> str:
    """web/i18n.js serverText, in Python: the first pattern's key, its groups filled in."""
    found = match(line, words)
    if found is None:
        return line
    p, groups = found
    for name in p.nested:
        groups[name] = render(groups[name], words)
    for name, prefix in p.words.items():
        groups[name] = words.get(prefix + groups[name], groups[name])
    return re.sub(r"\{(\w+)\}", lambda m: groups.get(m.group(1), m.group(0)), words[p.key])


# -- the lines ---------------------------------------------------------------------------------------


@cache
def shipped() -> tuple[Network, Any, Classifier]:
    config = load_config(ROOT / "config")
    return config.network, config.handling, build_classifier(config)


def env(**kw: Any) -> Envelope:
    base: dict[str, Any] = {"message_id": "m-1", "sender": "ofast", "kind": "request", "sent_at": T0}
    base |= {"subject": "s", "body": "b"}
    return Envelope.model_validate(base | kw)


def corpus() -> list[dict[str, Any]]:
    text = (ROOT / "tests/data/classification_corpus.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


# (envelope fields, the message it answers): who sends, what kind, which marking
SENDERS: list[tuple[dict[str, Any], Original | None]] = [
    ({"sender": "ofast", "kind": "request"}, None),
    ({"sender": "centre", "kind": "information"}, None),
    ({"sender": "madrid", "kind": "information"}, None),
    ({"sender": "madrid", "kind": "alert", "handling": "no-onward"}, None),
    ({"sender": "ofast", "kind": "request", "handling": "centre-only"}, None),
    ({"sender": "ofast", "kind": "information", "handling": "no-onward"}, None),
    ({"sender": "ofast", "kind": "request", "handling": "restricted"}, None),
    ({"sender": "madrid", "kind": "reply", "in_reply_to": "m-0"}, Original("ofast", "m-0", ("post.madrid",))),
    ({"sender": "madrid", "kind": "reply", "in_reply_to": "m-0", "reference": "WC-2026-000001"}, None),
    ({"sender": "ofast", "kind": "reply", "reference": "WC-2026-000002"}, None),
    ({"sender": "madrid", "kind": "reply"}, None),
    ({"sender": "ofast", "kind": "reply", "in_reply_to": "m-0"}, None),
    ({"sender": "ofast", "kind": "information", "in_reply_to": "nowhere"}, None),
]


@cache
def explanation_lines() -> list[str]:
    network, handling, classifier = shipped()
    lines: dict[str, None] = {}
    routings = []
    for n, doc in enumerate(corpus()):
        fields, original = SENDERS[n % len(SENDERS)]
        e = env(subject=doc["subject"], body=doc["body"], **fields)
        found = classifier.classify(e.subject, e.body, e.countries, e.crime_types)
        routing = decide(e, found, network, original, handling, Competence())
        routings.append(routing)
        lines.update(dict.fromkeys(routing.explanation))
    # sender hints, and a hinted crime type whose negation the text holds
    hinted = classifier.classify("Request", "No link to drug trafficking.", ["DE"], ["drug_trafficking"])
    lines.update(dict.fromkeys(decide(env(), hinted, network, None, handling).explanation))
    lines.update(dict.fromkeys(Classification([], [], {}, {}, ["FR"]).explanation()))
    # what the shipped network never leaves open: a country no post covers, a crime type no unit takes
    odd = Classification(["no_such_type"], ["ZZ"], {"ZZ": 0.9}, {"no_such_type": 4.0}, [])
    nothing = Classification([], [], {}, {}, [])
    for sender, kind, found in [
        ("ofast", "request", odd),
        ("madrid", "information", odd),
        ("madrid", "alert", nothing),
    ]:
        lines.update(
            dict.fromkeys(decide(env(sender=sender, kind=kind), found, network, None, handling).explanation)
        )
    # manual routings: plain, over a marking, twice (the first becomes "previously: …")
    first = decide_manually(
        previous=routings[0],
        recipients=["post.rabat", "unit.ofast"],
        reason="the Moroccan post asked for it: call of 9:05",
        actor="operator:Zoé",
        network=network,
    )
    again = decide_manually(
        previous=first,
        recipients=["post.madrid"],
        reason="line 1\nline 2: wrong post",
        actor="operator:Jo",
        network=network,
        marking="centre-only",
        rules=handling,
        override_reason="urgent: life at risk",
    )
    lines.update(dict.fromkeys([*first.explanation, *again.explanation]))
    return list(lines)


def _refused(raw: bytes) -> str:
    decoded = decode_envelope(raw)
    assert isinstance(decoded, Rejection), raw
    return decoded.reason


def _json(**kw: Any) -> bytes:
    base = {"message_id": "m-1", "sender": "ofast", "kind": "request", "subject": "s", "body": "b"}
    return json.dumps(base | {"sent_at": T0.isoformat()} | kw).encode()


def _transition(action: Action, side: Side, state: str = "routed", **kw: Any) -> str:
    """A transition the lifecycle refuses, as the pipeline writes it (cases.py, pipeline.py)."""
    case = a_case(reference="WC-2026-000001", opened_at=T0).model_copy(update={"state": CaseState(state)})
    with pytest.raises(InvalidTransition) as refused:
        apply(case, action, side, T0 + timedelta(hours=1), **kw)
    # cases.py names the field `state` and the current state; pipeline.py adds it to the problem
    return f"state: {refused.value.problem} (current state: {refused.value.current.value})"


def _manual(**kw: Any) -> str:
    network, handling, _ = shipped()
    args: dict[str, Any] = {"previous": None, "recipients": ["post.madrid"], "reason": "r", "actor": "a"}
    with pytest.raises(ManualRoutingError) as refused:
        decide_manually(network=network, rules=handling, **(args | kw))
    return refused.value.problem


def rejection_lines() -> list[str]:
    """Reasons a screen shows: a rejected row's and a dead letter's `field: problem`, and the
    messages of API refusals (the field said apart). From the code where it can be called."""
    strict = SenderPolicy(users=BrokerUsers(centre=["wc-centre"]), prefix="P")
    _, handling, _ = shipped()
    long_subject = _json(subject="x" * 1001)
    made = [
        _refused(b"x" * 3_000_000),
        _refused(b"\xff\xfe"),
        _refused(b"{not json"),
        _refused(b"[1, 2]"),
        _refused(b'{"a":' * 200 + b"1" + b"}" * 200),
        _refused(_json(colour="red")),
        _refused(_json(kind="gossip")),
        _refused(long_subject),
        _refused(_json(subject="")),
        _refused(_json(countries=["XX1"])),
        _refused(_json(crime_types=["nope"])),
        _refused(_json(sent_at="yesterday")),
        _refused(_json(sent_at="2026-13-45T99:00:00+00:00")),
        _refused(_json(sent_at=12)),
        _refused(_json(priority="asap")),
        _refused(_json(countries=["DE"] * 51)),
        _refused(_json(body="x" * 270_000)),
        _refused(json.dumps({"sender": "ofast"}).encode()),
        f"sender: {strict.refusal(None, 'madrid')}",
        f"sender: {strict.refusal('someone', 'madrid')}",
        f"handling: {handling.check('secret')}",
        _transition(Action.ACK, Side.UNIT),
        _transition(Action.CLOSE, Side.UNIT, "closed"),
        _transition(Action.CLARIFY_ANSWER, Side.UNIT),
        _transition(Action.EXTEND, Side.POST),
        _transition(Action.EXTEND, Side.POST, expected_at=T0 + timedelta(days=2)),
        _transition(Action.EXTEND, Side.POST, expected_at=T0, reason="r"),
        _transition(Action.EXTEND, Side.POST, expected_at=T0 + timedelta(days=400), reason="r"),
        _transition(
            Action.EXTEND,
            Side.POST,
            expected_at=T0 + timedelta(days=400),
            reason="r",
            extend_at_most=timedelta(hours=12),
        ),
        _manual(reason=" "),
        _manual(recipients=[]),
        _manual(recipients=["centre.triage"]),
        _manual(recipients=["post.atlantis"]),
        _manual(reason="x" * 1001),
        _manual(marking="centre-only"),
        _manual(recipients=[f"post.{p.id}" for p in shipped()[0].posts][:21]),
    ]
    with pytest.raises(ValidationError) as blank:
        NoteInput.model_validate({"text": " "})
    made.append(str(blank.value.errors()[0]["msg"]))
    with pytest.raises(ManualRoutingError) as no_reason:
        marking_override(["post.madrid"], "centre-only", handling, " ")
    made.append(no_reason.value.problem)
    # the service's and the adapters' words, as they write them (the HTTP adapters' ApiError too)
    written = [
        "sender: unknown sender 'nobody'",
        "countries: not a real ISO 3166-1 country code: XK",
        "handler: handler failed 5 times: OperationalError: database is locked",
        "broker dead-lettered: delivery_limit",
        "reference: no case WC-2026-000009",
        "reference: WC-2026-000001 is already the reference of another request",
        "reference: a status needs the case reference (or in_reply_to one of its messages)",
        "clarification: required for a clarification: request or answer",
        "expected_at: give either a new state or a new expected time, not both",
        "state: required for a status: the new state, or expected_at with a reason",
        "state: the case changed repeatedly while being updated: try again",
        "state: a clarification request is already pending (current state: acknowledged)",
        "no such routed or triaged message",
        "the message was routed again meanwhile by operator Zoé at 2026-11-23T09:00:00+00:00: reload it",
        "the message was routed again meanwhile: reload it",
        "another operator is routing this message right now: reload it",
        "a reason is required to re-inject a dead letter",
        "no dead-letter queue here",
        "crime_types: corrections are not kept here",
        "still invalid: unknown sender 'nobody'",
        "would be dead-lettered again: unknown field; correct it first",
        "no such dead letter: already re-injected, or never there",
        "no such case",
        "this alert is not raised on the case (or was re-armed by an extension)",
        "already acknowledged by operator Jo at 2026-11-23T09:00:00+00:00",
        "no such message in the centre's inbox",
        "one of ack, answer",
        "the message was not accepted",
        "write something",
        "not taxonomy codes: nope",
        "not ISO 3166-1 alpha-2 codes: X1",
        "at most 20",
        "unknown parameter",
        "expected a JSON object",
        "not valid JSON",
        "expected an RFC 3339 time with an offset, e.g. 2024-05-01T08:00:00Z",
        "not a real date and time",
        "not an ISO 3166-1 alpha-2 code",
        "unknown crime type code",
        "required for extend",
        "required: request or answer",
        "given more than once",
        "no such message",
        "no such post",
        "invalid, expired or revoked token",
        "role post:madrid may not use this route",
        "role operator:Zoé may not send from a screen: posts and units only",
        "request body over the 65536-byte limit",
        "request body over the 1 MiB limit",
        "Field required",
        "must not be blank",
        "String should have at least 1 character",
        "Input should be a valid integer",
    ]
    return list(dict.fromkeys(made + written))


# -- the checks --------------------------------------------------------------------------------------


def test_the_lines_cover_what_routing_says() -> None:
    lines = explanation_lines()
    starts = {
        "to centre.triage: ",
        "to centre.inbox: ",
        "to unit.",
        "to post.",
        "crime ",
        "country ",
        "handling ",
        "manual by ",
        "previously: ",
        "in_reply_to ",
    }
    assert {s for s in starts if not any(line.startswith(s) for line in lines)} == set()
    assert any(" negated by " in line for line in lines)
    assert any(line.endswith(": hint in sender hint") for line in lines)
    assert len(lines) > 500


@pytest.mark.parametrize("kind", ["explanation", "rejection"])
def test_every_line_matches_a_pattern_and_reads_back_in_english(kind: str) -> None:
    lines = explanation_lines() if kind == "explanation" else rejection_lines()
    en = catalog("en")
    unmatched = {text for line in lines for text, found in sentences(line, en) if found is None}
    assert sorted(unmatched) == []
    # English: the server's own words again (state names aside: the catalog says "in progress")
    differ = [(line, render(line, en)) for line in lines if render(line, en) != line]
    assert differ == []


@pytest.mark.parametrize("kind", ["explanation", "rejection"])
def test_in_french_no_english_sentence_is_left(kind: str) -> None:
    lines = explanation_lines() if kind == "explanation" else rejection_lines()
    fr = catalog("fr")
    english = re.compile(
        r"\b(covered by|the centre decides|below threshold|confidence|is home|chosen by|manual by|previously|"
        r"in reply to|sent by|withheld|no onward|centre only|ignored|negated|in (?:subject|body|sender hint)|"
        r"an operator|no such|required|cannot|may not|at most|unknown|not valid|over the|is already|"
        r"should|pending|reload|try again|days|hours|out of range)\b"
    )
    # what the message itself says (quoted evidence, the operator's reason) is not translated
    quoted = re.compile(r"«[^»]*»|: (?:the Moroccan post|line 1|urgent).*", re.S)
    left = []
    for line in lines:
        said = render(line, fr)
        assert "{" not in said or "{" in line, said
        if english.search(quoted.sub("", said)):
            left.append((line, said))
    assert left == []


def test_every_pattern_has_words_in_both_languages_with_the_same_placeholders() -> None:
    en, fr = catalog("en"), catalog("fr")
    names = re.compile(r"\{(\w+)\}")
    for p in patterns():
        groups = set(p.rx.groupindex)
        assert p.key in en and p.key in fr, p.key
        assert set(names.findall(en[p.key])) == groups == set(names.findall(fr[p.key])), p.key
        assert set(p.nested) <= groups and set(p.words) <= groups, p.key


def test_every_pattern_is_used() -> None:
    """A pattern nothing here produces is a pattern for a sentence the code no longer writes."""
    en = catalog("en")
    lines = [*explanation_lines(), *rejection_lines()]
    used = {found[0].key for line in lines for _, found in sentences(line, en) if found is not None}
    assert sorted(p.key for p in patterns() if p.key not in used) == []


def test_words_for_codes_exist_in_both_languages() -> None:
    en, fr = catalog("en"), catalog("fr")
    for line in [*explanation_lines(), *rejection_lines()]:
        for _, found in sentences(line, en):
            if found is not None:
                for name, prefix in found[0].words.items():
                    code = found[1][name]
                    assert prefix + code in en and prefix + code in fr, (line, name)


def test_what_matches_no_pattern_is_shown_as_written() -> None:
    fr = catalog("fr")
    assert render("something the server never said", fr) == "something the server never said"
    assert render("to post.madrid: chosen by Zoé", fr) == "vers post.madrid : choisi par Zoé"
