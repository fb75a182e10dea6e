"""The only HTTP entry for providers: verify → parse → store → answer; acting happens after commit.

Every inbound message is stored (once per provider id) before anything acts on it. A provider's retry of the
same message answers 2xx and does nothing new. A request that fails its authenticity check is refused (403, or
404 for a wrong Africa's Talking path token) before anything is parsed or stored. Delivery reports are applied
here; messages are handed to the engine by a job (SMS, chat) or answered in the same response (USSD).
"""

from __future__ import annotations

import logging

from flask import Blueprint, Response, current_app, request
from sqlalchemy import bindparam, insert, inspect, select
from sqlalchemy import update as sql_update

from app.errors import error_response
from app.extensions import db, limiter
from app.i18n import t
from app.jobs import enqueue_handle
from app.messaging import inbox
from app.messaging.envelopes import SESSION_CLOSE
from app.models import Contact, Message, new_id, utcnow
from app.models.channel import USSD
from app.models.message_log import DIRECTION_OUT, KIND_REPLY, STATUS_FAILED, STATUS_RECEIVED, STATUS_SENT
from app.transactions import after_commit
from bots import engine
from bots.channels import Channel, MalformedPayload, WebhookRejected, adapter

log = logging.getLogger(__name__)

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")
limiter.exempt(bp)  # providers retry on 429; their volume is bounded by what people send


def _channel(name: str) -> Channel:
    return adapter(name, current_app.config)


def _verified(channel: Channel, kind: str) -> Response | None:
    try:
        channel.verify(request, kind)
    except WebhookRejected as exc:
        log.warning("%s %s webhook refused: %s", channel.name, kind, exc)
        return error_response(exc.status, "forbidden" if exc.status == 403 else "not_found", str(exc))
    return None


def _receive(name: str, kind: str) -> Response:
    channel = _channel(name)
    refused = _verified(channel, kind)
    if refused is not None:
        return refused
    try:
        parsed = channel.parse(request, kind)
    except MalformedPayload as exc:
        return error_response(400, "malformed_payload", str(exc), exc.details)
    for inbound in parsed.messages:
        message_id, created = inbox.store_inbound_id(inbound)
        if created:
            after_commit(db.session(), lambda message_id=message_id: enqueue_handle(message_id))
    for update in parsed.statuses:
        inbox.apply_status(update)
    db.session.commit()
    return channel.acknowledge(kind)


@bp.post("/twilio/sms")
def twilio_sms():
    """Inbound SMS and WhatsApp messages from Twilio."""
    return _receive("twilio", "inbound")


@bp.post("/twilio/status")
def twilio_status():
    """Twilio status callbacks."""
    return _receive("twilio", "status")


@bp.post("/africastalking/<token>/sms")
def africastalking_sms(token: str):
    """Inbound SMS from Africa's Talking (the path token is the only proof of origin)."""
    return _receive("africastalking", "inbound")


@bp.post("/africastalking/<token>/delivery")
def africastalking_delivery(token: str):
    """Africa's Talking delivery reports."""
    return _receive("africastalking", "status")


@bp.post("/telegram")
def telegram():
    """Telegram updates."""
    return _receive("telegram", "inbound")


@bp.route("/whatsapp", methods=["GET", "POST"])
def whatsapp():
    """WhatsApp Cloud API: the GET subscription handshake, and POSTed messages and statuses."""
    if request.method == "GET":
        channel = _channel("whatsapp")
        try:
            return channel.verify_subscription(request)
        except WebhookRejected as exc:
            return error_response(exc.status, "forbidden", str(exc))
    return _receive("whatsapp", "inbound")


