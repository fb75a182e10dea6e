"""WhatsApp Cloud API adapter: the real courier payloads, our own cases, and sends against the fake Graph API."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import socket
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from flask import request

from app.messaging.envelopes import Button, Media, OutboundMessage
from bots.channels import whatsapp as whatsapp_module
from bots.channels.base import MalformedPayload, SendError, WebhookRejected
from bots.channels.whatsapp import WhatsAppChannel
from tests.fakes.server import FakeProvider, SilentPort

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "channels"
DATA = json.loads((FIXTURES / "whatsapp_cloud.json").read_text(encoding="utf-8"))
CASES = {case["name"]: case for case in DATA["cases"]}
OUTBOUND = DATA["outbound_api_fixtures"]

APP_SECRET = "fb_app_secret"  # what the fixture signatures were computed with
VERIFY_TOKEN = "fb_webhook_secret"
TOKEN = "EAAGtestAccessToken0123456789abcdefSECRET"
PHONE_NUMBER_ID = "1234567890"
CONFIG = {
    "WHATSAPP_APP_SECRET": APP_SECRET,
    "WHATSAPP_VERIFY_TOKEN": VERIFY_TOKEN,
    "WHATSAPP_TOKEN": TOKEN,
    "WHATSAPP_PHONE_NUMBER_ID": PHONE_NUMBER_ID,
}
SENT_AT = datetime(2016, 1, 30, 1, 57, 9, tzinfo=UTC)  # the fixtures' "1454119029"
SETSWANA = "Ke a leboga, ke tla tla ka Labobedi 🙏🏾"


def sign(body: bytes, secret: str = APP_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def receive(app, body: bytes, headers: dict | None = None, config: dict | None = None):
    """verify() then parse(), as the webhook layer does for POST /webhooks/whatsapp."""
    channel = WhatsAppChannel(CONFIG if config is None else config)
    headers = {"Content-Type": "application/json", "X-Hub-Signature-256": sign(body)} if headers is None else headers
    with app.test_request_context("/webhooks/whatsapp", method="POST", data=body, headers=headers):
        channel.verify(request, "inbound")
        return channel.parse(request, "inbound")


def receive_case(app, name: str):
    case = CASES[name]
    return receive(app, case["body"].encode("utf-8"), case["headers"])


def notification(*entries: dict) -> bytes:
    return json.dumps({"object": "whatsapp_business_account", "entry": list(entries)}, ensure_ascii=False).encode()


def entry(*, messages=(), statuses=(), contacts=(), phone_number_id=PHONE_NUMBER_ID, display="+267 71 000 000"):
    value: dict = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": display, "phone_number_id": phone_number_id},
    }
    if contacts:
        value["contacts"] = list(contacts)
    if messages:
        value["messages"] = list(messages)
    if statuses:
        value["statuses"] = list(statuses)
    return {"id": "WABA1", "changes": [{"field": "messages", "value": value}]}


def text_message(message_id: str, sender: str = "26771234567", text: str = "Hi", timestamp="1454119029") -> dict:
    return {"from": sender, "id": message_id, "timestamp": timestamp, "type": "text", "text": {"body": text}}


def status(message_id: str, word: str, timestamp: str = "1454119029", **more) -> dict:
    return {"id": message_id, "recipient_id": "26771234567", "status": word, "timestamp": timestamp, **more}


# --- the real payloads ----------------------------------------------------------------------------------------

# Our outcome for every courier case. Where courier answers 200 and we do not, the reason is beside the case.
OUTCOMES = {
    "text": "message",
    "image_with_caption": "message",
    "document_with_caption": "message",
    "audio": "message",
    "voice": "message",
    "video": "message",
    "location": "message",
    "template_quick_reply_button": "message",
    "interactive_button_reply": "message",
    "interactive_list_reply": "message",
    "interactive_flow_reply": "message",
    "interactive_flow_reply_non_object": "message",
    "duplicate_message_in_one_payload": "message",
    "text_with_user_id_bsuid": "message",
    "text_invalid_user_id": "message",
    "text_from_bsuid_no_phone": "message",
    "text_bsuid_in_from": "message",
    "group_message": "nothing",
    "unsupported_type_with_errors": "nothing",
    "value_level_errors": "nothing",
    "status_sent": "status",
    "status_failed_with_error": "status",
    "status_unknown_value": "status",  # courier ignores it; we record it unmapped (status=None, raw kept)
    "status_deleted_ignored": "status",  # likewise: recorded with status=None, never moves the message
    # Courier rejects these with an error body but HTTP 200 so Meta stops retrying; we raise MalformedPayload
    # (the layer answers 400): the project rule is that an unreadable payload is a 400, and nothing is stored.
    "invalid_from": "malformed",
    "no_from": "malformed",
    "invalid_timestamp": "malformed",
    "invalid_json": "malformed",
    # Courier answers 200 ("invalid request signature") so Meta gives up; we answer 403 (WebhookRejected), the
    # project rule for every forged webhook, so nothing unauthenticated is parsed and a misconfigured secret
    # shows up as Meta retrying rather than as silently lost messages.
    "invalid_signature": "rejected",
}


def test_every_fixture_case_has_an_expected_outcome():
    assert set(OUTCOMES) == set(CASES)
    assert len(CASES) == 29


@pytest.mark.parametrize("name", sorted(CASES))
def test_fixture_outcome(plain_app, name):
    outcome = OUTCOMES[name]
    if outcome == "rejected":
        with pytest.raises(WebhookRejected) as rejected:
            receive_case(plain_app, name)
        assert rejected.value.status == 403
        return
    if outcome == "malformed":
        with pytest.raises(MalformedPayload):
            receive_case(plain_app, name)
        return
    parsed = receive_case(plain_app, name)
    assert len(parsed.messages) == (1 if outcome == "message" else 0)
    assert len(parsed.statuses) == (1 if outcome == "status" else 0)


@pytest.mark.parametrize("name", sorted(name for name, case in CASES.items() if case["signature"]["mode"] == "valid"))
def test_fixture_signatures_verify_over_the_exact_bytes(plain_app, name):
    case = CASES[name]
    body = case["body"].encode("utf-8")
    channel = WhatsAppChannel(CONFIG)
    with plain_app.test_request_context("/webhooks/whatsapp", method="POST", data=body, headers=case["headers"]):
        channel.verify(request, "inbound")  # no exception
    if case["body"].lstrip().startswith("{"):
        reserialised = json.dumps(json.loads(case["body"])).encode()
        with pytest.raises(WebhookRejected):
            receive(plain_app, reserialised, case["headers"])


MESSAGE_EXPECTATIONS = {
    "text": {"text": "Hello World", "sender_name": "Kerry Fisher", "media": (), "extra": {}},
    "image_with_caption": {
        "text": "Check out my new phone!",
        "media": (Media(content_type="image/jpeg", provider_media_id="id_image"),),
    },
    "document_with_caption": {
        "text": "80skaraokesonglistartist",
        "media": (Media(content_type="application/pdf", provider_media_id="id_document"),),
    },
    "audio": {
        "text": "Check out my new phone!",
        "media": (Media(content_type="image/jpeg", provider_media_id="id_audio"),),
    },
    "voice": {"text": "", "media": (Media(content_type="audio/ogg; codecs=opus", provider_media_id="id_voice"),)},
    "video": {
        "text": "Check out my new phone!",
        "media": (Media(content_type="image/jpeg", provider_media_id="id_video"),),
    },
    "location": {"text": "", "media": (), "extra": {"location": {"latitude": 0.0, "longitude": 1.0}}},
    "template_quick_reply_button": {"text": "No", "extra": {"button_payload": "No-Button-Payload"}},
    "interactive_button_reply": {"text": "Yes", "extra": {"callback_data": "id_button_reply"}},
    "interactive_list_reply": {"text": "Yes", "extra": {"callback_data": "id_list_reply"}},
    "interactive_flow_reply": {
        "text": "Sent",
        "extra": {"flow_response": {"flow_token": "fl0w+t0k3n", "first_name": "Bob", "age": "32"}},
    },
    "interactive_flow_reply_non_object": {"text": "Sent", "extra": {}},
    "duplicate_message_in_one_payload": {"text": "Hello World"},
    "text_with_user_id_bsuid": {"sender": "+5678", "extra": {"user_id": "US.1234"}, "sender_name": "Kerry Fisher"},
    "text_invalid_user_id": {"sender": "+5678", "extra": {}},  # "foo_bar" is no BSUID: dropped
    # Users with a username may come with a BSUID and no phone number: the address is the BSUID as given.
    "text_from_bsuid_no_phone": {"sender": "US.1234", "sender_name": "Kerry Fisher", "extra": {}},
    "text_bsuid_in_from": {"sender": "US.1234", "sender_name": "Kerry Fisher", "extra": {}},
}


@pytest.mark.parametrize("name", sorted(MESSAGE_EXPECTATIONS))
def test_fixture_message_fields(plain_app, name):
    (message,) = receive_case(plain_app, name).messages
    expected = {"sender": "+5678", **MESSAGE_EXPECTATIONS[name]}
    extra = expected.pop("extra", None)
    for field, value in expected.items():
        assert getattr(message, field) == value, field
    if extra is not None:
        assert message.extra == {"phone_number_id": PHONE_NUMBER_ID, **extra}
    assert message.channel == "whatsapp"
    assert message.provider == "whatsapp"
    assert message.provider_id == CASES[name]["expected"]["external_id"]
    assert message.received_at == SENT_AT
    # Our number as the send API names it (replies go from there): the phone number id, not "+250 788 123 200".
    assert message.recipient == PHONE_NUMBER_ID
    assert message.session_event is None


@pytest.mark.parametrize(
    ("name", "word", "normalised", "error_code"),
    [
        ("status_sent", "sent", "sent", None),
        ("status_failed_with_error", "failed", "failed", "131014"),
        ("status_unknown_value", "in_orbit", None, None),
        ("status_deleted_ignored", "deleted", None, None),
    ],
)
def test_fixture_statuses(plain_app, name, word, normalised, error_code):
    (update,) = receive_case(plain_app, name).statuses
    assert update.provider == "whatsapp"
    assert update.provider_id == "external_id"
    assert update.raw_status == word
    assert update.status == normalised
    assert update.error_code == error_code
    assert update.at == SENT_AT
    assert update.opted_out is False


def test_value_level_errors_are_logged_at_warning(plain_app, caplog):
    caplog.set_level(logging.DEBUG, logger="bots.channels.whatsapp")
    assert not receive_case(plain_app, "value_level_errors").messages
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("We were unable to authenticate the app user" in text for text in warnings)


def test_unsupported_message_is_skipped_and_its_error_logged_without_the_body(plain_app, caplog):
    caplog.set_level(logging.DEBUG, logger="bots.channels.whatsapp")
    assert receive_case(plain_app, "unsupported_type_with_errors").messages == []
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("131051" in text for text in warnings)
    assert not any("Hello World" in r.getMessage() for r in caplog.records)


# --- verification GET -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", DATA["verify_cases"], ids=lambda case: case["name"])
def test_fixture_verify_get(plain_app, case):
    channel = WhatsAppChannel({**CONFIG, "WHATSAPP_VERIFY_TOKEN": case["configured_verify_token"]})
    with plain_app.test_request_context(case["path"], method="GET"):
        if case["expected"].get("body_exact") is not None:
            response = channel.verify_subscription(request)
            assert response.status_code == 200
            assert response.get_data(as_text=True) == case["expected"]["body_exact"]
            assert response.mimetype == case["expected"]["response_content_type"]
        else:
            # Courier answers these with 200 and an error JSON; we refuse with 403, the usual answer.
            with pytest.raises(WebhookRejected) as rejected:
                channel.verify_subscription(request)
            assert rejected.value.status == 403


@pytest.mark.parametrize(
    ("configured", "query"),
    [
        ("", "hub.mode=subscribe&hub.verify_token=&hub.challenge=1"),  # unset setting never matches, not even ""
        ("", "hub.mode=subscribe&hub.challenge=1"),
        (VERIFY_TOKEN, f"hub.mode=unsubscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=1"),
        (VERIFY_TOKEN, f"hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}x&hub.challenge=1"),
        (VERIFY_TOKEN, "hub.mode=subscribe&hub.verify_token=%C3%A9&hub.challenge=1"),
    ],
)
def test_verify_get_refusals(plain_app, configured, query):
    channel = WhatsAppChannel({**CONFIG, "WHATSAPP_VERIFY_TOKEN": configured})
    with (
        plain_app.test_request_context(f"/webhooks/whatsapp?{query}", method="GET"),
        pytest.raises(WebhookRejected) as rejected,
    ):
        channel.verify_subscription(request)
    assert rejected.value.status == 403


def test_verify_get_echoes_the_raw_challenge(plain_app):
    channel = WhatsAppChannel(CONFIG)
    query = f"hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=1158201444"
    with plain_app.test_request_context(f"/webhooks/whatsapp?{query}", method="GET"):
        response = channel.verify_subscription(request)
    assert response.get_data() == b"1158201444"
    assert response.headers["Content-Type"].startswith("text/plain")


# --- signatures -----------------------------------------------------------------------------------------------

HELLO = CASES["text"]["body"].encode("utf-8")


@pytest.mark.parametrize(
    ("headers", "config"),
    [
        ({"Content-Type": "application/json"}, CONFIG),  # no header
        ({"X-Hub-Signature-256": ""}, CONFIG),
        ({"X-Hub-Signature-256": sign(HELLO)[7:]}, CONFIG),  # hex without the prefix
        ({"X-Hub-Signature-256": "sha1=" + sign(HELLO)[7:]}, CONFIG),
        ({"X-Hub-Signature-256": sign(HELLO) + "0"}, CONFIG),
        ({"X-Hub-Signature-256": sign(HELLO, "another_secret")}, CONFIG),
        ({"X-Hub-Signature-256": sign(HELLO + b" ")}, CONFIG),  # signed over different bytes
        ({"X-Hub-Signature-256": "sha256=" + "é" * 64}, CONFIG),  # non-ASCII must not crash compare_digest
        ({"X-Hub-Signature-256": sign(HELLO, "")}, {**CONFIG, "WHATSAPP_APP_SECRET": ""}),  # unset secret
        ({"X-Hub-Signature-256": sign(HELLO)}, {k: v for k, v in CONFIG.items() if k != "WHATSAPP_APP_SECRET"}),
    ],
)
def test_forged_or_unsigned_posts_are_rejected(plain_app, headers, config):
    with pytest.raises(WebhookRejected) as rejected:
        receive(plain_app, HELLO, headers, config)
    assert rejected.value.status == 403


def test_tampered_body_is_rejected(plain_app):
    tampered = HELLO.replace(b"Hello World", b"Hello Wor1d")
    with pytest.raises(WebhookRejected):
        receive(plain_app, tampered, CASES["text"]["headers"])


def test_uppercase_hex_signature_is_accepted(plain_app):
    headers = {"X-Hub-Signature-256": "sha256=" + sign(HELLO)[7:].upper()}
    assert receive(plain_app, HELLO, headers).messages[0].text == "Hello World"


def test_a_replayed_post_verifies_again_and_carries_the_same_id(plain_app):
    # Meta's signature has no timestamp: replays are stopped by the layer's (provider, provider_id) dedupe.
    first = receive(plain_app, HELLO, CASES["text"]["headers"]).messages
    second = receive(plain_app, HELLO, CASES["text"]["headers"]).messages
    assert [(m.provider, m.provider_id) for m in first] == [(m.provider, m.provider_id) for m in second]


def test_other_kinds_are_not_served(plain_app):
    channel = WhatsAppChannel(CONFIG)
    with (
        plain_app.test_request_context("/webhooks/whatsapp", method="POST", data=HELLO),
        pytest.raises(WebhookRejected) as rejected,
    ):
        channel.verify(request, "status")
    assert rejected.value.status == 404


# --- our own payloads -----------------------------------------------------------------------------------------


def test_batched_entries_messages_and_statuses(plain_app):
    body = notification(
        entry(
            contacts=[{"profile": {"name": "Mpho"}, "wa_id": "26771234567"}],
            messages=[
                text_message("wamid.A1", text="Ee"),
                text_message("wamid.A2", text="Nnyaa", timestamp="1700000000"),
            ],
            statuses=[status("wamid.OUT1", "sent"), status("wamid.OUT1", "delivered")],
        ),
        entry(
            contacts=[{"profile": {"name": "Kagiso"}, "wa_id": "26772000000"}],
            messages=[text_message("wamid.B1", sender="26772000000", text="2")],
            statuses=[status("wamid.OUT2", "read"), status("wamid.OUT3", "failed", errors=[{"code": 131047}])],
            phone_number_id="999",
            display="15550783881",
        ),
    )
    parsed = receive(plain_app, body)
    assert [(m.provider_id, m.sender, m.text, m.sender_name) for m in parsed.messages] == [
        ("wamid.A1", "+26771234567", "Ee", "Mpho"),
        ("wamid.A2", "+26771234567", "Nnyaa", "Mpho"),
        ("wamid.B1", "+26772000000", "2", "Kagiso"),
    ]
    assert parsed.messages[1].received_at == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
    assert parsed.messages[0].recipient == PHONE_NUMBER_ID
    assert parsed.messages[2].recipient == "999"
    assert parsed.messages[2].extra == {"phone_number_id": "999"}
    assert [(s.provider_id, s.status, s.error_code) for s in parsed.statuses] == [
        ("wamid.OUT1", "sent", None),
        ("wamid.OUT1", "delivered", None),
        ("wamid.OUT2", "read", None),
        ("wamid.OUT3", "failed", "131047"),  # outside the 24-hour window, reported asynchronously
    ]


def test_several_changes_in_one_entry_are_all_read(plain_app):
    first, second = entry(messages=[text_message("wamid.1")]), entry(statuses=[status("wamid.9", "delivered")])
    first["changes"] += second["changes"]
    parsed = receive(plain_app, notification(first))
    assert [m.provider_id for m in parsed.messages] == ["wamid.1"]
    assert [s.provider_id for s in parsed.statuses] == ["wamid.9"]


def test_duplicates_within_one_post_are_returned_once(plain_app):
    body = notification(
        entry(messages=[text_message("wamid.D"), text_message("wamid.D")], statuses=[status("wamid.S", "read")] * 2),
        entry(messages=[text_message("wamid.D")], statuses=[status("wamid.S", "read"), status("wamid.S", "sent")]),
    )
    parsed = receive(plain_app, body)
    assert [m.provider_id for m in parsed.messages] == ["wamid.D"]
    assert [(s.provider_id, s.status) for s in parsed.statuses] == [("wamid.S", "read"), ("wamid.S", "sent")]


@pytest.mark.parametrize("ensure_ascii", [False, True], ids=["utf8", "escaped"])
def test_setswana_and_emoji_text(plain_app, ensure_ascii):
    payload = {
        "object": "whatsapp_business_account",
        "entry": [entry(contacts=[{"profile": {"name": "Lorato Mogotsi 🌍"}, "wa_id": "26771234567"}],
                        messages=[text_message("wamid.TN", text=SETSWANA)])],
    }  # fmt: skip
    body = json.dumps(payload, ensure_ascii=ensure_ascii).encode()
    (message,) = receive(plain_app, body).messages
    assert message.text == SETSWANA
    assert message.sender_name == "Lorato Mogotsi 🌍"


@pytest.mark.parametrize(
    ("timestamp", "expected"),
    [
        ("1454119029", SENT_AT),
        ("1454119029000", SENT_AT),  # milliseconds, which Meta sometimes sends
        (1454119029, SENT_AT),
    ],
)
def test_timestamps(plain_app, timestamp, expected):
    (message,) = receive(plain_app, notification(entry(messages=[text_message("w", timestamp=timestamp)]))).messages
    assert message.received_at == expected


def test_missing_timestamp_means_received_now(plain_app):
    message_json = text_message("w")
    del message_json["timestamp"]
    before = datetime.now(UTC)
    (message,) = receive(plain_app, notification(entry(messages=[message_json]))).messages
    assert before <= message.received_at <= datetime.now(UTC)


@pytest.mark.parametrize("timestamp", ["asdf", "1454119029.5", "-1", "１２３", True, 1.5, "9" * 30])
def test_bad_timestamps_are_malformed(plain_app, timestamp):
    with pytest.raises(MalformedPayload, match="timestamp"):
        receive(plain_app, notification(entry(messages=[text_message("w", timestamp=timestamp)])))


def test_bad_status_timestamp_is_malformed(plain_app):
    with pytest.raises(MalformedPayload, match="timestamp"):
        receive(plain_app, notification(entry(statuses=[status("w", "sent", timestamp="soon")])))


@pytest.mark.parametrize(
    ("message", "text", "media", "extra"),
    [
        (
            {"type": "sticker", "sticker": {"id": "st1", "mime_type": "image/webp", "animated": False}},
            "",
            (Media(content_type="image/webp", provider_media_id="st1"),),
            {},
        ),
        (
            {"type": "image", "image": {"id": "im1", "mime_type": "image/jpeg", "url": "https://lookaside.example/x"}},
            "",
            (Media(content_type="image/jpeg", url="https://lookaside.example/x", provider_media_id="im1"),),
            {},
        ),
        (
            {"type": "document", "document": {"id": "doc1", "mime_type": "application/pdf", "caption": SETSWANA}},
            SETSWANA,
            (Media(content_type="application/pdf", provider_media_id="doc1"),),
            {},
        ),
        (
            {"type": "location", "location": {"latitude": -24.6282, "longitude": 25.9231, "name": "Gaborone"}},
            "",
            (),
            {"location": {"latitude": -24.6282, "longitude": 25.9231}},
        ),
        (
            {
                "type": "interactive",
                "interactive": {"type": "button_reply", "button_reply": {"id": "appt:yes", "title": "Ee"}},
            },
            "Ee",
            (),
            {"callback_data": "appt:yes"},
        ),
        ({"type": "button", "button": {"text": "Nnyaa", "payload": "NO"}}, "Nnyaa", (), {"button_payload": "NO"}),
    ],
)
def test_message_types(plain_app, message, text, media, extra):
    body = notification(
        entry(messages=[{"from": "26771234567", "id": "wamid.T", "timestamp": "1454119029", **message}])
    )
    (parsed,) = receive(plain_app, body).messages
    assert (parsed.text, parsed.media, parsed.extra) == (text, media, {"phone_number_id": PHONE_NUMBER_ID, **extra})


@pytest.mark.parametrize(
    "message",
    [
        {"type": "reaction", "reaction": {"message_id": "wamid.X", "emoji": "👍"}},
        {"type": "contacts", "contacts": [{"name": {"formatted_name": "A"}}]},
        {"type": "system", "system": {"body": "changed number"}},
        {"type": "image", "image": {"caption": "no id"}},
        {"type": "location", "location": {"latitude": "north"}},
        {"type": "interactive", "interactive": {"type": "call_permission_reply", "call_permission_reply": {}}},
        {"type": "text"},
    ],
)
def test_unsupported_messages_are_skipped(plain_app, message):
    body = notification(
        entry(messages=[{"from": "26771234567", "id": "wamid.U", "timestamp": "1454119029", **message}])
    )
    assert receive(plain_app, body).messages == []


def test_changes_of_other_fields_are_ignored(plain_app):
    body = notification(
        {"id": "WABA1", "changes": [{"field": "message_template_status_update", "value": {"event": "APPROVED"}}]}
    )
    parsed = receive(plain_app, body)
    assert parsed.messages == [] and parsed.statuses == []


@pytest.mark.parametrize(
    "body",
    [
        b"[]",
        b'"whatsapp_business_account"',
        b'{"object": "page", "entry": []}',
        b'{"object": "whatsapp_business_account"}',
        b'{"object": "whatsapp_business_account", "entry": {}}',
        b'{"object": "whatsapp_business_account", "entry": ["x"]}',
        b'{"object": "whatsapp_business_account", "entry": [{"changes": [{"field": "messages", "value": []}]}]}',
        b'{"object": "whatsapp_business_account", "entry": [{"changes": [{"value": {"messages": {}}}]}]}',
        b'{"object": "whatsapp_business_account", "entry": [{"changes": [{"value": {"messages": [{"from": "1"}]}}]}]}',
        b'{"object": "whatsapp_business_account", "entry": [{"changes": [{"value": {"statuses": [{"status": "sent"}]}}]}]}',
        b'{"object": "whatsapp_business_account", "entry": [',
        b"\xff\xfe not utf-8",
    ],
)
def test_malformed_payloads(plain_app, body):
    with pytest.raises(MalformedPayload):
        receive(plain_app, body)


def test_an_empty_entry_list_is_nothing(plain_app):
    parsed = receive(plain_app, notification())
    assert parsed.messages == [] and parsed.statuses == []


# --- sending --------------------------------------------------------------------------------------------------


def outbound(**fields) -> OutboundMessage:
    values = {"id": uuid.uuid4(), "channel": "whatsapp", "address": "+250788123123", "text": "Simple Message"}
    return OutboundMessage(**{**values, **fields})


def send(fake: FakeProvider, message: OutboundMessage, **config):
    return WhatsAppChannel({**CONFIG, "WHATSAPP_API_BASE_URL": fake.base_url, **config}).send(message)


def accepted(fake: FakeProvider, wamid: str = "wamid.HBgM") -> FakeProvider:
    return fake.respond(
        200, {"messaging_product": "whatsapp", "contacts": [{"input": "x"}], "messages": [{"id": wamid}]}
    )


def test_send_text(plain_app):
    with FakeProvider() as fake:
        accepted(fake)
        result = send(fake, outbound())
    assert (result.provider, result.provider_id) == ("whatsapp", "wamid.HBgM")
    (request,) = fake.requests
    assert request.method == "POST"
    assert request.path == f"/v21.0/{PHONE_NUMBER_ID}/messages"
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.headers["Content-Type"] == "application/json"
    assert request.json() == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "250788123123",
        "type": "text",
        "text": {"body": "Simple Message"},
    }


def test_send_honours_the_api_version_and_the_fixture_success_answer():
    with FakeProvider() as fake:
        fake.respond(
            OUTBOUND["success"]["http_status"], OUTBOUND["success"]["body"], {"Content-Type": "application/json"}
        )
        result = send(fake, outbound(), WHATSAPP_API_VERSION="v25.0")
    assert result.provider_id == "157b5e14568e8"
    assert fake.requests[0].path == f"/v25.0/{PHONE_NUMBER_ID}/messages"


def test_send_setswana_and_emoji_text():
    with FakeProvider() as fake:
        accepted(fake)
        send(fake, outbound(text=SETSWANA, language="tn", address="whatsapp:+26771234567"))
    body = fake.requests[0].json()
    assert body["text"] == {"body": SETSWANA}
    assert body["to"] == "26771234567"


def test_send_to_a_business_scoped_user_id():
    with FakeProvider() as fake:
        accepted(fake)
        send(fake, outbound(address="US.1234"))
    body = fake.requests[0].json()
    assert body["recipient"] == "US.1234" and "to" not in body


def test_send_reply_buttons():
    buttons = (Button("appt:yes", "Ee"), Button("appt:no", "Nnyaa"), Button("appt:move", "Fetola letsatsi la kopano"))
    with FakeProvider() as fake:
        accepted(fake)
        send(fake, outbound(text="A o tla tla ka Labobedi?", buttons=buttons))
    assert fake.requests[0].json() == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "250788123123",
        "type": "interactive",
        "interactive": {
            "type": "button",
            "body": {"text": "A o tla tla ka Labobedi?"},
            "action": {
                "buttons": [
                    {"type": "reply", "reply": {"id": "appt:yes", "title": "Ee"}},
                    {"type": "reply", "reply": {"id": "appt:no", "title": "Nnyaa"}},
                    # titles are at most 20 characters
                    {"type": "reply", "reply": {"id": "appt:move", "title": "Fetola letsatsi la …"}},
                ]
            },
        },
    }


def test_send_buttons_with_an_image_uses_an_image_header():
    with FakeProvider() as fake:
        accepted(fake)
        send(
            fake, outbound(text="Is this clearer?", buttons=(Button("y", "Yes"),), media_urls=("https://x.test/a.jpg",))
        )
    interactive = fake.requests[0].json()["interactive"]
    assert interactive["header"] == {"type": "image", "image": {"link": "https://x.test/a.jpg"}}


@pytest.mark.parametrize(
    "buttons",
    [
        tuple(Button(str(n), f"Option {n}") for n in range(1, 5)),  # more than 3
        (Button("a", "Appointment on Monday 1"), Button("b", "Appointment on Monday 2")),  # same title once cut
    ],
)
def test_send_buttons_that_do_not_fit_become_a_numbered_list(buttons):
    with FakeProvider() as fake:
        accepted(fake)
        send(fake, outbound(text="Choose:", buttons=buttons))
    body = fake.requests[0].json()
    assert body["type"] == "text"
    options = "\n".join(f"{n}. {button.title}" for n, button in enumerate(buttons, start=1))
    assert body["text"] == {"body": f"Choose:\n\n{options}"}


def test_send_image_matches_the_fixture_shape():
    with FakeProvider() as fake:
        accepted(fake)
        send(fake, outbound(text="image caption", media_urls=("https://foo.bar/image.jpg",)))
    assert fake.requests[0].json() == json.loads(OUTBOUND["image_request_body"])


def test_send_template_matches_the_fixture_shape():
    template = {"name": "revive_issue", "language": "en_US", "variables": ["Chef", "tomorrow"]}
    with FakeProvider() as fake:
        accepted(fake)
        send(fake, outbound(template=template, language="en"))
    assert fake.requests[0].json() == json.loads(OUTBOUND["template_request_body"])


@pytest.mark.parametrize(
    ("language", "template_language", "code"),
    [
        ("en", None, "en"),
        ("tn", None, "en"),  # Meta has no Setswana template language
        ("tn", "tn", "en"),
        ("tn", {"tn": "af", "en": "en_GB"}, "af"),
        ("en", {"tn": "af", "en": "en_GB"}, "en_GB"),
        (None, None, "en"),
    ],
)
def test_send_template_language(language, template_language, code):
    template = {"name": "appointment_reminder", "variables": ["Mpho", "Labobedi 09:00"]}
    if template_language is not None:
        template["language"] = template_language
    with FakeProvider() as fake:
        accepted(fake)
        send(fake, outbound(template=template, language=language))
    sent = fake.requests[0].json()["template"]
    assert sent["language"] == {"policy": "deterministic", "code": code}
    assert sent["components"] == [
        {"type": "body", "parameters": [{"type": "text", "text": "Mpho"}, {"type": "text", "text": "Labobedi 09:00"}]}
    ]


def test_send_template_with_named_parameters_and_the_configured_default_name():
    with FakeProvider() as fake:
        accepted(fake)
        send(fake, outbound(template={"variables": {"name": "Mpho"}}), WHATSAPP_TEMPLATE_REMINDER="reminder_v2")
    sent = fake.requests[0].json()["template"]
    assert sent["name"] == "reminder_v2"
    assert sent["components"] == [
        {"type": "body", "parameters": [{"type": "text", "parameter_name": "name", "text": "Mpho"}]}
    ]


def test_send_template_as_the_outbound_worker_builds_it():
    # bots/sending.py: {"name", "language": <our language>, "variables": {"1": <the text>}}
    text = "Dumela Mpho,\n\nO na le kopano ka Labobedi\tka 09:00.      Ke a leboga 🙏🏾"
    template = {"name": "appointment_reminder", "language": "tn", "variables": {"2": "Gaborone", "1": text}}
    with FakeProvider() as fake:
        accepted(fake)
        send(fake, outbound(template=template, language="tn", text=text))
    assert fake.requests[0].json()["template"] == {
        "name": "appointment_reminder",
        "language": {"policy": "deterministic", "code": "en"},
        "components": [
            {
                "type": "body",
                "parameters": [
                    # Meta refuses parameters with newlines, tabs or more than 4 consecutive spaces
                    {"type": "text", "text": "Dumela Mpho, O na le kopano ka Labobedi ka 09:00.    Ke a leboga 🙏🏾"},
                    {"type": "text", "text": "Gaborone"},
                ],
            }
        ],
    }


def graph_error(code: int, message: str) -> dict:
    return {"error": {"message": message, "type": "OAuthException", "code": code, "fbtrace_id": "AbC"}}


@pytest.mark.parametrize(
    ("http_status", "body", "retryable", "code"),
    [
        (429, json.loads(OUTBOUND["examples"]["http_429"]["body"]), True, "613"),
        (403, json.loads(OUTBOUND["examples"]["pair_rate_limit"]["body"]), True, "131056"),
        (400, graph_error(4, "(#4) Application request limit reached"), True, "4"),
        (400, graph_error(80007, "(#80007) Rate limit issues"), True, "80007"),
        (400, graph_error(130429, "(#130429) Rate limit hit"), True, "130429"),
        (400, graph_error(131048, "(#131048) Spam rate limit hit"), True, "131048"),
        (400, graph_error(133016, "(#133016) Account register deregister rate limit exceeded"), True, "133016"),
        (400, graph_error(131053, "(#131053) Media upload error"), True, "131053"),
        (500, graph_error(131000, "(#131000) Something went wrong"), True, "131000"),
        (503, graph_error(2, "(#2) Service temporarily unavailable"), True, "2"),
        (502, "<html>Bad Gateway</html>", True, "http_502"),
        (400, graph_error(131026, "(#131026) Message undeliverable"), False, "131026"),
        (400, graph_error(100, "(#100) Invalid parameter"), False, "100"),
        (404, "not json", False, "http_404"),
    ],
)
def test_send_error_classes(http_status, body, retryable, code):
    with FakeProvider() as fake:
        fake.respond(http_status, body)
        with pytest.raises(SendError) as error:
            send(fake, outbound())
    assert error.value.retryable is retryable
    assert error.value.code == code
    assert error.value.opted_out is False
    assert len(fake.requests) == 1  # one attempt: no client-side retries, even on 429/5xx


def test_send_policy_block_is_permanent_with_its_title():
    example = OUTBOUND["examples"]["policy_block"]
    with FakeProvider() as fake:
        fake.respond(example["http_status"], json.loads(example["body"]))
        with pytest.raises(SendError) as error:
            send(fake, outbound())
    assert (error.value.retryable, error.value.code) == (False, "368")
    assert "Temporarily blocked for policies violations" in str(error.value)


def test_send_outside_the_24_hour_window_is_not_retryable_and_says_so():
    body = graph_error(131047, "(#131047) Re-engagement message")
    body["error"]["error_data"] = {"messaging_product": "whatsapp", "details": "More than 24 hours have passed"}
    with FakeProvider() as fake:
        fake.respond(400, body)
        with pytest.raises(SendError) as error:
            send(fake, outbound())
    assert (error.value.retryable, error.value.code) == (False, "131047")
    assert "More than 24 hours have passed" in str(error.value)


def test_a_read_timeout_may_have_sent_the_message(monkeypatch):
    # The request reached Meta and its answer came too late: Meta may have taken it, so it must never go again.
    monkeypatch.setattr(whatsapp_module, "TIMEOUT_SECONDS", 0.1)
    with FakeProvider(delay_seconds=0.5) as fake:
        accepted(fake)
        with pytest.raises(SendError) as error:
            send(fake, outbound())
    assert (error.value.maybe_sent, error.value.retryable, error.value.code) == (True, False, "read_timeout")
    assert len(fake.requests) == 1


def test_a_connect_timeout_sent_nothing_and_is_retryable(monkeypatch):
    monkeypatch.setattr(whatsapp_module, "TIMEOUT_SECONDS", 0.2)
    with SilentPort() as silent, pytest.raises(SendError) as error:
        WhatsAppChannel({**CONFIG, "WHATSAPP_API_BASE_URL": silent.base_url}).send(outbound())
    assert (error.value.maybe_sent, error.value.retryable, error.value.code) == (False, True, "timeout")


def test_a_reply_goes_from_the_phone_number_id_the_person_wrote_to():
    with FakeProvider() as fake:
        accepted(fake)
        send(fake, outbound(sender="5550001"))
        assert fake.requests[0].path.endswith("/5550001/messages")


def test_a_sender_that_is_not_a_phone_number_id_is_not_put_in_the_url():
    with FakeProvider() as fake:
        accepted(fake)
        send(fake, outbound(sender="+15550783881"))  # a display number, kept when Meta sent no id
        send(fake, outbound(sender="../../me"))
        assert [r.path.rsplit("/", 2)[-2] for r in fake.requests] == [PHONE_NUMBER_ID, PHONE_NUMBER_ID]


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_send_connection_error_is_retryable():
    channel = WhatsAppChannel({**CONFIG, "WHATSAPP_API_BASE_URL": f"http://127.0.0.1:{closed_port()}"})
    with pytest.raises(SendError) as error:
        channel.send(outbound())
    assert (error.value.retryable, error.value.code) == (True, "connection")


def test_send_timeout_is_bounded():
    assert 0 < whatsapp_module.TIMEOUT_SECONDS <= 10


@pytest.mark.parametrize(
    ("message", "config", "code"),
    [
        (outbound(text=""), {}, "empty_message"),
        (outbound(text="a" * 4097), {}, "too_long"),
        (outbound(template={"variables": ["x"]}), {}, "template_missing"),
        (outbound(), {"WHATSAPP_TOKEN": ""}, "not_configured"),
        (outbound(), {"WHATSAPP_PHONE_NUMBER_ID": ""}, "not_configured"),
    ],
)
def test_messages_whatsapp_cannot_take_fail_before_any_request(message, config, code):
    with FakeProvider() as fake, pytest.raises(SendError) as error:
        send(fake, message, **config)
    assert (error.value.retryable, error.value.code) == (False, code)
    assert fake.requests == []


def test_long_text_with_an_image_goes_as_text():
    with FakeProvider() as fake:
        accepted(fake)
        send(fake, outbound(text="x" * 2000, media_urls=("https://x.test/a.jpg",)))
    assert fake.requests[0].json()["type"] == "text"


def test_a_token_echoed_by_the_api_never_reaches_the_error_message():
    with FakeProvider() as fake:
        fake.respond(401, graph_error(190, f"Malformed access token {TOKEN}"))
        with pytest.raises(SendError) as error:
            send(fake, outbound())
    assert TOKEN not in str(error.value)
    assert (error.value.retryable, error.value.code) == (False, "190")


def test_the_token_never_appears_in_a_log_record(caplog, monkeypatch):
    caplog.set_level(logging.DEBUG)  # the root logger: urllib3's connection and request lines included
    with FakeProvider() as fake:
        accepted(fake)
        send(fake, outbound(text=SETSWANA))
        fake.answers.clear()
        fake.respond(lambda request: (400, graph_error(190, f"Invalid OAuth access token {TOKEN}")))
        with pytest.raises(SendError):
            send(fake, outbound())
    with pytest.raises(SendError):
        WhatsAppChannel({**CONFIG, "WHATSAPP_API_BASE_URL": f"http://127.0.0.1:{closed_port()}"}).send(outbound())
    assert any(record.name.startswith("urllib3") for record in caplog.records)
    for record in caplog.records:
        assert TOKEN not in record.getMessage()
        assert TOKEN not in repr(record.args)
        assert not record.exc_text or TOKEN not in record.exc_text
    # message bodies never at INFO or above
    assert not any(SETSWANA in r.getMessage() for r in caplog.records if r.levelno >= logging.INFO)


def test_registered_and_configured():
    from bots.channels.base import REGISTRY

    assert REGISTRY["whatsapp"] is WhatsAppChannel
    assert WhatsAppChannel.sends == ("whatsapp",)
    assert WhatsAppChannel.is_configured(CONFIG)
    assert not WhatsAppChannel.is_configured({"WHATSAPP_TOKEN": TOKEN})
