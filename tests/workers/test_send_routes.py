"""Where a message goes out, and what a timeout means, with every provider configured at once.

Replies and follow-ups go out through the provider and from the number the person wrote to, never failed over;
first messages (staff SMS, reminders) fail over. A read timeout (the request went out, no answer came) may have
sent the message: it ends ``unknown`` and is never sent again; a connect timeout sent nothing and fails over.

The real twilio, africastalking, requests and python-telegram-bot clients talk to fakes on 127.0.0.1 (Twilio's
held to its OpenAPI description); client timeouts are cut to fractions of a second, and the fakes count requests.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from app.extensions import db
from app.messaging.envelopes import InboundMessage
from app.messaging.inbox import contact_for, store_inbound
from app.messaging.outbox import queue_outbound
from app.models import Message, utcnow
from app.models.message_log import KIND_API
from app.services import skin_advice
from bots.channels import africastalking as at_module
from bots.channels import telegram as telegram_module
from bots.channels import whatsapp as whatsapp_module
from bots.channels.telegram import TelegramChannel
from bots.channels.twilio import TwilioChannel
from bots.engine import handle_message
from bots.sending import AllProvidersFailed, send_message, sweep
from tests.fakes.server import FakeProvider, SilentPort
from tests.workers.conftest import ACCOUNT_SID, AUTH_TOKEN

TWILIO_FROM, TWILIO_WHATSAPP_FROM = "+15005550006", "+14155238886"
WA_TOKEN, WA_PHONE_ID = "EAA" + "x" * 40, "1000000001"
BOT_TOKEN = "123456:" + "A" * 35
PHONE = "+26771234567"
CHAT_ID = "3527065"
ATTEMPTS = 3  # SEND_ATTEMPTS_PER_PROVIDER's default


def at_success(message_id: str = "ATXid_1") -> dict:
    return {"SMSMessageData": {"Message": "Sent to 1/1", "Recipients": [
        {"statusCode": 101, "number": PHONE, "status": "Success", "cost": "BWP 0.2000", "messageId": message_id}]}}  # fmt: skip


def cloud_success(request=None) -> tuple[int, dict]:
    return 200, {"messaging_product": "whatsapp", "messages": [{"id": f"wamid.{uuid.uuid4().hex}"}]}


def telegram_success(request=None) -> tuple[int, dict]:
    return 200, {"ok": True, "result": {"message_id": 7, "date": 1735725600,
                                        "chat": {"id": int(CHAT_ID), "type": "private"}}}  # fmt: skip


@pytest.fixture
def at(clean_env):
    with FakeProvider() as fake:
        fake.respond(200, at_success())
        yield fake


@pytest.fixture
def cloud(clean_env):
    with FakeProvider() as fake:
        fake.respond(cloud_success)
        yield fake


@pytest.fixture
def bot_api(clean_env):
    with FakeProvider() as fake:
        fake.respond(telegram_success)
        yield fake
    telegram_module.shutdown()


@pytest.fixture
def configure(app_for_fakes, twilio, at, cloud, bot_api):
    """The app with Twilio (SMS and WhatsApp), Africa's Talking, WhatsApp Cloud and Telegram all configured."""
    entered = []

    def make(**overrides):
        settings = {
            "TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN, "TWILIO_FROM": TWILIO_FROM,
            "TWILIO_WHATSAPP_FROM": TWILIO_WHATSAPP_FROM, "TWILIO_WHATSAPP_CONTENT_SID": "",
            "TWILIO_API_BASE_URL": twilio.base_url,
            "AT_USERNAME": "thusa", "AT_API_KEY": "atsk_key", "AT_SENDER_ID": "THUSA", "AT_API_BASE_URL": at.base_url,
            "WHATSAPP_TOKEN": WA_TOKEN, "WHATSAPP_PHONE_NUMBER_ID": WA_PHONE_ID, "WHATSAPP_TEMPLATE_REMINDER": "",
            "WHATSAPP_API_BASE_URL": cloud.base_url, "WHATSAPP_API_VERSION": "v21.0",
            "TELEGRAM_BOT_TOKEN": BOT_TOKEN, "TELEGRAM_API_BASE_URL": bot_api.base_url,
            "PUBLIC_BASE_URL": "", "SMS_PROVIDERS": ["twilio", "africastalking"], "SEND_RETRY_BACKOFF_SECONDS": "0",
        }  # fmt: skip
        application = app_for_fakes(**{**settings, **overrides})
        context = application.app_context()
        context.push()
        entered.append(context)
        return application

    yield make
    for context in reversed(entered):
        db.session.remove()
        context.pop()


@pytest.fixture
def app(configure):
    return configure()


