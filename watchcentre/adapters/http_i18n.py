"""The screens' words: the message catalogs (`watchcentre/web/locales/<lang>/<bundle>.json`, served
under /console/locales/) and `GET /api/labels`, the code labels in a language (crime types from
config/taxonomy.yaml, countries from pycountry's own translations). The pages load both through
web/i18n.js; nothing here holds data about messages, so the catalogs are public.
"""

from __future__ import annotations

import functools
import gettext
from collections.abc import Mapping
from importlib import resources

import pycountry
from aiohttp import web

from watchcentre.adapters.http_base import DEPS, ApiError, principal_of
from watchcentre.adapters.http_models import LANGS, Labels, LabelsQuery, Me
from watchcentre.core.access import Role

BUNDLES = ("common", "party", "console", "server")


@functools.cache
def country_names(lang: str) -> dict[str, str]:
    """alpha-2 → the country's name in `lang` (pycountry's iso3166-1 gettext catalogs)."""
    words = gettext.translation("iso3166-1", pycountry.LOCALES_DIR, languages=[lang], fallback=True)
    out: dict[str, str] = {}
    for c in pycountry.countries:
        common = getattr(c, "common_name", None) or c.name  # "Bolivia" rather than the ISO long form
        said = words.gettext(common)
        # a common name the catalog lacks: the ISO name's translation rather than English words
        out[c.alpha_2] = said if lang == "en" or said != common else words.gettext(c.name)
    return out


def crime_names(labels: Mapping[str, Mapping[str, str]], lang: str) -> dict[str, str]:
    return {code: words.get(lang) or words.get("en") or code for code, words in labels.items()}


async def get_labels(request: web.Request, *, query: LabelsQuery) -> Labels:
    deps = request.app[DEPS]
    return Labels(
        lang=query.lang,
        crime_types=crime_names(deps.crime_labels, query.lang),
        countries=country_names(query.lang),
    )


async def locale_bundle(request: web.Request) -> web.Response:
    lang, bundle = request.match_info["lang"], request.match_info["bundle"]
    if lang not in LANGS:
        raise ApiError(404, f"no such language: use one of {', '.join(LANGS)}", "lang")
    name = bundle.removesuffix(".json")
    if name not in BUNDLES:
        raise ApiError(404, "no such catalog", "bundle")
    data = resources.files("watchcentre.web").joinpath("locales", lang, f"{name}.json").read_bytes()
    return web.Response(body=data, content_type="application/json")


async def get_me(request: web.Request) -> Me:
    deps, who = request.app[DEPS], principal_of(request)
    where = None
    if who.role is Role.POST and who.subject in deps.network.posts_by_id:
        where = deps.network.posts_by_id[who.subject].city
    elif who.role is Role.UNIT and who.subject in deps.network.units_by_id:
        where = deps.network.units_by_id[who.subject].name
    return Me(
        role=who.label,
        kind=who.role.value,
        subject=who.subject,
        name=who.name,
        where=where,
        expires_at=who.expires_at or deps.clock.now(),
    )
