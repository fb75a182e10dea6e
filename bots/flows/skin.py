"""Skin consultations by Telegram and WhatsApp: link the chat to a pharmacist, a photo starts, questions follow.

Linking: ``/start CODE`` or ``/link CODE`` (Telegram), ``LINK CODE`` (WhatsApp) with a code from
``POST /api/v1/auth/chat-link`` (5 wrong codes an hour per chat, then none); without a code, a WhatsApp sender
whose number is a pharmacist's proven phone, or a Telegram shared contact that is the sender's own card with it,
unless a patient with appointments has that number (:func:`app.services.consultations.link_by_phone`). A linked
chat's plain text never outranks a patient's appointment answer on the same number. A linked chat's photo opens a
consultation; the questions the triage rules need follow one at a time with buttons (Telegram inline keyboard,
WhatsApp reply buttons, a numbered list where there are too many). An answer is the button, its number or its
title. The red-flag screen, asked early, is one multi-select question: numbers separated by spaces or
commas (``0`` for none); on Telegram also toggle buttons, ticked ones marked, then None of these or Done. More
photos may come at any time. After the last answer the analysis job is enqueued with the consultation
id, and the reply comes from the job; the same message asks, once, whether the patient agrees that the photos may
be used to improve the service (Yes / No; no answer stays no).

Later choices come as buttons on messages the services queue: "Ask a clinician" after the triage reply (then a
typed text is a note for the clinician), Yes / No for the photo consent, and the follow-up check-in's Better, Same,
Worse, Went to clinic. A button press carries its id; typed, the option's number or title in the latest message
with such buttons counts (WhatsApp shows more than three buttons as a numbered list), and so does a typed title
of any recent one. Every choice names its consultation, and only the pharmacist who owns it may make it.
"""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

from sqlalchemy import select

from app.extensions import db
from app.i18n import t
from app.messaging.envelopes import Button
from app.models import Consultation, Message, utcnow
from app.models.channel import TELEGRAM, WHATSAPP
from app.models.consultation import OUTCOME_WORSE, STATUS_COLLECTING
from app.models.message_log import DIRECTION_OUT
from app.services import consultations, follow_ups, reviews, skin_questions
from bots.flows import Context, Flow, Reply, register
from bots.flows.appointments import upcoming

LINK_COMMAND = re.compile(r"^\s*/?(?:start|link)\s+(\d{6})\s*$", re.IGNORECASE)
NUMBERS = re.compile(r"^\s*\d+(?:\s*[,;\s]\s*\d+)*\s*[.]?\s*$")  # "2 7", "2,7", "0"
TICK = "\u2713 "  # a ticked red-flag button (Telegram)
CHAT_BODY_LIMIT = 1024  # a WhatsApp interactive message's body: longer, and its buttons become a numbered list
CHOICES = (reviews.BUTTON_PREFIX, follow_ups.OUTCOME_PREFIX, follow_ups.CONSENT_PREFIX)  # + consultation id ...
MENU_DAYS = 30  # a typed number answers the latest message with choice buttons sent this recently
MENU_LOOKBACK = 20  # outbound messages looked at for it

Question = skin_questions.Question
CONDITION = skin_questions.CONDITION
AGE = skin_questions.AGE
PREGNANT = skin_questions.PREGNANT
RED_FLAGS = skin_questions.RED_FLAG_SCREEN
LATER = skin_questions.LATER


def questions(consultation: Consultation) -> list[Question]:
    """The questions for this consultation; pregnancy only when the age group makes it possible (10-59)."""
    return skin_questions.questions_for(consultation.age_group)


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


def parse_flags(ctx: Context, picked: list[str]):
    """The red-flag screen's answer: ``("done", ids)`` (typed numbers, ``0`` or the None / Done buttons),
    ``("toggle", ids)`` (a Telegram button ticked or unticked), or ``_INVALID``. Done with nothing ticked is
    invalid: "none of these" must be said, never assumed."""
    flags = [value for value, _ in RED_FLAGS.options]
    word = str((ctx.message.extra or {}).get("callback_data") or ctx.text or "").strip()
    if word == _button_id(RED_FLAGS, "none") or word.casefold() in _titles("opt_red_flags_none"):
        return "done", []
    if word == _button_id(RED_FLAGS, "done") or word.casefold() in _titles("opt_red_flags_done"):
        return ("done", picked) if picked else _INVALID
    for flag in flags:
        if word == _button_id(RED_FLAGS, flag):
            toggled = [f for f in picked if f != flag] if flag in picked else [*picked, flag]
            return "toggle", [f for f in flags if f in toggled]
    if NUMBERS.match(word):
        numbers = {int(n) for n in re.findall(r"\d+", word)}
        if numbers == {0}:
            return "done", []
        if 0 not in numbers and all(1 <= n <= len(flags) for n in numbers):
            return "done", [flag for number, flag in enumerate(flags, start=1) if number in numbers]
    return _INVALID


