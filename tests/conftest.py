"""Fixtures: every database test runs on SQLite and on PostgreSQL, against a real Redis.

The schema is built once per backend by running the Alembic migrations (so every test also runs on the
migrated schema, not on ``create_all``); each test then gets empty tables and an empty Redis database.
"""

from __future__ import annotations

import os
import shutil
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.engine import make_url

from app import create_app
from app.extensions import db
from app.models import Base, Clinic, User
from app.services.passwords import hash_password

BASE_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
BASE_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def _per_worker(database_url: str, redis_url: str, worker: str | None) -> tuple[str, str]:
    """pytest-xdist runs tests in parallel processes (gw0, gw1, ...): each gets a PostgreSQL database of its own
    (``test_gw0``) and a Redis database of its own (15, 14, ... counted down from the configured one), since every
    test empties both."""
    if not worker or not worker.startswith("gw"):
        return database_url, redis_url
    index = int(worker[2:])
    db_url = make_url(database_url)
    db_url = db_url.set(database=f"{db_url.database}_{worker}").render_as_string(hide_password=False)
    base, _, number = redis_url.rpartition("/")
    if not number.isdigit() or int(number) - index < 0:
        raise pytest.UsageError(f"TEST_REDIS_URL {redis_url} leaves no Redis database for xdist worker {worker}")
    return db_url, f"{base}/{int(number) - index}"


TEST_DATABASE_URL, TEST_REDIS_URL = _per_worker(BASE_DATABASE_URL, BASE_REDIS_URL,
                                                os.environ.get("PYTEST_XDIST_WORKER"))  # fmt: skip
BACKENDS = ("sqlite", "postgresql")
PASSWORD = "correct-horse-battery"

START_HINT = {
    "postgresql": "start it with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start "
    "(or set TEST_DATABASE_URL; `bash .ci/run` installs and starts it)",
    "redis": "start it with: redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no "
    "(or set TEST_REDIS_URL; `bash .ci/run` installs and starts it)",
}


