"""Fixtures: database tests run on PostgreSQL (production's database), against a real Redis.

Tests marked ``both_backends`` run on SQLite too: the places where the two behave differently (locking, bulk
paths, migrations, the embedded default). ``sqlite_only`` and ``postgres_only`` pin a test to one backend.

The schema is built once per backend and test process by running the Alembic migrations (so every test runs on the
migrated schema, not on ``create_all``), on first use. Each test then gets emptied tables (one round trip) and an
empty Redis database. The app is built once per backend and settings in each test process and handed to each test
with its settings, instance folder and rate limiter as a freshly built app would have them.
"""

from __future__ import annotations

import os
import signal
import sqlite3
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
import redis
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url

from app import create_app
from app.extensions import db, limiter
from app.models import Base, ClinicianPharmacy
from bots import sending
from tests.factories import PASSWORD, bearer, login, make_clinic, make_user, sign_in

__all__ = ["PASSWORD", "TEST_DATABASE_URL", "TEST_REDIS_URL", "bearer", "login", "make_clinic", "make_user"]

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
DEFAULT_BACKENDS = ("postgresql",)
# Fixed for every app of the session, so tokens made by one app work in another (a "restart").
SECRETS = {"SECRET_KEY": "test-secret-key-" + "s" * 32, "JWT_SECRET_KEY": "test-jwt-secret-key-" + "j" * 32}
PLACEHOLDER_MODEL_DIR = "app/skin_model/placeholder"
# Apps with extra settings kept per process (each holds a connection pool): the most recently used ones.
CACHED_APPS = 6

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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run ``untraced`` tests with pytest-cov's tracer paused, and only while coverage runs.

    pytest-cov's own ``no_cover`` marker fails every test it marks under ``--no-cov`` (its controller is None),
    so modules mark themselves ``untraced`` and get ``no_cover`` here when coverage is on.
    """
    if config.getoption("no_cov", default=True) or not config.pluginmanager.hasplugin("_cov"):
        return
    for item in items:
        if item.get_closest_marker("untraced"):
            item.add_marker(pytest.mark.no_cover)


def _running_tracer(config: pytest.Config):
    """pytest-cov's controller while its tracer runs in this process, else None."""
    plugin = config.pluginmanager.getplugin("_cov")
    controller = getattr(plugin, "cov_controller", None)
    if getattr(plugin, "_disabled", True) or controller is None or not controller.started:
        return None
    return controller


