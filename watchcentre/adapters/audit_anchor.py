"""The audit anchor as an append-only file of signed checkpoints (JSON lines), and its HMAC key.

Each append is one `write` on a file opened with O_APPEND, then fsync: a line is whole or absent
after a crash, and several instances may share the file. The key comes from the environment or a
key file (created with 32 random bytes, mode 0600, on the service's first start); never the database.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from pathlib import Path

MIN_KEY_CHARS = 32


class AnchorKeyError(ValueError):
    """No usable key: the anchor cannot be signed or checked."""


class FileAnchor:
    def __init__(self, path: str | Path, key: bytes) -> None:
        self.path = Path(path)
        self.where = str(self.path)
        self.key = key

    async def read(self) -> bytes | None:
        return await asyncio.to_thread(self._read)

    async def append(self, line: bytes) -> None:
        await asyncio.to_thread(self._append, line)

    def _read(self) -> bytes | None:
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            return None

    def _append(self, line: bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            view = memoryview(line)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)


def load_key(key: str | None, key_path: str | Path, *, create: bool) -> bytes:
    """The key given, else the key file's; `create` makes the file when there is none (the service)."""
    if key is None:
        path = Path(key_path)
        try:
            key = path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            if not create:
                raise AnchorKeyError(
                    f"no audit anchor key: set WATCHCENTRE_AUDIT_ANCHOR_KEY or provide the key file {path}"
                ) from None
            key = _create_key_file(path)
    if len(key) < MIN_KEY_CHARS:
        raise AnchorKeyError(f"the audit anchor key must have at least {MIN_KEY_CHARS} characters")
    return key.encode("utf-8")


def _create_key_file(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another instance made it first: use theirs
        return path.read_text(encoding="utf-8").strip()
    try:
        os.write(fd, key.encode("ascii") + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    return key
