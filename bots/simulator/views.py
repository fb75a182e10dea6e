"""The simulator's page and its small JSON API (``/simulator/api/...``), used by the page's JavaScript.

Every action speaks for one of the demo phones only (:mod:`bots.simulator.demo`); anything else is a 400 naming the
field. Sending actions build the provider's own signed payload and post it to the real webhook
(:mod:`bots.simulator.signing`); nothing here touches the engine, the flows or the outbox directly. Reading shows
what the console sender sent to the demo numbers, from the message log.
"""

from __future__ import annotations

import logging

import httpx
from flask import Blueprint, Response, current_app, jsonify, render_template, request
from sqlalchemy.exc import IntegrityError

from app.errors import error_response
from app.extensions import db, limiter
from app.i18n import CATALOG, LANGUAGES, t
from app.models.channel import SMS, TELEGRAM, USSD, WHATSAPP
from bots.channels.console import save_media
from bots.simulator import demo, signing

log = logging.getLogger(__name__)

bp = Blueprint("simulator", __name__, url_prefix="/simulator", template_folder="templates", static_folder="static")

PHOTO_TYPES = ("image/jpeg", "image/png", "image/webp", "image/heic", "image/heif")
CHAT_APPS = (WHATSAPP, TELEGRAM)
TEXT_LIMIT = 1600  # characters in one simulated message (Twilio's own cap on an inbound SMS body)
HISTORY_LIMIT = 182  # a USSD session's *-joined history; AT sessions end long before this
CSP = ("default-src 'self'; img-src 'self' blob: data:; object-src 'none'; base-uri 'none'; form-action 'self'; "
       "frame-ancestors 'none'")  # fmt: skip


class BadInput(Exception):
    """A request field the simulator cannot use: answered 400 naming the field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@bp.errorhandler(BadInput)
def _bad_input(exc: BadInput):
    return error_response(400, "validation_error", str(exc), {exc.field: [str(exc)]})


@bp.errorhandler(signing.NotConfigured)
def _not_configured(exc: signing.NotConfigured):
    return error_response(409, "simulator_not_configured", str(exc), {"settings": exc.names})


@bp.errorhandler(httpx.HTTPError)
def _unreachable(exc: httpx.HTTPError):
    log.warning("simulator: the webhook could not be reached (%s)", exc.__class__.__name__)
    return error_response(502, "webhook_unreachable", "This server's own webhook did not answer.")


@bp.before_request
def _same_origin_only():
    # A custom header cannot be sent cross-site without a CORS preflight, which /simulator never grants: no other
    # site can make a visitor's browser post to the simulator.
    if request.method == "POST" and request.headers.get("X-Simulator") != "1":
        return error_response(403, "forbidden", "Simulator requests must come from the simulator page.")
    return None


@bp.after_request
def _headers(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("Cache-Control", "no-store")
    return response


def _language() -> str:
    language = request.args.get("lang", "en")
    return language if language in LANGUAGES else "en"


def _texts(language: str) -> dict[str, str]:
    return {key: (entry.tn if language == "tn" else entry.en) for key, entry in CATALOG.items()
            if key.startswith("sim_")}  # fmt: skip


@bp.get("")
def page():
    """The simulator page, in English or Setswana (``?lang=tn``)."""
    language = _language()
    return render_template(
        "simulator/index.html",
        language=language,
        texts=_texts(language),
        clinics=demo.clinics(language),
        people=demo.people(),
        pharmacist=demo.pharmacist(),
        telegram_chat=demo.TELEGRAM_CHAT_ID,
        service_code=current_app.config["USSD_SERVICE_CODE"],
        pin=demo.DEMO_PIN,
    )


@bp.get("/api/state")
@limiter.exempt
def state():
    """The demo clinics with their patients and next visits (the pickers), and every demo phone."""
    return jsonify(clinics=demo.clinics(_language()), people=[p.__dict__ for p in demo.people()])


@bp.get("/api/messages")
@limiter.exempt
def messages():
    """What the demo phones in ``address`` (repeatable) have sent and received: ``{address: [message, ...]}``.

    Only demo addresses: any other number is refused, never read.
    """
    wanted = request.args.getlist("address")
    if not wanted:
        raise BadInput("address", "Give at least one demo phone number or chat id.")
    result = {}
    for address in wanted[:4]:
        who = demo.person(address)
        if who is None:
            raise BadInput("address", "Only the simulator's demo phones can be read.")
        channels = tuple(c for c in who.channels if c != USSD) or (SMS,)
        result[address] = demo.messages(address, channels)
    return jsonify(result)


def _body() -> dict:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise BadInput("body", "Send a JSON object.")
    return data


def _text(data: dict, field: str = "text", *, required: bool = True) -> str:
    value = data.get(field, "")
    if not isinstance(value, str):
        raise BadInput(field, "Must be text.")
    value = value.strip()
    if required and not value:
        raise BadInput(field, "Type something to send.")
    if len(value) > TEXT_LIMIT:
        raise BadInput(field, f"At most {TEXT_LIMIT} characters.")
    return value


def _phone(data: dict, channel: str) -> demo.Person:
    who = demo.person(data.get("phone")) if isinstance(data.get("phone"), str) else None
    if who is None or channel not in who.channels:
        raise BadInput("phone", f"Must be one of the simulator's demo numbers that use {channel.upper()}.")
    return who


def _sent(answer: signing.Answer) -> Response:
    # The webhook's own verdict is passed on: a 403 here would mean the signing is wrong.
    status = 200 if answer.status < 300 else 502
    return jsonify(webhook_status=answer.status, ok=answer.status < 300), status


@bp.post("/api/sms")
def sms():
    """The patient's phone sends an SMS: a Twilio inbound webhook, signed."""
    data = _body()
    who = _phone(data, SMS)
    config = current_app.config
    return _sent(signing.deliver(config, signing.twilio_sms(config, phone=who.address, text=_text(data))))


