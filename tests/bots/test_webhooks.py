"""Webhooks end to end: real provider payloads through the real HTTP endpoints, the database and the RQ queues.

Every captured payload in ``tests/fixtures/channels/`` is replayed with the Flask test client against
``/webhooks/...`` (providers configured through ``app_factory``), and the rows it leaves are counted: a valid
payload stores exactly what it carries and answers what the provider expects (TwiML, ``CON``/``END``, the
``hub.challenge``); a forged one is refused and stores nothing; a malformed one is a 400 with the JSON error shape.
Then replays (twice, and three at once from three threads), delivery-status ordering, the whole road of one SMS
through the real worker (stored → handled → answered by the console sender), USSD, and the rate-limit exemption.

The Twilio fixtures were signed by courier over *its* URL (``https://localhost/c/t/<uuid>/receive``). Replayed at
our URL, the exact payload is signed again with the same auth token (``6789``) over ``https://localhost`` + our
path, as Twilio would sign it had it called us; posted with its original signature it must be refused.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator
from werkzeug.datastructures import MultiDict

from app.extensions import db
from app.i18n import t
from app.jobs import QUEUE_DEFAULT, QUEUE_OUTBOUND, get_queue
from app.messaging import inbox
from app.models import Contact, Message, MessageEvent, utcnow
from workers.runner import run_worker

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "channels"


def _load(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


TWILIO_CASES = _load("twilio_sms.json")["cases"] + _load("twilio_whatsapp.json")["cases"]
AT_SMS_CASES = _load("africastalking_sms.json")["cases"]
AT_USSD_CASES = _load("africastalking_ussd.json")["cases"]
TELEGRAM_DATA = _load("telegram.json")
TELEGRAM_CASES = TELEGRAM_DATA["cases"]
TELEGRAM_SYNTHETIC = TELEGRAM_DATA["synthetic_cases"]
WHATSAPP_DATA = _load("whatsapp_cloud.json")
WHATSAPP_CASES = WHATSAPP_DATA["cases"]
WHATSAPP_VERIFY_CASES = WHATSAPP_DATA["verify_cases"]

BASE = "https://localhost"  # where the fixtures say Twilio called
TWILIO_SID, TWILIO_TOKEN = "acctid", "6789"  # courier's test channel: what the fixtures name and were signed with
AT_TOKEN = "at-path-token-5f1c9e"
TELEGRAM_SECRET = "s3cr3t_T0ken-abc"  # the synthetic Telegram cases' configured_secret
WHATSAPP_SECRET, WHATSAPP_VERIFY = "fb_app_secret", "fb_webhook_secret"
PHONE = "+26771234567"
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'

# Every provider can verify its webhooks, and none can send: replies go to the console sender (no TWILIO_FROM, no
# AT username/key, no bot token). Empty values override anything the environment may hold.
CONFIG = {
    "TWILIO_ACCOUNT_SID": TWILIO_SID,
    "TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
    "TWILIO_FROM": "",
    "TWILIO_WHATSAPP_FROM": "",
    "AT_USERNAME": "",
    "AT_API_KEY": "",
    "AT_WEBHOOK_TOKEN": AT_TOKEN,
    "TELEGRAM_BOT_TOKEN": "",
    "TELEGRAM_WEBHOOK_SECRET": TELEGRAM_SECRET,
    "WHATSAPP_TOKEN": "",
    "WHATSAPP_APP_SECRET": WHATSAPP_SECRET,
    "WHATSAPP_VERIFY_TOKEN": WHATSAPP_VERIFY,
    "PUBLIC_BASE_URL": "",
    "SEND_RETRY_BACKOFF_SECONDS": "0",
}


@pytest.fixture
def app(shared_app):
    application = shared_app(**CONFIG)
    with application.app_context():
        yield application
        db.session.remove()


# --- helpers -------------------------------------------------------------------------------------------------------


def counts() -> dict[str, int]:
    """Rows in the tables a webhook may write."""
    db.session.expire_all()
    return {
        name: db.session.scalar(select(func.count()).select_from(model))
        for name, model in (("messages", Message), ("message_events", MessageEvent), ("contacts", Contact))
    }


def added(before: dict[str, int]) -> dict[str, int]:
    after = counts()
    return {name: after[name] - before[name] for name in after}


NOTHING = {"messages": 0, "message_events": 0, "contacts": 0}


def handle_jobs() -> list[str]:
    return get_queue(QUEUE_DEFAULT).job_ids


def inbound_rows() -> list[Message]:
    db.session.expire_all()
    return db.session.scalars(select(Message).where(Message.direction == "in").order_by(Message.created_at)).all()


def outbound_rows() -> list[Message]:
    db.session.expire_all()
    return db.session.scalars(select(Message).where(Message.direction == "out").order_by(Message.created_at)).all()


def events_for(provider_id: str) -> list[MessageEvent]:
    db.session.expire_all()
    return db.session.scalars(
        select(MessageEvent).where(MessageEvent.provider_id == provider_id).order_by(MessageEvent.at)
    ).all()


def reload(message_id: uuid.UUID) -> Message:
    db.session.expire_all()
    return db.session.get(Message, message_id)


def outbound_message(
    provider: str,
    provider_id: str,
    *,
    status: str = "sent",
    channel: str = "sms",
    address: str = PHONE,
    contact: Contact | None = None,
) -> Message:
    """An outbound message a provider has accepted, as the worker leaves it."""
    message = Message(
        direction="out",
        channel=channel,
        provider=provider,
        provider_id=provider_id,
        address=address,
        text="Thusa: reminder",
        status=status,
        kind="system",
        contact_id=contact.id if contact else None,
    )
    db.session.add(message)
    db.session.commit()
    return message


def assert_error(response, status: int, code: str) -> dict:
    """The one JSON error shape: {"error": {"code", "message", "details"}}."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    error = response.get_json()["error"]
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["details"], dict)
    return error


def assert_twiml(response) -> None:
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/xml"
    assert response.get_data(as_text=True) == EMPTY_TWIML


def sid(number: int) -> str:
    return "SM" + f"{number:032x}"


def twilio_signature(path: str, params, token: str = TWILIO_TOKEN, base: str = BASE) -> str:
    return RequestValidator(token).compute_signature(base + path, params)


def sms_params(text: str, message_sid: str, sender: str = PHONE, **more) -> dict:
    """A real-shaped Twilio inbound SMS webhook (Twilio's parameter set)."""
    return {
        "ToCountry": "BW",
        "SmsMessageSid": message_sid,
        "NumMedia": "0",
        "SmsSid": message_sid,
        "SmsStatus": "received",
        "Body": text,
        "FromCountry": "BW",
        "To": "+26772000000",
        "NumSegments": "1",
        "MessageSid": message_sid,
        "AccountSid": TWILIO_SID,
        "From": sender,
        "ApiVersion": "2010-04-01",
        **more,
    }


