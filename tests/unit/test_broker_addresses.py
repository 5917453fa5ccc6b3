"""Several broker addresses in WATCHCENTRE_AMQP_URL: split, checked, redacted (the connection over
them: tests/integration/test_broker_addresses.py)."""

from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from watchcentre.settings import Settings, split_urls

MAIN = "amqp://guest:guest@127.0.0.1:5672/"


def test_one_address_is_still_one_address() -> None:
    assert Settings(amqp_url=SecretStr(MAIN)).amqp_urls() == [MAIN]


def test_a_list_is_split_on_commas_before_a_scheme_only() -> None:
    value = "amqp://wc:pa,ss@mq1:5672/prod, amqps://wc:pa,ss@mq2:5671/prod ,amqp://wc:pa,ss@mq3/prod"
    assert split_urls(value) == [
        "amqp://wc:pa,ss@mq1:5672/prod",
        "amqps://wc:pa,ss@mq2:5671/prod",
        "amqp://wc:pa,ss@mq3/prod",
    ]
    settings = Settings(amqp_url=SecretStr(value))
    assert (
        settings.redacted_amqp_url()
        == "amqp://wc:***@mq1:5672/prod,amqps://wc:***@mq2:5671/prod,amqp://wc:***@mq3/prod"
    )


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("amqp://a:x@mq1/,amqp://b:x@mq2/", "same user and the same vhost"),
        ("amqp://a:x@mq1/prod,amqp://a:x@mq2/test", "same user and the same vhost"),
        ("amqp://a:x@mq1/,http://a:x@mq2/", "amqp://"),
    ],
)
def test_addresses_of_one_cluster_must_agree(value: str, says: str) -> None:
    with pytest.raises(ValidationError, match=says):
        Settings(amqp_url=SecretStr(value))
