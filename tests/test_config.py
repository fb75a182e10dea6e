"""Settings: production refuses to start without its secrets; development keeps generated ones."""

from __future__ import annotations

import pytest

from app import create_app
from app.config import SETTINGS, ConfigError, load_config
from tests.conftest import TEST_REDIS_URL


def test_production_names_every_missing_secret(monkeypatch, tmp_path):
    for name in ("SECRET_KEY", "JWT_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigError) as error:
        create_app({"THUSA_ENV": "production", "INSTANCE_PATH": str(tmp_path)})
    assert "SECRET_KEY" in str(error.value) and "JWT_SECRET_KEY" in str(error.value)


def test_production_starts_with_its_secrets_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("SECRET_KEY", "a" * 40)
    monkeypatch.setenv("JWT_SECRET_KEY", "b" * 40)
    app = create_app({"THUSA_ENV": "production", "INSTANCE_PATH": str(tmp_path), "REDIS_URL": TEST_REDIS_URL})
    assert app.config["JWT_SECRET_KEY"] == "b" * 40
    response = app.test_client().get("/healthz")
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")


def test_production_refuses_to_turn_rate_limits_off(monkeypatch, tmp_path):
    monkeypatch.setenv("SECRET_KEY", "a" * 40)
    monkeypatch.setenv("JWT_SECRET_KEY", "b" * 40)
    with pytest.raises(ConfigError, match="RATELIMIT_ENABLED"):
        load_config({"THUSA_ENV": "production", "INSTANCE_PATH": str(tmp_path), "RATELIMIT_ENABLED": False})


@pytest.mark.parametrize("how", ["environment", "override"])
def test_production_refuses_the_phone_simulator(monkeypatch, tmp_path, how):
    # The simulator signs webhooks with the real provider secrets: in production it would forge them for anyone.
    monkeypatch.setenv("SECRET_KEY", "a" * 40)
    monkeypatch.setenv("JWT_SECRET_KEY", "b" * 40)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "the-real-twilio-token")
    overrides = {"THUSA_ENV": "production", "INSTANCE_PATH": str(tmp_path), "REDIS_URL": TEST_REDIS_URL}
    if how == "environment":
        monkeypatch.setenv("SIMULATOR_ENABLED", "true")
    else:
        overrides["SIMULATOR_ENABLED"] = True
    with pytest.raises(ConfigError, match="SIMULATOR_ENABLED"):
        create_app(overrides)


@pytest.mark.parametrize("value", ["", "false"])
def test_production_starts_with_the_simulator_off(monkeypatch, tmp_path, value):
    monkeypatch.setenv("SECRET_KEY", "a" * 40)
    monkeypatch.setenv("JWT_SECRET_KEY", "b" * 40)
    monkeypatch.setenv("SIMULATOR_ENABLED", value)
    assert load_config({"THUSA_ENV": "production", "INSTANCE_PATH": str(tmp_path)})["SIMULATOR_ENABLED"] is False


def test_unknown_environment_is_refused():
    with pytest.raises(ConfigError, match="THUSA_ENV"):
        load_config({"THUSA_ENV": "staging"})


def test_development_generates_secrets_once_and_keeps_them(monkeypatch, tmp_path):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    monkeypatch.delenv("JWT_SECRET_KEY", raising=False)
    first = load_config({"THUSA_ENV": "development", "INSTANCE_PATH": str(tmp_path)})
    second = load_config({"THUSA_ENV": "development", "INSTANCE_PATH": str(tmp_path)})
    assert first["JWT_SECRET_KEY"] == second["JWT_SECRET_KEY"] and len(first["JWT_SECRET_KEY"]) >= 40
    assert (tmp_path / ".jwt_secret_key").stat().st_mode & 0o077 == 0  # readable by the owner only
    assert first["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{tmp_path / 'thusa.db'}"


def test_environment_values_win_in_every_mode(monkeypatch, tmp_path):
    monkeypatch.setenv("JWT_SECRET_KEY", "from-the-environment-" + "x" * 20)
    monkeypatch.setenv("RATELIMIT_DEFAULT", "5 per second")
    config = load_config({"THUSA_ENV": "development", "INSTANCE_PATH": str(tmp_path)})
    assert config["JWT_SECRET_KEY"].startswith("from-the-environment-")
    assert config["RATELIMIT_DEFAULT"] == "5 per second"


def test_every_setting_is_in_env_example():
    from app.config import PROJECT_ROOT

    example = (PROJECT_ROOT / ".env.example").read_text()
    missing = [s.name for s in SETTINGS if f"{s.name}=" not in example]
    assert missing == []
