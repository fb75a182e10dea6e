"""The staff USSD menu's session state, in Redis: one JSON value per session, and a user's unfinished write.

The session's state lives under its session id, with a TTL, bound to the phone that opened it; every later hop reads
the new input relative to the history length stored there. The history itself is never stored, only its length and
an HMAC of it, so the PIN it contains is kept nowhere. A write cut off by the network is kept per user for
:data:`RESUME_TTL` seconds so that a redial can pick it up.

What the menu needs of the staff member (:class:`StaffUser`: id, clinic, role, language, the clinic's name and
language) is kept in the state for the session's life, taken from the user's row when the session opens and again,
under the row's lock, when the PIN is checked; a hop that only shows a screen reads no user. Whatever writes, or
shows patients' data, reads the row again first (:meth:`~bots.flows.ussd_staff.StaffMenu.current_user`). The stock
list on screen is kept there too, while it is showing (``items`` and ``pages``), and the item being written to
(``item``); they are dropped when the session moves to another step.

Redis round trips: one read per hop, and one pipelined write of the state with the unfinished write's change (a
``batched`` session, as the menu loads it, only notes :meth:`StaffSession.keep_pending` and
:meth:`StaffSession.drop_pending` until the state is saved or deleted).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from flask import current_app

from app.extensions import redis_client
from app.models import User
from bots.flows.ussd_menu import typed_after

SESSION_TTL = 300  # seconds; longer than any network keeps a USSD session open
RESUME_TTL = 300  # an unfinished write can be resumed for 5 minutes
# What a move to another step keeps of the state: who, and how much of the history was seen.
_KEPT = ("phone", "user_id", "user", "seen", "mac")
_PENDING = ("step", "action", "item_id", "quantity", "page", "appointment_id")


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


@dataclass(frozen=True)
class StaffUser:
    """What the menu needs of the signed-in staff member, kept in the session state for the session's life."""

    id: uuid.UUID
    clinic_id: uuid.UUID
    role: str
    language: str | None
    clinic_name: str  # the clinic's name as texts show it (the main menu's title)
    clinic_language: str  # the clinic's default language, for a user without one

    @classmethod
    def of(cls, user: User) -> StaffUser:
        """From the user's row (and its clinic, which the row loads joined)."""
        return cls(id=user.id, clinic_id=user.clinic_id, role=user.role, language=user.language,
                   clinic_name=user.clinic.sms_name, clinic_language=user.clinic.default_language)  # fmt: skip

    def as_json(self) -> dict:
        return {"id": str(self.id), "clinic_id": str(self.clinic_id), "role": self.role, "language": self.language,
                "clinic_name": self.clinic_name, "clinic_language": self.clinic_language}  # fmt: skip

    @classmethod
    def from_json(cls, data: dict) -> StaffUser:
        return cls(id=uuid.UUID(data["id"]), clinic_id=uuid.UUID(data["clinic_id"]), role=data["role"],
                   language=data["language"], clinic_name=data["clinic_name"],
                   clinic_language=data["clinic_language"])  # fmt: skip


class StaffSession:
    """One USSD session's state: who (phone, user), where (step and its data) and how much history was seen."""

    def __init__(self, session_id: str, data: dict, *, batched: bool = False) -> None:
        self.session_id = session_id
        self.data = data
        self.batched = batched  # the unfinished write's changes wait for save() / delete()
        self._pending_change: tuple[str, dict | None] | None = None  # ("keep", values) or ("drop", None)

    @classmethod
    def load(cls, session_id: str, *, batched: bool = False) -> StaffSession | None:
        data = _load(_session_key(session_id))
        return cls(session_id, data, batched=batched) if data is not None else None

    @property
    def user(self) -> StaffUser | None:
        """The staff member as the session keeps them; None for a state saved without (then read the row)."""
        data = self.data.get("user")
        return StaffUser.from_json(data) if data else None

    def sign_in(self, user: StaffUser) -> None:
        """Keep ``user`` (taken from their row just now) for the rest of the session."""
        self.data.update(user_id=str(user.id), user=user.as_json())

    def save(self) -> None:
        """Write the state (with its TTL), and the unfinished write's change, in one round trip."""
        with redis_client.client.pipeline(transaction=False) as pipe:
            pipe.set(_session_key(self.session_id), json.dumps(self.data), ex=SESSION_TTL)
            self._write_pending(pipe)
            pipe.execute()

    def delete(self) -> None:
        """Forget the state (and the unfinished write, if it was dropped), in one round trip."""
        keys = [_session_key(self.session_id)]
        if self._pending_change is not None and self._pending_change[0] == "drop":
            keys.append(_pending_key(self.data["user_id"]))
            self._pending_change = None
        with redis_client.client.pipeline(transaction=False) as pipe:
            pipe.delete(*keys)
            self._write_pending(pipe)
            pipe.execute()

    def new_input(self, history: str | None, fallback: str) -> str:
        """What was typed at this hop, read after the history seen so far (which is then remembered)."""
        if history is None:
            return fallback
        typed = typed_after(history, self.data.get("seen", 0), lambda seen: _mac(seen) == self.data.get("mac"))
        self.data.update(seen=len(history), mac=_mac(history))
        return typed

    def go(self, step: str, **values) -> None:
        self.data = {key: value for key, value in self.data.items() if key in _KEPT}
        self.data.update(step=step, **values)

    @property
    def step(self) -> str:
        return self.data.get("step", "pin")

    # An unfinished write, kept per user so a redial can pick it up; batched: written with the state.
    def keep_pending(self) -> None:
        self._pending_change = ("keep", {key: self.data[key] for key in _PENDING if key in self.data})
        if not self.batched:
            self._write_pending(redis_client.client)

    def drop_pending(self) -> None:
        self._pending_change = ("drop", None)
        if not self.batched:
            self._write_pending(redis_client.client)

    def pending(self) -> dict | None:
        if self._pending_change is not None:
            return self._pending_change[1]
        return _load(_pending_key(self.data["user_id"]))

    def _write_pending(self, pipe) -> None:
        if self._pending_change is None:
            return
        kind, values = self._pending_change
        key = _pending_key(self.data["user_id"])
        if kind == "keep":
            pipe.set(key, json.dumps(values), ex=RESUME_TTL)
        else:
            pipe.delete(key)
        self._pending_change = None
