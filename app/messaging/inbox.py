"""Contacts, inbound storage, delivery status and consent: the database side of every message.

The webhook layer stores what channel adapters parsed through :func:`store_inbound` and :func:`apply_status`
before anything acts on it; the engine and the outbox use the contact functions. All functions work in the
caller's transaction and never commit.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import Executable, bindparam, select
from sqlalchemy.dialects import postgresql, sqlite

from app.extensions import db
from app.messaging.envelopes import InboundMessage, StatusUpdate
from app.models import Contact, Message, MessageEvent, utcnow
from app.models.channel import WHATSAPP
from app.models.message_log import (
    DIRECTION_IN,
    DIRECTION_OUT,
    STATUS_FAILED,
    STATUS_RANK,
    STATUS_RECEIVED,
)

# Skin consultations: inbound facts kept on the message row (never the raw payload).
KEPT_EXTRA = ("contact", "from_id", "callback_data")


def _insert(model):
    """A Core INSERT into ``model``'s table (no ORM bulk machinery) that can skip rows violating a unique
    constraint (ON CONFLICT DO NOTHING), on both backends."""
    insert = postgresql.insert if db.session.get_bind().dialect.name == "postgresql" else sqlite.insert
    return insert(model.__table__)


def _contact_id(address: str, name: str | None = None) -> uuid.UUID:
    """The id of the contact for ``address``, created on first contact; safe against concurrent first contacts."""
    contact_id = db.session.scalar(select(Contact.id).where(Contact.address == address))
    if contact_id is None:
        contact_id = db.session.scalar(
            _insert(Contact)
            .values(address=address, name=name)
            .on_conflict_do_nothing(index_elements=["address"])
            .returning(Contact.__table__.c.id)
        )
    # None: a concurrent request created it between our select and insert.
    return contact_id or db.session.scalar(select(Contact.id).where(Contact.address == address))


def contact_for(address: str, *, name: str | None = None) -> Contact:
    """The contact for an E.164 number or chat id, created on first contact."""
    contact = db.session.get(Contact, _contact_id(address, name))
    if name and not contact.name:
        contact.name = name
    return contact


def _inbound_values(inbound: InboundMessage, key: str) -> dict:
    return {
        "direction": DIRECTION_IN,
        "channel": inbound.channel,
        "provider": inbound.provider,
        "provider_id": inbound.provider_id,
        "address": inbound.sender,
        "text": inbound.text,
        "media": [
            {"content_type": m.content_type, "url": m.url, "provider_media_id": m.provider_media_id}
            for m in inbound.media
        ],
        "status": STATUS_RECEIVED,
        "dedupe_key": key,
        "our_address": (inbound.recipient or "")[:64] or None,
        "received_at": inbound.received_at or utcnow(),
        # Skin consultations: the few facts chat linking and buttons need later.
        "extra": {k: inbound.extra[k] for k in KEPT_EXTRA if inbound.extra.get(k) is not None} or None,
    }


def _dedupe_key(inbound: InboundMessage) -> str:
    return f"in:{inbound.provider}:{inbound.provider_id}"


def store_inbound_id(inbound: InboundMessage) -> tuple[uuid.UUID, bool]:
    """Store an inbound message once, whatever the provider retries: the webhooks' hot path, one statement.

    Concurrent deliveries of the same message are settled by the unique ``dedupe_key``: the database inserts one
    and skips the others (PostgreSQL waits for the first to commit), so exactly one row exists. The contact is
    linked later, when the engine handles the message (:func:`link_contact`). The text stored is ``inbound.text``,
    which the caller has masked where it may be a secret (a staff PIN: ``InboundMessage.masked``); the real input
    (``private_text``) and the USSD history are never stored.

    Returns:
        The message id and whether this call created it (False: a retry or a concurrent duplicate).
    """
    key = _dedupe_key(inbound)
    message_id = db.session.scalar(
        _insert(Message)
        .values(**_inbound_values(inbound, key))
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
        .returning(Message.__table__.c.id)
    )
    if message_id is None:
        return db.session.scalar(select(Message.id).where(Message.dedupe_key == key)), False
    return message_id, True


@dataclass
class InboundRow:
    """A just-stored inbound message (a USSD hop) as its handling reads and changes it, without an ORM object: the
    caller writes the changes (the webhook, with the hop's screen). Building the ORM object of the row cost a hop
    more than storing it."""

    id: uuid.UUID
    channel: str
    provider: str | None
    address: str
    text: str | None
    status: str
    contact_id: uuid.UUID | None = None
    clinic_id: uuid.UUID | None = None
    appointment_id: uuid.UUID | None = None


_INBOUND_COLUMNS = ("direction", "channel", "provider", "provider_id", "address", "text", "media", "status",
                    "dedupe_key", "our_address", "received_at", "extra")  # fmt: skip
_STORE_LOCKED: dict[str, Executable] = {}


def _store_locked(dialect: str) -> Executable:
    """INSERT ... ON CONFLICT DO NOTHING RETURNING the new row's id: built once per dialect, values bound at
    execution (a USSD hop's hot path: building the statement cost more than running it)."""
    statement = _STORE_LOCKED.get(dialect)
    if statement is None:
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        table = Message.__table__
        statement = _STORE_LOCKED[dialect] = (
            insert(table)
            .values({name: bindparam(name) for name in _INBOUND_COLUMNS})
            .on_conflict_do_nothing(index_elements=["dedupe_key"])
            .returning(table.c.id)
        )
    return statement


def store_inbound_locked(inbound: InboundMessage) -> tuple[Message | InboundRow, bool]:
    """:func:`store_inbound_id` for a caller that acts on the message in the same transaction (a USSD hop): the row,
    locked, in one statement when it is new.

    A row this transaction has just inserted is invisible to every other one and holds its unique key until commit
    (a concurrent delivery of the same message waits on it), so it needs no ``SELECT ... FOR UPDATE``: it comes back
    as an :class:`InboundRow` of what was inserted. An existing row (a retry) is read and locked (``FOR UPDATE``;
    SQLite: ``BEGIN IMMEDIATE`` already serialises), waiting for a transaction that still handles it, as its
    :class:`Message`.

    Returns:
        The row and whether this call created it.
    """
    key = _dedupe_key(inbound)
    values = _inbound_values(inbound, key)
    message_id = db.session.execute(_store_locked(db.session.get_bind().dialect.name), values).scalar()
    if message_id is not None:
        return InboundRow(id=message_id, channel=values["channel"], provider=values["provider"],
                          address=values["address"], text=values["text"], status=values["status"]), True  # fmt: skip
    existing = select(Message).where(Message.dedupe_key == key).with_for_update()
    return db.session.scalar(existing.execution_options(populate_existing=True)), False


def latest_inbound(address: str, channel: str, *, provider: str | None = None, our_address: str | None = None):
    """Where the person last wrote to us on ``channel``: the latest inbound row's ``provider``, ``our_address`` and
    ``received_at`` (only through ``provider``, and to ``our_address``, when given), or None when they never did."""
    query = select(Message.provider, Message.our_address, Message.received_at).where(
        Message.address == address,
        Message.direction == DIRECTION_IN,
        Message.channel == channel,
        Message.received_at.is_not(None),
    )
    if provider is not None:
        query = query.where(Message.provider == provider)
    if our_address is not None:
        query = query.where(Message.our_address == our_address)
    return db.session.execute(query.order_by(Message.received_at.desc(), Message.created_at.desc()).limit(1)).first()


def link_contact(message: Message) -> Contact:
    """The contact of an inbound message, created on first contact and linked to the message.

    A WhatsApp message also opens (or extends) the contact's 24-hour window for free-text replies.
    """
    contact = db.session.get(Contact, message.contact_id) if message.contact_id else contact_for(message.address)
    message.contact_id = contact.id
    if message.channel == WHATSAPP:
        at = message.received_at or utcnow()
        if contact.last_whatsapp_inbound_at is None or contact.last_whatsapp_inbound_at < at:
            contact.last_whatsapp_inbound_at = at
    return contact


def store_inbound(inbound: InboundMessage) -> tuple[Message, bool]:
    """:func:`store_inbound_id`, returning the message row itself, linked to its contact when new."""
    message_id, created = store_inbound_id(inbound)
    message = db.session.get(Message, message_id)
    if created:
        link_contact(message)
    return message, created


def advance_status(message: Message, status: str) -> bool:
    """Move an outbound message's status forward; never back, never out of ``failed``.

    Returns:
        True when the status changed.
    """
    current = message.status
    if current in (status, STATUS_FAILED):
        return False
    if status == STATUS_FAILED:
        # A failure report after delivery is a late, out-of-order callback: delivery wins.
        if STATUS_RANK.get(current, 0) >= STATUS_RANK["delivered"]:
            return False
    elif STATUS_RANK.get(status, -1) <= STATUS_RANK.get(current, -1):
        return False
    message.status = status
    return True


def apply_status(update: StatusUpdate) -> Message | None:
    """Record a delivery report and advance its message. Unknown messages and statuses are recorded, not errors.

    Returns:
        The outbound message the report is about, if we know it.
    """
    message = db.session.scalar(
        select(Message).where(
            Message.direction == DIRECTION_OUT,
            Message.provider == update.provider,
            Message.provider_id == update.provider_id,
        )
    )
    error_code = (update.error_code or "")[:32] or None  # free text from some providers
    db.session.add(
        MessageEvent(
            message_id=message.id if message else None,
            kind="status",
            provider=update.provider,
            provider_id=update.provider_id,
            raw_status=update.raw_status[:64],
            status=update.status,
            error_code=error_code,
            at=update.at or utcnow(),
        )
    )
    if message is None:
        return None
    if update.status and advance_status(message, update.status) and update.status == STATUS_FAILED:
        message.error_code = error_code
    if update.opted_out:
        opt_out(contact_of(message))
    return message


def contact_of(message: Message) -> Contact:
    """The message's contact, created for its address when the message had none (e.g. an API send)."""
    contact = db.session.get(Contact, message.contact_id) if message.contact_id else None
    return contact or contact_for(message.address)


def link_early_reports(message: Message) -> None:
    """Apply delivery reports that arrived before the send recorded its provider id (fast providers do that)."""
    early = db.session.scalars(
        select(MessageEvent)
        .where(
            MessageEvent.message_id.is_(None),
            MessageEvent.provider == message.provider,
            MessageEvent.provider_id == message.provider_id,
        )
        .order_by(MessageEvent.at, MessageEvent.id)
    ).all()
    for event in early:
        event.message_id = message.id
        if event.status:
            advance_status(message, event.status)


def opt_out(contact: Contact) -> bool:
    """Mark the contact opted out. Returns False when it already was."""
    if contact.opted_out_at is not None:
        return False
    contact.opted_out_at = utcnow()
    return True


def opt_in(contact: Contact) -> bool:
    """Clear an opt-out. Returns False when the contact was not opted out."""
    if contact.opted_out_at is None:
        return False
    contact.opted_out_at = None
    return True


def record_event(message_id: uuid.UUID, kind: str, *, provider: str | None = None, detail: str | None = None,
                 error_code: str | None = None, status: str | None = None) -> None:  # fmt: skip
    """Keep a send attempt (or another event) on a message's history."""
    db.session.add(MessageEvent(message_id=message_id, kind=kind, provider=provider, detail=(detail or "")[:500] or None,
                                error_code=error_code, status=status))  # fmt: skip