def wrote(text: str, *, provider: str, to: str | None, channel: str = "sms", sender: str = PHONE) -> uuid.UUID:
    """The person's message, stored as the webhook layer stores it; the id of the engine's reply to it."""
    message, _ = store_inbound(InboundMessage(channel=channel, provider=provider, provider_id=uuid.uuid4().hex,
                                              sender=sender, text=text, recipient=to, received_at=utcnow()))  # fmt: skip
    db.session.commit()
    handle_message(str(message.id))
    return db.session.scalar(select(Message.id).where(Message.reply_to_id == message.id))


def row(message_id: uuid.UUID) -> Message:
    db.session.expire_all()
    return db.session.get(Message, message_id)


def first_message(channel: str = "sms", address: str = PHONE) -> uuid.UUID:
    """A message that answers nothing (staff SMS through the API): the first of a conversation."""
    message = queue_outbound(channel=channel, address=address, text="Your results are ready.", kind=KIND_API)
    db.session.commit()
    return message.id


def cloud_sender(fake: FakeProvider) -> list[str]:
    return [request.path.split("/")[-2] for request in fake.requests]


# --- replies go out where the person wrote ----------------------------------------------------------------------


def test_a_whatsapp_reply_goes_out_on_the_cloud_number_the_person_wrote_to_not_twilios(app, twilio, cloud):
    reply = wrote("Dumela", provider="whatsapp", to="1000000002", channel="whatsapp")  # a second Cloud number

    assert (row(reply).pinned_provider, row(reply).our_address) == ("whatsapp", "1000000002")
    assert send_message(str(reply)) == "sent"
    assert twilio.requests == []  # Twilio comes first in the WhatsApp order: before, the reply went there
    assert cloud_sender(cloud) == ["1000000002"]
    assert cloud.requests[0].json()["type"] == "text"  # free text: that number's 24-hour window is open


def test_a_whatsapp_reply_to_the_twilio_number_goes_out_from_that_number(app, twilio, cloud):
    reply = wrote("Dumela", provider="twilio", to="+14155238899", channel="whatsapp")

    assert send_message(str(reply)) == "sent"
    assert cloud.requests == []
    assert twilio.created[0]["From"] == "whatsapp:+14155238899"  # not TWILIO_WHATSAPP_FROM


def test_an_sms_reply_goes_out_through_africastalking_from_the_short_code_written_to(app, twilio, at):
    reply = wrote("HELP", provider="africastalking", to="21512")

    assert send_message(str(reply)) == "sent"
    assert twilio.requests == []  # Twilio comes first in SMS_PROVIDERS
    assert at.requests[0].form["from"] == ["21512"]  # not AT_SENDER_ID
    assert row(reply).provider == "africastalking"


def test_an_sms_reply_to_a_twilio_number_goes_from_that_number(configure, twilio, at):
    configure(SMS_PROVIDERS=["africastalking", "twilio"])
    reply = wrote("HELP", provider="twilio", to="+15005550010")

    assert send_message(str(reply)) == "sent"
    assert at.requests == []
    assert twilio.created[0]["From"] == "+15005550010"


def test_a_failing_provider_is_retried_but_a_reply_never_fails_over(app, twilio, at):
    at.answers.clear()
    at.respond(500, {"error": "down"})
    reply = wrote("HELP", provider="africastalking", to="21512")

    with pytest.raises(AllProvidersFailed, match="africastalking .where the person wrote"):
        send_message(str(reply))
    assert len(at.requests) == ATTEMPTS
    assert twilio.requests == []  # before, the reply went out through Twilio's number
    assert row(reply).status == "queued"  # RQ retries it, on Africa's Talking again


def test_a_reply_whose_provider_is_no_longer_configured_fails_instead_of_going_from_another_number(
    configure, twilio, at
):
    configure(AT_USERNAME="", AT_API_KEY="")
    reply = wrote("HELP", provider="africastalking", to="21512")

    assert send_message(str(reply)) == "failed"
    assert row(reply).error_code == "route_unavailable"
    assert "africastalking" in row(reply).last_error
    assert twilio.requests == [] and at.requests == []


def test_a_first_message_still_fails_over(app, twilio, at):
    for _ in range(ATTEMPTS):
        twilio.fail(500)
    message_id = first_message()

    assert send_message(str(message_id)) == "sent"
    assert (len(twilio.requests), len(at.requests)) == (ATTEMPTS, 1)


def test_a_first_whatsapp_message_in_the_window_goes_from_the_number_the_person_last_wrote_to(app, twilio, cloud):
    wrote("Dumela", provider="whatsapp", to="1000000002", channel="whatsapp")
    message_id = first_message("whatsapp")

    assert send_message(str(message_id)) == "sent"
    assert twilio.requests == []  # Twilio's number has no open window: its free text would be refused
    assert cloud_sender(cloud)[-1] == "1000000002"