def _collecting_untraced(collector: pytest.Collector) -> bool:
    """Whether ``collector`` builds tests of a module (or class) marked ``untraced``."""
    module = collector.getparent(pytest.Module)
    if module is None:
        return False
    try:
        module.obj  # noqa: B018 - imports the module (traced, as before), so that its markers are known
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException:  # an import error or a module-level skip: pytest's own collection reports it
        return False
    return collector.get_closest_marker("untraced") is not None


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector):
    """Build the tests of an ``untraced`` module with the tracer paused, as they later run.

    The module's import stays traced. The fuzz module's collection (schemathesis reads the document and lists its
    operations in every xdist process) costs up to a second more a process under the tracer; each operation's test is
    built later, by the process that runs it (``pytest_runtest_setup``).
    """
    controller = _running_tracer(collector.config)
    if controller is None or not _collecting_untraced(collector):
        return (yield)
    controller.pause()
    try:
        return (yield)
    finally:
        controller.resume()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """A test collected as a stand-in (``build_when_run``: tests/api/test_openapi_fuzz.py) is built now, in the
    process that runs it, with the tracer paused when the test is ``untraced``; pytest and the plugins then see the
    built test as they would have from collection."""
    build = getattr(getattr(item, "obj", None), "build_when_run", None)
    if build is None:
        return
    controller = _running_tracer(item.config) if item.get_closest_marker("untraced") else None
    if controller is not None:
        controller.pause()
    try:
        item.obj = build()
    finally:
        if controller is not None:
            controller.resume()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run each database test on the backends its markers ask for (PostgreSQL when none does)."""
    if "database_url" not in metafunc.fixturenames:
        return
    if metafunc.definition.get_closest_marker("sqlite_only"):
        backends = ("sqlite",)
    elif metafunc.definition.get_closest_marker("postgres_only"):
        backends = ("postgresql",)
    elif metafunc.definition.get_closest_marker("both_backends"):
        backends = BACKENDS
    else:
        backends = DEFAULT_BACKENDS
    metafunc.parametrize("database_url", backends, indirect=True, scope="function")


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


@event.listens_for(Engine, "connect")
def _sqlite_commits_skip_the_disk(dbapi_connection, _record) -> None:
    """SQLite test databases: commits return before the disk has them (``PRAGMA synchronous=OFF``), the SQLite
    twin of ``synchronous_commit = off`` below. Locking, WAL and visibility are unchanged."""
    if isinstance(dbapi_connection, sqlite3.Connection):
        dbapi_connection.execute("PRAGMA synchronous=OFF")


def reset_postgres_schema(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(sa.text("DROP SCHEMA public CASCADE"))
        connection.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()


def _skip_waiting_for_the_disk(url: str) -> None:
    """Commits in the test database return before their WAL reaches the disk (``synchronous_commit = off``).

    Thousands of tests commit a few times each, and on a busy disk each flush costs milliseconds. Nothing else
    changes: a commit is still atomic and visible to every other connection at once; only a crash of the server
    could lose the last commits, of a database that every test empties anyway. Applies to connections made after.
    """
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        name = connection.exec_driver_sql("SELECT current_database()").scalar_one()
        connection.exec_driver_sql(f'ALTER DATABASE "{name}" SET synchronous_commit = off')
    engine.dispose()


# A connection a previous test left inside a transaction would block the emptying: fail that test's set-up after a
# while, naming the lock, instead of hanging the run.
WAIT = "SET LOCAL lock_timeout = '30s'"


def _driver_connection(url: str) -> psycopg.Connection:
    """A psycopg connection in autocommit mode: a script with its own BEGIN and COMMIT goes in one round trip (in
    a transaction of the driver's, its BEGIN and the COMMIT were two more), and SQLAlchemy's layers, which cost
    more than the emptying under coverage's tracer, are not in the way."""
    return psycopg.connect(make_url(url).set(drivername="postgresql").render_as_string(hide_password=False),
                           autocommit=True)  # fmt: skip


class Databases:
    """The migrated test database of each backend in this process, migrated on first use, and their emptying.

    Emptying is one round trip of DELETEs (children first), far cheaper than TRUNCATE on tables this small. The
    audit log refuses DELETE in the database itself: PostgreSQL's trigger is an ordinary one, so
    ``session_replication_role = replica`` skips it for the emptying transaction (it skips the foreign-key
    triggers as well); SQLite's trigger is dropped and made again inside the same transaction.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._urls: dict[str, str] = {}
        self._postgres: psycopg.Connection | None = None
        self._sqlite: sqlite3.Connection | None = None
        self._sqlite_script = ""
        self._tables = [table.name for table in reversed(Base.metadata.sorted_tables)]
        deletes = "; ".join(f"DELETE FROM {name}" for name in self._tables)  # noqa: S608 - our own table names
        self._postgres_script = f"BEGIN; {WAIT}; SET LOCAL session_replication_role = replica; {deletes}; COMMIT"

    def url(self, backend: str) -> str:
        """The database URL of ``backend``, migrated."""
        if backend not in self._urls:
            if backend == "sqlite":
                url = f"sqlite:///{self.folder / 'thusa.db'}"
                _migrate(url, self.folder / "instance")
            else:
                url = TEST_DATABASE_URL
                reset_postgres_schema(url)
                _skip_waiting_for_the_disk(url)
                _migrate(url, self.folder / "instance")
            self._urls[backend] = url
        return self._urls[backend]

    def empty(self, backend: str) -> str:
        """Delete every row of every table of ``backend``'s database; returns its URL."""
        url = self.url(backend)
        if backend == "sqlite":
            self._empty_sqlite(url)
        else:
            self._empty_postgres(url)
        return url

    def _empty_postgres(self, url: str) -> None:
        if self._postgres is None:
            self._postgres = _driver_connection(url)
        try:
            self._postgres.execute(self._postgres_script)
        except psycopg.Error:
            # The connection broke (a test restarted the server?) or the role is not a superuser: start again with
            # a new connection and TRUNCATE, which needs neither and skips the audit trigger too.
            self._postgres.close()
            self._postgres = _driver_connection(url)
            try:
                self._postgres.execute(f"BEGIN; {WAIT}; TRUNCATE {', '.join(self._tables)} CASCADE; COMMIT")
            except psycopg.Error:
                self._postgres.close()  # the next test's set-up starts on a new connection
                self._postgres = None
                raise

    def _empty_sqlite(self, url: str) -> None:
        if self._sqlite is None:
            self._sqlite = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None, timeout=10)
            triggers = self._sqlite.execute(
                "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'audit_log'"
            ).fetchall()
            has_sequence = self._sqlite.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sqlite_sequence'"
            ).fetchone()
            self._sqlite_script = "\n".join(
                ["BEGIN IMMEDIATE;"]
                + [f"DROP TRIGGER {name};" for name, _ in triggers]
                + [f"DELETE FROM {name};" for name in self._tables]  # noqa: S608 - our own table names
                + (["DELETE FROM sqlite_sequence;"] if has_sequence else [])
                + [f"{sql};" for _, sql in triggers]
                + ["COMMIT;"]
            )
        self._sqlite.executescript(self._sqlite_script)

    def close(self) -> None:
        if self._postgres is not None:
            self._postgres.close()
        if self._sqlite is not None:
            self._sqlite.close()