@bp.post("/api/ussd")
def ussd():
    """One USSD hop: ``{"phone", "session_id"?, "history"}``; no session id dials (a new session, empty history).

    Returns the screen the webhook answered: ``{"session_id", "history", "screen", "end"}``.
    """
    data = _body()
    who = _phone(data, USSD)
    session_id = data.get("session_id")
    if session_id is None:
        session_id, history = signing.new_ussd_session(), ""
    else:
        if not isinstance(session_id, str) or not session_id.startswith("ATUid_") or len(session_id) > 64:
            raise BadInput("session_id", "Not a session this simulator started.")
        history = data.get("history")
        if not isinstance(history, str) or not history or len(history) > HISTORY_LIMIT:
            raise BadInput("history", f"The session's inputs joined with *, 1 to {HISTORY_LIMIT} characters.")
    config = current_app.config
    answer = signing.deliver(config, signing.africastalking_ussd(config, phone=who.address, session_id=session_id,
                                                                 history=history))  # fmt: skip
    prefix, _, screen = answer.text.partition(" ")
    if answer.status != 200 or prefix not in ("CON", "END"):
        return jsonify(webhook_status=answer.status, ok=False), 502
    return jsonify(session_id=session_id, history=history, screen=screen, end=prefix == "END", webhook_status=200)


def _chat_app(value) -> str:
    if value not in CHAT_APPS:
        raise BadInput("app", "Must be whatsapp or telegram.")
    return value


@bp.post("/api/chat")
def chat():
    """The pharmacist's chat sends a text, taps a button (``{"button": {"id", "title"}}``) or shares their number
    (``{"contact": true}``, Telegram)."""
    data = _body()
    app_name = _chat_app(data.get("app"))
    config = current_app.config
    person = demo.pharmacist()
    button = data.get("button")
    if button is not None:
        if not isinstance(button, dict) or not all(isinstance(button.get(k), str) and button.get(k) for k in
                                                   ("id", "title")):  # fmt: skip
            raise BadInput("button", "A button is {id, title}, both text.")
        if len(button["id"]) > 64 or len(button["title"]) > 64:
            raise BadInput("button", "At most 64 characters each.")
    if app_name == TELEGRAM:
        chat_id = demo.TELEGRAM_CHAT_ID
        if button is not None:
            signed = signing.telegram_update(config, chat_id=chat_id, name=person.name, callback_data=button["id"])
        elif data.get("contact") is True:
            signed = signing.telegram_update(config, chat_id=chat_id, name=person.name, contact_phone=person.address)
        else:
            signed = signing.telegram_update(config, chat_id=chat_id, name=person.name, text=_text(data))
    elif button is not None:
        signed = signing.whatsapp_message(config, phone=person.address, name=person.name,
                                          button=(button["id"], button["title"]))  # fmt: skip
    else:
        signed = signing.whatsapp_message(config, phone=person.address, name=person.name, text=_text(data))
    return _sent(signing.deliver(config, signed))


