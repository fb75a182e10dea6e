"""The Thusa application factory."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from flask import Flask
from sqlalchemy import event, exc
from sqlalchemy.engine import Engine
from sqlalchemy.orm import configure_mappers
from werkzeug.middleware.proxy_fix import ProxyFix

from app import errors, security
from app.config import PROJECT_ROOT, load_config
from app.errors import ThusaApi
from app.extensions import cors, db, jwt, limiter, migrate, redis_client
from app.redis_conn import limiter_storage_uri, running_embedded_url

__version__ = "0.1.0"


def create_app(test_config: dict | None = None) -> Flask:
    """Build the app: settings first, then each extension, then the API and the commands.

    Args:
        test_config: settings that win over the environment (tests pass theirs here).

    Raises:
        app.config.ConfigError: the settings are unsafe or incomplete (e.g. production without its secrets).
    """
    config = load_config(test_config)
    app = Flask(__name__, instance_path=config["INSTANCE_PATH"], instance_relative_config=False)
    app.config.update(config)
    app.url_map.strict_slashes = False  # /api/v1/users and /api/v1/users/ are the same collection
    _configure(app)

    _configure_logging(app)
    db.init_app(app)
    with app.app_context():
        for engine in db.engines.values():
            _ping_idle_connections(engine, app.config["DATABASE_PING_AFTER_IDLE_SECONDS"])
    migrate.init_app(app, db, directory=str(PROJECT_ROOT / "migrations"), render_as_batch=True,
                     compare_type=True)  # fmt: skip
    redis_client.init_app(app)
    jwt.init_app(app)
    limiter.init_app(app)
    cors.init_app(app, resources={r"/api/*": {"origins": app.config["CORS_ORIGINS"]}}, supports_credentials=False)
    openapi = ThusaApi(app)
    errors.init_app(app)
    security.init_app(app)

    # The factory wires every layer together; imported here, not at the top, so that importing any ``app`` module
    # (models in a migration, a service in a test) does not pull in the API, the bots and the simulator.
    from app import api as rest
    from app import cli
    from bots import simulator, webhooks

    rest.init_app(app, openapi)
    app.register_blueprint(webhooks.bp)
    cli.init_app(app)
    simulator.init_app(app)  # the phone simulator: /simulator, when SIMULATOR_ENABLED
    # Once a process, here, rather than in whichever request first queries: it takes ~0.1-0.2 s, and after a
    # restart every request arriving meanwhile (a burst of USSD hops) would wait for it.
    configure_mappers()
    return app


def _configure(app: Flask) -> None:
    """Settings derived from the primary ones: Redis location, JWT, limiter, OpenAPI, proxies."""
    cfg = app.config
    cfg["REDIS_URL"] = cfg["REDIS_URL"] or running_embedded_url(Path(cfg["INSTANCE_PATH"])) or ""
    cfg.update(
        JWT_TOKEN_LOCATION=["headers"],
        JWT_ALGORITHM="HS256",
        JWT_DECODE_ALGORITHMS=["HS256"],
        JWT_ERROR_MESSAGE_KEY="message",
        RATELIMIT_STORAGE_URI=limiter_storage_uri(cfg["REDIS_URL"]) if cfg["REDIS_URL"] else "memory://",
        RATELIMIT_STORAGE_OPTIONS={"socket_connect_timeout": 1, "socket_timeout": 1},
        RATELIMIT_HEADERS_ENABLED=True,
        RATELIMIT_IN_MEMORY_FALLBACK_ENABLED=True,
        RATELIMIT_KEY_PREFIX="thusa",
        API_TITLE="Thusa API",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/api/v1",
        OPENAPI_JSON_PATH="openapi.json",
        API_SPEC_OPTIONS={
            "info": {"description": "Thusa: appointments, clinic stock and skin consultations by SMS, USSD and chat."},
            "components": {
                "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}
            },
        },
    )
    if cfg["TRUST_PROXY_HOPS"]:
        hops = cfg["TRUST_PROXY_HOPS"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops)


def _configure_logging(app: Flask) -> None:
    logging.basicConfig(level=app.config["LOG_LEVEL"], format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # httpx logs full request URLs at INFO, and Telegram puts the bot token in the URL.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # twilio's client logs every request (URL with the account SID, headers) at INFO.
    logging.getLogger("twilio.http_client").setLevel(logging.WARNING)
    if app.config["THUSA_ENV"] == "development":
        # Bodies of console messages (reset codes, reminders) are shown in development only.
        logging.getLogger("bots.channels.console").setLevel(logging.DEBUG)


def _ping_idle_connections(engine: Engine, idle_seconds: int) -> None:
    """Check a pooled connection before use only when it sat idle in the pool for ``idle_seconds`` or more.

    SQLAlchemy's ``pool_pre_ping`` costs a round trip on every checkout: a tenth of a USSD hop's SQL. Connections
    in use every second are the ones least likely to have been dropped (idle timeouts, a proxy, a restart while
    quiet); when one was, its error is a disconnect, so SQLAlchemy invalidates the whole pool and that one request
    answers 503 with ``Retry-After`` (``app.errors``): after a database restart, a request a process (at most
    one a thread, those already under way).
    """

    @event.listens_for(engine, "checkin")
    def _idle_from(_dbapi_connection, record) -> None:
        record.info["idle_from"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_connection, record, _proxy) -> None:
        idle_from = record.info.get("idle_from")
        if idle_from is None or time.monotonic() - idle_from < idle_seconds:
            return  # new, or in use a moment ago
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as error:
            # As pool_pre_ping does: every pooled connection is as old, so all are replaced; the pool retries.
            raise exc.InvalidatePoolError() from error


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection, _record) -> None:
    """SQLite: WAL, a 5 s busy timeout, foreign keys; and transactions we begin ourselves (see below)."""
    import sqlite3

    if not isinstance(dbapi_connection, sqlite3.Connection):
        return
    dbapi_connection.isolation_level = None  # let SQLAlchemy's "begin" event issue BEGIN
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


@event.listens_for(Engine, "begin")
def _sqlite_begin_immediate(connection) -> None:
    # A deferred transaction that reads and then writes cannot wait on the busy timeout when another writer
    # got there first: SQLite fails it at once with "database is locked". BEGIN IMMEDIATE takes the write lock
    # up front, so concurrent webhooks and workers queue on the busy timeout instead (as Rails does for SQLite).
    # The price: every transaction, even a read-only one, holds the one write lock until it ends, so code must
    # end its transaction before any slow I/O (a provider call, a model run). PostgreSQL has no such limit.
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql("BEGIN IMMEDIATE")
