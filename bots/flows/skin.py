"""Skin consultations by Telegram and WhatsApp: link the chat to a pharmacist, a photo starts, questions follow.

Linking: ``/start CODE`` or ``/link CODE`` (Telegram), ``LINK CODE`` (WhatsApp) with a code from
``POST /api/v1/auth/chat-link`` (5 wrong codes an hour per chat, then none); without a code, a WhatsApp sender
whose number is a pharmacist's proven phone, or a Telegram shared contact that is the sender's own card with it,
unless a patient with appointments has that number (:func:`app.services.consultations.link_by_phone`). A linked
chat's plain text never outranks a patient's appointment answer on the same number. A linked chat's photo opens a
consultation; the questions the triage rules need follow one at a time with buttons (Telegram inline keyboard,
WhatsApp reply buttons, a numbered list where there are too many). An answer is the button, its number or its
title. More photos may come at any time. After the last answer the analysis job is enqueued with the consultation
id, and the reply comes from the job.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from app.extensions import db
from app.i18n import t
from app.messaging.envelopes import Button
from app.models import Consultation
from app.models.channel import TELEGRAM, WHATSAPP
from app.models.consultation import STATUS_COLLECTING
from app.services import consultations, triage
from bots.flows import Context, Flow, Reply, register
from bots.flows.appointments import upcoming

LINK_COMMAND = re.compile(r"^\s*/?(?:start|link)\s+(\d{6})\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Question:
    """One question: the answer field, its catalog text and its options ``(value, button text key)``."""

    field: str
    options: tuple[tuple[object, str], ...]

    @property
    def text_key(self) -> str:
        return f"skin_q_{self.field}"


def _yes_no(field: str) -> Question:
    return Question(field, ((True, "opt_yes"), (False, "opt_no")))


def _choices(field: str, values) -> Question:
    return Question(field, tuple((value, f"opt_{field}_{value}") for value in values))


CONDITION = Question("condition", tuple((c, f"opt_condition_{c}") for c in triage.CONDITIONS))
AGE = Question("age_group", tuple((group, f"opt_age_{group}") for group in triage.rules().age_groups))
PREGNANT = _yes_no("pregnant")
LATER = (
    _choices("duration", triage.DURATIONS),
    _choices("body_site", triage.BODY_SITES),
    _yes_no("itch"),
    _yes_no("pain"),
    _yes_no("spreading"),
    _yes_no("fever"),
    _choices("blisters", triage.BLISTERS),
    _yes_no("mole_change"),
    _choices("open_sore", triage.OPEN_SORE),
    _yes_no("treatment_failed"),
)
PREGNANCY_AGES = (120, 720)  # asked from 10 to 59 years (the age groups' boundaries)


def questions(consultation: Consultation) -> list[Question]:
    """The questions for this consultation; pregnancy only when the age group makes it possible (10-59)."""
    asked = [CONDITION, AGE]
    span = triage.age_range(consultation.age_group)
    if span is None or PREGNANCY_AGES[0] <= span[0] < PREGNANCY_AGES[1]:  # unknown age: counted, not yet asked
        asked.append(PREGNANT)
    return asked + list(LATER)


def _button_id(question: Question, value) -> str:
    word = {True: "yes", False: "no"}.get(value, value) if isinstance(value, bool) else value
    return f"skin:{question.field}:{word}"


def parse_answer(ctx: Context, question: Question):
    """The option the message chose (button id, number or title in either language), else a sentinel."""
    extra = ctx.message.extra or {}
    candidates = [str(extra.get("callback_data") or ""), ctx.text]
    for candidate in candidates:
        word = candidate.strip()
        if not word:
            continue
        for number, (value, key) in enumerate(question.options, start=1):
            titles = {t(key, "en").casefold(), t(key, "tn").casefold()}
            if word == _button_id(question, value) or word.rstrip(".)") == str(number) or word.casefold() in titles:
                return value
    return _INVALID


_INVALID = object()


def _ask(ctx: Context, consultation: Consultation, question: Question, prefix: str = "") -> Reply:
    asked = questions(consultation)
    text = ctx.t("skin_question", number=asked.index(question) + 1, total=len(asked),
                 question=ctx.t(question.text_key))  # fmt: skip
    buttons = tuple(Button(id=_button_id(question, value), title=ctx.t(key)) for value, key in question.options)
    ctx.save(consultation_id=str(consultation.id), asking=question.field)
    return Reply(f"{prefix}\n\n{text}" if prefix else text, buttons=buttons)


def _next_question(consultation: Consultation, after: str | None) -> Question | None:
    asked = questions(consultation)
    fields = [q.field for q in asked]
    start = fields.index(after) + 1 if after in fields else 0
    return asked[start] if start < len(asked) else None


@register
class SkinFlow(Flow):
    """Photo intake and the triage questions for linked pharmacists."""

    name = "skin"
    channels = (TELEGRAM, WHATSAPP)

    def can_start(self, ctx: Context) -> bool:
        if ctx.message.media or LINK_COMMAND.match(ctx.text) or (ctx.message.extra or {}).get("contact"):
            return True
        if re.match(r"^\s*link\b", ctx.text, re.IGNORECASE):
            return True
        # A linked chat's text only gets "send a photo": on a number shared with a patient who has a visit coming,
        # the answer to the reminder ("1") goes to the appointment instead.
        return consultations.pharmacist_of(ctx.contact) is not None and upcoming(ctx) is None

    def start(self, ctx: Context) -> Reply | None:
        ctx.finish()  # unless a consultation opens below
        match = LINK_COMMAND.match(ctx.text)
        if match:
            try:
                user = consultations.link_with_code(ctx.contact, match.group(1))
            except consultations.ChatLinkLocked:
                return Reply(ctx.t("skin_link_locked"))
            if user is None:
                return Reply(ctx.t("skin_link_bad_code"))
            return Reply(ctx.t("skin_link_done", name=_who(user)))
        user = self._linked(ctx)
        if user is None:
            if re.match(r"^\s*/?link\b", ctx.text, re.IGNORECASE):
                return Reply(ctx.t("skin_link_bad_code"))
            return Reply(ctx.t("skin_link_needed", command="/link" if ctx.channel == TELEGRAM else "LINK"))
        if not ctx.message.media:
            if (ctx.message.extra or {}).get("contact"):
                return Reply(ctx.t("skin_link_done", name=_who(user)))
            return Reply(ctx.t("skin_send_photo"))
        consultations.cancel_collecting(ctx.contact)
        consultation = consultations.open_consultation(user, ctx.contact, ctx.channel)
        count = consultations.add_chat_photos(consultation, ctx.message)
        ctx.finished = False
        return _ask(ctx, consultation, CONDITION, prefix=ctx.t("skin_photo_added", count=count))

    def _linked(self, ctx: Context):
        user = consultations.pharmacist_of(ctx.contact)
        if user is None and ctx.channel == WHATSAPP:
            user = consultations.link_by_phone(ctx.contact)
        if user is None and ctx.channel == TELEGRAM:
            user = consultations.link_by_shared_contact(ctx.contact, ctx.message.extra)
        return user

    def resume(self, ctx: Context) -> Reply | None:
        consultation = self._consultation(ctx)
        if consultation is None or LINK_COMMAND.match(ctx.text):
            ctx.conversation.state = {}
            return self.start(ctx)
        question = next((q for q in questions(consultation) if q.field == ctx.state.get("asking")), CONDITION)
        if ctx.message.media:
            consultations.add_chat_photos(consultation, ctx.message)
            count = consultations.image_count(consultation.id)
            return _ask(ctx, consultation, question, prefix=ctx.t("skin_photo_added", count=count))
        value = parse_answer(ctx, question)
        if value is _INVALID:
            return _ask(ctx, consultation, question, prefix=ctx.t("skin_invalid_choice"))
        consultations.record_answer(consultation, question.field, value)
        if question.field == "age_group" and PREGNANT not in questions(consultation):
            consultation.pregnant = None  # not asked: a child or an older patient
        following = _next_question(consultation, question.field)
        if following is not None:
            return _ask(ctx, consultation, following)
        consultations.queue_analysis(consultation)
        ctx.finish()
        return Reply(ctx.t("skin_analysing"))

    def _consultation(self, ctx: Context) -> Consultation | None:
        raw = ctx.state.get("consultation_id")
        if not raw:
            return None
        consultation = db.session.get(Consultation, uuid.UUID(raw))
        if consultation is None or consultation.status != STATUS_COLLECTING:
            return None
        return consultation


def _who(user) -> str:
    name = user.name or user.email
    return f"{name} ({user.pharmacy_name})" if user.pharmacy_name else name
