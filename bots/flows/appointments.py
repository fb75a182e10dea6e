"""Patient replies about appointments by SMS or WhatsApp: confirm, change the date, or cannot come.

A reply is about the sender's nearest upcoming active appointment (no such appointment: this flow does not start
and the engine's default reply answers). ``1``/``YES``/``EE`` confirms, ``3``/``NO``/``NNYAA`` says the patient
cannot come (the appointment is cancelled by the patient), ``2``/``CHANGE``/``FETOLA`` offers up to three free
slots as ``A``/``B``/``C``; the flow then stays active with the offer in its state until a letter moves the
appointment (and confirms it), ``1`` or ``3`` answers instead, or the offer expires. Anything else gets the help
text at most once a day per contact, then silence. Every text is in the appointment's language
(:func:`app.services.appointments.text_for`); the inbound message and the reply are linked to the appointment and
its clinic, so the clinic sees them in its message log and retention erases them with it.

The helpers for the shared steps (:func:`link`, :func:`still_active`) are used by the USSD patient menu too.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta

from sqlalchemy import func, select

from app.extensions import db
from app.i18n import t
from app.models import Appointment, Message, utcnow
from app.models.appointment import ACTIVE_STATUSES
from app.models.channel import SMS, WHATSAPP
from app.models.message_log import DIRECTION_OUT
from app.services import appointments
from bots.flows import Context, Flow, Reply, register

CONFIRM, CHANGE, CANNOT_COME = "confirm", "change", "cannot_come"
# Digits first (what every text asks for); the words are what people type anyway. YES is an answer here, never an
# opt-in (INTERFACES.md); CANCEL and STOP are carrier opt-out words and never mean "cannot come".
ANSWERS = {
    "1": CONFIRM, "YES": CONFIRM, "EE": CONFIRM,
    "2": CHANGE, "CHANGE": CHANGE, "FETOLA": CHANGE,
    "3": CANNOT_COME, "NO": CANNOT_COME, "NNYAA": CANNOT_COME,
}  # fmt: skip
LETTERS = "ABC"  # the offered slots, in order
OFFER_TTL = timedelta(hours=24)  # an offer older than this is forgotten: its slots may be long gone
HELP_EVERY = timedelta(hours=24)  # at most one help text per contact in this time
HELP_KEY = "appointment_help"  # dedupe key prefix of the help texts: f"{HELP_KEY}:{contact id}:{UTC date}"


def normalise(text: str) -> str:
    """An answer as a bare token: no case, spaces or punctuation (``' ee '`` → ``EE``, ``'1.'``/``'1)'`` → ``1``)."""
    return re.sub(r"[\W_]+", "", text, flags=re.UNICODE).upper()


def parse(text: str, *, letters: int = 0) -> str | None:
    """What a reply means: ``confirm``, ``change``, ``cannot_come``, a slot letter (only the first ``letters`` of
    ``A``/``B``/``C`` count, i.e. those on the open offer), or ``None`` when it is not an answer."""
    word = normalise(text)
    if word in ANSWERS:
        return ANSWERS[word]
    if len(word) == 1 and word in LETTERS[:letters]:
        return word
    return None


def link(ctx: Context, appointment: Appointment) -> None:
    """Tie the inbound message (and so the engine's reply or USSD screen) to the appointment and its clinic."""
    ctx.message.appointment_id = appointment.id
    ctx.message.clinic_id = appointment.clinic_id


def upcoming(ctx: Context) -> Appointment | None:
    """The sender's nearest upcoming active appointment (looked up once per message)."""
    if "appointment" not in ctx.extra:
        ctx.extra["appointment"] = appointments.next_for_phone(ctx.contact.address)
    return ctx.extra["appointment"]


def still_active(appointment_id: str | None) -> Appointment | None:
    """The appointment with this id if it is still active and ahead, else ``None``."""
    if not appointment_id:
        return None
    appointment = db.session.get(Appointment, uuid.UUID(appointment_id))
    if appointment is None or appointment.status not in ACTIVE_STATUSES:
        return None
    return appointment if appointment.appointment_datetime > utcnow() else None


def letters_text(count: int, language: str) -> str:
    """``A``, ``A or B``, ``A, B or C`` (with the catalog's word for "or")."""
    letters = list(LETTERS[:count])
    if count == 1:
        return letters[0]
    return f"{', '.join(letters[:-1])} {t('word_or', language)} {letters[-1]}"


@register
class AppointmentReplies(Flow):
    """A patient's SMS or WhatsApp answer to a reminder (or any message while they have an upcoming visit)."""

    name = "appointment-replies"
    channels = (SMS, WHATSAPP)
    catch_all = True

    def can_start(self, ctx: Context) -> bool:
        """Any message from a number with an upcoming active appointment."""
        return upcoming(ctx) is not None

    def start(self, ctx: Context) -> Reply | None:
        """Answer about the nearest upcoming appointment (no offer is open)."""
        return self._answer(ctx, upcoming(ctx), offer=None)

    def resume(self, ctx: Context) -> Reply | None:
        """A message while an offer of new times is open: a letter picks one; 1, 2 and 3 work as ever.

        An expired offer, or one whose appointment has since been cancelled or moved by the clinic, is forgotten
        and the message is read afresh.
        """
        offer = ctx.state.get("offer") or {}
        appointment = still_active(offer.get("appointment_id"))
        if appointment is None or utcnow() - datetime.fromisoformat(offer["at"]) > OFFER_TTL:
            ctx.conversation.state = {}
            if upcoming(ctx) is None:
                ctx.finish()
                return Reply(ctx.t("default_reply"))
            return self.start(ctx)
        return self._answer(ctx, appointment, offer=offer)

    # --- steps -----------------------------------------------------------------------------------------------------

    def _answer(self, ctx: Context, appointment: Appointment, offer: dict | None) -> Reply | None:
        link(ctx, appointment)
        slots = [datetime.fromisoformat(at) for at in offer["slots"]] if offer else []
        answer = parse(ctx.text, letters=len(slots))
        if answer == CONFIRM:
            appointments.confirm(None, appointment)
            return self._done(ctx, appointment, "appointment_confirmed")
        if answer == CANNOT_COME:
            appointments.cancel(None, appointment, by_patient=True)
            return self._done(ctx, appointment, "appointment_cancelled_by_patient")
        if answer == CHANGE:
            return self._offer(ctx, appointment, appointments.request_change(None, appointment))
        if answer is not None:  # a letter of the open offer
            chosen = slots[LETTERS.index(answer)]
            if not appointments.slot_is_free(appointment, chosen):  # taken while the patient was choosing
                return self._offer(ctx, appointment, appointments.free_slots(appointment.clinic,
                                                                             exclude=appointment.id))  # fmt: skip
            appointments.reschedule(None, appointment, chosen, by_patient=True)
            return self._done(ctx, appointment, "appointment_rescheduled")
        if offer is None:
            ctx.finish()
        return self._help(ctx, appointment)

    def _done(self, ctx: Context, appointment: Appointment, key: str) -> Reply:
        ctx.finish()
        return _reply(appointment, key)

    def _offer(self, ctx: Context, appointment: Appointment, slots: list[datetime]) -> Reply:
        if not slots:
            ctx.finish()
            return _reply(appointment, "appointment_no_slots")
        language = appointments.language_of(appointment)
        listed = ", ".join(
            f"{letter} {appointments.format_when(appointment.clinic, at, language)}"
            for letter, at in zip(LETTERS, slots, strict=False)
        )
        ctx.conversation.state = {}
        ctx.save(offer={"appointment_id": str(appointment.id), "slots": [at.isoformat() for at in slots[:3]],
                        "at": utcnow().isoformat()})  # fmt: skip
        return _reply(appointment, "appointment_offer", slots=listed, letters=letters_text(len(slots[:3]), language))

    def _help(self, ctx: Context, appointment: Appointment) -> Reply | None:
        # The help text's own message rows are the memory: one query under the contact's lock (which serialises
        # this contact's messages across workers and channels), and a unique key per contact and day on top.
        prefix = f"{HELP_KEY}:{ctx.contact.id}:"
        last = db.session.scalar(
            select(func.max(Message.created_at)).where(
                Message.address == ctx.contact.address,
                Message.direction == DIRECTION_OUT,
                Message.dedupe_key.startswith(prefix, autoescape=True),
            )
        )
        now = utcnow()
        if last is not None and now - last < HELP_EVERY:
            return None
        reply = _reply(appointment, "appointment_help")
        return Reply(reply.text, language=reply.language, dedupe_key=f"{prefix}{now.date().isoformat()}")


def _reply(appointment: Appointment, key: str, **params) -> Reply:
    return Reply(appointments.text_for(appointment, key, **params), language=appointments.language_of(appointment))
