"""Conversations: one module per flow, each with small named entry points, found through a registry.

A flow gets a :class:`Context` and answers with a :class:`Reply` (or ``None`` for no reply). It calls services
only, never a vendor API; the engine persists its state and sends the reply (USSD: in the HTTP answer; every other
channel: through the outbox).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from app.i18n import DEFAULT_LANGUAGE, t
from app.messaging.envelopes import Button
from app.messaging.inbox import InboundRow
from app.models import Contact, Conversation, Message


@dataclass(frozen=True)
class Reply:
    """What to answer: text, optional quick replies, and for USSD whether the session ends (``END``).

    ``language`` records the text's language when it is not the contact's (an appointment's texts follow the
    appointment). ``dedupe_key``: the reply is sent only if no message with this key was ever queued (a once-a-day
    help text, say); with one already there, this message gets no reply.
    """

    text: str
    buttons: tuple[Button, ...] = ()
    end: bool = False
    language: str | None = None
    dedupe_key: str | None = None


@dataclass
class Context:
    """Everything a flow may use for one inbound message."""

    contact: Contact
    conversation: Conversation
    message: Message | InboundRow  # a new USSD hop: its InboundRow (the webhook writes what a flow sets on it)
    text: str
    default_language: str = DEFAULT_LANGUAGE
    extra: dict = field(default_factory=dict)
    finished: bool = False

    @property
    def channel(self) -> str:
        return self.message.channel

    @property
    def language(self) -> str:
        """The contact's language, else the default (the clinic's, once a later flow knows it)."""
        return self.contact.language or self.default_language

    @property
    def state(self) -> dict:
        """The flow's saved state (a JSON object)."""
        return self.conversation.state

    def save(self, **values) -> None:
        """Merge ``values`` into the flow's state (assigning a new dict so the change is persisted)."""
        self.conversation.state = {**self.conversation.state, **values}

    def finish(self) -> None:
        """End the flow after this reply: the next message starts afresh."""
        self.finished = True

    def t(self, key: str, **params) -> str:
        """A catalog text in the contact's language."""
        return t(key, self.language, **params)


class Flow:
    """A conversation. Subclasses set ``name`` and ``channels`` and implement the entry points they need."""

    name: ClassVar[str] = ""
    channels: ClassVar[tuple[str, ...]] = ()
    # A flow that starts on almost anything (every message of a patient with an upcoming visit) is tried only
    # after the flows that start on something specific, whatever order their modules registered in.
    catch_all: ClassVar[bool] = False

    def can_start(self, ctx: Context) -> bool:
        """Whether this message starts this flow (checked when no flow is active)."""
        return False

    def start(self, ctx: Context) -> Reply | None:
        """First message of the flow."""
        raise NotImplementedError

    def resume(self, ctx: Context) -> Reply | None:
        """A later message, while the flow is active."""
        return self.start(ctx)

    def close(self, ctx: Context) -> None:
        """The conversation ended (USSD session closed, or the flow finished)."""

    def secret_input(self, address: str, session_id: str | None) -> bool:
        """Whether the next input from ``address`` in this session may be a secret (a PIN), so that it is masked
        before it is stored. Asked before the message is stored, so it must not rely on the message row; when in
        doubt, say True. Asked in the hop's transaction, with the phone's contact locked: what it reads may be kept
        for the hop in :func:`app.transactions.transaction_memo`."""
        return False


FLOWS: dict[str, Flow] = {}


def register(cls: type[Flow]) -> type[Flow]:
    """Class decorator: make a flow known to the engine, in registration order."""
    FLOWS[cls.name] = cls()
    return cls


# The application's flows register themselves on import (after the names above exist: they import them).
from bots.flows import appointments, recovery, skin, ussd  # noqa: E402, F401
