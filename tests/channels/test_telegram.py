"""Telegram adapter: every recorded webhook case through verify + parse, and sends through the real
python-telegram-bot client against a fake Bot API on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import pytest
from flask import request

from app.messaging.envelopes import Button, InboundMessage, Media, OutboundMessage
from bots.channels import telegram, telegram_client
from bots.channels.base import MalformedPayload, ParsedWebhook, SendError, WebhookRejected
from bots.channels.telegram import TelegramChannel
from tests.fakes.server import FakeProvider, SilentPort

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "channels"
DATA = json.loads((FIXTURES / "telegram.json").read_text(encoding="utf-8"))
CASES = {case["name"]: case for case in DATA["cases"]}
SYNTHETIC = {case["name"]: case for case in DATA["synthetic_cases"]}

SECRET = "s3cr3t_T0ken-abc"  # the synthetic cases' configured_secret
TOKEN = "123456789:AAF-test_TOKEN-must-never-be-logged"
CONFIG = {"TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_WEBHOOK_SECRET": SECRET}
SETSWANA = "Ke a leboga, ke tla tla ka Labobedi 🙏🏾😊"
LARGEST_PHOTO = "AgADAQADtKcxG4LRUUQSQVUjfJIiiF8G6C8ABA9NJzFdXskaincBAAEC"


def run_webhook(app, body: str | bytes, *, secret: str | None = SECRET, config: dict | None = None,
                content_type: str = "application/json", kind: str = "inbound") -> ParsedWebhook:  # fmt: skip
    """verify + parse, as the webhook layer calls them."""
    headers = {"Content-Type": content_type}
    if secret is not None:
        headers["X-Telegram-Bot-Api-Secret-Token"] = secret
    data = body.encode() if isinstance(body, str) else body
    channel = TelegramChannel(CONFIG if config is None else config)
    with app.test_request_context("/webhooks/telegram", method="POST", data=data, headers=headers,
                                  base_url="https://localhost"):  # fmt: skip
        channel.verify(request, kind)
        return channel.parse(request, kind)


def only_message(parsed: ParsedWebhook) -> InboundMessage:
    assert parsed.statuses == []
    assert len(parsed.messages) == 1
    message = parsed.messages[0]
    assert (message.channel, message.provider) == ("telegram", "telegram")
    return message


def update(payload: dict, update_id: int = 5001) -> str:
    return json.dumps({"update_id": update_id, **payload}, ensure_ascii=False)


def chat_message(**fields) -> dict:
    message = {"message_id": 7, "from": {"id": 3527065, "is_bot": False, "first_name": "Naledi"},
               "chat": {"id": 3527065, "first_name": "Naledi", "type": "private"}, "date": 1735725600}  # fmt: skip
    message.update(fields)
    return {"message": message}


# --- the recorded courier cases ---------------------------------------------------------------------------------

# Our outcome for every courier case. Where it differs from courier's `expected`, the comment says why.
NIC = {"sender": "3527065", "sender_name": "Nic", "from_id": "3527065"}
EXPECTED = {
    "text": {"text": "Hello World"},
    # Courier turns "/start" into a new-conversation event; we keep it as text: the flows read "/start CODE".
    "start_command": {"text": "/start"},
    # Courier picks the largest size under 100 kB (bandwidth); we keep the largest picture for image analysis.
    "photo_with_caption": {"text": "Photo Caption", "media": (Media("image/jpeg", None, LARGEST_PHOTO),)},
    "invalid_json": "malformed",
    # Courier attaches stickers, video, voice and documents; we take only pictures and say what else came.
    "sticker": {"unsupported_media": "sticker"},
    "video": {"unsupported_media": "video"},
    "voice": {"unsupported_media": "voice"},
    "document": {"unsupported_media": "document"},  # an .xls, not a picture
    # Courier makes a geo: attachment (and venue text); we keep the coordinates in extra.
    "location": {"location": {"latitude": -2.890287, "longitude": -79.004333}},
    "venue": {"location": {"latitude": -2.898944, "longitude": -79.006835}},
    # Courier writes the card as text; we keep it structured for the chat-linking check.
    "contact": {"contact": {"phone_number": "0788531373", "user_id": None}},
    "web_app_data_json": {"unsupported_media": "web_app_data"},
    "web_app_data_not_json": {"unsupported_media": "web_app_data"},
    "update_without_message": "ignored",
    # Courier calls getFile while parsing and ignores the update when it fails; we never call the API on the
    # webhook (the file_id is kept and resolved later), so these are plain sticker messages.
    "getfile_unparseable_response": {"unsupported_media": "sticker"},
    "getfile_ok_false": {"unsupported_media": "sticker"},
    "getfile_empty_object": {"unsupported_media": "sticker"},
    "getfile_invalid_json": {"unsupported_media": "sticker"},
    "getfile_error_code": {"unsupported_media": "sticker"},
    "getfile_no_file_path": {"unsupported_media": "sticker"},
}


def test_every_fixture_case_has_an_expectation():
    assert set(EXPECTED) == set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_courier_cases(plain_app, name):
    case, expected = CASES[name], EXPECTED[name]
    # Courier checks no secret: the header is added here, as Telegram sends it once setWebhook has a secret_token.
    if expected == "malformed":
        with pytest.raises(MalformedPayload):
            run_webhook(plain_app, case["body"], content_type=case["content_type"])
        assert case["expected"]["http_status"] == 400
        return
    parsed = run_webhook(plain_app, case["body"], content_type=case["content_type"])
    if expected == "ignored":
        assert parsed == ParsedWebhook()
        return
    message = only_message(parsed)
    body = json.loads(case["body"])
    assert message.provider_id == str(body["update_id"])
    assert (message.sender, message.sender_name, message.extra["from_id"]) == (
        NIC["sender"],
        NIC["sender_name"],
        NIC["from_id"],
    )
    assert message.text == expected.get("text", "")
    assert message.media == expected.get("media", ())
    for key in ("unsupported_media", "location", "contact"):
        assert message.extra.get(key) == expected.get(key)
    if "received_on" in case["expected"]:
        assert message.received_at == datetime.fromisoformat(case["expected"]["received_on"].replace("Z", "+00:00"))
    if case["expected"].get("outcome") == "message" and "text" in case["expected"] and "text" in expected:
        assert message.text == case["expected"]["text"]


def test_synthetic_modern_photo(plain_app):
    case = SYNTHETIC["photo_modern_bot_api_shape"]
    message = only_message(run_webhook(plain_app, case["body"], secret=case["headers"]["X-Telegram-Bot-Api-Secret-Token"],
                                       config={"TELEGRAM_WEBHOOK_SECRET": case["configured_secret"]}))  # fmt: skip
    assert message.text == case["expected"]["text"]
    assert message.media == (Media("image/jpeg", None, case["expected"]["largest_photo_file_id"]),)
    assert f"update_id={message.provider_id}" == case["expected"]["idempotency_key"]


def test_synthetic_secret_ok(plain_app):
    case = SYNTHETIC["secret_token_ok"]
    message = only_message(run_webhook(plain_app, case["body"], secret=case["headers"]["X-Telegram-Bot-Api-Secret-Token"],
                                       config={"TELEGRAM_WEBHOOK_SECRET": case["configured_secret"]}))  # fmt: skip
    assert message.text == case["expected"]["text"]
    assert f"update_id={message.provider_id}" == case["expected"]["idempotency_key"]


@pytest.mark.parametrize("name", ["secret_token_wrong", "secret_token_missing"])
def test_synthetic_secret_rejected(plain_app, name):
    case = SYNTHETIC[name]
    with pytest.raises(WebhookRejected) as raised:
        run_webhook(plain_app, case["body"], secret=case["headers"].get("X-Telegram-Bot-Api-Secret-Token"),
                    config={"TELEGRAM_WEBHOOK_SECRET": case["configured_secret"]})  # fmt: skip
    assert raised.value.status == case["expected"]["http_status"] == 403
    assert case["configured_secret"] not in str(raised.value)


def test_synthetic_duplicate_update_gives_the_same_idempotency_key(plain_app):
    # Storing once is the webhook layer's job: the adapter must give both deliveries the same provider_id.
    case = SYNTHETIC["duplicate_update_id"]
    first = only_message(run_webhook(plain_app, case["body"]))
    again = only_message(run_webhook(plain_app, case["body"]))
    assert first.provider_id == again.provider_id == "174114370"
    assert first == again


def test_every_synthetic_case_is_covered():
    assert set(SYNTHETIC) == {"photo_modern_bot_api_shape", "secret_token_ok", "secret_token_wrong",
                              "secret_token_missing", "duplicate_update_id"}  # fmt: skip


# --- authenticity ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "secret"),
    [
        ({"TELEGRAM_BOT_TOKEN": TOKEN}, SECRET),  # no secret configured: nothing can be authenticated
        ({"TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_WEBHOOK_SECRET": ""}, ""),
        (CONFIG, SECRET.upper()),
        (CONFIG, SECRET + "x"),
        (CONFIG, ""),
        (CONFIG, None),
    ],
    ids=["unset", "empty", "case", "longer", "empty-header", "missing"],
)
def test_forged_updates_are_rejected_before_parsing(plain_app, config, secret):
    with pytest.raises(WebhookRejected) as raised:
        run_webhook(plain_app, "not even json", secret=secret, config=config)
    assert raised.value.status == 403


@pytest.mark.parametrize("kind", ["status", "ussd"])
def test_other_webhook_kinds_do_not_exist(plain_app, kind):
    with pytest.raises(WebhookRejected) as raised:
        run_webhook(plain_app, update(chat_message(text="hi")), kind=kind)
    assert raised.value.status == 404


def test_acknowledge_is_an_empty_200():
    response = TelegramChannel(CONFIG).acknowledge("inbound")
    assert (response.status_code, response.get_data()) == (200, b"")


# --- our own inbound cases ---------------------------------------------------------------------------------------


def test_setswana_and_emoji(plain_app):
    message = only_message(run_webhook(plain_app, update(chat_message(text=SETSWANA))))
    assert message.text == SETSWANA
    assert message.sender_name == "Naledi"
    assert message.received_at == datetime(2025, 1, 1, 10, 0, tzinfo=UTC)


def test_start_with_a_link_code_is_kept_as_text(plain_app):
    message = only_message(run_webhook(plain_app, update(chat_message(text="/start 482913"))))
    assert message.text == "/start 482913"


def test_group_chat_replies_go_to_the_chat(plain_app):
    payload = chat_message(text="Dumela", chat={"id": -1001234567890, "title": "Pharmacists", "type": "supergroup"})
    message = only_message(run_webhook(plain_app, update(payload)))
    assert message.sender == "-1001234567890"
    assert message.extra["from_id"] == "3527065"


def test_photo_picks_the_largest_size_whatever_the_order(plain_app):
    sizes = [
        {"file_id": "mid", "file_unique_id": "u2", "width": 320, "height": 240, "file_size": 9000},
        {"file_id": "big", "file_unique_id": "u3", "width": 1280, "height": 960, "file_size": 99000},
        {"file_id": "small", "file_unique_id": "u1", "width": 90, "height": 67, "file_size": 1200},
    ]
    message = only_message(run_webhook(plain_app, update(chat_message(photo=sizes, caption="Letlalo la me"))))
    assert message.media == (Media(content_type="image/jpeg", provider_media_id="big"),)
    assert message.text == "Letlalo la me"
    assert "unsupported_media" not in message.extra


def test_photo_without_text(plain_app):
    sizes = [{"file_id": "only", "width": 800, "height": 600}]
    message = only_message(run_webhook(plain_app, update(chat_message(photo=sizes))))
    assert (message.text, message.media) == ("", (Media("image/jpeg", None, "only"),))


def test_picture_sent_as_a_file(plain_app):
    document = {"file_name": "rash.png", "mime_type": "image/png", "file_id": "doc-1", "file_unique_id": "d1"}
    message = only_message(run_webhook(plain_app, update(chat_message(document=document))))
    assert message.media == (Media(content_type="image/png", provider_media_id="doc-1"),)


def test_pdf_document_is_not_media(plain_app):
    document = {"file_name": "x.pdf", "mime_type": "application/pdf", "file_id": "doc-2"}
    message = only_message(run_webhook(plain_app, update(chat_message(document=document))))
    assert message.media == ()
    assert message.extra["unsupported_media"] == "document"


def test_own_contact_share_keeps_both_ids(plain_app):
    contact = {"phone_number": "+26771234567", "first_name": "Naledi", "user_id": 3527065}
    message = only_message(run_webhook(plain_app, update(chat_message(contact=contact))))
    assert message.extra["contact"] == {"phone_number": "+26771234567", "user_id": "3527065"}
    assert message.extra["from_id"] == "3527065"
    assert message.text == ""


def test_someone_elses_contact_card(plain_app):
    contact = {"phone_number": "26779999999", "first_name": "Mma Kgosi", "user_id": 999}
    message = only_message(run_webhook(plain_app, update(chat_message(contact=contact))))
    assert message.extra["contact"]["user_id"] != message.extra["from_id"]


def test_button_press(plain_app):
    payload = {
        "callback_query": {
            "id": "4382bfdwdsb323b2d9",
            "from": {"id": 3527065, "is_bot": False, "first_name": "Naledi"},
            "message": {
                "message_id": 90,
                "chat": {"id": 3527065, "type": "private"},
                "date": 1735725600,
                "text": "Will you come on Tuesday?",
            },  # fmt: skip
            "chat_instance": "-8873458734",
            "data": "appt:yes",
        }
    }
    message = only_message(run_webhook(plain_app, update(payload, 777)))
    assert message.provider_id == "777"
    assert (message.sender, message.text, message.sender_name) == ("3527065", "appt:yes", "Naledi")
    assert message.extra == {"callback_data": "appt:yes", "callback_query_id": "4382bfdwdsb323b2d9",
                             "from_id": "3527065"}  # fmt: skip
    assert message.received_at is not None


def test_button_press_in_a_group(plain_app):
    payload = {
        "callback_query": {
            "id": "q2",
            "from": {"id": 3527065, "is_bot": False, "first_name": "Naledi"},
            "message": {"message_id": 91, "chat": {"id": -100777, "type": "supergroup"}, "date": 1},
            "data": "no",
        }
    }
    message = only_message(run_webhook(plain_app, update(payload)))
    assert (message.sender, message.extra["from_id"]) == ("-100777", "3527065")


def test_button_press_on_an_inline_message_answers_the_person(plain_app):
    payload = {"callback_query": {"id": "q3", "from": {"id": 42, "first_name": "Kabo"}, "inline_message_id": "AAA",
                                  "data": "yes"}}  # fmt: skip
    assert only_message(run_webhook(plain_app, update(payload))).sender == "42"


def test_game_button_without_data_is_ignored(plain_app):
    payload = {"callback_query": {"id": "q4", "from": {"id": 42, "first_name": "Kabo"}, "game_short_name": "g"}}
    assert run_webhook(plain_app, update(payload)) == ParsedWebhook()


@pytest.mark.parametrize(
    "payload",
    [
        {"edited_message": chat_message(text="edited")["message"]},
        {"channel_post": {"message_id": 1, "chat": {"id": -1001, "type": "channel"}, "date": 1, "text": "news"}},
        {"my_chat_member": {"chat": {"id": 1, "type": "private"}, "from": {"id": 1}, "date": 1}},
        {"message_reaction": {"chat": {"id": 1, "type": "private"}, "message_id": 1, "date": 1}},
        chat_message(new_chat_members=[{"id": 5, "is_bot": False, "first_name": "Kabo"}]),  # a service message
        chat_message(pinned_message={"message_id": 3, "chat": {"id": 1, "type": "private"}, "date": 1}),
    ],
    ids=["edited_message", "channel_post", "my_chat_member", "message_reaction", "member_joined", "pinned"],
)
def test_updates_the_service_does_not_use_are_ignored(plain_app, payload):
    assert run_webhook(plain_app, update(payload)) == ParsedWebhook()


@pytest.mark.parametrize(
    "body",
    [
        b"\xff\xfe not utf-8",
        "",
        "[1, 2]",
        '"text"',
        '{"message": {"text": "hi"}}',
        '{"update_id": "174114370", "message": {}}',
        '{"update_id": true}',
        '{"update_id": 1, "message": {"message_id": 1, "date": 1, "text": "no chat"}}',
        '{"update_id": 1, "message": {"message_id": 1, "chat": {"id": "12"}, "text": "string chat id"}}',
        '{"update_id": 1, "callback_query": {"id": "q", "data": "yes"}}',
    ],
    ids=[
        "not-utf8",
        "empty",
        "array",
        "string",
        "no-update_id",
        "string-update_id",
        "bool-update_id",
        "no-chat",
        "bad-chat-id",
        "button-without-anyone",
    ],  # fmt: skip
)
def test_malformed_updates(plain_app, body):
    with pytest.raises(MalformedPayload) as raised:
        run_webhook(plain_app, body)
    assert str(raised.value)


def test_odd_field_types_do_not_crash(plain_app):
    payload = chat_message(text=12, caption="caption wins over a non-string text", photo="nope", date="yesterday",
                           document={"mime_type": 5}, contact="x", location={"latitude": "1", "longitude": 2})  # fmt: skip
    message = only_message(run_webhook(plain_app, update(payload)))
    assert message.text == "caption wins over a non-string text"
    assert message.media == ()
    assert message.received_at is not None
    assert "location" not in message.extra and "contact" not in message.extra


def test_registration():
    assert TelegramChannel.name == "telegram"
    assert TelegramChannel.sends == ("telegram",)
    assert TelegramChannel.is_configured({"TELEGRAM_BOT_TOKEN": TOKEN})
    assert not TelegramChannel.is_configured({"TELEGRAM_BOT_TOKEN": ""})
    assert TelegramChannel({}).map_status("delivered") is None


# --- sending through the real python-telegram-bot client ------------------------------------------------------


def sent(chat_id: int | str = 3527065, message_id: int = 7, **fields) -> dict:
    """A Bot API success answer: the Message that was sent."""
    result = {"message_id": message_id, "chat": {"id": int(chat_id), "type": "private"}, "date": 1735725600}
    return {"ok": True, "result": {**result, **fields}}


def failed(code: int, description: str, **extra) -> dict:
    return {"ok": False, "error_code": code, "description": description, **extra}


def outbound(text: str = SETSWANA, address: str = "3527065", **fields) -> OutboundMessage:
    return OutboundMessage(id=uuid.uuid4(), channel="telegram", address=address, text=text, **fields)


@pytest.fixture(autouse=True)
def _fresh_bot_api_loop():
    yield
    telegram.shutdown()


@pytest.fixture
def fake():
    with FakeProvider() as server:
        yield server


@pytest.fixture
def channel(fake) -> TelegramChannel:
    return TelegramChannel({**CONFIG, "TELEGRAM_API_BASE_URL": fake.base_url})


def test_send_text(fake, channel):
    fake.respond(200, sent(message_id=41))
    result = channel.send(outbound())
    assert (result.provider, result.provider_id) == ("telegram", "3527065:41")
    [call] = fake.requests
    assert (call.method, call.path) == ("POST", f"/bot{TOKEN}/sendMessage")
    assert call.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert call.form == {"chat_id": ["3527065"], "text": [SETSWANA]}


def test_send_to_a_group(fake, channel):
    fake.respond(200, sent(chat_id=-1001234567890, message_id=5))
    result = channel.send(outbound("Dumelang", address="-1001234567890"))
    assert result.provider_id == "-1001234567890:5"
    assert fake.requests[0].form["chat_id"] == ["-1001234567890"]


def test_buttons_become_an_inline_keyboard(fake, channel):
    fake.respond(200, sent())
    buttons = (Button("appt:yes", "Ee"), Button("appt:no", "Nnyaa"), Button("appt:later", "Moragonyana"))
    channel.send(outbound("A o tla tla?", buttons=buttons))
    form = fake.requests[0].form
    assert form["text"] == ["A o tla tla?"]
    assert json.loads(form["reply_markup"][0]) == {
        "inline_keyboard": [
            [{"text": "Ee", "callback_data": "appt:yes"}],
            [{"text": "Nnyaa", "callback_data": "appt:no"}],
            [{"text": "Moragonyana", "callback_data": "appt:later"}],
        ]
    }


def test_picture_with_caption_and_buttons(fake, channel):
    fake.respond(200, sent(message_id=9, photo=[{"file_id": "f", "file_unique_id": "u", "width": 1, "height": 1}]))
    url = "https://thusa.example/media/leaflet.jpg"
    result = channel.send(outbound("Leaflet", media_urls=(url,), buttons=(Button("ok", "OK"),)))
    assert result.provider_id == "3527065:9"
    [call] = fake.requests
    assert call.path == f"/bot{TOKEN}/sendPhoto"
    assert call.form["photo"] == [url]
    assert call.form["caption"] == ["Leaflet"]
    assert call.form["chat_id"] == ["3527065"]
    assert json.loads(call.form["reply_markup"][0]) == {"inline_keyboard": [[{"text": "OK", "callback_data": "ok"}]]}


def test_text_too_long_for_a_caption_follows_the_picture(fake, channel):
    fake.respond(200, sent(message_id=10)).respond(200, sent(message_id=11))
    text = "a" * 1025
    result = channel.send(outbound(text, media_urls=("https://thusa.example/a.jpg",), buttons=(Button("ok", "OK"),)))
    assert [call.path.rsplit("/", 1)[1] for call in fake.requests] == ["sendPhoto", "sendMessage"]
    assert "caption" not in fake.requests[0].form and "reply_markup" not in fake.requests[0].form
    assert fake.requests[1].form["text"] == [text]
    assert "reply_markup" in fake.requests[1].form
    assert result.provider_id == "3527065:11"


def test_several_sends_in_a_row_share_one_bot_and_loop(fake, channel):
    # A Bot reused across asyncio.run() calls fails with "Event loop is closed": this is the regression test.
    fake.respond(lambda req: (200, sent(message_id=len(fake.requests))))
    ids = [channel.send(outbound(f"message {n}")).provider_id for n in range(5)]
    assert ids == [f"3527065:{n}" for n in range(1, 6)]
    assert len(telegram_client._clients) == 1
    # A second adapter instance (a new request, a new job) reuses the same Bot.
    TelegramChannel({**CONFIG, "TELEGRAM_API_BASE_URL": fake.base_url}).send(outbound("again"))
    assert len(telegram_client._clients) == 1 and len(fake.requests) == 6


def test_sending_again_after_shutdown(fake, channel):
    fake.respond(200, sent())
    channel.send(outbound("one"))
    telegram.shutdown()
    channel.send(outbound("two"))
    assert [call.form["text"] for call in fake.requests] == [["one"], ["two"]]


def test_sends_from_two_threads_at_once(fake, channel):
    fake.delay_seconds = 0.3  # both requests are in flight together
    fake.respond(lambda req: (200, sent(message_id=int(req.form["text"][0]))))
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda n: channel.send(outbound(str(n))).provider_id, [1, 2]))
    assert results == ["3527065:1", "3527065:2"]
    assert len(telegram_client._clients) == 1


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_gets_its_own_loop(fake, channel):
    fake.respond(200, sent())
    channel.send(outbound("parent"))
    parent_loop = telegram_client._loop
    pid = os.fork()
    if pid == 0:  # the child: must never return into pytest
        code = 1
        try:
            channel.send(outbound("child"))
            code = 0 if telegram_client._loop is not parent_loop else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert [call.form["text"] for call in fake.requests] == [["parent"], ["child"]]
    channel.send(outbound("parent again"))
    assert telegram_client._loop is parent_loop


BLOCKED = (403, failed(403, "Forbidden: bot was blocked by the user"))


@pytest.mark.parametrize(
    ("answer", "retryable", "opted_out", "code"),
    [
        (BLOCKED, False, True, "403"),
        ((403, failed(403, "Forbidden: user is deactivated")), False, True, "403"),
        # courier's outbound "other_error" fixture: a 403 that is not the Bot API's "Forbidden: ..." wording.
        ((403, json.loads(DATA["outbound_api_fixtures"]["other_error"]["body"])), False, False, "403"),
        ((400, failed(400, "Bad Request: chat not found")), False, False, "400"),
        ((429, json.loads(DATA["outbound_api_fixtures"]["throttled"]["body"])), True, False, "429"),
        ((500, failed(500, "Internal Server Error")), True, False, "network"),
        ((502, "<html>Bad Gateway</html>"), True, False, "network"),
        ((401, failed(401, "Unauthorized")), False, False, "401"),
        (
            (
                400,
                failed(
                    400,
                    "Bad Request: group chat was upgraded to a supergroup chat",
                    parameters={"migrate_to_chat_id": -1009},
                ),
            ),
            False,
            False,
            "migrated",
        ),  # fmt: skip
        ((200, "not json"), True, False, "error"),
    ],
    ids=[
        "blocked",
        "deactivated",
        "other-403",
        "chat-not-found",
        "429",
        "500",
        "502",
        "401",
        "migrated",
        "unreadable",
    ],  # fmt: skip
)
def test_send_errors(fake, channel, answer, retryable, opted_out, code):
    fake.respond(*answer)
    with pytest.raises(SendError) as raised:
        channel.send(outbound())
    error = raised.value
    assert (error.retryable, error.opted_out, error.code) == (retryable, opted_out, code)
    assert TOKEN not in str(error)
    assert len(fake.requests) == 1  # one attempt: no client-side retries


def test_retry_after_is_in_the_message(fake, channel):
    fake.respond(429, failed(429, "Too Many Requests: retry after 30", parameters={"retry_after": 30}))
    with pytest.raises(SendError, match="30"):
        channel.send(outbound())


def test_a_read_timeout_may_have_sent_the_message(fake, channel, monkeypatch):
    # The request reached the Bot API and its answer came too late: it may have been sent, so it never goes again.
    monkeypatch.setattr(TelegramChannel, "read_timeout", 0.3)
    fake.delay_seconds = 1.5
    fake.respond(200, sent())
    with pytest.raises(SendError) as raised:
        channel.send(outbound())
    assert (raised.value.maybe_sent, raised.value.retryable, raised.value.code) == (True, False, "read_timeout")
    assert len(fake.requests) == 1


def test_the_whole_call_is_bounded_and_may_have_sent_the_message(fake, channel, monkeypatch):
    monkeypatch.setattr(TelegramChannel, "send_timeout", 0.3)
    fake.delay_seconds = 1.5
    fake.respond(200, sent())
    with pytest.raises(SendError) as raised:
        channel.send(outbound())
    assert (raised.value.maybe_sent, raised.value.retryable, raised.value.code) == (True, False, "read_timeout")


def test_a_connect_timeout_sent_nothing_and_is_retryable(monkeypatch):
    monkeypatch.setattr(TelegramChannel, "connect_timeout", 0.2)
    with SilentPort() as silent, pytest.raises(SendError) as raised:
        TelegramChannel({**CONFIG, "TELEGRAM_API_BASE_URL": silent.base_url}).send(outbound())
    assert (raised.value.maybe_sent, raised.value.retryable, raised.value.code) == (False, True, "timeout")
    assert TOKEN not in str(raised.value)


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_connection_refused_is_retryable():
    channel = TelegramChannel({**CONFIG, "TELEGRAM_API_BASE_URL": closed_port_url()})
    with pytest.raises(SendError) as raised:
        channel.send(outbound())
    assert (raised.value.retryable, raised.value.opted_out, raised.value.code) == (True, False, "network")
    assert TOKEN not in str(raised.value)


def test_nothing_is_sent_without_a_token(fake):
    with pytest.raises(SendError) as raised:
        TelegramChannel({"TELEGRAM_API_BASE_URL": fake.base_url}).send(outbound())
    assert raised.value.retryable is False
    assert fake.requests == []


@pytest.mark.parametrize("button_id", ["", "x" * 65, "é" * 33])
def test_button_ids_telegram_would_refuse(fake, channel, button_id):
    with pytest.raises(SendError) as raised:
        channel.send(outbound(buttons=(Button(button_id, "Go"),)))
    assert (raised.value.retryable, raised.value.code) == (False, "button_data_invalid")
    assert fake.requests == []


def test_the_token_never_reaches_the_logs(fake, channel, caplog, monkeypatch):
    caplog.set_level(logging.DEBUG, logger="telegram")
    caplog.set_level(logging.DEBUG, logger="httpx")
    caplog.set_level(logging.DEBUG, logger="httpcore")
    caplog.set_level(logging.DEBUG, logger="bots.channels.telegram")
    monkeypatch.setattr(TelegramChannel, "read_timeout", 0.3)
    fake.respond(200, sent()).respond(*BLOCKED).respond(500, failed(500, "oops")).respond(
        401, failed(401, "Unauthorized")
    )
    fake.respond(lambda req: (200, sent()))
    errors = []
    channel.send(outbound())
    for _ in range(3):
        with pytest.raises(SendError) as raised:
            channel.send(outbound())
        errors.append(raised.value)
    fake.delay_seconds = 1.0
    with pytest.raises(SendError) as raised:
        channel.send(outbound())
    errors.append(raised.value)
    with pytest.raises(SendError) as raised:
        TelegramChannel({**CONFIG, "TELEGRAM_API_BASE_URL": closed_port_url()}).send(outbound())
    errors.append(raised.value)
    telegram.shutdown()

    messages = [record.getMessage() for record in caplog.records]
    # The loggers did write the URLs (so this proves masking, not silence) ...
    assert any("/bot<token>/sendMessage" in message for message in messages if "HTTP Request" in message)
    assert any("Set Bot API URL" in message for message in messages)
    # ... but never the token, in any form.
    for text in messages + [str(error) for error in errors] + [repr(error) for error in errors]:
        assert TOKEN not in text
        assert quote(TOKEN, safe="") not in text
        assert TOKEN.split(":")[1] not in text


def test_httpx_is_quiet_at_info():
    assert logging.getLogger("httpx").getEffectiveLevel() >= logging.WARNING


def test_no_loop_thread_before_the_first_send(monkeypatch):
    telegram.shutdown()
    assert telegram_client._loop is None
    assert not any(thread.name == "telegram-bot-api" for thread in threading.enumerate())
