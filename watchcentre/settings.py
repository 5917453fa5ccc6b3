"""Settings from the environment (WATCHCENTRE_*), with the defaults of the shared contract."""

from __future__ import annotations

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WATCHCENTRE_", extra="ignore")

    amqp_url: SecretStr = SecretStr("amqp://guest:guest@127.0.0.1:5672/")
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

    cache_dir: str = Field(
        default="./var/cache",
        description="where the classifier's compiled vocabulary is kept between starts (keyed by the config's"
        " digest); empty: compile at every start",
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

    def redacted_amqp_url(self) -> str:
        return redact(self.amqp_url.get_secret_value())

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