@bp.post("/africastalking/<token>/ussd")
def africastalking_ussd(token: str):
    """A USSD hop: answered in this response with ``CON`` (menu, wait for input) or ``END`` (last screen).

    A replayed hop (same session and input) gets the same screen again. Errors never become 4xx/5xx here
    (Africa's Talking would drop the session with a generic error): the person sees a short apology instead.
    """
    channel = _channel("africastalking")
    refused = _verified(channel, "ussd")
    if refused is not None:
        return refused
    try:
        parsed = channel.parse(request, "ussd")
    except MalformedPayload as exc:
        return error_response(400, "malformed_payload", str(exc), exc.details)
    if not parsed.messages:
        return channel.acknowledge("ussd")
    # A hop that may carry a staff PIN is stored masked: nothing after this point can leave it in clear.
    inbound = engine.storable_ussd(parsed.messages[0])
    # One transaction stores the hop, answers it and stores its screen: a flow's effect never commits without the
    # hop, and a hop that fails is stored (as failed) after its effect is rolled back; the gateway then shows an
    # apology. A replay that arrives meanwhile waits on the hop's row (PostgreSQL: its unique key, then the row
    # lock; SQLite: BEGIN IMMEDIATE), then gets the same screen: the flow runs once. A hop with an input has already
    # locked its phone's contact (storable_ussd, above), so a replay of it waits there. A new hop's row is the
    # transaction's own: its INSERT returns its id, no further lock.
    message, created = inbox.store_inbound_locked(inbound)
    message_id = message.id
    if message.address != inbound.sender:  # a session id is bound to its phone: another phone's "replay" gets nothing
        db.session.commit()
        log.warning("USSD hop %s replayed from another phone; refused", message_id)
        return channel.ussd_response(t("ussd_error", None), end=True)
    if inbound.session_event == SESSION_CLOSE:  # the end-of-session notification: no screen to show
        if created:
            engine.close_ussd(db.session.get(Message, message_id), session_id=inbound.session_id)
        db.session.commit()
        return channel.acknowledge("ussd")
    # The screen is stored in the same commit that marks the hop handled: a hop still "received" has none yet,
    # so a fresh hop (the hot path) skips the look-up; a handled or failed one (a replay) looks.
    previous = None
    if message.status != STATUS_RECEIVED:
        previous = db.session.scalar(select(Message.text).where(Message.reply_to_id == message_id))
    if previous is not None:
        db.session.commit()
        prefix, _, text = previous.partition(" ")
        return channel.ussd_response(text, end=prefix == "END")
    try:
        reply = engine.handle_ussd(message, session_id=inbound.session_id, history=inbound.extra.get("ussd_history"),
                                   text=inbound.typed)  # fmt: skip
        _finish(message, reply.text, reply.end)
        db.session.commit()
    except Exception:
        db.session.rollback()
        log.exception("USSD hop %s failed", message_id)
        message_id, _ = inbox.store_inbound_id(inbound)  # rolled back with its effect: kept, as failed
        message = db.session.get(Message, message_id, populate_existing=True)
        message.status = STATUS_FAILED
        db.session.commit()
        return channel.ussd_response(t("ussd_error", _language_of(message)), end=True)
    return channel.ussd_response(reply.text, end=reply.end)


# The hop's own rows, written with statements built once and bound at execution (the hot path: the ORM's flush of
# one changed row cost more than the statement): the hop marked handled with what the engine and the flow set on it
# (its contact; the appointment and clinic a patient's answer is about), and its screen. PostgreSQL runs both as one
# statement (the UPDATE as a data-modifying WITH; the rows differ); SQLite, which has no such WITH, as two. The
# screen's INSERT is given every column that has a default: SQLAlchemy leaves the defaults out of an INSERT under a
# WITH.
_HOP_FIELDS = ("status", "contact_id", "clinic_id", "appointment_id")
_SCREEN_FIELDS = ("id", "direction", "channel", "provider", "address", "text", "status", "kind", "reply_to_id",
                  "contact_id", "clinic_id", "appointment_id", "attempts", "media", "buttons", "created_at",
                  "updated_at")  # fmt: skip
_MESSAGES = Message.__table__
_UPDATE_HOP = (
    sql_update(_MESSAGES)
    .where(_MESSAGES.c.id == bindparam("hop_id"))
    .values({name: bindparam(f"new_{name}") for name in (*_HOP_FIELDS, "updated_at")})
)
# Bound under names no column has: in one statement, a parameter named as a column would also be SET by the UPDATE.
_INSERT_SCREEN = insert(_MESSAGES).values({name: bindparam(f"screen_{name}") for name in _SCREEN_FIELDS})
_UPDATE_HOP_INSERT_SCREEN = _INSERT_SCREEN.add_cte(_UPDATE_HOP.cte("hop"))


def _finish(hop: Message | inbox.InboundRow, text: str, end: bool) -> None:
    """Mark the hop handled and store its screen, as shown (with CON/END): the message log keeps it, and a replayed
    hop gets the same answer from it."""
    now = utcnow()
    changes = {**{name: getattr(hop, name) for name in _HOP_FIELDS}, "updated_at": now}
    handled = {"hop_id": hop.id, **{f"new_{name}": value for name, value in changes.items()}}
    screen = {f"screen_{name}": value for name, value in {
        "id": new_id(), "direction": DIRECTION_OUT, "channel": USSD, "provider": hop.provider,
        "address": hop.address, "text": f"{'END' if end else 'CON'} {text}", "status": STATUS_SENT, "kind": KIND_REPLY,
        "reply_to_id": hop.id, "contact_id": hop.contact_id, "clinic_id": hop.clinic_id,
        "appointment_id": hop.appointment_id, "attempts": 0, "media": [], "buttons": [], "created_at": now,
        "updated_at": now,
    }.items()}  # fmt: skip
    state = inspect(hop) if isinstance(hop, Message) else None  # a new hop is no ORM object (InboundRow)
    with db.session.no_autoflush:  # the session's other changes (a flow's) go at commit, as always
        if db.session.get_bind().dialect.name == "postgresql":
            db.session.execute(_UPDATE_HOP_INSERT_SCREEN, {**handled, **screen})
        else:
            db.session.execute(_UPDATE_HOP, handled)
            db.session.execute(_INSERT_SCREEN, screen)
    if state is not None and state.unmodified.issuperset(set(state.mapper.column_attrs.keys()) - changes.keys()):
        db.session.expunge(hop)  # all written: nothing left for the commit's flush to look at or repeat


def _language_of(message: Message) -> str | None:
    contact = db.session.get(Contact, message.contact_id) if message.contact_id else None
    return contact.language if contact else None
