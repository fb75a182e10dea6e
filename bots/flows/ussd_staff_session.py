"""The staff USSD menu's session state, in Redis: one JSON value per session, and a user's unfinished write.

The session's state lives under its session id, with a TTL, bound to the phone that opened it; every later hop
reads the new input relative to the history length stored there. The history itself is never stored, only its
length and an HMAC of it, so the PIN it contains is kept nowhere. A write cut off by the network is kept per user
for :data:`RESUME_TTL` seconds so that a redial can pick it up.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable

from flask import current_app

from app.extensions import redis_client
from bots.flows.ussd_menu import typed_after

SESSION_TTL = 300  # seconds; longer than any network keeps a USSD session open
RESUME_TTL = 300  # an unfinished write can be resumed for 5 minutes


def _session_key(session_id: str) -> str:
    return f"thusa:ussd:staff:{session_id}"


def _pending_key(user_id: str) -> str:
    return f"thusa:ussd:pending:{user_id}"


def forget(session_ids: Iterable[str], user_ids: Iterable[str]) -> int:
    """Delete the state of these USSD sessions and the unfinished writes of these users (the demo reset).

    Exact keys only, derived from ids the caller knows: never a scan of everybody's sessions.

    Returns:
        How many keys there were.
    """
    keys = [_session_key(s) for s in session_ids] + [_pending_key(str(u)) for u in user_ids]
    return redis_client.client.delete(*keys) if keys else 0


def _load(key: str) -> dict | None:
    raw = redis_client.client.get(key)
    return json.loads(raw) if raw else None


def _mac(history: str) -> str:
    secret = current_app.config["SECRET_KEY"].encode()
    return hmac.new(secret, history.encode(), hashlib.sha256).hexdigest()


class StaffSession:
    """One USSD session's state: who (phone, user), where (step and its data) and how much history was seen."""

    def __init__(self, session_id: str, data: dict) -> None:
        self.session_id = session_id
        self.data = data

    @classmethod
    def load(cls, session_id: str) -> StaffSession | None:
        data = _load(_session_key(session_id))
        return cls(session_id, data) if data is not None else None

    def save(self) -> None:
        redis_client.client.set(_session_key(self.session_id), json.dumps(self.data), ex=SESSION_TTL)

    def delete(self) -> None:
        redis_client.client.delete(_session_key(self.session_id))

    def new_input(self, history: str | None, fallback: str) -> str:
        """What was typed at this hop, read after the history seen so far (which is then remembered)."""
        if history is None:
            return fallback
        typed = typed_after(history, self.data.get("seen", 0), lambda seen: _mac(seen) == self.data.get("mac"))
        self.data.update(seen=len(history), mac=_mac(history))
        return typed

    def go(self, step: str, **values) -> None:
        self.data = {key: value for key, value in self.data.items() if key in ("phone", "user_id", "seen", "mac")}
        self.data.update(step=step, **values)

    @property
    def step(self) -> str:
        return self.data.get("step", "pin")

    # An unfinished write, kept per user so a redial can pick it up.
    def keep_pending(self) -> None:
        pending = {key: self.data[key] for key in ("step", "action", "item_id", "quantity", "page",
                                                   "appointment_id") if key in self.data}  # fmt: skip
        redis_client.client.set(_pending_key(self.data["user_id"]), json.dumps(pending), ex=RESUME_TTL)

    def drop_pending(self) -> None:
        redis_client.client.delete(_pending_key(self.data["user_id"]))

    def pending(self) -> dict | None:
        return _load(_pending_key(self.data["user_id"]))
