"""Settings from the environment (WATCHCENTRE_*), with the defaults of the shared contract."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WATCHCENTRE_", extra="ignore")

    amqp_url: SecretStr = Field(
        default=SecretStr("amqp://guest:guest@127.0.0.1:5672/"),
        description="one broker address, or the nodes of one cluster separated by commas (same user, "
        "same vhost): the service connects to the first that answers and moves to the next when one goes",
    )
    amqp_prefix: str = Field(default="watchcentre", pattern=r"^[A-Za-z0-9_.-]{1,100}$")
    instance_name: str = Field(
        default="watchcentre",
        pattern=r"^[A-Za-z0-9_.:-]{1,100}$",
        description="AMQP connection_name, as `rabbitmqctl list_connections` shows it",
    )
    database_url: SecretStr = SecretStr("sqlite:///./var/watchcentre.db")
    database_schema: str = Field(default="public", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8080, ge=0, le=65535)
    config_dir: str = "./config"
    prefetch: int = Field(default=200, ge=1, le=5000)
    max_attempts: int = Field(default=5, ge=1, le=100, description="handler failures before dead-lettering")
    shutdown_deadline_s: float = Field(
        default=10.0,
        gt=0,
        description="seconds to finish in-flight work at shutdown; handlers still running are then cancelled",
        # the name documented before units were in names still works
        validation_alias=AliasChoices(
            "shutdown_deadline_s", "WATCHCENTRE_SHUTDOWN_DEADLINE_S", "WATCHCENTRE_SHUTDOWN_DEADLINE"
        ),
    )
    handler_timeout_s: float = Field(
        default=60.0,
        gt=0,
        le=3600,
        description="seconds one delivery may take; past that it counts as a handler failure (retried, then "
        "dead-lettered). Longer than a publish confirm may take (30 s), so a broker outage stays an outage",
    )
    log_format: str = Field(default="auto", pattern="^(auto|json|console)$")
    event_loop: str = Field(
        default="auto",
        pattern="^(auto|uvloop|asyncio)$",
        description="auto: uvloop when it is installed (less CPU per message), else asyncio's own",
    )
    log_level: str = "INFO"
    metrics_token: SecretStr | None = Field(
        default=None, description="a static bearer token a Prometheus scraper may use for /metrics only"
    )

    metrics_cache_s: float = Field(
        default=5.0,
        ge=0,
        le=300,
        description="seconds the scrape-time gauges (cases, backlogs, queue depths) are reused between scrapes",
    )

    deadline_tick_s: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="seconds between two deadline checks (warnings, overdue)",
        validation_alias=AliasChoices(
            "deadline_tick_s", "WATCHCENTRE_DEADLINE_TICK_S", "WATCHCENTRE_DEADLINE_TICK"
        ),
    )

    broker_trust: str = Field(
        default="strict",
        pattern="^(strict|development)$",
        description="strict: a message's broker user_id must be allowed to speak for its sender "
        "(config/broker.yaml); development: every broker user, guest included, speaks for every sender",
    )
    broker_admin_url: SecretStr = Field(
        default=SecretStr("http://guest:guest@127.0.0.1:15672/"),
        description="RabbitMQ management API, with an administrator's credentials (`broker provision` only)",
    )

    cookie_secure: bool = Field(
        default=True,
        description="Secure flag of the console's session cookie; false only for plain http on localhost",
    )

    audit_anchor_path: str = Field(
        default="./var/audit-anchor.jsonl",
        description="append-only file of signed audit checkpoints, outside the database (ship it off-host)",
    )
    audit_anchor_key: SecretStr | None = Field(
        default=None, description="HMAC key of the checkpoints (32+ characters); else audit_anchor_key_path"
    )
    audit_anchor_key_path: str = Field(
        default="./var/audit-anchor.key", description="key file, created (0600) on first start if absent"
    )
    audit_anchor_interval_s: float = Field(
        default=60.0,
        gt=0,
        le=3600,
        description="seconds between two checkpoints (written when the head moved)",
    )

    @field_validator("amqp_url")
    @classmethod
    def _one_user_one_vhost(cls, value: SecretStr) -> SecretStr:
        urls = split_urls(value.get_secret_value())
        parts = [urlsplit(u) for u in urls]
        if any(p.scheme not in ("amqp", "amqps") or not p.hostname or "://" in p.path for p in parts):
            raise ValueError("every address must be amqp://… or amqps://… with a host, separated by commas")
        if len({(p.username, p.path or "/") for p in parts}) > 1:
            raise ValueError("the addresses of one cluster must name the same user and the same vhost")
        return value

    def amqp_urls(self) -> list[str]:
        """The broker addresses, in the order given (one for a single broker)."""
        return split_urls(self.amqp_url.get_secret_value())

    def redacted_amqp_url(self) -> str:
        return ",".join(redact(u) for u in self.amqp_urls())

    def redacted_database_url(self) -> str:
        return redact(self.database_url.get_secret_value())


def redact(url: str) -> str:
    """amqp://user:secret@host/ → amqp://user:***@host/ — never print a credential."""
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in creds else f"{scheme}://{user}@{host}"


_NEXT_ADDRESS = re.compile(r"\s*,\s*(?=amqps?://)", re.I)


def split_urls(value: str) -> list[str]:
    """`amqp://a/,amqp://b/` → both. A comma splits only before a scheme, so a password that holds
    a comma (legal in a URL's user information) does not split an address."""
    return [u for u in _NEXT_ADDRESS.split(value.strip()) if u]
