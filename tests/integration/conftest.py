"""Integration fixtures: real RabbitMQ and databases (see service_fixtures.py)."""

from tests.integration.service_fixtures import *  # noqa: F403