@bp.post("/api/chat/photo")
def chat_photo():
    """The pharmacist sends a photo from disk (multipart ``photo``, optional ``caption``, ``app``).

    The picture goes into the console media store, the way a provider keeps it on its servers; the webhook gets
    the provider's message carrying that media id, and the worker fetches it from there.
    """
    app_name = _chat_app(request.form.get("app"))
    upload = request.files.get("photo")
    if upload is None or not upload.filename:
        raise BadInput("photo", "Choose a photo to send.")
    content_type = (upload.mimetype or "").lower()
    if content_type not in PHOTO_TYPES:
        raise BadInput("photo", "Send a JPEG, PNG, WebP or HEIC photo.")
    data = upload.read()
    if not data:
        raise BadInput("photo", "The file is empty.")
    caption = _text(dict(request.form), "caption", required=False)
    config = current_app.config
    person = demo.pharmacist()
    if app_name == TELEGRAM:  # check before anything is stored
        signing.telegram_update(config, chat_id=demo.TELEGRAM_CHAT_ID, name=person.name, text="")
    else:
        signing.whatsapp_message(config, phone=person.address, name=person.name, text="")
    media_id = save_media(config, data, content_type)
    if app_name == TELEGRAM:
        signed = signing.telegram_update(config, chat_id=demo.TELEGRAM_CHAT_ID, name=person.name, text=caption,
                                         photo_file_id=media_id)  # fmt: skip
    else:
        signed = signing.whatsapp_message(config, phone=person.address, name=person.name, text=caption,
                                          image_id=media_id, content_type=content_type)  # fmt: skip
    return _sent(signing.deliver(config, signed))


@bp.post("/api/reminders")
def reminders():
    """ "Send due reminders now" for the chosen patient of the chosen demo clinic (see
    :func:`bots.simulator.demo.send_reminder_now`)."""
    data = _body()
    clinic = demo.demo_clinic(data.get("clinic_id")) if isinstance(data.get("clinic_id"), str) else None
    if clinic is None:
        raise BadInput("clinic_id", "Must be one of the demo clinics.")
    who = _phone(data, SMS)
    if who.role != "patient" or who.clinic != clinic.name:
        raise BadInput("phone", "Must be a demo patient of this clinic.")
    language = _language()
    outcome = demo.send_reminder_now(clinic, who.address)
    key = {"queued": "sim_reminder_queued", "sent_before": "sim_reminder_sent_before"}.get(
        outcome["result"], "sim_reminder_none"
    )
    notice = t(key, language, name=outcome["name"])
    if outcome["result"] == "queued":
        start, end = outcome["hours"]
        notice += " " + t("sim_hours_note", language, clinic=clinic.name, start=start, end=end)
    return jsonify(result=outcome["result"], notice=notice)


@bp.post("/api/review-answer")
def review_answer():
    """ "Answer as the clinician": the demo clinician answers the demo pharmacist's oldest open second-opinion
    request (:func:`bots.simulator.demo.answer_review`); the answer then arrives on the pharmacist's phone."""
    _body()
    outcome = demo.answer_review()
    key = "sim_review_answered" if outcome["result"] == "answered" else "sim_review_none"
    return jsonify(result=outcome["result"], notice=t(key, _language()))


@bp.post("/api/reset")
def reset():
    """Put the demo data back where it started (idempotent)."""
    try:
        demo.reset()
    except IntegrityError:
        # Rows of another area still point at demo data this reset does not know how to remove: change nothing.
        db.session.rollback()
        log.exception("simulator: reset refused by the database")
        return error_response(409, "reset_blocked", "Some demo data is still in use by other records; nothing "
                              "was reset.")  # fmt: skip
    return jsonify(result="reset", notice=t("sim_reset_done", _language()), clinics=demo.clinics(_language()))
