"""Realistic ~1 KB English and French messages: a `watchcentre.samples` template with fresh numbers,
padded with sentences about one foreign country (its name, demonym, cities and phone numbers)."""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson

from watchcentre.samples import _TEMPLATES as TEMPLATES


@dataclass(frozen=True)
class Place:
    iso: str
    en: str
    fr_in: str  # "au Maroc", "en Espagne"
    demonym_en: str
    demonym_fr: str  # masculine
    demonym_fr_f: str
    cities: tuple[str, ...]
    phone: str  # '#' is a random digit


# fmt: off
PLACES: tuple[Place, ...] = (
    Place("MA", "Morocco", "au Maroc", "Moroccan", "marocain", "marocaine", ("Casablanca", "Tanger", "Rabat", "Fès"), "+212 6 ## ## ## ##"),
    Place("DZ", "Algeria", "en Algérie", "Algerian", "algérien", "algérienne", ("Alger", "Oran", "Constantine"), "+213 5 ## ## ## ##"),
    Place("TN", "Tunisia", "en Tunisie", "Tunisian", "tunisien", "tunisienne", ("Tunis", "Sfax", "Sousse"), "+216 2# ### ###"),
    Place("SN", "Senegal", "au Sénégal", "Senegalese", "sénégalais", "sénégalaise", ("Dakar", "Thiès", "Saint-Louis"), "+221 77 ### ## ##"),
    Place("CI", "Côte d'Ivoire", "en Côte d'Ivoire", "Ivorian", "ivoirien", "ivoirienne", ("Abidjan", "Bouaké", "Yamoussoukro"), "+225 07 ## ## ## ##"),
    Place("ES", "Spain", "en Espagne", "Spanish", "espagnol", "espagnole", ("Madrid", "Barcelone", "Malaga", "Algésiras"), "+34 6## ### ###"),
    Place("IT", "Italy", "en Italie", "Italian", "italien", "italienne", ("Rome", "Milan", "Naples", "Gênes"), "+39 3## ### ####"),
    Place("DE", "Germany", "en Allemagne", "German", "allemand", "allemande", ("Berlin", "Hambourg", "Francfort", "Cologne"), "+49 151 ### #####"),
    Place("BE", "Belgium", "en Belgique", "Belgian", "belge", "belge", ("Bruxelles", "Anvers", "Liège", "Charleroi"), "+32 4## ## ## ##"),
    Place("NL", "the Netherlands", "aux Pays-Bas", "Dutch", "néerlandais", "néerlandaise", ("Amsterdam", "Rotterdam", "La Haye", "Utrecht"), "+31 6 ## ## ## ##"),
    Place("GB", "the United Kingdom", "au Royaume-Uni", "British", "britannique", "britannique", ("London", "Manchester", "Birmingham", "Liverpool"), "+44 7### ######"),
    Place("PT", "Portugal", "au Portugal", "Portuguese", "portugais", "portugaise", ("Lisbonne", "Porto", "Faro"), "+351 9## ### ###"),
    Place("CH", "Switzerland", "en Suisse", "Swiss", "suisse", "suisse", ("Genève", "Zurich", "Lausanne", "Bâle"), "+41 7# ### ## ##"),
    Place("TR", "Turkey", "en Turquie", "Turkish", "turc", "turque", ("Istanbul", "Ankara", "Izmir", "Antalya"), "+90 5## ### ## ##"),
    Place("TH", "Thailand", "en Thaïlande", "Thai", "thaïlandais", "thaïlandaise", ("Bangkok", "Pattaya", "Phuket", "Chiang Mai"), "+66 8# ### ####"),
    Place("CO", "Colombia", "en Colombie", "Colombian", "colombien", "colombienne", ("Bogota", "Medellín", "Cali", "Carthagène"), "+57 3## ### ####"),
    Place("BR", "Brazil", "au Brésil", "Brazilian", "brésilien", "brésilienne", ("São Paulo", "Rio de Janeiro", "Recife", "Santos"), "+55 11 9#### ####"),
    Place("US", "the United States", "aux États-Unis", "American", "américain", "américaine", ("New York", "Miami", "Los Angeles", "Houston"), "+1 305 ### ####"),
    Place("CN", "China", "en Chine", "Chinese", "chinois", "chinoise", ("Pékin", "Shanghai", "Canton", "Shenzhen"), "+86 13# #### ####"),
    Place("AE", "the United Arab Emirates", "aux Émirats arabes unis", "Emirati", "émirien", "émirienne", ("Dubaï", "Abou Dabi", "Charjah"), "+971 50 ### ####"),
    Place("NG", "Nigeria", "au Nigeria", "Nigerian", "nigérian", "nigériane", ("Lagos", "Abuja", "Benin City", "Port Harcourt"), "+234 80# ### ####"),
    Place("RO", "Romania", "en Roumanie", "Romanian", "roumain", "roumaine", ("Bucarest", "Cluj-Napoca", "Constanța", "Timișoara"), "+40 7## ### ###"),
    Place("AL", "Albania", "en Albanie", "Albanian", "albanais", "albanaise", ("Tirana", "Durrës", "Vlora", "Shkodër"), "+355 6# ### ####"),
    Place("UA", "Ukraine", "en Ukraine", "Ukrainian", "ukrainien", "ukrainienne", ("Kyiv", "Odessa", "Lviv", "Kharkiv"), "+380 6# ### ## ##"),
)
# fmt: on
BY_ISO = {p.iso: p for p in PLACES}

