"""Extensions, created unbound here and bound to the app in ``create_app`` with ``init_app``.

The OpenAPI ``Api`` is the exception: flask-smorest keeps one spec per ``Api`` object, so ``create_app`` makes one
per app (tests build many apps in one process).
"""

from __future__ import annotations

from pathlib import Path

import redis
from flask import Flask, current_app, request
from flask_cors import CORS
from flask_jwt_extended import JWTManager, decode_token
from flask_jwt_extended.exceptions import JWTExtendedException
from flask_limiter import Limiter
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from jwt import PyJWTError

from app.models.base import Base
from app.redis_conn import start_private_server


class RedisClient:
    """One Redis connection pool per app and process, made on first use (redis-py's pool is fork-safe)."""

    def init_app(self, app: Flask) -> None:
        app.extensions["thusa_redis"] = _AppRedis(app.config["REDIS_URL"] or None, Path(app.config["INSTANCE_PATH"]))

    @property
    def client(self) -> redis.Redis:
        """The current app's client."""
        return current_app.extensions["thusa_redis"].client


class _AppRedis:
    def __init__(self, url: str | None, instance: Path) -> None:
        self.url = url
        self.instance = instance
        self._client: redis.Redis | None = None

    @property
    def client(self) -> redis.Redis:
        if self._client is None:
            if not self.url:  # no REDIS_URL and no embedded server running: start one for this process
                self.url = start_private_server(self.instance)
            self._client = redis.Redis.from_url(self.url, socket_connect_timeout=2, socket_timeout=5)
        return self._client


def rate_limit_key() -> str:
    """Per user for a validly signed access token, per address otherwise. No I/O: the signature is enough here."""
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        try:
            claims = decode_token(header[7:])
            if claims.get("type") == "access":
                return f"user:{claims['sub']}"
        except (JWTExtendedException, PyJWTError, KeyError, ValueError):
            pass
    return f"addr:{request.remote_addr}"


def _default_limit() -> str:
    # Read per request, so each app (tests build many in one process) keeps its own RATELIMIT_DEFAULT.
    return current_app.config["RATELIMIT_DEFAULT"]


# Objects stay loaded after commit: the API serialises what a service just committed without a second SELECT
# (on SQLite that SELECT would open another write-locking transaction; see app/__init__.py).
db = SQLAlchemy(model_class=Base, session_options={"expire_on_commit": False})
migrate = Migrate()
jwt = JWTManager()
# The API limit is one budget per caller across every endpoint (application limits), not one per endpoint.
limiter = Limiter(
    key_func=rate_limit_key, application_limits=[_default_limit], in_memory_fallback_enabled=True, headers_enabled=True
)
cors = CORS()
redis_client = RedisClient()
