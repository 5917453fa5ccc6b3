"""Root conftest: integration fixtures are registered from tests/integration/service_fixtures.py.

Property-based tests (hypothesis) draw the same examples on every run, so a CI result can be
replayed and a landing never depends on the luck of the draw; WATCHCENTRE_FUZZ_SEED=random explores
new ground (replay a find with `pytest --hypothesis-seed=N`)."""

import os

from hypothesis import settings

# The tests publish as guest for every sender: development trust, set here for every service the
# tests start (in this process and in the subprocesses, which inherit the environment). The tests
# of strict trust (test_broker_trust.py) ask for it explicitly.
os.environ["WATCHCENTRE_BROKER_TRUST"] = "development"

settings.register_profile("repeatable", derandomize=True, database=None)
settings.register_profile("explore", derandomize=False)
settings.load_profile("explore" if os.environ.get("WATCHCENTRE_FUZZ_SEED") == "random" else "repeatable")
