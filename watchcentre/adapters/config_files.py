"""Read and validate config/: the network, the crime rules and the country vocabulary.

Every problem is reported at once, with the file and the path inside it, so an operator can fix a
bad deployment in one go instead of one error per restart.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pycountry
import yaml
from pydantic import BaseModel, ValidationError

from watchcentre.core.classify import CrimeRules
from watchcentre.core.handling import HandlingRules
from watchcentre.core.lexicon import GazetteerExtra
from watchcentre.core.lifecycle import DeadlineRules
from watchcentre.core.network import Network
from watchcentre.core.retention import RetentionRules
from watchcentre.core.senders import BrokerUsers

M = TypeVar("M", bound=BaseModel)

NETWORK_FILE = "network.yaml"
TAXONOMY_FILE = "taxonomy.yaml"
GAZETTEER_FILE = "gazetteer.yaml"
HANDLING_FILE = "handling.yaml"
DEADLINES_FILE = "deadlines.yaml"
BROKER_FILE = "broker.yaml"
RETENTION_FILE = "retention.yaml"


class ConfigError(Exception):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid configuration:\n  - " + "\n  - ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Config:
    directory: Path
    network: Network
    rules: CrimeRules
    gazetteer: GazetteerExtra
    handling: HandlingRules = field(default_factory=HandlingRules)
    deadlines: DeadlineRules = field(default_factory=DeadlineRules.eu_default)
    broker: BrokerUsers = field(default_factory=BrokerUsers)
    retention: RetentionRules | None = None
    """None without retention.yaml: nothing is ever erased (the service warns at start)."""
    digest: str = ""
    """SHA-256 over the files read (name and bytes): which configuration is in force (/metrics)."""


_SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's loader when PyYAML was built with it: ten times faster at start than the pure-Python one."""


def _load(path: Path, model: type[M], problems: list[str]) -> M | None:
    try:
        data: Any = yaml.load(path.read_text(encoding="utf-8"), Loader=_SafeLoader)
    except FileNotFoundError:
        problems.append(f"{path}: file not found")
        return None
    except yaml.YAMLError as exc:
        problems.append(f"{path}: not valid YAML ({exc})")
        return None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
            problems.append(f"{path.name}: {loc}: {err['msg']}")
        return None


def known_countries() -> frozenset[str]:
    return frozenset(c.alpha_2 for c in pycountry.countries)


def load_config(directory: str | Path) -> Config:
    """Load and cross-check the files; raise ConfigError listing every problem.

    handling.yaml is optional: without it no handling code is known, and an envelope that carries one
    is refused. deadlines.yaml is optional: without it the EU defaults apply. broker.yaml is optional:
    without it each post and unit speaks only through its own broker user (`wc-<id>`), and no other
    user (but the service's own) speaks for anyone. retention.yaml is optional: without it nothing is
    erased."""
    root = Path(directory)
    problems: list[str] = []
    network = _load(root / NETWORK_FILE, Network, problems)
    rules = _load(root / TAXONOMY_FILE, CrimeRules, problems)
    gazetteer = _load(root / GAZETTEER_FILE, GazetteerExtra, problems)
    handling: HandlingRules | None = HandlingRules()
    if (root / HANDLING_FILE).exists():
        handling = _load(root / HANDLING_FILE, HandlingRules, problems)
        if handling is not None:
            problems += [f"{HANDLING_FILE}: {p}" for p in handling.problems()]
    deadlines: DeadlineRules | None = DeadlineRules.eu_default()
    if (root / DEADLINES_FILE).exists():
        deadlines = _load(root / DEADLINES_FILE, DeadlineRules, problems)
    broker: BrokerUsers | None = BrokerUsers()
    if (root / BROKER_FILE).exists():
        broker = _load(root / BROKER_FILE, BrokerUsers, problems)
    retention: RetentionRules | None = None
    if (root / RETENTION_FILE).exists():
        retention = _load(root / RETENTION_FILE, RetentionRules, problems)
    universe = known_countries()
    if network is not None:
        problems += [f"{NETWORK_FILE}: {p}" for p in network.problems(universe)]
        if broker is not None:
            problems += [f"{BROKER_FILE}: {p}" for p in broker.problems(network)]
    if rules is not None:
        problems += [f"{TAXONOMY_FILE}: {p}" for p in rules.problems()]
    if gazetteer is not None:
        unknown = sorted(gazetteer.countries() - universe)
        if unknown:
            problems.append(f"{GAZETTEER_FILE}: not ISO 3166-1 alpha-2 codes: {', '.join(unknown)}")
    if (
        problems
        or network is None
        or rules is None
        or gazetteer is None
        or handling is None
        or deadlines is None
    ):
        raise ConfigError(problems)
    if broker is None:
        raise ConfigError(problems)
    return Config(
        directory=root,
        network=network,
        rules=rules,
        gazetteer=gazetteer,
        handling=handling,
        deadlines=deadlines,
        broker=broker,
        retention=retention,
        digest=config_digest(root),
    )


FILES = (NETWORK_FILE, TAXONOMY_FILE, GAZETTEER_FILE, HANDLING_FILE, DEADLINES_FILE, BROKER_FILE)


def file_digests(root: Path) -> dict[str, str]:
    """Each file present, by name: its SHA-256 (for the audit of a reload)."""
    return {
        name: hashlib.sha256((root / name).read_bytes()).hexdigest()
        for name in FILES
        if (root / name).exists()
    }


def config_digest(root: Path) -> str:
    """The files' names and bytes, hashed in a fixed order; an optional file that is absent counts as absent."""
    h = hashlib.sha256()
    for name in (
        NETWORK_FILE,
        TAXONOMY_FILE,
        GAZETTEER_FILE,
        HANDLING_FILE,
        DEADLINES_FILE,
        BROKER_FILE,
        RETENTION_FILE,
    ):
        path = root / name
        if path.exists():
            data = path.read_bytes()
            h.update(f"{name}\0{len(data)}\0".encode())
            h.update(data)
    return h.hexdigest()