def post_twilio(client, path: str, params: dict, **sign):
    return client.post(
        path, data=params, headers={"X-Twilio-Signature": twilio_signature(path, params, **sign)}, base_url=BASE
    )


def post_sms(client, text: str, message_sid: str, sender: str = PHONE):
    return post_twilio(client, "/webhooks/twilio/sms", sms_params(text, message_sid, sender))


def post_status(client, message_sid: str, status: str, **more):
    return post_twilio(
        client,
        "/webhooks/twilio/status",
        {"MessageSid": message_sid, "MessageStatus": status, "AccountSid": TWILIO_SID, **more},
    )


def meta_signature(body: bytes, secret: str = WHATSAPP_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def whatsapp_text(message_id: str, text: str = "Dumela", sender: str = "26771234567") -> bytes:
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "+267 71 000 000", "phone_number_id": "1234567890"},
        "contacts": [{"profile": {"name": "Mpho"}, "wa_id": sender}],
        "messages": [
            {"from": sender, "id": message_id, "timestamp": "1735725600", "type": "text", "text": {"body": text}}
        ],
    }
    return json.dumps(
        {
            "object": "whatsapp_business_account",
            "entry": [{"id": "WABA1", "changes": [{"field": "messages", "value": value}]}],
        }
    ).encode()


def telegram_text(update_id: int, text: str = "Dumela", chat_id: int = 3527065) -> bytes:
    return json.dumps(
        {
            "update_id": update_id,
            "message": {
                "message_id": 7,
                "from": {"id": chat_id, "is_bot": False, "first_name": "Naledi"},
                "chat": {"id": chat_id, "first_name": "Naledi", "type": "private"},
                "date": 1735725600,
                "text": text,
            },
        }
    ).encode()


# --- Twilio: every captured payload ----------------------------------------------------------------------------------


def twilio_kind(case: dict) -> str:
    return "status" if urlsplit(case["path"]).path.rstrip("/").endswith("/status") else "sms"


def twilio_path(case: dict) -> str:
    """Our URL for the case: the same webhook kind, and the same query string (it is part of what is signed)."""
    query = urlsplit(case["path"]).query
    return f"/webhooks/twilio/{twilio_kind(case)}" + (f"?{query}" if query else "")


def twilio_form(case: dict) -> MultiDict:
    return MultiDict(parse_qsl(case["body"], keep_blank_values=True))


def twilio_outcome(case: dict) -> str:
    """What our endpoint does with the case (courier's ``expected`` translated; the differences are explained)."""
    if case["signature"]["mode"] != "valid":
        return "forbidden"  # courier: 400 (or, for SignalWire, no check at all); INTERFACES.md: 403
    if case["name"] in ("status_unknown_value", "wa_status_unknown_value"):
        return "status"  # courier 400s an unknown status (Twilio retries it); we record it raw and answer 200
    return {"message": "message", "status": "status", "ignored": "ignored", "rejected": "malformed"}[
        case["expected"]["outcome"]
    ]


# MessageStatus in the fixtures → the furthest status a "sent" message reaches (an unknown word moves nothing).
TWILIO_STATUS_AFTER = {"delivered": "delivered", "read": "read", "sent": "sent", "failed": "failed", "huh": "sent"}


def test_every_twilio_case_has_an_outcome():
    assert len(TWILIO_CASES) == 30
    outcomes = [twilio_outcome(case) for case in TWILIO_CASES]
    assert {outcome: outcomes.count(outcome) for outcome in set(outcomes)} == {
        "message": 13,
        "status": 11,
        "ignored": 2,
        "forbidden": 3,
        "malformed": 1,
    }


@pytest.mark.parametrize("case", TWILIO_CASES, ids=lambda case: case["name"])
def test_twilio_fixture_replay(app, client, case):
    outcome = twilio_outcome(case)
    path = twilio_path(case)
    form = twilio_form(case)
    headers = dict(case["headers"])
    if case["signature"]["mode"] == "valid":
        headers["X-Twilio-Signature"] = twilio_signature(path, form)
    message_sid = form.get("MessageSid")
    known = None
    if twilio_kind(case) == "status" and message_sid:
        recipient = form.get("To") or PHONE
        contact = Contact(address=recipient)
        db.session.add(contact)
        db.session.commit()
        known = outbound_message("twilio", message_sid, address=recipient, contact=contact)
    before = counts()

    response = client.post(path, data=case["body"].encode("utf-8"), headers=headers, base_url=BASE)

    if outcome == "forbidden":
        assert_error(response, 403, "forbidden")
        assert added(before) == NOTHING
        assert handle_jobs() == []
        if known is not None:
            assert reload(known.id).status == "sent"
        return
    if outcome == "malformed":
        error = assert_error(response, 400, "malformed_payload")
        assert error["details"] == {"missing": ["MessageSid", "From"]}
        assert added(before) == NOTHING
        return
    assert_twiml(response)
    if outcome == "ignored":
        assert added(before) == NOTHING
    elif outcome == "message":
        assert added(before) == {"messages": 1, "message_events": 0, "contacts": 0}
        (message,) = inbound_rows()
        assert (message.provider, message.provider_id, message.status) == ("twilio", message_sid, "received")
        assert message.channel == ("whatsapp" if form["From"].startswith("whatsapp:") else "sms")
        assert handle_jobs() == [f"handle-{message.id}"]
    else:
        assert added(before) == {"messages": 0, "message_events": 1, "contacts": 0}
        (event,) = events_for(message_sid)
        raw = form["MessageStatus"]
        assert (event.kind, event.provider, event.raw_status, event.message_id) == ("status", "twilio", raw, known.id)
        assert event.error_code == (form.get("ErrorCode") or None)
        row = reload(known.id)
        assert row.status == TWILIO_STATUS_AFTER[raw]
        if raw == "huh":
            assert event.status is None  # kept raw, never an error
        contact = db.session.get(Contact, row.contact_id)
        assert (contact.opted_out_at is not None) == (form.get("ErrorCode") == "21610")
        assert handle_jobs() == []


# One signed fixture per URL of ours (webhook kind and query string): the signature is checked before the body is
# read, so more bodies on the same URL add nothing end to end. Every signed fixture meets the signature check in
# the adapter's own tests (tests/channels/test_twilio.py).
TWILIO_SIGNED_PER_URL = list(
    {twilio_path(c): c for c in reversed(TWILIO_CASES) if c["signature"]["mode"] == "valid"}.values()
)


