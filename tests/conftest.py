"""Root conftest: integration fixtures are registered from tests/integration/service_fixtures.py."""