def pytest_sessionstart(session: pytest.Session) -> None:
    """Fail the run at once, saying how to fix it, when PostgreSQL or Redis is not there: never skip silently."""
    try:
        _create_database_if_missing(TEST_DATABASE_URL)
        engine = sa.create_engine(TEST_DATABASE_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
        engine.dispose()
    except Exception as exc:
        pytest.exit(f"PostgreSQL is not reachable at {TEST_DATABASE_URL} ({exc.__class__.__name__}); "
                    f"{START_HINT['postgresql']}", returncode=3)  # fmt: skip
    try:
        redis.Redis.from_url(TEST_REDIS_URL, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        pytest.exit(f"Redis is not reachable at {TEST_REDIS_URL} ({exc}); {START_HINT['redis']}", returncode=3)


def _create_database_if_missing(url: str) -> None:
    """An xdist worker's own database, made next to the configured one on first use."""
    if url == BASE_DATABASE_URL:
        return
    name = make_url(url).database
    admin = sa.create_engine(BASE_DATABASE_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
    try:
        with admin.connect() as connection:
            exists = connection.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name})
            if exists.first() is None:
                connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()


def _migrate(url: str, instance: Path) -> None:
    from flask_migrate import upgrade

    app = create_app({"THUSA_ENV": "test", "DATABASE_URL": url, "REDIS_URL": TEST_REDIS_URL,
                      "INSTANCE_PATH": str(instance)})  # fmt: skip
    with app.app_context():
        upgrade()
        db.engine.dispose()


def reset_postgres_schema(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(sa.text("DROP SCHEMA public CASCADE"))
        connection.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture(scope="session")
def migrated(tmp_path_factory) -> dict[str, str]:
    """One migrated database per backend: a SQLite template file, and the PostgreSQL test database."""
    instance = tmp_path_factory.mktemp("instance")
    template = tmp_path_factory.mktemp("sqlite") / "template.db"
    _migrate(f"sqlite:///{template}", instance)
    reset_postgres_schema(TEST_DATABASE_URL)
    _migrate(TEST_DATABASE_URL, instance)
    return {"sqlite": str(template), "postgresql": TEST_DATABASE_URL}


def _empty_postgres_tables(url: str) -> None:
    # TRUNCATE skips the audit log's append-only row trigger (it fires on DELETE) and is fast.
    tables = ", ".join(table.name for table in Base.metadata.sorted_tables)
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(sa.text(f"TRUNCATE {tables} CASCADE"))
    engine.dispose()


@pytest.fixture(params=BACKENDS)
def database_url(request, migrated, tmp_path) -> str:
    """An empty, migrated database on each backend in turn."""
    backend = request.param
    marker = {"sqlite": "postgres_only", "postgresql": "sqlite_only"}[backend]
    if request.node.get_closest_marker(marker):
        pytest.skip(f"{marker} test")
    if backend == "sqlite":
        path = tmp_path / "thusa.db"
        shutil.copyfile(migrated["sqlite"], path)
        return f"sqlite:///{path}"
    _empty_postgres_tables(migrated["postgresql"])
    return migrated["postgresql"]


@pytest.fixture
def redis_conn() -> Iterator[redis.Redis]:
    """The test Redis database, emptied before the test."""
    connection = redis.Redis.from_url(TEST_REDIS_URL)
    connection.flushdb()
    yield connection
    connection.close()


@pytest.fixture
def app_factory(database_url, redis_conn, tmp_path):
    """Build an app on this test's database and Redis, with extra settings."""

    def make(**overrides) -> Flask:
        config = {
            "THUSA_ENV": "test",
            "DATABASE_URL": database_url,
            "REDIS_URL": TEST_REDIS_URL,
            "INSTANCE_PATH": str(tmp_path / "instance"),
            "RATELIMIT_ENABLED": True,
            # Fixed per test, so tokens made by one app of the test work in another (a "restart").
            "SECRET_KEY": "test-secret-key-" + "s" * 32,
            "JWT_SECRET_KEY": "test-jwt-secret-key-" + "j" * 32,
        }
        config.update(overrides)
        return create_app(config)

    return make


@pytest.fixture
def app(app_factory) -> Iterator[Flask]:
    application = app_factory()
    with application.app_context():
        yield application
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def client(app) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


# --- people and places -------------------------------------------------------------------------------------------


def make_clinic(name: str = "Tlokweng Clinic", country: str = "BW", timezone: str = "Africa/Gaborone",
                language: str = "tn") -> Clinic:  # fmt: skip
    clinic = Clinic(name=name, country=country, timezone=timezone, default_language=language)
    db.session.add(clinic)
    db.session.commit()
    return clinic


def make_user(role: str, *, clinic: Clinic | None = None, email: str | None = None, phone: str | None = None,
              active: bool = True, language: str = "en") -> User:  # fmt: skip
    user = User(
        email=email or f"{role}-{uuid.uuid4().hex[:8]}@example.org",
        password_hash=hash_password(PASSWORD),
        role=role,
        name=role.title(),
        phone=phone,
        clinic_id=clinic.id if clinic else None,
        pharmacy_name="Osu Pharmacy" if role == "pharmacist" else None,
        language=language,
        active=active,
    )
    db.session.add(user)
    db.session.commit()
    return user


def login(client: FlaskClient, user: User, password: str = PASSWORD) -> dict:
    response = client.post("/api/v1/auth/login", json={"email": user.email, "password": password})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def people(app, client):
    """A clinic, another clinic, one user of each kind, and their access tokens."""
    home = make_clinic("Tlokweng Clinic")
    other = make_clinic("Kumasi Clinic", "GH", "Africa/Accra", "en")
    users = {
        "admin": make_user("admin"),
        "staff": make_user("staff", clinic=home, phone="+26771234567"),
        "other_staff": make_user("staff", clinic=other),
        "viewer": make_user("viewer", clinic=home),
        "pharmacist": make_user("pharmacist", phone="+233241234567"),
    }
    tokens = {name: login(client, user)["access_token"] for name, user in users.items()}
    return {"home": home, "other": other, "users": users, "tokens": tokens}


@pytest.fixture
def keep_signal_handlers():
    """The RQ worker installs its own SIGINT/SIGTERM handlers; give pytest its own back afterwards."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


@pytest.fixture
def plain_app(tmp_path) -> Iterator[Flask]:
    """An app with an empty in-memory database and no Redis use, for code that touches neither (channel adapters)."""
    application = create_app({"THUSA_ENV": "test", "DATABASE_URL": "sqlite://", "REDIS_URL": TEST_REDIS_URL,
                              "INSTANCE_PATH": str(tmp_path / "instance")})  # fmt: skip
    with application.app_context():
        yield application