@pytest.fixture(scope="session")
def databases(tmp_path_factory) -> Iterator[Databases]:
    """The migrated databases of this test process."""
    found = Databases(tmp_path_factory.mktemp("databases"))
    yield found
    found.close()


@pytest.fixture
def database_url(request, databases) -> str:
    """An empty, migrated database on the backend this test runs on (see ``pytest_generate_tests``)."""
    return databases.empty(request.param)


@pytest.fixture(scope="session")
def _redis_flusher() -> Iterator[redis.Redis]:
    """The connection that empties the test Redis database before each test, kept for the process: a new one per
    test cost a connection and its hand-shake (3.5 ms a test under coverage, more than emptying the database)."""
    connection = redis.Redis.from_url(TEST_REDIS_URL)
    yield connection
    connection.close()


@pytest.fixture
def redis_conn(_redis_flusher) -> Iterator[redis.Redis]:
    """The test Redis database, emptied before the test (rate-limit counters, revoked tokens, queues).

    The test's own client connects when the test first uses it.
    """
    _redis_flusher.flushdb()
    connection = redis.Redis.from_url(TEST_REDIS_URL)
    yield connection
    connection.close()


def _base_config(database_url: str, instance: Path) -> dict:
    return {
        "THUSA_ENV": "test",
        "DATABASE_URL": database_url,
        "REDIS_URL": TEST_REDIS_URL,
        "INSTANCE_PATH": str(instance),
        "RATELIMIT_ENABLED": True,
        # The 1.4 kB placeholder: tests that do not care which model runs skip loading the 13.5 MB backbone (the
        # few about it load it themselves, once per process: tests/services/test_skin_backbone.py).
        "SKIN_MODEL_DIR": PLACEHOLDER_MODEL_DIR,
        **SECRETS,
    }


class _Built:
    """An app with what ``create_app`` left: its settings and the rate limiter's state (a process-wide object)."""

    def __init__(self, config: dict) -> None:
        self.app = create_app(config)
        self.config = dict(self.app.config)
        self.limiter = dict(vars(limiter))

    def hand_out(self, instance: Path) -> Flask:
        """The app as if just built for this test: settings as built, this test's instance folder, its limiter,
        and nothing kept for it by the code under test (e.g. the worker's provider adapters, made from settings
        a test may patch)."""
        self.app.config.clear()
        self.app.config.update(self.config)
        self.app.config["INSTANCE_PATH"] = str(instance)
        vars(limiter).update(self.limiter)
        sending.forget_adapters(self.app)
        return self.app

    def dispose(self) -> None:
        with self.app.app_context():
            db.session.remove()
            db.engine.dispose()


class AppCache:
    """The apps of this process, one per backend and settings; the few with extra settings most recently used."""

    def __init__(self, instance: Path) -> None:
        self.instance = instance  # where the apps are built; each test hands its own folder to the app it uses
        self.plain: dict[str, _Built] = {}
        self.special: OrderedDict[tuple, _Built] = OrderedDict()

    def get(self, database_url: str, overrides: dict, *, busy: set) -> _Built:
        """The built app for these settings (built now on first use); never one of ``busy`` (in use)."""
        if not overrides:
            if database_url not in self.plain:
                self.plain[database_url] = _Built(_base_config(database_url, self.instance))
            return self.plain[database_url]
        key = (database_url, tuple(sorted((name, repr(value)) for name, value in overrides.items())))
        if key in self.special:
            self.special.move_to_end(key)
        else:
            self.special[key] = _Built({**_base_config(database_url, self.instance), **overrides})
            idle = [other for other, built in self.special.items() if other != key and id(built) not in busy]
            for oldest in idle[: max(len(self.special) - CACHED_APPS, 0)]:
                self.special.pop(oldest).dispose()
        return self.special[key]


@pytest.fixture(scope="session")
def app_cache(tmp_path_factory) -> Iterator[AppCache]:
    cache = AppCache(tmp_path_factory.mktemp("instance"))
    yield cache
    for built in [*cache.plain.values(), *cache.special.values()]:
        built.dispose()


