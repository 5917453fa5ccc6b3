"""A schema step, once released, is frozen: databases in service have applied it and will not again,
so a fresh database must get exactly the same SQL. Pinned by digest, per engine, as first released;
a new step adds its digest here, an old one never changes (write a new step instead)."""

from __future__ import annotations

import hashlib

import pytest

from watchcentre.adapters.sql import schema
from watchcentre.adapters.sql.dialects import Dialect, PostgresDialect, SqliteDialect

RELEASED = {
    "sqlite": {
        1: "2c02746fae506088",
        2: "e3b0c44298fc1c14",
        3: "a1e468c4eb52698b",
        4: "2875f7cf1de8733c",
        5: "128c590e56c8b101",
        6: "58b3502842ae9e1f",
        7: "ab58442aec712342",
        8: "27239db4f4c5f538",
    },
    "postgres": {
        1: "fa5f8bd8b958d1e8",
        2: "d26595ac24578f8a",
        3: "e2dba8839cd021b9",
        4: "20744a4a8b260f88",
        5: "29b2a7b65f71520a",
        6: "d7daefde5b0e516a",
        7: "c95f489cd1b68279",
        8: "e2514a39ebcf2236",
    },
}


@pytest.mark.parametrize("dialect", [SqliteDialect(":memory:"), PostgresDialect("postgresql://unused")])
def test_released_steps_keep_their_sql(dialect: Dialect) -> None:
    steps = schema.steps(dialect)
    assert [v for v, _, _ in steps] == sorted({v for v, _, _ in steps}), "versions ascend, once each"
    digests = {v: hashlib.sha256(sql.encode()).hexdigest()[:16] for v, _, sql in steps}
    assert {v: digests[v] for v in RELEASED[dialect.name]} == RELEASED[dialect.name]