def _titles(key: str) -> set[str]:
    return {t(key, "en").casefold(), t(key, "tn").casefold()}


_INVALID = object()


def _ask(ctx: Context, consultation: Consultation, question: Question, prefix: str = "") -> Reply:
    asked = questions(consultation)
    text = ctx.t("skin_question", number=asked.index(question) + 1, total=len(asked),
                 question=ctx.t(question.text_key))  # fmt: skip
    state = {"consultation_id": str(consultation.id), "asking": question.field}
    if question.kind == skin_questions.MULTI:
        lines = [f"{number}. {ctx.t(skin_questions.description_key(question, value))}"
                 for number, (value, _) in enumerate(question.options, start=1)]  # fmt: skip
        text = "\n".join([text, *lines])
        state["picked"] = []
        if ctx.channel == TELEGRAM:
            buttons = _flag_buttons(ctx, [])
        else:
            # WhatsApp: typed numbers, and "None of these" as a reply button when the list fits one message body
            # (never a numbered list of buttons, whose "1" would read as the first sign).
            none = Button(id=_button_id(RED_FLAGS, "none"), title=ctx.t("opt_red_flags_none"))
            buttons = (none,) if len(f"{prefix}\n\n{text}") <= CHAT_BODY_LIMIT else ()
    else:
        buttons = tuple(Button(id=_button_id(question, value), title=ctx.t(key)) for value, key in question.options)
    ctx.save(**state)
    return Reply(f"{prefix}\n\n{text}" if prefix else text, buttons=buttons)


def _flag_buttons(ctx: Context, picked: list[str]) -> tuple[Button, ...]:
    """Telegram toggle buttons: one per flag (ticked ones marked), then None of these and Done."""
    buttons = [Button(id=_button_id(RED_FLAGS, value), title=f"{TICK if value in picked else ''}{number}. {ctx.t(key)}")
               for number, (value, key) in enumerate(RED_FLAGS.options, start=1)]  # fmt: skip
    buttons.append(Button(id=_button_id(RED_FLAGS, "none"), title=ctx.t("opt_red_flags_none")))
    buttons.append(Button(id=_button_id(RED_FLAGS, "done"), title=ctx.t("opt_red_flags_done")))
    return tuple(buttons)


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
        if str((ctx.message.extra or {}).get("callback_data") or "").startswith(CHOICES):
            return True  # a second-opinion, consent or check-in button, even on a number shared with a patient
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
            choice = menu_choice(ctx)
            if choice is not None:
                return _choose(ctx, user, choice)
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
        if ctx.state.get("noting"):
            return self._note(ctx)
        consultation = self._consultation(ctx)
        if consultation is None or LINK_COMMAND.match(ctx.text):
            ctx.conversation.state = {}
            return self.start(ctx)
        question = next((q for q in questions(consultation) if q.field == ctx.state.get("asking")), CONDITION)
        if ctx.message.media:
            consultations.add_chat_photos(consultation, ctx.message)
            count = consultations.image_count(consultation.id)
            return _ask(ctx, consultation, question, prefix=ctx.t("skin_photo_added", count=count))
        if question.kind == skin_questions.MULTI:
            parsed = parse_flags(ctx, list(ctx.state.get("picked") or []))
            if parsed is _INVALID:
                return _ask(ctx, consultation, question, prefix=ctx.t("skin_flags_invalid"))
            outcome, value = parsed
            if outcome == "toggle":
                ctx.save(picked=value)
                numbers = [str(n) for n, (flag, _) in enumerate(question.options, start=1) if flag in value]
                return Reply(ctx.t("skin_flags_picked", numbers=", ".join(numbers) or "-"),
                             buttons=_flag_buttons(ctx, value))  # fmt: skip
        else:
            value = parse_answer(ctx, question)
            if value is _INVALID:
                return _ask(ctx, consultation, question, prefix=ctx.t("skin_invalid_choice"))
        consultations.record_answer(consultation, question.field, value)
        if question.field == "age_group" and not skin_questions.pregnancy_asked(consultation.age_group):
            consultation.pregnant = None  # not asked: a child or an older patient
        following = _next_question(consultation, question.field)
        if following is not None:
            return _ask(ctx, consultation, following)
        consultations.queue_analysis(consultation)
        ctx.finish()
        # The consent question, asked once per consultation, rides on this reply; no answer stays no.
        return Reply(
            f"{ctx.t('skin_analysing')}\n\n{ctx.t('skin_consent_question')}",
            buttons=follow_ups.consent_buttons(consultation, ctx.language),
        )

    def _note(self, ctx: Context) -> Reply | None:
        """After "Ask a clinician": a typed text is a note for the clinician; anything else goes on as usual."""
        review_id = ctx.state.get("noting")
        ctx.conversation.state = {}
        callback = (ctx.message.extra or {}).get("callback_data")
        if ctx.message.media or callback or LINK_COMMAND.match(ctx.text) or not ctx.text:
            return self.start(ctx)
        user = consultations.pharmacist_of(ctx.contact)
        ctx.finish()
        if user is None or not reviews.add_note(user, uuid.UUID(review_id), ctx.text):
            return self.start(ctx)
        return Reply(ctx.t("review_note_added"))

    def _consultation(self, ctx: Context) -> Consultation | None:
        raw = ctx.state.get("consultation_id")
        if not raw:
            return None
        consultation = db.session.get(Consultation, uuid.UUID(raw))
        if consultation is None or consultation.status != STATUS_COLLECTING:
            return None
        return consultation


