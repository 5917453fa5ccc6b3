"""Realistic sample envelopes in English and French, for the demo feed and the benchmarks."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

_TEMPLATES: list[tuple[str, str, str, str]] = [
    # (sender, kind, subject, body) — {n} is replaced by a serial number
    (
        "ofast",
        "request",
        "Demande d'identification — trafic de cocaïne via Tanger",
        "Dans le cadre d'une enquête pour trafic de stupéfiants en bande organisée, nous sollicitons "
        "l'identification du titulaire de la ligne +212 6 12 34 56 {n:02d}, utilisée par un ressortissant "
        "marocain soupçonné d'organiser des go-fast entre Tanger et la région lyonnaise. Saisie de 420 kg "
        "de résine de cannabis le 3 novembre. Merci de vérifier ses antécédents auprès de la DGSN.",
    ),
    (
        "bnrf",
        "request",
        "Request to locate a fugitive believed to be in Thailand",
        "The French judicial authorities issued a European arrest warrant and an Interpol red notice against "
        "Mr A. B., born 1979, convicted of armed robbery. Information suggests he has been living in Pattaya "
        "since March and uses the Thai number +66 2 123 45{n:02d}. Please ask the Royal Thai Police to confirm "
        "his whereabouts with a view to extradition.",
    ),
    (
        "oltim",
        "information",
        "Filière d'immigration clandestine — passeurs albanais",
        "Un réseau de passeurs albanais organise des traversées de la Manche depuis les côtes belges. "
        "Les migrants, principalement afghans et érythréens, transitent par Bruxelles et Anvers. Faux "
        "passeports bulgares saisis lors de l'interpellation de trois suspects (dossier {n}).",
    ),
    (
        "ofac",
        "request",
        "Ransomware attack on a French hospital — infrastructure in the Netherlands",
        "A ransomware group encrypted the systems of a hospital in Brittany. The command-and-control "
        "servers are hosted by a provider in Amsterdam; the ransom was paid in bitcoin to a wallet "
        "linked to an exchange registered in Seychelles. We request preservation of the server logs "
        "(case {n}).",
    ),
    (
        "sdat",
        "alert",
        "Urgent: suspected terrorist travelling from Istanbul",
        "A French national known for radicalisation left Paris for Istanbul on 2 November and may try "
        "to cross into Syria. Please alert the Turkish National Police and share any travel record "
        "(flight TK{n:04d}).",
    ),
    (
        "cogic",
        "alert",
        "Séisme au Maroc — ressortissants français sans nouvelles",
        "À la suite du séisme dans la région de Marrakech, plusieurs familles signalent la disparition "
        "inquiétante de ressortissants français en randonnée dans le Haut Atlas. Merci de coordonner avec "
        "la protection civile marocaine (liste {n}).",
    ),
    (
        "ocrgdf",
        "request",
        "Blanchiment — sociétés écrans à Dubaï",
        "Enquête pour blanchiment du produit d'un trafic de stupéfiants : des fonds transitent par des "
        "sociétés écrans immatriculées à Dubaï et à Hong Kong. Nous sollicitons les informations "
        "bancaires et l'identité des bénéficiaires effectifs (réquisition {n}).",
    ),
    (
        "ocrteh",
        "request",
        "Traite des êtres humains — réseau nigérian de proxénétisme",
        "Des victimes nigérianes sont exploitées dans plusieurs villes françaises. Le réseau est dirigé "
        "depuis Lagos et Benin City; les victimes transitent par la Libye et l'Italie. Demande "
        "d'entraide pour identifier les commanditaires (procédure {n}).",
    ),
    (
        "oclco",
        "information",
        "Règlement de comptes à Marseille",
        "Un règlement de comptes entre bandes rivales a fait deux morts dans les quartiers nord. Aucun "
        "lien avec le terrorisme n'a été établi. Les armes utilisées sont en cours d'expertise ({n}).",
    ),
    (
        "singapore",
        "information",
        "Seizure of methamphetamine in Jakarta",
        "Indonesian National Police seized 250 kg of methamphetamine in Jakarta. Two French nationals "
        "were questioned; their phones contained contacts in Marseille (report {n}).",
    ),
]


def sample_envelopes(count: int, *, seed: int = 7, prefix: str = "demo") -> Iterator[dict[str, Any]]:
    rng = random.Random(seed)
    now = datetime.now(UTC).isoformat()
    for i in range(count):
        sender, kind, subject, body = (
            _TEMPLATES[i % len(_TEMPLATES)] if i < len(_TEMPLATES) else rng.choice(_TEMPLATES)
        )
        yield {
            "message_id": f"{prefix}-{i:06d}",
            "sender": sender,
            "kind": kind,
            "subject": subject,
            "body": body.format(n=i % 100),
            "sent_at": now,
            "priority": "urgent" if kind == "alert" else "normal",
        }
