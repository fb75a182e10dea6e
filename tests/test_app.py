"""The application factory's database pool: a connection dropped by the server costs at most one request."""

import pytest
import sqlalchemy as sa

from app.extensions import db


def _drop_the_apps_connections(app) -> int:
    """Terminate, from outside, every server connection the app's pool holds (a restart, an idle timeout)."""
    with app.app_context():
        url = db.engine.url
    outsider = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with outsider.connect() as connection:
        dropped = connection.execute(sa.text(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
        )).scalar_one()  # fmt: skip
    outsider.dispose()
    return dropped


def _login(client):
    # Reads the users table: 401 while the database answers, 503 when it does not.
    return client.post("/api/v1/auth/login", json={"email": "nobody@example.org", "password": "not-a-password"})


def test_a_connection_idle_long_enough_is_checked_and_replaced_before_use(app_factory):
    app = app_factory(DATABASE_PING_AFTER_IDLE_SECONDS=0)  # every checkout counts as idle long enough
    client = app.test_client()
    assert _login(client).status_code == 401
    assert _drop_the_apps_connections(app) >= 1

    assert _login(client).status_code == 401  # the check found it dropped; the pool connected again


def test_a_connection_in_use_a_moment_ago_is_not_checked_and_one_request_pays(app_factory):
    app = app_factory(DATABASE_PING_AFTER_IDLE_SECONDS=3600)
    client = app.test_client()
    assert _login(client).status_code == 401
    assert _drop_the_apps_connections(app) >= 1

    refused = _login(client)
    assert refused.status_code == 503
    assert "Retry-After" in refused.headers
    assert refused.get_json()["error"]["code"] == "service_unavailable"
    assert _login(client).status_code == 401  # the disconnect replaced every pooled connection


@pytest.mark.parametrize("value", ["soon", "1.5"])
def test_the_idle_setting_must_be_whole_seconds(monkeypatch, value):
    from app.config import ConfigError, load_config

    monkeypatch.setenv("DATABASE_PING_AFTER_IDLE_SECONDS", value)
    with pytest.raises(ConfigError, match="DATABASE_PING_AFTER_IDLE_SECONDS must be a whole number"):
        load_config({"THUSA_ENV": "test"})