def test_a_follow_up_goes_where_the_person_last_wrote(app, twilio, cloud):
    wrote("Dumela", provider="twilio", to="+14155238886", channel="whatsapp", sender="+26772000000")
    wrote("Dumela", provider="whatsapp", to="1000000002", channel="whatsapp", sender="+26772000000")
    message = queue_outbound(channel="whatsapp", address="+26772000000", text="Later", in_conversation=True)
    db.session.commit()

    assert (message.pinned_provider, message.our_address) == ("whatsapp", "1000000002")
    sent_before = len(twilio.requests)
    assert send_message(str(message.id)) == "sent"
    assert len(twilio.requests) == sent_before
    assert cloud_sender(cloud)[-1] == "1000000002"


def test_a_skin_consultations_result_follows_the_conversation(app, twilio, cloud):
    wrote("photo", provider="whatsapp", to="1000000002", channel="whatsapp")
    contact = contact_for(PHONE)
    contact.language = "en"
    consultation = SimpleNamespace(id=uuid.uuid4(), channel="whatsapp", contact_id=contact.id, user_id=None)
    skin_advice.queue_reply(consultation, SimpleNamespace(advice="Triage: see a clinic."))
    db.session.commit()

    result = db.session.scalar(select(Message).where(Message.dedupe_key == f"skin-reply:{consultation.id}:0"))
    assert (result.pinned_provider, result.our_address) == ("whatsapp", "1000000002")


# --- timeouts: a read timeout may have sent the message ----------------------------------------------------------


def _twilio_slow(monkeypatch, twilio, *_):
    monkeypatch.setattr(TwilioChannel, "timeout_seconds", 0.2)
    twilio.slow(0.5)


def _at_slow(monkeypatch, _twilio, at, *_):
    monkeypatch.setattr(at_module, "SEND_TIMEOUT", (1.0, 0.2))
    at.delay_seconds = 0.5


def _cloud_slow(monkeypatch, _twilio, _at, cloud, _bot):
    monkeypatch.setattr(whatsapp_module, "TIMEOUT_SECONDS", 0.2)
    cloud.delay_seconds = 0.5


def _telegram_slow(monkeypatch, _twilio, _at, _cloud, bot_api):
    monkeypatch.setattr(TelegramChannel, "read_timeout", 0.2)
    bot_api.delay_seconds = 0.5


@pytest.mark.parametrize(
    ("slow", "settings", "channel", "address", "reached", "others"),
    [
        pytest.param(_twilio_slow, {}, "sms", PHONE, 0, (1,), id="twilio-sms"),
        pytest.param(_twilio_slow, {"WHATSAPP_TOKEN": ""}, "whatsapp", PHONE, 0, (1, 2), id="twilio-whatsapp"),
        pytest.param(_at_slow, {"SMS_PROVIDERS": ["africastalking", "twilio"]}, "sms", PHONE, 1, (0,), id="at"),
        pytest.param(_cloud_slow, {"TWILIO_WHATSAPP_FROM": ""}, "whatsapp", PHONE, 2, (0, 1), id="whatsapp-cloud"),
        pytest.param(_telegram_slow, {}, "telegram", CHAT_ID, 3, (0, 1, 2), id="telegram"),
    ],
)
def test_a_read_timeout_leaves_the_message_unknown_sent_once_and_never_again(
    configure, client_factory, monkeypatch, twilio, at, cloud, bot_api, slow, settings, channel, address, reached,
    others,
):  # fmt: skip
    app = configure(**settings)
    fakes = (twilio, at, cloud, bot_api)
    slow(monkeypatch, *fakes)
    if channel == "whatsapp":
        contact_for(address).last_whatsapp_inbound_at = utcnow() - timedelta(hours=1)  # inside the window
    message_id = first_message(channel, address)

    assert send_message(str(message_id)) == "unknown"
    assert len(fakes[reached].requests) == 1  # exactly one request reached the provider ...
    assert all(fakes[other].requests == [] for other in others)  # ... and none failed over
    message = row(message_id)
    assert message.error_code == "read_timeout"
    assert send_message(str(message_id)) == "unknown"  # a second job does not send it again
    sweep()
    assert send_message(str(message_id)) == "unknown"
    assert len(fakes[reached].requests) == 1
    assert client_factory(app).get("/readyz").get_json()["detail"]["outbound_unknown"] == 1


@pytest.fixture
def client_factory():
    return lambda application: application.test_client()


def test_a_connect_timeout_sent_nothing_and_fails_over(configure, monkeypatch, twilio, at):
    monkeypatch.setattr(TwilioChannel, "timeout_seconds", 0.2)
    with SilentPort() as silent:
        configure(TWILIO_API_BASE_URL=silent.base_url)
        message_id = first_message()
        assert send_message(str(message_id)) == "sent"
    assert twilio.requests == []
    assert len(at.requests) == 1
    assert row(message_id).provider == "africastalking"
