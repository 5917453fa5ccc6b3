"""Fixtures for tests that run watchcentre against the real RabbitMQ and databases.

Each test gets its own AMQP prefix (all its queues and exchanges) and its own database: a fresh
SQLite file, or a fresh PostgreSQL schema dropped afterwards.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from tests.integration.harness import ROOT, Broker, delete_prefix, delete_where, fresh_prefix, is_stale
from watchcentre.settings import Settings

POSTGRES_URL = os.environ.get("WATCHCENTRE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
CONFIG_DIR = ROOT / "config"


@pytest.fixture(scope="session")
def config_dir() -> Path:
    return CONFIG_DIR


@pytest.fixture(scope="session")
def no_leftovers() -> None:
    """What killed runs left on the broker goes first (harness.delete_where says why it matters)."""
    asyncio.run(delete_where(is_stale))


@pytest.fixture
async def amqp_prefix(no_leftovers: None) -> AsyncIterator[str]:
    prefix = fresh_prefix()
    yield prefix
    await delete_prefix(prefix)  # also what a test declared without the `broker` fixture


@pytest.fixture(params=["sqlite", "postgres"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[str, str]]:
    """(url, schema) for a database that exists only for this test."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'watchcentre.db'}", "public"
        return
    schema = f"wc_test_{secrets.token_hex(4)}"
    yield POSTGRES_URL, schema
    conn = await asyncpg.connect(POSTGRES_URL)
    try:
        await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    finally:
        await conn.close()


@pytest.fixture
def service_settings(amqp_prefix: str, database_url: tuple[str, str], tmp_path: Path) -> Settings:
    url, schema = database_url
    return Settings(
        amqp_prefix=amqp_prefix,
        database_url=url,  # type: ignore[arg-type]
        database_schema=schema,
        config_dir=str(CONFIG_DIR),
        http_port=0,
        shutdown_deadline_s=5.0,
        audit_anchor_path=str(tmp_path / "audit-anchor.jsonl"),  # one anchor per test database
        audit_anchor_key_path=str(tmp_path / "audit-anchor.key"),
    )


@pytest.fixture
async def broker(amqp_prefix: str) -> AsyncIterator[Broker]:
    b = await Broker(amqp_prefix).open()
    await b.watch_events()
    yield b
    await b.close()