MONTHS_FR = (
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
)
MONTHS_EN = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)

PADDING_FR = (
    "Selon les éléments recueillis, un ressortissant {dem_fr} se serait rendu à {city} entre le {d1} et le {d2} {month_fr} {year}.",
    "Le suspect utiliserait également le numéro {phone}, actif depuis {n} jours selon l'opérateur.",
    "Merci de saisir la police {dem_fr_f} afin d'obtenir ses antécédents judiciaires (référence {ref}).",
    "Une somme de {amount} euros a été virée le {d1} {month_fr} vers un compte ouvert {fr_in}, au nom d'une société écran.",
    "Le véhicule utilisé, une berline immatriculée {fr_in}, a été aperçu près de {city} le {d2} {month_fr}.",
    "Son contact habituel, joignable au {phone}, réside à {city} depuis {n} mois.",
    "Les écoutes téléphoniques font apparaître {n} appels vers {fr_in} au cours du dernier trimestre.",
    "Aucune autre information n'est disponible à ce stade; le dossier {ref} est suivi par le groupe {n} de la brigade.",
    "Un complice présumé, de nationalité {dem_fr_f}, a été contrôlé à {city} en possession de {amount} euros en espèces.",
)
PADDING_EN = (
    "According to the information gathered, a {dem_en} national travelled to {city} between {d1} and {d2} {month_en} {year}.",
    "The suspect also uses the number {phone}, active for {n} days according to the operator.",
    "Please contact the {dem_en} police to obtain his criminal record (reference {ref}).",
    "A sum of {amount} euros was wired on {d1} {month_en} to an account opened in {en} by a shell company.",
    "The vehicle used, a saloon registered in {en}, was seen near {city} on {d2} {month_en}.",
    "His usual contact, reachable on {phone}, has lived in {city} for {n} months.",
    "Intercepted calls show {n} calls to {en} during the last quarter.",
    "No further information is available at this stage; case {ref} is handled by team {n} of the unit.",
    "A suspected accomplice, a {dem_en} national, was stopped in {city} carrying {amount} euros in cash.",
)

_FRENCH = re.compile(r"\b(le|la|les|des|du|une|est)\b")
UNITS_BY_TEMPLATE_SENDER = {"singapore": "ofast"}  # a post as sender is routed to the centre only
MOROCCAN_TEMPLATES = tuple(t for t in TEMPLATES if "Maroc" in t[2] or "Tanger" in t[2])


