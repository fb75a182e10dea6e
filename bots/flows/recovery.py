"""A patient's reply to the recovery SMS after a missed visit: ``2`` offers free times, a letter rebooks.

Starts only for a number with no upcoming visit (that one's reply flow, :mod:`bots.flows.appointments`, comes first)
and a missed visit whose recovery SMS was sent in the last 14 days and that is not rebooked yet
(:func:`app.services.recovery.recoverable`). ``2`` (or ``CHANGE``/``FETOLA``) offers up to three free slots as
``A``/``B``/``C``, like the reminder's reply flow; the letter books a new visit linked to the missed one, confirmed.
Anything else gets the recovery text again, at most once a day (sharing the reminder flow's once-a-day help key).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import func, select

from app.extensions import db
from app.models import Appointment, Message, utcnow
from app.models.appointment import STATUS_MISSED
from app.models.channel import SMS, WHATSAPP
from app.models.message_log import DIRECTION_OUT
from app.services import appointments, recovery
from bots.flows import Context, Flow, Reply, register
from bots.flows.appointments import (
    CHANGE,
    HELP_EVERY,
    HELP_KEY,
    LETTERS,
    OFFER_TTL,
    letters_text,
    link,
    parse,
    upcoming,
)


def _missed(ctx: Context) -> Appointment | None:
    if "missed" not in ctx.extra:
        ctx.extra["missed"] = recovery.recoverable(ctx.contact.address)
    return ctx.extra["missed"]


@register
class MissedVisitReplies(Flow):
    """The answer to "we missed you ... reply 2 to choose a new time"."""

    name = "missed-visit-replies"
    channels = (SMS, WHATSAPP)
    catch_all = True

    def can_start(self, ctx: Context) -> bool:
        """A number with no upcoming visit and a missed one still to recover."""
        return upcoming(ctx) is None and _missed(ctx) is not None

    def start(self, ctx: Context) -> Reply | None:
        """No offer open yet."""
        return self._answer(ctx, _missed(ctx), offer=None)

    def resume(self, ctx: Context) -> Reply | None:
        """An offer is open: a letter rebooks; an expired offer, or a visit rebooked meanwhile, starts afresh."""
        offer = ctx.state.get("offer") or {}
        missed = db.session.get(Appointment, _uuid(offer.get("missed_id")))
        if (missed is None or missed.status != STATUS_MISSED or "at" not in offer
                or utcnow() - datetime.fromisoformat(offer["at"]) > OFFER_TTL
                or recovery.recoverable(ctx.contact.address) is None):  # fmt: skip
            ctx.conversation.state = {}
            if not self.can_start(ctx):
                ctx.finish()
                return Reply(ctx.t("default_reply"))
            return self.start(ctx)
        return self._answer(ctx, missed, offer=offer)

    def _answer(self, ctx: Context, missed: Appointment, offer: dict | None) -> Reply | None:
        link(ctx, missed)
        slots = [datetime.fromisoformat(at) for at in offer["slots"]] if offer else []
        answer = parse(ctx.text, letters=len(slots))
        if answer == CHANGE:
            return self._offer(ctx, missed, appointments.free_slots(missed.clinic))
        if answer is not None and answer in LETTERS:
            chosen = slots[LETTERS.index(answer)]
            if not appointments.slot_is_free(missed, chosen):  # taken while the patient was choosing
                return self._offer(ctx, missed, appointments.free_slots(missed.clinic))
            booked = recovery.rebook(None, missed, chosen)
            ctx.finish()
            return _reply(booked, "appointment_rescheduled")
        if offer is None:
            ctx.finish()
        return self._help(ctx, missed)

    def _offer(self, ctx: Context, missed: Appointment, slots: list[datetime]) -> Reply:
        if not slots:
            ctx.finish()
            return _reply(missed, "appointment_no_slots")
        language = appointments.language_of(missed)
        listed = ", ".join(f"{letter} {appointments.format_when(missed.clinic, at, language)}"
                           for letter, at in zip(LETTERS, slots, strict=False))  # fmt: skip
        ctx.conversation.state = {}
        ctx.save(offer={"missed_id": str(missed.id), "slots": [at.isoformat() for at in slots[:3]],
                        "at": utcnow().isoformat()})  # fmt: skip
        return _reply(missed, "appointment_offer", slots=listed, letters=letters_text(len(slots[:3]), language))

    def _help(self, ctx: Context, missed: Appointment) -> Reply | None:
        prefix = f"{HELP_KEY}:{ctx.contact.id}:"
        last = db.session.scalar(select(func.max(Message.created_at)).where(
            Message.address == ctx.contact.address, Message.direction == DIRECTION_OUT,
            Message.dedupe_key.startswith(prefix, autoescape=True)))  # fmt: skip
        now = utcnow()
        if last is not None and now - last < HELP_EVERY:
            return None
        reply = _reply(missed, "appointment_recovery_help")
        return Reply(reply.text, language=reply.language, dedupe_key=f"{prefix}{now.date().isoformat()}")


def _uuid(value: str | None) -> uuid.UUID:
    try:
        return uuid.UUID(value) if value else uuid.UUID(int=0)
    except ValueError:
        return uuid.UUID(int=0)


def _reply(appointment: Appointment, key: str, **params) -> Reply:
    return Reply(appointments.text_for(appointment, key, **params), language=appointments.language_of(appointment))
