"""The connection over several broker addresses: one that refuses is passed over for the next."""

from __future__ import annotations

import pytest

from tests.integration.processes import free_port
from watchcentre.adapters.amqp import connect
from watchcentre.core.ports import TransientError

MAIN = "amqp://guest:guest@127.0.0.1:5672/"


async def test_a_refusing_address_is_passed_over_for_the_next() -> None:
    refused = f"amqp://guest:guest@127.0.0.1:{free_port()}/"
    connection = await connect([refused, MAIN], "wc-test-addresses")
    try:
        assert connection.url.port == 5672  # type: ignore[attr-defined]
    finally:
        await connection.close()


async def test_no_address_answering_is_one_error_naming_each_without_credentials() -> None:
    ports = [free_port(), free_port()]
    with pytest.raises(TransientError) as caught:
        await connect([f"amqp://guest:secret@127.0.0.1:{p}/" for p in ports], "wc-test-addresses")
    message = str(caught.value)
    assert all(f"127.0.0.1:{p}" in message for p in ports) and "secret" not in message
