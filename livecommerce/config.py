"""Settings, read only from ``LIVECOMMERCE_*`` environment variables (and a ``.env`` file).

The embedded default needs no variable at all: data lives under ``./var``, the database
is a SQLite file there and the secret key is generated once and kept beside it.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# accounts/passwords.py's DEFAULT_MIN_LENGTH, kept here so settings import no domain.
DEFAULT_MIN_PASSWORD_LENGTH = 10
SUPPORTED_LOCALES = ("kk", "ru", "uz", "en", "zh")
LocaleCode = Literal["kk", "ru", "uz", "en", "zh"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="LIVECOMMERCE_", env_file=".env", extra="ignore", frozen=True
    )

    data_dir: Path = Path("var")
    database_url: str | None = None
    redis_url: str | None = None
    broker_url: str | None = None
    secret_key: str | None = Field(default=None, repr=False, min_length=32)
    default_locale: LocaleCode = "ru"
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    access_token_minutes: int = Field(default=24 * 60, ge=1)
    guest_token_minutes: int = Field(default=4 * 60, ge=1)
    # Sign-in throttling: after this many failed attempts for one account, or from one
    # client address, within the window, sign-in answers 429 until the window closes.
    login_account_attempts: int = Field(default=5, ge=1)
    login_address_attempts: int = Field(default=20, ge=1)
    login_window_seconds: int = Field(default=15 * 60, ge=1, le=24 * 3600)
    # Sign-up (and admin creation) refuse shorter passwords, and common ones at any length.
    password_min_length: int = Field(default=DEFAULT_MIN_PASSWORD_LENGTH, ge=8, le=256)
    # argon2 runs at once per API process; the rest wait their turn on the event loop.
    password_hash_concurrency: int = Field(default=2, ge=1, le=64)
    # Live rooms, counted per person whatever the sockets and processes (rooms/limits.py).
    # Chat: a burst of this many messages, then one per refill interval, per user.
    room_chat_burst: int = Field(default=5, ge=1, le=1000)
    room_chat_refill_seconds: float = Field(default=1.0, gt=0, le=3600)
    # Concurrent room sockets of one signed-in user: in one room (tabs, devices) and in all.
    room_sockets_per_user: int = Field(default=5, ge=1, le=10_000)
    room_sockets_per_user_total: int = Field(default=20, ge=1, le=100_000)
    # Guests mint tokens at will, so their sockets are counted per client address and room.
    # Generous: a carrier's NAT or an office puts many real viewers behind one address.
    room_guest_sockets_per_address: int = Field(default=50, ge=1, le=1_000_000)
    # Concurrent /ws/me sockets of one user (its notices are the same on every one).
    me_sockets_per_user: int = Field(default=5, ge=1, le=10_000)
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    # API processes ``serve`` runs on one port; more than one needs Redis (rooms and the
    # flash-sale admission gate are then shared through it).
    workers: int = Field(default=1, ge=1, le=64)
    # How long a request may wait for a free database connection before it is answered
    # 503. A rush (a flash sale's winners) queues for the pool; they hold their units.
    database_pool_timeout: float = Field(default=60.0, gt=0, le=600)
    # How long an idle HTTP connection stays open. Viewers keep a stream's page open and
    # order at the moment a sale starts: a connection kept that long saves them a new one.
    keep_alive_seconds: int = Field(default=30, ge=1, le=3600)
    log_level: str = "info"
    max_upload_bytes: int = Field(default=50 * 1024 * 1024, ge=1024)
    import_batch_size: int = Field(default=1000, ge=1, le=5000)
    locales_dir: Path | None = None
    # Corridor network, tariffs and customs rules (a JSON file); the packaged one by default.
    logistics_file: Path | None = None
    # Unpaid card orders hold their stock this long, then return it to sale.
    reservation_minutes: int = Field(default=15, ge=1, le=24 * 60)
    reservation_sweep_seconds: float = Field(default=30.0, gt=0)
    payment_provider: Literal["sandbox"] = "sandbox"
    # Shared with the provider to sign webhooks; derived from the secret key when unset.
    payment_webhook_secret: str | None = Field(default=None, repr=False, min_length=16)
    # Where the sandbox provider delivers webhooks; by default this server's own address.
    payment_webhook_url: str | None = None
    # Background jobs (Celery). Unset: an embedded queue in a SQLite file in the data dir,
    # worked by a worker that ``livecommerce serve`` starts itself.
    task_queue: str = Field(default="livecommerce", min_length=1, max_length=64)
    # With the embedded queue, ``serve`` runs a worker (and its scheduler) beside the API.
    embedded_worker: bool = True
    # Redis only: an unacknowledged job (its worker died) is handed out again after this.
    task_visibility_timeout: float = Field(default=600.0, gt=0)
    tracking_poll_seconds: float = Field(default=15.0, gt=0)
    # How often each API process looks for new notices for the sockets on /ws/me.
    notification_poll_seconds: float = Field(default=1.0, gt=0)
    reconcile_seconds: float = Field(default=60.0, gt=0)
    # A job not done this long after it should have been is sent again. Longer than a
    # job's own retries (about 20 minutes), so a job still retrying is not doubled.
    reconcile_grace_seconds: float = Field(default=1800.0, gt=0)
    # The scheduler (``celery beat``) records itself every quarter of this; ``/readyz``
    # answers 503 ``scheduler: stale`` once its last record is older than this.
    scheduler_stale_seconds: float = Field(default=60.0, gt=0, le=24 * 3600)
    # How often the workers look for flash sales whose end nobody has announced yet.
    flash_sale_sweep_seconds: float = Field(default=5.0, gt=0)
    stats_rollup_seconds: float = Field(default=60.0, gt=0)
    rates_refresh_seconds: float = Field(default=3600.0, gt=0)
    # Files or URLs of published exchange rates (national-bank formats), comma separated.
    rates_sources: Annotated[list[str], NoDecode] = Field(default_factory=list)
    carrier: Literal["sandbox"] = "sandbox"
    # The sandbox carrier's simulated corridor: one transit day lasts this many seconds.
    carrier_sandbox_day_seconds: float = Field(default=60.0, gt=0)
    carrier_sandbox_hold_rate: float = Field(default=0.1, ge=0, le=1)
    carrier_sandbox_delay_rate: float = Field(default=0.1, ge=0, le=1)
    carrier_sandbox_failure_rate: float = Field(default=0.05, ge=0, le=1)

    @field_validator("rates_sources", mode="before")
    @classmethod
    def _split_sources(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'livecommerce.db').as_posix()}"

    @property
    def embedded_jobs(self) -> bool:
        return not self.broker_url

    @property
    def resolved_broker_url(self) -> str:
        if self.broker_url:
            return self.broker_url
        # A SQLite file read through kombu's SQLAlchemy transport (see workers/embedded.py).
        return f"sqlite:///{(self.data_dir / 'jobs.db').resolve().as_posix()}"

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")

    def resolved_secret_key(self) -> str:
        """The configured key, else one generated on first use and kept in the data dir.

        Keeping it on disk means tokens survive a restart; it is never a constant in code.
        """
        if self.secret_key:
            return self.secret_key
        return _stored_secret_key(self.data_dir.resolve())

    def resolved_webhook_url(self) -> str:
        """Never taken from a request's Host header: that would let anyone aim signed
        webhooks at another host."""
        if self.payment_webhook_url:
            return self.payment_webhook_url
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.port}/api/v1/payments/webhooks/sandbox"

    def resolved_webhook_secret(self) -> str:
        if self.payment_webhook_secret:
            return self.payment_webhook_secret
        key = self.resolved_secret_key().encode()
        return hmac.new(key, b"livecommerce payment webhooks", hashlib.sha256).hexdigest()


@lru_cache
def _stored_secret_key(data_dir: Path) -> str:
    path = data_dir / "secret_key"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        # Written whole to a private temp file, then linked into place: link() fails if another
        # process got there first, and nobody ever reads a half-written or world-readable key.
        tmp = data_dir / f".secret_key.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(48))
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    return path.read_text().strip()


@lru_cache
def get_settings() -> Settings:
    return Settings()