@pytest.mark.parametrize("case", TWILIO_SIGNED_PER_URL, ids=lambda case: case["name"])
def test_twilio_fixture_with_its_original_signature_is_refused_here(app, client, case):
    """Each fixture's signature covers courier's URL, not ours: at our URL it is a forgery."""
    before = counts()
    response = client.post(twilio_path(case), data=case["body"].encode(), headers=case["headers"], base_url=BASE)
    assert_error(response, 403, "forbidden")
    assert added(before) == NOTHING
    assert handle_jobs() == []


# --- Africa's Talking: every captured payload ----------------------------------------------------------------------

AT_SMS_OUTCOMES = {
    "sms_receive_text_iso_date": "message",
    "sms_receive_text_space_date": "message",
    "sms_receive_garbage_body": "malformed",
    "sms_receive_missing_text": "message",  # courier 400s it; an empty SMS is still a message
    "sms_receive_alphanumeric_from": "message",  # courier 400s it; a network's own sender is kept
    "sms_receive_bad_date": "malformed",
    "dlr_unknown_status": ("status", "sent"),  # courier 400s it; kept raw, moves nothing
    "dlr_missing_status": "ignored",  # courier 400s it; acknowledged so AT stops retrying
    "dlr_success": ("status", "delivered"),
    "dlr_expired": ("status", "failed"),
}
AT_SEGMENT = {"receive": "sms", "status": "delivery"}


def at_path(case: dict, token: str = AT_TOKEN) -> str:
    kind = next(kind for kind in AT_SEGMENT if f"/{kind}/" in case["path"])
    return f"/webhooks/africastalking/{token}/{AT_SEGMENT[kind]}"


def test_every_africastalking_sms_case_has_an_outcome():
    assert {case["name"] for case in AT_SMS_CASES} == set(AT_SMS_OUTCOMES)


@pytest.mark.parametrize("case", AT_SMS_CASES, ids=lambda case: case["name"])
def test_africastalking_sms_fixture_replay(app, client, case):
    outcome = AT_SMS_OUTCOMES[case["name"]]
    form = MultiDict(parse_qsl(case["body"], keep_blank_values=True))
    known = outbound_message("africastalking", form["id"]) if "/status/" in case["path"] and form.get("id") else None
    before = counts()

    response = client.post(at_path(case), data=case["body"].encode(), headers=case["headers"])

    if outcome == "malformed":
        assert_error(response, 400, "malformed_payload")
        assert added(before) == NOTHING
        assert handle_jobs() == []
        return
    assert (response.status_code, response.get_data()) == (200, b"")
    if outcome == "ignored":
        assert added(before) == NOTHING
        assert reload(known.id).status == "sent"
    elif outcome == "message":
        assert added(before) == {"messages": 1, "message_events": 0, "contacts": 0}
        (message,) = inbound_rows()
        assert (message.provider, message.provider_id, message.channel) == ("africastalking", form["id"], "sms")
        assert message.text == form.get("text", "")
        assert handle_jobs() == [f"handle-{message.id}"]
    else:
        assert added(before) == {"messages": 0, "message_events": 1, "contacts": 0}
        (event,) = events_for(form["id"])
        assert (event.message_id, event.raw_status) == (known.id, form["status"])
        assert reload(known.id).status == outcome[1]


# One captured payload per callback URL (receive, delivery, USSD): the path token is checked before the body is
# read, so the other payloads add nothing end to end. Every payload meets every wrong token in the adapter's own
# tests (tests/channels/test_africastalking.py).
AT_ONE_PER_URL = [
    next(case for case in AT_SMS_CASES if "/receive/" in case["path"]),
    next(case for case in AT_SMS_CASES if "/status/" in case["path"]),
    AT_USSD_CASES[0],
]


@pytest.mark.parametrize("token", ["wrong-token", AT_TOKEN[:-1], AT_TOKEN + "x"], ids=["wrong", "prefix", "longer"])
@pytest.mark.parametrize("case", AT_ONE_PER_URL, ids=lambda case: case["name"])
def test_africastalking_with_a_wrong_token_is_not_found_and_stores_nothing(app, client, case, token):
    path = at_path(case, token) if "path" in case else f"/webhooks/africastalking/{token}/ussd"
    known = outbound_message("africastalking", "ATXid_dda018a640edfcc5d2ce455de3e4a6e7")
    before = counts()
    response = client.post(path, data=case["body"].encode(), headers=case["headers"])
    error = assert_error(response, 404, "not_found")
    assert AT_TOKEN not in json.dumps(error)
    assert added(before) == NOTHING
    assert handle_jobs() == []
    assert reload(known.id).status == "sent"


@pytest.mark.parametrize("case", AT_USSD_CASES, ids=lambda case: case["name"])
def test_africastalking_ussd_fixture_replay(app, client, case):
    before = counts()
    response = client.post(
        f"/webhooks/africastalking/{AT_TOKEN}/ussd", data=case["body"].encode(), headers=case["headers"]
    )
    assert response.status_code == 200
    if case["name"] == "end_of_session_notification_failed":
        # The session is over: the close event is kept, and there is no screen to show or store.
        assert added(before) == {"messages": 1, "message_events": 0, "contacts": 1}
        assert outbound_rows() == []
        (inbound,) = inbound_rows()
        assert inbound.channel == "ussd" and inbound.provider_id.endswith(":end")
        return
    # The number has no appointment: whatever hop of the session comes first, the patient menu says so and ends.
    assert response.mimetype == "text/plain"
    body = response.get_data(as_text=True)
    assert body == "END " + t("ussd_patient_none", "en")
    assert added(before) == {"messages": 2, "message_events": 0, "contacts": 1}
    (inbound,) = inbound_rows()
    (screen,) = outbound_rows()
    assert (inbound.channel, inbound.status, inbound.address) == ("ussd", "handled", "+254739495441")
    assert (screen.channel, screen.reply_to_id, screen.text, screen.status) == ("ussd", inbound.id, body, "sent")
    assert handle_jobs() == []  # USSD is answered synchronously, never by a job
    assert get_queue(QUEUE_OUTBOUND).job_ids == []  # the screen went out in the HTTP answer


# --- Telegram: every captured payload ------------------------------------------------------------------------------

TELEGRAM_OUTCOMES = {
    **{case["name"]: "message" for case in TELEGRAM_CASES},
    "invalid_json": "malformed",
    "update_without_message": "ignored",
    "photo_modern_bot_api_shape": "message",
    "secret_token_ok": "message",
    "secret_token_wrong": "forbidden",
    "secret_token_missing": "forbidden",
    "duplicate_update_id": "duplicate",
}


def test_every_telegram_case_has_an_outcome():
    assert {case["name"] for case in TELEGRAM_CASES + TELEGRAM_SYNTHETIC} == set(TELEGRAM_OUTCOMES)


