"""Process settings, read from environment variables (and a dotenv file if one is named)."""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.auth import Claims, JwksVerifier, SecretVerifier, TokenVerifier
from core.logging import LogFormat, default_format

Environment = Literal["dev", "test", "prod"]
ENV_FILE_VARIABLE = "ORDERTRAIL_ENV_FILE"


class MissingSecret(RuntimeError):
    """JWT_SECRET is required outside dev mode, and must not be guessable there."""


# HS256 keys shorter than its 32-byte hash can be brute-forced offline from one token.
MIN_SECRET_BYTES = 32
# Values copied from examples and docs instead of generated: .env.example's first of all.
PLACEHOLDER_SECRETS = frozenset(
    {
        "change-me-to-a-long-random-secret",
        "changeme",
        "change-me",
        "change_me",
        "secret",
        "jwt-secret",
        "jwt_secret",
        "password",
        "ordertrail-dev-only-insecure-secret",
    }
)


class Settings(BaseSettings):
    """Everything a process needs to know about its surroundings."""

    # No implicit `.env`: compose's belongs to the containers (it names hosts like `postgres`)
    # and a host command run beside it must not pick it up. ORDERTRAIL_ENV_FILE opts in.
    model_config = SettingsConfigDict(env_file=None, extra="ignore")

    environment: Environment = Field(default="prod", alias="ORDERTRAIL_ENV")
    database_url: str = Field(
        default="postgresql+asyncpg://postgres@127.0.0.1:5432/ordertrail", alias="DATABASE_URL"
    )
    mongodb_url: str = Field(default="mongodb://127.0.0.1:27017", alias="MONGODB_URL")
    mongodb_db: str = Field(default="ordertrail", alias="MONGODB_DB")
    redis_url: str = Field(default="redis://127.0.0.1:6379/0", alias="REDIS_URL")
    projection_batch_size: int = Field(default=500, alias="PROJECTION_BATCH_SIZE")
    projection_tick_seconds: float = Field(default=1.0, alias="PROJECTION_TICK_SECONDS")
    projection_retries: int = Field(default=3, alias="PROJECTION_RETRIES")
    worker_id: str = Field(default="", alias="WORKER_ID")
    worker_metrics_port: int = Field(default=0, alias="WORKER_METRICS_PORT")
    # /metrics computes lag (a count per subscriber) at most this often; scrapes between reuse it.
    metrics_refresh_seconds: float = Field(default=5.0, alias="METRICS_REFRESH_SECONDS")
    min_position_wait_seconds: float = Field(default=2.0, alias="MIN_POSITION_WAIT_SECONDS")
    jwt_secret: SecretStr | None = Field(default=None, alias="JWT_SECRET")
    jwt_leeway_seconds: int = Field(default=10, alias="JWT_LEEWAY_SECONDS")
    # Tokens from an identity provider: its JWKS URL (RS256/ES256; JWT_SECRET is then unused).
    jwt_jwks_url: str | None = Field(default=None, alias="JWT_JWKS_URL")
    jwt_audience: str | None = Field(default=None, alias="JWT_AUDIENCE")
    jwt_issuer: str | None = Field(default=None, alias="JWT_ISSUER")
    # The provider's keys are kept this long; a token naming an unknown key refetches them,
    # at most once per JWT_JWKS_REFETCH_SECONDS (a key rotated in is accepted that soon).
    jwt_jwks_cache_seconds: float = Field(default=300.0, alias="JWT_JWKS_CACHE_SECONDS", gt=0)
    jwt_jwks_refetch_seconds: float = Field(default=10.0, alias="JWT_JWKS_REFETCH_SECONDS", ge=0)
    db_pool_size: int = Field(default=20, alias="DB_POOL_SIZE")
    db_connect_timeout: float = Field(default=3.0, alias="DB_CONNECT_TIMEOUT")
    db_command_timeout: float = Field(default=10.0, alias="DB_COMMAND_TIMEOUT")
    command_retries: int = Field(default=5, alias="COMMAND_RETRIES")
    # false: FastAPI dispatches every command (tests compare the two, answer for answer).
    command_fast_path: bool = Field(default=True, alias="COMMAND_FAST_PATH")
    max_body_bytes: int = Field(default=64 * 1024, alias="MAX_BODY_BYTES")
    idempotency_ttl_seconds: int = Field(default=24 * 3600, alias="IDEMPOTENCY_TTL_SECONDS")
    idempotency_lock_seconds: int = Field(default=30, alias="IDEMPOTENCY_LOCK_SECONDS")
    # Expired idempotency records are deleted by the worker this many at a time (short locks).
    idempotency_purge_batch: int = Field(default=1000, alias="IDEMPOTENCY_PURGE_BATCH", ge=1)
    idempotency_purge_seconds: float = Field(default=60.0, alias="IDEMPOTENCY_PURGE_SECONDS", gt=0)
    # An aggregate is snapshotted every this many events (0: never); see eventstore/snapshots.py.
    snapshot_interval: int = Field(default=100, alias="SNAPSHOT_INTERVAL", ge=0)
    # Server-Sent Events (the feed, live read models): the heartbeat of an idle stream, and how
    # long a consumer may leave a chunk untaken before it is cut off.
    sse_heartbeat_seconds: float = Field(default=15.0, alias="SSE_HEARTBEAT_SECONDS", gt=0)
    sse_send_timeout_seconds: float = Field(default=10.0, alias="SSE_SEND_TIMEOUT_SECONDS", gt=0)
    # A stream ends after this long (the client resumes with Last-Event-ID): long-lived
    # connections would otherwise never move to a new server after a deploy or a scale-out.
    sse_max_seconds: float = Field(default=3600.0, alias="SSE_MAX_SECONDS", gt=0)
    # The event feed (command API): waiting clients (long-polls and streams) per process.
    feed_max_clients: int = Field(default=100, alias="FEED_MAX_CLIENTS", ge=0)
    feed_max_wait_seconds: float = Field(default=30.0, alias="FEED_MAX_WAIT_SECONDS", ge=0, le=30)
    # Live read models (query API): streams per process; changes queued per stream at most.
    live_max_clients: int = Field(default=1000, alias="LIVE_MAX_CLIENTS", ge=0)
    live_queue_size: int = Field(default=64, alias="LIVE_QUEUE_SIZE", ge=1)
    # Browser origins allowed to call the APIs, comma-separated ("*": any); empty: CORS off.
    cors_origins: str = Field(default="", alias="CORS_ORIGINS")
    log_level: str = Field(default="INFO", alias="LOG_LEVEL")
    # json: one object per line (for a log pipeline); console: readable. Default: console in
    # dev mode, json otherwise.
    log_format: Literal["json", "console"] | None = Field(default=None, alias="LOG_FORMAT")
    # A worker whose subscriber (or other supervised task) has failed for longer is unhealthy.
    subscriber_unhealthy_seconds: float = Field(default=60.0, alias="SUBSCRIBER_UNHEALTHY_SECONDS")
    # `status` calls an owner stalled when it has not said it is alive for this long.
    subscriber_stalled_seconds: float = Field(default=30.0, alias="SUBSCRIBER_STALLED_SECONDS")
    # Test mode only: subscribers fail on purpose (see workers/faults.py).
    fault_injection: str = Field(default="", alias="ORDERTRAIL_FAULT_INJECTION")

    def require_secret(self) -> None:
        """Refuse to run an API without a strong signing secret, except in dev mode."""
        # A guessable secret would let anyone mint tokens, so only dev mode may go without one.
        if self.environment == "dev" or self.jwt_jwks_url:
            return
        if self.jwt_secret is None:
            raise MissingSecret("JWT_SECRET must be set unless ORDERTRAIL_ENV=dev")
        secret = self.jwt_secret.get_secret_value()
        if secret.strip().lower() in PLACEHOLDER_SECRETS:
            raise MissingSecret(
                "JWT_SECRET is a placeholder from the examples: set a random one "
                "(openssl rand -hex 32) unless ORDERTRAIL_ENV=dev"
            )
        if len(secret.encode()) < MIN_SECRET_BYTES:
            raise MissingSecret(
                f"JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes "
                "(openssl rand -hex 32) unless ORDERTRAIL_ENV=dev"
            )

    @property
    def secret(self) -> str:
        """The JWT signing secret (a fixed, loudly insecure one in dev mode only)."""
        self.require_secret()
        if self.jwt_secret is not None:
            return self.jwt_secret.get_secret_value()
        return "ordertrail-dev-only-insecure-secret"

    @property
    def log_style(self) -> LogFormat:
        """LOG_FORMAT, or the default for this environment."""
        return self.log_format or default_format(self.environment)

    def token_verifier(self) -> TokenVerifier:
        """How this process checks bearer tokens: the JWKS URL's keys if set, else the secret."""
        checks = Claims(self.jwt_audience, self.jwt_issuer, self.jwt_leeway_seconds)
        if self.jwt_jwks_url:
            return JwksVerifier(
                self.jwt_jwks_url,
                checks,
                cache_seconds=self.jwt_jwks_cache_seconds,
                refetch_seconds=self.jwt_jwks_refetch_seconds,
            )
        return SecretVerifier(self.secret, checks)


@lru_cache
def get_settings() -> Settings:
    """Settings of this process, read once (from ORDERTRAIL_ENV_FILE too, when it is set)."""
    return Settings(_env_file=os.environ.get(ENV_FILE_VARIABLE) or None)