def menu_choice(ctx: Context) -> str | None:
    """The choice this message makes: a pressed button's id, the number typed of an option of the latest message
    with choice buttons to this chat, or the title typed of one of a recent message's (``None``: no choice)."""
    pressed = str((ctx.message.extra or {}).get("callback_data") or "")
    if pressed.startswith(CHOICES):
        return pressed
    word = ctx.text.strip().rstrip(".)").casefold()
    if not word:
        return None
    recent = db.session.scalars(
        select(Message).where(Message.address == ctx.contact.address, Message.channel == ctx.channel,
                              Message.direction == DIRECTION_OUT,
                              Message.created_at >= utcnow() - timedelta(days=MENU_DAYS))
        .order_by(Message.created_at.desc()).limit(MENU_LOOKBACK)
    ).all()  # fmt: skip
    menus = [message.buttons for message in recent if message.buttons]
    # A number answers the latest message with buttons only (as its numbered list reads); a title any recent one.
    if menus and all(str(button.get("id", "")).startswith(CHOICES) for button in menus[0]):
        for number, button in enumerate(menus[0], start=1):
            if word == str(number):
                return str(button["id"])
    for menu in menus:
        for button in menu:
            if str(button.get("id", "")).startswith(CHOICES) and word == str(button.get("title", "")).casefold():
                return str(button["id"])
    return None


def _choice_target(choice: str, prefix: str) -> tuple[uuid.UUID, str] | None:
    raw, _, value = choice.removeprefix(prefix).partition(":")
    try:
        return uuid.UUID(raw), value
    except ValueError:
        return None


def _choose(ctx: Context, user, choice: str) -> Reply:
    """Act on a choice button: ask a clinician, the photo consent, or the check-in's answer."""
    target, prefix = None, ""
    for prefix in CHOICES:
        if choice.startswith(prefix):
            target = _choice_target(choice, prefix)
            break
    if target is None:
        return Reply(ctx.t("review_not_found"))
    consultation_id, value = target
    if prefix == reviews.BUTTON_PREFIX:
        asked = reviews.request_from_chat(user, consultation_id)
        if asked is None:
            return Reply(ctx.t("review_not_found"))
        review, created = asked
        consultation = db.session.get(Consultation, consultation_id)
        case = reviews.case_label(consultation, ctx.language)
        if not created:
            return Reply(ctx.t("review_already", case=case))
        if not reviews.clinicians_for(consultation):
            return Reply(ctx.t("review_unstaffed"))
        ctx.save(noting=str(review.id))
        ctx.finished = False  # the next text is a note for the clinician
        return Reply(ctx.t("review_requested", case=case, hours=reviews.target_hours(review.rules_level)))
    if prefix == follow_ups.CONSENT_PREFIX:
        consultation = follow_ups.record_consent(user, consultation_id, value == "yes")
        if consultation is None:
            return Reply(ctx.t("review_not_found"))
        return Reply(ctx.t("skin_consent_yes" if consultation.photo_consent else "skin_consent_no"))
    consultation = follow_ups.record_outcome(user, consultation_id, value)
    if consultation is None:
        return Reply(ctx.t("review_not_found"))
    if value == OUTCOME_WORSE:
        return Reply(
            ctx.t("follow_up_reopened", case=reviews.case_label(consultation, ctx.language)),
            buttons=(reviews.ask_button(consultation, ctx.language),),
        )
    return Reply(ctx.t("follow_up_thanks", outcome=ctx.t(f"follow_up_{value}")))


def _who(user) -> str:
    name = user.name or user.email
    return f"{name} ({user.pharmacy_name})" if user.pharmacy_name else name