@pytest.mark.parametrize("case", TELEGRAM_CASES + TELEGRAM_SYNTHETIC, ids=lambda case: case["name"])
def test_telegram_fixture_replay(app, client, case):
    outcome = TELEGRAM_OUTCOMES[case["name"]]
    headers = dict(case["headers"])
    if case in TELEGRAM_CASES:
        # Courier checks no secret; Telegram sends the header once setWebhook has a secret_token, as ours does.
        headers["X-Telegram-Bot-Api-Secret-Token"] = TELEGRAM_SECRET
    before = counts()
    response = client.post("/webhooks/telegram", data=case["body"].encode("utf-8"), headers=headers)
    if outcome == "duplicate":  # the precondition: the same update was processed once already
        assert response.status_code == 200
        response = client.post("/webhooks/telegram", data=case["body"].encode("utf-8"), headers=headers)

    if outcome == "forbidden":
        assert_error(response, 403, "forbidden")
        assert added(before) == NOTHING
        assert handle_jobs() == []
        return
    if outcome == "malformed":
        assert_error(response, 400, "malformed_payload")
        assert added(before) == NOTHING
        return
    assert (response.status_code, response.get_data()) == (200, b"")
    if outcome == "ignored":
        assert added(before) == NOTHING
        return
    assert added(before) == {"messages": 1, "message_events": 0, "contacts": 0}
    (message,) = inbound_rows()
    update_id = str(json.loads(case["body"])["update_id"])
    assert (message.channel, message.provider, message.provider_id) == ("telegram", "telegram", update_id)
    assert message.address == "3527065"
    assert handle_jobs() == [f"handle-{message.id}"]


# --- WhatsApp Cloud API: every captured payload --------------------------------------------------------------------

WHATSAPP_OUTCOMES = {
    **dict.fromkeys(
        [
            "text",
            "image_with_caption",
            "document_with_caption",
            "audio",
            "voice",
            "video",
            "location",
            "template_quick_reply_button",
            "interactive_button_reply",
            "interactive_list_reply",
            "interactive_flow_reply",
            "interactive_flow_reply_non_object",
            "duplicate_message_in_one_payload",
            "text_with_user_id_bsuid",
            "text_invalid_user_id",
            "text_from_bsuid_no_phone",
            "text_bsuid_in_from",
        ],
        "message",
    ),
    "group_message": "nothing",
    "unsupported_type_with_errors": "nothing",
    "value_level_errors": "nothing",
    "status_sent": ("status", "sent"),
    "status_failed_with_error": ("status", "failed"),
    "status_unknown_value": ("status", "sent"),  # courier ignores it; we keep it raw, it moves nothing
    "status_deleted_ignored": ("status", "sent"),
    # Courier answers these 200 with an error body; an unreadable payload is a 400 here, nothing stored.
    "invalid_from": "malformed",
    "no_from": "malformed",
    "invalid_timestamp": "malformed",
    "invalid_json": "malformed",
    "invalid_signature": "forbidden",  # courier: 200 so Meta gives up; here: 403, as every forged webhook
}


def test_every_whatsapp_case_has_an_outcome():
    assert {case["name"] for case in WHATSAPP_CASES} == set(WHATSAPP_OUTCOMES)


def _whatsapp_first(case: dict, key: str) -> str | None:
    """The id of the first message or status in a notification (None when the body has none)."""
    try:
        return json.loads(case["body"])["entry"][0]["changes"][0]["value"][key][0]["id"]
    except (ValueError, KeyError, IndexError, TypeError):
        return None


@pytest.mark.parametrize("case", WHATSAPP_CASES, ids=lambda case: case["name"])
def test_whatsapp_fixture_replay(app, client, case):
    outcome = WHATSAPP_OUTCOMES[case["name"]]
    status_id = _whatsapp_first(case, "statuses")
    known = outbound_message("whatsapp", status_id, channel="whatsapp") if status_id else None
    before = counts()

    response = client.post("/webhooks/whatsapp", data=case["body"].encode("utf-8"), headers=case["headers"])

    if outcome == "forbidden":
        assert_error(response, 403, "forbidden")
        assert added(before) == NOTHING
        return
    if outcome == "malformed":
        assert_error(response, 400, "malformed_payload")
        assert added(before) == NOTHING
        assert handle_jobs() == []
        return
    assert response.status_code == 200
    if outcome == "nothing":
        assert added(before) == NOTHING
    elif outcome == "message":
        assert added(before) == {"messages": 1, "message_events": 0, "contacts": 0}
        (message,) = inbound_rows()
        assert (message.channel, message.provider) == ("whatsapp", "whatsapp")
        assert message.provider_id == _whatsapp_first(case, "messages")
        assert handle_jobs() == [f"handle-{message.id}"]
        # Handling links the contact and opens its 24-hour window.
        contact = inbox.link_contact(message)
        assert contact.last_whatsapp_inbound_at == message.received_at
    else:
        assert added(before) == {"messages": 0, "message_events": 1, "contacts": 0}
        (event,) = events_for(status_id)
        assert event.message_id == known.id
        assert reload(known.id).status == outcome[1]


@pytest.mark.parametrize("case", WHATSAPP_VERIFY_CASES, ids=lambda case: case["name"])
def test_whatsapp_subscription_handshake(app, client, case):
    query = urlsplit(case["path"]).query
    before = counts()
    response = client.get("/webhooks/whatsapp" + (f"?{query}" if query else ""))
    if case["name"] == "verify_ok":
        assert response.status_code == 200
        assert response.mimetype == "text/plain"
        assert response.get_data(as_text=True) == case["expected"]["body_exact"] == "yarchallenge"
    else:  # courier answers 200 with an error body; a failed handshake is a 403 here
        assert_error(response, 403, "forbidden")
    assert added(before) == NOTHING


# --- forged, unsigned, wrong token: refused, nothing stored --------------------------------------------------------


def _twilio_request(
    *,
    path="/webhooks/twilio/sms",
    signed_path=None,
    token=TWILIO_TOKEN,
    base_url=BASE,
    signature=True,
    tamper=None,
    **fields,
):
    params = sms_params("Ke a leboga", sid(900), **fields)
    headers = {}
    if signature:
        headers["X-Twilio-Signature"] = twilio_signature(signed_path or path, params, token=token)
    if tamper:
        params = {**params, **tamper}
    return {"method": "POST", "path": path, "data": params, "headers": headers, "base_url": base_url}


def _raw(path: str, body: bytes, headers: dict) -> dict:
    return {"method": "POST", "path": path, "data": body, "headers": headers, "base_url": BASE}


_WA_BODY = whatsapp_text("wamid.forged1")
_TG_BODY = telegram_text(4242)

