"""Settings: embedded defaults, environment overrides, and refusal of bad values."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from serve_app.settings import PROJECT_ROOT, Settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("DATA_DIR", "STORAGE_URL", "S3_ENDPOINT_URL", "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env


def test_embedded_defaults_need_no_server() -> None:
    settings = Settings()
    assert settings.data_dir == PROJECT_ROOT / "data"
    assert settings.storage_url == f"file://{(PROJECT_ROOT / 'data').resolve()}/blobs"
    assert settings.database_url.startswith("sqlite:///")
    assert settings.limits.max_upload_bytes == 32 * 1024 * 1024


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATA_DIR", "/srv/images")
    monkeypatch.setenv("LIMITS_MAX_PIXELS", "1000")
    monkeypatch.setenv("LIMITS_ALLOWED_FORMATS", '["jpeg", "png"]')
    monkeypatch.setenv("STORAGE_URL", "s3://bucket/prefix")
    monkeypatch.setenv("S3_ENDPOINT_URL", "http://127.0.0.1:9000")
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@db:5432/images")
    settings = Settings()
    assert settings.limits.max_pixels == 1000
    assert settings.limits.to_limits().allowed_formats == ("JPEG", "PNG")
    assert settings.storage_url == "s3://bucket/prefix"
    assert settings.storage.s3_endpoint_url == "http://127.0.0.1:9000"
    assert settings.database_url == "postgresql+psycopg://u@db:5432/images"
    assert settings.data_dir == Path("/srv/images")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("LIMITS_MAX_PIXELS", "0"),
        ("LIMITS_MAX_UPLOAD_BYTES", "lots"),
        ("LIMITS_ALLOWED_FORMATS", '["jpeg", "nosuchformat"]'),
    ],
)
def test_bad_values_refuse_to_start(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        Settings()