def _phone(rng: random.Random, pattern: str) -> str:
    return "".join(str(rng.randrange(10)) if ch == "#" else ch for ch in pattern)


def _pad(rng: random.Random, french: bool, place: Place, size: int) -> list[str]:
    pool = PADDING_FR if french else PADDING_EN
    out: list[str] = []
    used = 0
    for template in rng.sample(pool, len(pool)):
        if used >= size:
            break
        d1 = rng.randrange(1, 20)
        sentence = template.format(
            dem_fr=place.demonym_fr,
            dem_fr_f=place.demonym_fr_f,
            dem_en=place.demonym_en,
            fr_in=place.fr_in,
            en=place.en,
            city=rng.choice(place.cities),
            phone=_phone(rng, place.phone),
            d1=d1,
            d2=d1 + rng.randrange(1, 9),
            month_fr=rng.choice(MONTHS_FR),
            month_en=rng.choice(MONTHS_EN),
            year=rng.choice((2023, 2024, 2025)),
            n=rng.randrange(2, 90),
            amount=f"{rng.randrange(5, 900) * 1000:,}".replace(",", " "),
            ref=f"{rng.randrange(2023, 2026)}/{rng.randrange(1, 99999):05d}",
        )
        out.append(sentence)
        used += len(sentence.encode()) + 1
    return out


def message(
    rng: random.Random,
    place: Place,
    size: int = 1000,
    templates: Sequence[tuple[str, str, str, str]] = TEMPLATES,
) -> tuple[str, str, str, str]:
    """(sender, kind, subject, body) with len(subject + body) ≈ `size` bytes."""
    sender, kind, subject, body = rng.choice(templates)
    body = body.format(n=rng.randrange(100))
    french = bool(_FRENCH.search(body))
    room = size - len(subject.encode()) - len(body.encode())
    body = " ".join([body, *_pad(rng, french, place, room)])
    return UNITS_BY_TEMPLATE_SENDER.get(sender, sender), kind, subject, body


def texts(count: int, seed: int = 1) -> list[tuple[str, str]]:
    """`count` distinct (subject, body) pairs, EN and FR, about random countries."""
    rng = random.Random(seed)
    seen: set[tuple[str, str]] = set()
    out: list[tuple[str, str]] = []
    while len(out) < count:
        _, _, subject, body = message(rng, rng.choice(PLACES))
        if (subject, body) not in seen:
            seen.add((subject, body))
            out.append((subject, body))
    return out


def envelopes(
    count: int,
    id_prefix: str,
    *,
    seed: int = 2,
    iso: str | None = None,
    covered: set[str] | None = None,
) -> list[bytes]:
    """Envelopes with unique message_ids and a `countries` hint: the country the padding is about
    (`iso` for all of them, or a random one). `covered`: the countries a post covers (checked)."""
    rng = random.Random(seed)
    now = datetime.now(UTC).isoformat()
    templates = MOROCCAN_TEMPLATES if iso == "MA" else TEMPLATES
    if covered is not None:
        missing = sorted({p.iso for p in PLACES} - covered)
        if missing:
            raise ValueError(f"no post covers {', '.join(missing)}: fix benchmarks/corpus.py PLACES")
    out: list[bytes] = []
    for i in range(count):
        place = BY_ISO[iso] if iso else rng.choice(PLACES)
        sender, kind, subject, body = message(rng, place, templates=templates)
        out.append(
            orjson.dumps(
                {
                    "message_id": f"{id_prefix}-{i:07d}",
                    "sender": sender,
                    "kind": kind,
                    "subject": subject,
                    "body": body,
                    "sent_at": now,
                    "priority": "urgent" if kind == "alert" else "normal",
                    "countries": [place.iso],
                }
            )
        )
    return out