FORGERIES = [
    pytest.param(_twilio_request(signature=False), 403, id="twilio_unsigned"),
    pytest.param(_twilio_request(token="6788"), 403, id="twilio_wrong_token"),
    pytest.param(_twilio_request(tamper={"Body": "Send me the codes"}), 403, id="twilio_tampered_body"),
    pytest.param(_twilio_request(tamper={"From": "+26770000000"}), 403, id="twilio_tampered_sender"),
    pytest.param(_twilio_request(signed_path="/webhooks/twilio/status"), 403, id="twilio_signed_for_other_url"),
    pytest.param(_twilio_request(base_url="http://localhost"), 403, id="twilio_signed_https_called_http"),
    pytest.param(_twilio_request(AccountSid="AC" + "1" * 32), 403, id="twilio_other_account_signed"),
    pytest.param(_raw("/webhooks/whatsapp", _WA_BODY, {"Content-Type": "application/json"}), 403, id="meta_unsigned"),
    pytest.param(
        _raw(
            "/webhooks/whatsapp",
            _WA_BODY,
            {"Content-Type": "application/json", "X-Hub-Signature-256": meta_signature(_WA_BODY, "other")},
        ),
        403,
        id="meta_wrong_secret",
    ),
    pytest.param(
        _raw(
            "/webhooks/whatsapp",
            json.dumps(json.loads(_WA_BODY), indent=1).encode(),
            {"Content-Type": "application/json", "X-Hub-Signature-256": meta_signature(_WA_BODY)},
        ),
        403,
        id="meta_reserialised_body",
    ),
    pytest.param(
        _raw("/webhooks/telegram", _TG_BODY, {"Content-Type": "application/json"}), 403, id="telegram_no_secret"
    ),
    pytest.param(
        _raw(
            "/webhooks/telegram",
            _TG_BODY,
            {"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET + "x"},
        ),
        403,
        id="telegram_wrong_secret",
    ),
    pytest.param(
        _raw(
            "/webhooks/africastalking/nope/sms",
            urlencode({"id": "ATXid_forged", "from": PHONE, "text": "hi"}).encode(),
            {"Content-Type": "application/x-www-form-urlencoded"},
        ),
        404,
        id="at_wrong_token",
    ),
]


@pytest.mark.parametrize(("request_spec", "status"), FORGERIES)
def test_forged_requests_are_refused_and_store_nothing(app, client, request_spec, status):
    before = counts()
    spec = dict(request_spec)
    response = client.open(spec.pop("path"), **spec)
    assert_error(response, status, "forbidden" if status == 403 else "not_found")
    assert added(before) == NOTHING
    assert handle_jobs() == []


def test_a_forged_status_callback_moves_nothing(app, client):
    message = outbound_message("twilio", sid(5))
    before = counts()
    params = {"MessageSid": sid(5), "MessageStatus": "failed", "ErrorCode": "21610", "AccountSid": TWILIO_SID}
    signature = twilio_signature("/webhooks/twilio/status", {**params, "MessageStatus": "delivered"})
    response = client.post(
        "/webhooks/twilio/status", data=params, headers={"X-Twilio-Signature": signature}, base_url=BASE
    )
    assert_error(response, 403, "forbidden")
    assert added(before) == NOTHING
    assert reload(message.id).status == "sent"


# --- malformed: 400 with the JSON error, nothing stored ---------------------------------------------------------


def _signed_whatsapp(body: bytes) -> dict:
    return _raw(
        "/webhooks/whatsapp", body, {"Content-Type": "application/json", "X-Hub-Signature-256": meta_signature(body)}
    )


def _signed_twilio_form(params: dict) -> dict:
    path = "/webhooks/twilio/sms"
    return {
        "method": "POST",
        "path": path,
        "data": params,
        "base_url": BASE,
        "headers": {"X-Twilio-Signature": twilio_signature(path, params)},
    }


_BAD_TIMESTAMP = whatsapp_text("wamid.bad").replace(b'"1735725600"', b'"yesterday"')

MALFORMED = [
    pytest.param(
        _signed_twilio_form({k: v for k, v in sms_params("x", sid(1)).items() if k != "From"}),
        {"missing": ["From"]},
        id="twilio_no_from",
    ),
    pytest.param(
        _signed_twilio_form({"AccountSid": TWILIO_SID}), {"missing": ["MessageSid", "From"]}, id="twilio_empty"
    ),
    pytest.param(
        _raw(
            f"/webhooks/africastalking/{AT_TOKEN}/sms",
            b"from=%2B26771234567&text=hi",
            {"Content-Type": "application/x-www-form-urlencoded"},
        ),
        {"missing": ["id"]},
        id="at_sms_no_id",
    ),
    pytest.param(
        _raw(
            f"/webhooks/africastalking/{AT_TOKEN}/ussd",
            b"phoneNumber=%2B26771234567&text=",
            {"Content-Type": "application/x-www-form-urlencoded"},
        ),
        {"missing": ["sessionId"]},
        id="at_ussd_no_session",
    ),
    pytest.param(
        _raw(
            "/webhooks/telegram",
            b"{not json",
            {"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET},
        ),
        None,
        id="telegram_not_json",
    ),
    pytest.param(
        _raw(
            "/webhooks/telegram",
            b'{"message": {"text": "hi"}}',
            {"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET},
        ),
        {"field": "update_id"},
        id="telegram_no_update_id",
    ),
    pytest.param(_signed_whatsapp(_BAD_TIMESTAMP), None, id="whatsapp_bad_timestamp"),
    pytest.param(_signed_whatsapp(b"[1, 2, 3]"), None, id="whatsapp_not_an_object"),
]


@pytest.mark.parametrize(("request_spec", "details"), MALFORMED)
def test_malformed_payloads_are_a_400_with_a_reason_and_store_nothing(app, client, request_spec, details):
    before = counts()
    spec = dict(request_spec)
    response = client.open(spec.pop("path"), **spec)
    error = assert_error(response, 400, "malformed_payload")
    if details is not None:
        assert error["details"] == details
    assert added(before) == NOTHING
    assert handle_jobs() == []


# --- replays: twice in a row, three at once ------------------------------------------------------------------------


def _deliver_twilio_sms(client):
    return post_sms(client, "Ke a leboga", sid(31))


def _deliver_twilio_whatsapp(client):
    return post_sms(client, "Ke a leboga", sid(32), sender="whatsapp:" + PHONE)


def _deliver_at_sms(client):
    return client.post(
        f"/webhooks/africastalking/{AT_TOKEN}/sms",
        data={
            "id": "ATXid_in_33",
            "from": PHONE,
            "to": "21512",
            "text": "Ee",
            "date": "2025-09-29 12:00:00",
            "linkId": "1",
        },
    )


def _deliver_telegram(client):
    return client.post(
        "/webhooks/telegram",
        data=telegram_text(34),
        headers={"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET},
    )


def _deliver_whatsapp(client):
    body = whatsapp_text("wamid.HBgM35")
    return client.post(
        "/webhooks/whatsapp",
        data=body,
        headers={"Content-Type": "application/json", "X-Hub-Signature-256": meta_signature(body)},
    )


DELIVERIES = {
    "twilio_sms": _deliver_twilio_sms,
    "twilio_whatsapp": _deliver_twilio_whatsapp,
    "africastalking_sms": _deliver_at_sms,
    "telegram": _deliver_telegram,
    "whatsapp_cloud": _deliver_whatsapp,
}


@pytest.mark.parametrize("provider", DELIVERIES)
def test_a_replayed_delivery_answers_2xx_and_stores_one_message_with_one_job(app, client, provider):
    first = DELIVERIES[provider](client)
    second = DELIVERIES[provider](client)

    assert 200 <= first.status_code < 300 and 200 <= second.status_code < 300
    assert first.get_data() == second.get_data()  # the same answer: the provider cannot tell
    (message,) = inbound_rows()
    assert len(outbound_rows()) == 0
    assert handle_jobs() == [f"handle-{message.id}"]
    assert counts()["contacts"] == 0  # linked when the engine handles the message


@pytest.mark.both_backends  # concurrent deliveries: row locks on PostgreSQL, the write lock on SQLite
@pytest.mark.parametrize("round_number", range(3))
def test_three_deliveries_of_one_sms_at_once_store_one_message(app, round_number):
    """Twilio's retry racing the original: three threads, each its own client, released together."""
    sender = f"+2677123456{round_number}"
    message_sid = sid(700 + round_number)
    params = sms_params("Dumela", message_sid, sender)
    headers = {"X-Twilio-Signature": twilio_signature("/webhooks/twilio/sms", params)}
    db.session.close()  # the test's own transaction must not hold SQLite's write lock
    barrier = threading.Barrier(3)
    statuses: list[int] = []
    errors: list[BaseException] = []

    def deliver() -> None:
        client = app.test_client()
        try:
            barrier.wait(timeout=10)
            statuses.append(
                client.post("/webhooks/twilio/sms", data=params, headers=headers, base_url=BASE).status_code
            )
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=deliver) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert errors == []
    assert statuses == [200, 200, 200]
    db.session.expire_all()
    rows = db.session.scalars(select(Message).where(Message.provider_id == message_sid)).all()
    assert len(rows) == 1
    assert handle_jobs() == [f"handle-{rows[0].id}"]
    db.session.close()


# --- delivery status: only forward, every event kept ----------------------------------------------------------------


def test_out_of_order_status_callbacks_end_at_the_furthest_status_and_all_are_kept(app, client):
    message = outbound_message("twilio", sid(41))
    callbacks = ["delivered", "sent", "queued", "delivered", "failed"]
    for status in callbacks:
        assert_twiml(post_status(client, sid(41), status, **({"ErrorCode": "30003"} if status == "failed" else {})))
        assert reload(message.id).status in ("sent", "delivered")

    row = reload(message.id)
    assert row.status == "delivered"
    assert row.error_code is None  # the late failure did not win
    events = events_for(sid(41))
    assert [event.raw_status for event in events] == callbacks
    assert all(event.message_id == message.id and event.kind == "status" for event in events)

    assert_twiml(post_status(client, sid(41), "read"))
    assert reload(message.id).status == "read"
    assert_twiml(post_status(client, sid(41), "delivered"))
    assert reload(message.id).status == "read"
    assert len(events_for(sid(41))) == len(callbacks) + 2


def test_a_failure_is_final(app, client):
    message = outbound_message("twilio", sid(42))
    assert_twiml(post_status(client, sid(42), "undelivered", ErrorCode="30003"))
    row = reload(message.id)
    assert (row.status, row.error_code) == ("failed", "30003")
    for late in ("delivered", "read", "sent"):
        assert_twiml(post_status(client, sid(42), late))
    assert reload(message.id).status == "failed"
    assert len(events_for(sid(42))) == 4


def test_an_unknown_status_word_is_kept_raw_and_moves_nothing(app, client):
    message = outbound_message("twilio", sid(43))
    assert_twiml(post_status(client, sid(43), "teleported"))
    (event,) = events_for(sid(43))
    assert (event.message_id, event.raw_status, event.status) == (message.id, "teleported", None)
    assert reload(message.id).status == "sent"


def test_a_callback_for_an_unknown_message_is_acknowledged_and_kept(app, client):
    before = counts()
    assert_twiml(post_status(client, sid(44), "delivered"))
    assert added(before) == {"messages": 0, "message_events": 1, "contacts": 0}
    (event,) = events_for(sid(44))
    assert (event.message_id, event.provider, event.status, event.raw_status) == (
        None,
        "twilio",
        "delivered",
        "delivered",
    )


@pytest.mark.parametrize("contact_row", [False, True], ids=["no_contact_row", "contact_not_linked"])
def test_an_opted_out_status_report_opts_the_number_out_even_without_a_contact_link(app, client, contact_row):
    if contact_row:
        db.session.add(Contact(address=PHONE))
        db.session.commit()
    outbound_message("twilio", sid(45))  # contact_id NULL: queued before the number ever wrote to us
    assert_twiml(post_status(client, sid(45), "failed", ErrorCode="21610"))
    contact = contact_of()
    assert contact is not None and contact.opted_out_at is not None


def test_africastalking_delivery_reports_follow_the_same_rules(app, client):
    message = outbound_message("africastalking", "ATXid_out_9")
    path = f"/webhooks/africastalking/{AT_TOKEN}/delivery"
    for status in ("Success", "Sent", "Failed", "Buffered"):
        assert client.post(path, data={"id": "ATXid_out_9", "status": status, "phoneNumber": PHONE}).status_code == 200
    assert reload(message.id).status == "delivered"
    assert [event.raw_status for event in events_for("ATXid_out_9")] == ["Success", "Sent", "Failed", "Buffered"]


# --- the whole road of one SMS: webhook → store → worker → engine → outbox → console sender ------------------------


def work(app) -> None:
    """Run the real worker until the queues are empty (the test's transaction ended first: SQLite's write lock)."""
    db.session.close()
    run_worker(app, burst=True, with_scheduler=False)
    db.session.expire_all()


def inbound_by_sid(message_sid: str) -> Message:
    db.session.expire_all()
    return db.session.scalar(select(Message).where(Message.direction == "in", Message.provider_id == message_sid))


def reply_to(message: Message) -> Message | None:
    message_id = message.id
    db.session.expire_all()
    return db.session.scalar(select(Message).where(Message.reply_to_id == message_id))


def contact_of(address: str = PHONE) -> Contact:
    db.session.expire_all()
    return db.session.scalar(select(Contact).where(Contact.address == address))


def test_an_inbound_sms_is_stored_handled_and_answered_once(app, client, keep_signal_handlers):
    assert_twiml(post_sms(client, "Dumela", sid(51)))
    inbound = inbound_by_sid(sid(51))
    inbound_id = inbound.id
    assert (inbound.status, inbound.text, inbound.address, inbound.channel) == ("received", "Dumela", PHONE, "sms")
    assert handle_jobs() == [f"handle-{inbound_id}"]
    assert outbound_rows() == []  # nothing is answered in the webhook itself

    work(app)

    assert inbound_by_sid(sid(51)).status == "handled"
    (reply,) = outbound_rows()
    assert reply.reply_to_id == inbound_id
    assert reply.text == t("default_reply", "en")
    assert (reply.channel, reply.address, reply.kind) == ("sms", PHONE, "reply")
    assert (reply.status, reply.provider, reply.provider_id) == ("sent", "console", f"console-{reply.id}")
    assert (reply.encoding, reply.segments) == ("GSM-7", 1)
    assert handle_jobs() == [] and get_queue(QUEUE_OUTBOUND).job_ids == []

    # Twilio retries the same webhook after the answer went out: nothing new happens.
    assert_twiml(post_sms(client, "Dumela", sid(51)))
    work(app)
    assert len(outbound_rows()) == 1 and len(inbound_rows()) == 1


def test_stop_opts_out_with_one_confirmation_and_start_opts_back_in(app, client, keep_signal_handlers):
    assert_twiml(post_sms(client, "stop", sid(61)))
    work(app)
    assert contact_of().opted_out_at is not None
    (confirmation,) = outbound_rows()
    assert (confirmation.text, confirmation.status) == (t("opt_out_confirmation", "en"), "sent")
    assert confirmation.reply_to_id == inbound_by_sid(sid(61)).id

    for number, text in ((62, "hello"), (63, "STOP"), (64, "HELP"), (65, "SETSWANA")):
        assert_twiml(post_sms(client, text, sid(number)))
    work(app)
    assert [m.status for m in inbound_rows()] == ["handled"] * 5
    assert len(outbound_rows()) == 1  # nothing at all to an opted-out number: no reply, no second confirmation
    assert contact_of().language is None  # keywords other than START do nothing for an opted-out contact

    assert_twiml(post_sms(client, "START", sid(66)))
    work(app)
    assert contact_of().opted_out_at is None
    assert len(outbound_rows()) == 2
    welcome = reply_to(inbound_by_sid(sid(66)))
    assert (welcome.text, welcome.status) == (t("opt_in_confirmation", "en"), "sent")

    assert_twiml(post_sms(client, "hello", sid(67)))
    work(app)
    assert reply_to(inbound_by_sid(sid(67))).text == t("default_reply", "en")


def test_a_message_queued_before_stop_is_not_sent_after_it(app, client, keep_signal_handlers):
    """A reminder waits in the outbound queue while the person's STOP is handled: it must not go out after STOP."""
    from app.messaging.outbox import queue_outbound

    db.session.add(Contact(address=PHONE))
    db.session.commit()
    reminder_id = queue_outbound(
        channel="sms", address=PHONE, text="Thusa: your appointment is tomorrow at 09:00.", kind="reminder"
    ).id
    db.session.commit()
    assert_twiml(post_sms(client, "STOP", sid(90)))
    db.session.close()
    run_worker(app, (QUEUE_DEFAULT,), burst=True, with_scheduler=False)  # STOP is handled first

    work(app)  # now the reminder's job runs, and the confirmation's

    reminder = reload(reminder_id)
    assert (reminder.status, reminder.error_code, reminder.provider_id) == ("failed", "opted_out", None)
    confirmation = reply_to(inbound_by_sid(sid(90)))
    assert (confirmation.text, confirmation.status) == (t("opt_out_confirmation", "en"), "sent")


def test_start_from_a_contact_that_never_opted_out_is_just_a_message(app, client, keep_signal_handlers):
    assert_twiml(post_sms(client, "START", sid(68)))
    work(app)
    assert reply_to(inbound_by_sid(sid(68))).text == t("default_reply", "en")


@pytest.mark.parametrize("word", ["EMISA", "unsubscribe", " Stop! ", "QUIT"])
def test_every_opt_out_word_opts_out(app, client, keep_signal_handlers, word):
    assert_twiml(post_sms(client, word, sid(69)))
    work(app)
    assert contact_of().opted_out_at is not None
    assert [m.text for m in outbound_rows()] == [t("opt_out_confirmation", "en")]


def test_language_words_switch_the_language_of_the_next_replies(app, client, keep_signal_handlers):
    assert_twiml(post_sms(client, "SETSWANA", sid(71)))
    work(app)
    assert contact_of().language == "tn"
    assert reply_to(inbound_by_sid(sid(71))).text == t("language_set", "tn")

    assert_twiml(post_sms(client, "Dumela", sid(72)))
    work(app)
    reply = reply_to(inbound_by_sid(sid(72)))
    assert reply.text == t("default_reply", "tn") != t("default_reply", "en")
    assert reply.language == "tn"

    assert_twiml(post_sms(client, "english", sid(73)))
    work(app)
    assert contact_of().language == "en"
    assert reply_to(inbound_by_sid(sid(73))).text == t("language_set", "en")
    assert_twiml(post_sms(client, "Dumela", sid(74)))
    work(app)
    assert reply_to(inbound_by_sid(sid(74))).text == t("default_reply", "en")


def test_one_contacts_messages_are_handled_in_order(app, client, keep_signal_handlers):
    """SETSWANA and then a question, both waiting for the worker: the question is answered in Setswana."""
    assert_twiml(post_sms(client, "SETSWANA", sid(75)))
    assert_twiml(post_sms(client, "Ke kopa thuso", sid(76)))
    work(app)
    assert reply_to(inbound_by_sid(sid(75))).text == t("language_set", "tn")
    assert reply_to(inbound_by_sid(sid(76))).text == t("default_reply", "tn")
    assert len(outbound_rows()) == 2  # one reply each, never more


# --- USSD: answered in the response, replay-safe -------------------------------------------------------------------

USSD_PATH = f"/webhooks/africastalking/{AT_TOKEN}/ussd"


def ussd_hop(client, text: str = "", session: str = "ATUid_own_1", token: str = AT_TOKEN, **more):
    fields = {
        "sessionId": session,
        "phoneNumber": PHONE,
        "serviceCode": "*384*2580#",
        "networkCode": "65201",
        "text": text,
        **more,
    }
    return client.post(f"/webhooks/africastalking/{token}/ussd", data=fields)


def test_the_first_ussd_hop_is_answered_in_the_response_and_stored(app, client):
    before = counts()
    response = ussd_hop(client)
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    body = response.get_data(as_text=True)
    assert body.startswith("END ")
    assert body == "END " + t("ussd_patient_none", "en")  # the patient menu: this number has no appointment
    assert len(body) - len("END ") <= 160
    assert added(before) == {"messages": 2, "message_events": 0, "contacts": 1}
    (inbound,) = inbound_rows()
    (screen,) = outbound_rows()
    assert (inbound.channel, inbound.address, inbound.status) == ("ussd", PHONE, "handled")
    assert (screen.reply_to_id, screen.text) == (inbound.id, body)

    replay = ussd_hop(client)
    assert (replay.status_code, replay.mimetype, replay.get_data(as_text=True)) == (200, "text/plain", body)
    assert added(before) == {"messages": 2, "message_events": 0, "contacts": 1}
    assert handle_jobs() == [] and get_queue(QUEUE_OUTBOUND).job_ids == []


def test_a_ussd_screen_is_in_the_contacts_language(app, client):
    db.session.add(Contact(address=PHONE, language="tn"))
    db.session.commit()
    assert ussd_hop(client).get_data(as_text=True) == "END " + t("ussd_patient_none", "tn")


def test_a_ussd_hop_with_a_wrong_token_is_not_found_and_stores_nothing(app, client):
    before = counts()
    assert_error(ussd_hop(client, token="not-the-token"), 404, "not_found")
    assert added(before) == NOTHING


@pytest.mark.both_backends  # concurrent deliveries: row locks on PostgreSQL, the write lock on SQLite
def test_a_ussd_hop_replayed_while_the_first_is_being_answered_gets_the_same_screen(app, monkeypatch):
    """Two deliveries of one hop at once; the first is held in the engine (a flow that takes a moment) until the
    replay has been posted, so the replay reaches the database while the first hop's transaction is open: it
    waits on the hop's row, then gets the stored screen (the engine runs once)."""
    from bots import engine

    original = engine.handle_ussd
    posted = threading.Semaphore(0)
    entered: list[uuid.UUID] = []

    def slow_handle_ussd(message, **session):
        entered.append(message.id)
        posted.acquire(timeout=5)
        posted.acquire(timeout=5)
        time.sleep(0.2)  # the replay's request is on its way to the database
        return original(message, **session)

    monkeypatch.setattr(engine, "handle_ussd", slow_handle_ussd)
    fields = {"sessionId": "ATUid_race", "phoneNumber": PHONE, "serviceCode": "*384*2580#", "text": ""}
    db.session.close()
    barrier = threading.Barrier(2)
    answers: list[tuple[int, str]] = []
    errors: list[BaseException] = []

    def deliver() -> None:
        client = app.test_client()
        try:
            barrier.wait(timeout=10)
            posted.release()
            response = client.post(USSD_PATH, data=fields)
            answers.append((response.status_code, response.get_data(as_text=True)))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=deliver) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert errors == []
    assert len(entered) == 1
    screen_text = "END " + t("ussd_patient_none", "en")
    assert answers == [(200, screen_text), (200, screen_text)]
    (inbound,) = inbound_rows()
    assert inbound.status == "handled"
    (screen,) = outbound_rows()
    assert screen.text == screen_text
    db.session.close()


def test_a_hop_whose_flow_fails_is_kept_as_failed_and_its_effect_rolled_back(app, client, monkeypatch):
    """The hop and its effect commit together: a flow that wrote something, then failed, leaves only the hop,
    marked failed, and the person sees an apology."""
    from bots import engine

    def half_done(message, **session):
        db.session.add(Contact(address="+26771999999"))  # an effect of the flow, before it fails
        db.session.flush()
        raise RuntimeError("the flow broke")

    monkeypatch.setattr(engine, "handle_ussd", half_done)
    before = counts()
    response = ussd_hop(client)

    assert (response.status_code, response.get_data(as_text=True)) == (200, "END " + t("ussd_error", None))
    assert added(before) == {"messages": 1, "message_events": 0, "contacts": 0}
    (inbound,) = inbound_rows()
    assert (inbound.channel, inbound.address, inbound.status) == ("ussd", PHONE, "failed")


def test_the_end_of_session_notification_is_acknowledged_without_a_screen(app, client):
    assert ussd_hop(client).status_code == 200
    before = counts()
    response = client.post(
        USSD_PATH,
        data={
            "sessionId": "ATUid_own_1",
            "phoneNumber": PHONE,
            "status": "Success",
            "input": "",
            "serviceCode": "*384*2580#",
            "networkCode": "65201",
            "durationInMillis": "3012",
            "hopsCount": "1",
        },
    )
    assert response.status_code == 200
    assert not response.get_data(as_text=True).startswith(("CON", "END"))
    assert added(before)["messages"] == 1  # the close event, kept
    assert len(outbound_rows()) == 1  # still only the first hop's screen
    # AT may repeat the notification: acknowledged again, nothing new.
    again = client.post(
        USSD_PATH, data={"sessionId": "ATUid_own_1", "phoneNumber": PHONE, "status": "Success", "input": ""}
    )
    assert again.status_code == 200
    assert added(before)["messages"] == 1


# --- rate limits do not apply to providers ------------------------------------------------------------------------


def test_webhooks_are_exempt_from_the_api_rate_limit(app_factory):
    application = app_factory(**CONFIG, RATELIMIT_DEFAULT="100 per minute")
    with application.app_context():
        client = application.test_client()
        statuses = [post_sms(client, "Ee", sid(10_000 + n)).status_code for n in range(150)]
        assert 429 not in statuses
        assert statuses == [200] * 150
        assert db.session.scalar(select(func.count()).select_from(Message)) == 150
        # The limit is on, and the webhooks did not spend it: the API still has its whole budget for this address.
        api = [client.get("/api/v1/clinics").status_code for _ in range(101)]
        assert 429 not in api[:100]
        assert api[100] == 429
        db.session.remove()
        db.engine.dispose()


def test_sweeper_picks_up_an_inbound_message_whose_job_was_lost(app, client, redis_conn, keep_signal_handlers):
    """Redis lost the handle job after the webhook stored the message: the sweeper enqueues it, it is answered."""
    from sqlalchemy import update

    from bots.sending import STALE_AFTER, sweep

    assert_twiml(post_sms(client, "Dumela", sid(81)))
    redis_conn.flushdb()
    inbound_id = inbound_by_sid(sid(81)).id
    db.session.execute(
        update(Message)
        .where(Message.id == inbound_id)
        .values(created_at=utcnow() - STALE_AFTER - timedelta(seconds=30))
    )
    db.session.commit()

    assert sweep()["requeued"] == 1
    assert handle_jobs() == [f"handle-{inbound_id}"]
    assert sweep()["requeued"] == 0  # its job is pending
    work(app)
    inbound = inbound_by_sid(sid(81))
    assert inbound.status == "handled"
    assert reply_to(inbound).text == t("default_reply", "en")