@pytest.fixture(scope="session")
def _instances(tmp_path_factory) -> Path:
    """A folder of this process's per-test instance folders, numbered (``instance_folder``)."""
    return tmp_path_factory.mktemp("instances")


_instance_numbers = iter(range(10**9))


@pytest.fixture
def instance_folder(_instances) -> Path:
    """This test's instance folder for its app: not there yet (as a new install's), in a folder that is.

    Numbered in a folder of the process's own rather than under ``tmp_path``: pytest finds a new ``tmp_path``'s
    number by listing every earlier test's folder, a cost that grew through the run to milliseconds a test.
    """
    return _instances / f"instance-{next(_instance_numbers)}"


@pytest.fixture
def shared_app(database_url, redis_conn, instance_folder, app_cache) -> Callable[..., Flask]:
    """This test's app with extra settings, built once per process for each set of settings and reused.

    For settings a module's tests all share (the ``app`` fixture of a module). A test that needs an app of its own
    (a "restart", a second app with the same settings) uses ``app_factory``.
    """
    busy: set[int] = set()

    def get(**overrides) -> Flask:
        built = app_cache.get(database_url, overrides, busy=busy)
        busy.add(id(built))
        return built.hand_out(instance_folder)

    return get


@pytest.fixture
def app_factory(database_url, redis_conn, instance_folder) -> Iterator[Callable[..., Flask]]:
    """Build a new app on this test's database and Redis, with extra settings."""
    built: list[Flask] = []

    def make(**overrides) -> Flask:
        application = create_app({**_base_config(database_url, instance_folder), **overrides})
        built.append(application)
        return application

    yield make
    for application in built:  # their connection pools, which would otherwise outlive the test
        with application.app_context():
            db.session.remove()
            db.engine.dispose()


@pytest.fixture
def app(shared_app) -> Iterator[Flask]:
    """The app of this test's backend, in an app context of this test's own."""
    application = shared_app()
    with application.app_context():
        yield application
        db.session.remove()


@pytest.fixture
def client(app) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


# --- people and places -------------------------------------------------------------------------------------------


@pytest.fixture
def clinic(app):
    """Tlokweng Clinic: Botswana (Africa/Gaborone), Setswana, the default opening hours (Mon-Fri 07:30-16:30)."""
    return make_clinic()


@pytest.fixture
def people(app):
    """A clinic, another clinic, one user of each kind, and their access tokens (each from a real sign-in, made
    when the test first asks for it)."""
    home = make_clinic("Tlokweng Clinic", commit=False)
    other = make_clinic("Kumasi Clinic", "GH", "Africa/Accra", "en", commit=False)
    users = {
        "admin": make_user("admin", commit=False),
        "staff": make_user("staff", clinic=home, phone="+26771234567", commit=False),
        "other_staff": make_user("staff", clinic=other, commit=False),
        "viewer": make_user("viewer", clinic=home, commit=False),
        "pharmacist": make_user("pharmacist", phone="+233241234567", commit=False),
        "clinician": make_user("clinician", commit=False),  # covers the pharmacist's pharmacy (second opinions)
    }
    db.session.add(ClinicianPharmacy(clinician_id=users["clinician"].id, pharmacist_id=users["pharmacist"].id))
    db.session.commit()  # one commit for the nine rows
    return {"home": home, "other": other, "users": users, "tokens": _SignedIn(app, users)}


class _SignedIn(dict):
    """Each user's access token, from a real sign-in made the first time a test asks for it: most tests use one or
    two of the five, and a sign-in (password check, audit row, token family) is the fixture's main cost."""

    def __init__(self, app: Flask, users: dict) -> None:
        super().__init__()
        self._app, self._users = app, users

    def __missing__(self, name: str) -> str:
        self[name] = token = sign_in(self._app, self._users[name])["access_token"]
        return token


@pytest.fixture
def keep_signal_handlers():
    """The RQ worker installs its own SIGINT/SIGTERM handlers; give pytest its own back afterwards."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


@pytest.fixture(scope="session")
def _plain_app(tmp_path_factory) -> _Built:
    return _Built({"THUSA_ENV": "test", "DATABASE_URL": "sqlite://", "REDIS_URL": TEST_REDIS_URL,
                   "INSTANCE_PATH": str(tmp_path_factory.mktemp("plain"))})  # fmt: skip


@pytest.fixture
def plain_app(_plain_app, instance_folder) -> Iterator[Flask]:
    """An app with an empty in-memory database and no Redis use, for code that touches neither (channel adapters)."""
    application = _plain_app.hand_out(instance_folder)
    with application.app_context():
        yield application
