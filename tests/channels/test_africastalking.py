"""Africa's Talking adapter: real captured payloads through verify + parse, and sends through the real SDK.

Webhook cases come from ``tests/fixtures/channels/africastalking_{sms,ussd}.json``; their ``expected`` describes
courier, and where we deliberately differ the table below says so. Outbound tests drive the ``africastalking``
SDK against ``tests/fakes/server.py`` on 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import socket
import uuid
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

import pytest

from app.messaging.envelopes import OutboundMessage
from bots.channels import africastalking as at_module
from bots.channels.africastalking import AfricasTalkingChannel
from bots.channels.base import MalformedPayload, ParsedWebhook, SendError, WebhookRejected
from tests.fakes.server import FakeProvider, SilentPort

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "channels"
SMS_FILE = json.loads((FIXTURES / "africastalking_sms.json").read_text())
USSD_FILE = json.loads((FIXTURES / "africastalking_ussd.json").read_text())

TOKEN = "s3cr3t-path-token-Qx7"
API_KEY = "atsk_live_key_0123456789abcdef"
CONFIG = {"AT_USERNAME": "thusa", "AT_API_KEY": API_KEY, "AT_WEBHOOK_TOKEN": TOKEN, "AT_SENDER_ID": "THUSA"}
FORM = "application/x-www-form-urlencoded"
SEGMENT = {"inbound": "sms", "status": "delivery", "ussd": "ussd"}


def adapter(**overrides) -> AfricasTalkingChannel:
    return AfricasTalkingChannel({**CONFIG, **overrides})


def receive(app, kind: str, body: str | bytes, *, token: str = TOKEN, config: dict | None = None,
            content_type: str = FORM, headers: dict | None = None) -> ParsedWebhook:  # fmt: skip
    """verify + parse, the way the webhook layer calls them."""
    channel = AfricasTalkingChannel(config if config is not None else CONFIG)
    data = body.encode() if isinstance(body, str) else body
    path = f"/webhooks/africastalking/{token}/{SEGMENT[kind]}"
    with app.test_request_context(path, method="POST", data=data, content_type=content_type,
                                  headers=headers or {}):  # fmt: skip
        from flask import request

        channel.verify(request, kind)
        return channel.parse(request, kind)


# --- SMS and delivery reports: every fixture case -----------------------------------------------------------

# What OUR adapter does with each captured case (courier's behaviour is in the fixture's ``expected``).
SMS_OUTCOMES = {
    "sms_receive_text_iso_date": {"text": "Msg", "sender": "+254791541111"},
    "sms_receive_text_space_date": {"text": "Msg", "sender": "+254791541111"},
    "sms_receive_garbage_body": {"malformed": ["id", "from"]},
    # Courier 400s a missing text; an SMS with no text is still a message from a person, so we keep it.
    "sms_receive_missing_text": {"text": "", "sender": "+254791541111"},
    # Courier 400s an alphanumeric sender; a network's own sender ("MTN") is kept as it is.
    "sms_receive_alphanumeric_from": {"text": "Msg", "sender": "MTN"},
    "sms_receive_bad_date": {"malformed": "invalid date format"},
    # Courier 400s an unknown status; we record it with status None so that AT does not retry it forever.
    "dlr_unknown_status": {"status": None, "raw": "Borked"},
    # Courier 400s a missing status; we answer 200 with nothing stored (the layer acknowledges an empty parse).
    "dlr_missing_status": {"empty": True},
    "dlr_success": {"status": "delivered", "raw": "Success"},
    "dlr_expired": {"status": "failed", "raw": "Expired"},
}


def sms_kind(case: dict) -> str:
    return "inbound" if "/receive/" in case["path"] else "status"


def test_every_sms_fixture_case_has_an_outcome():
    assert {case["name"] for case in SMS_FILE["cases"]} == set(SMS_OUTCOMES)


@pytest.mark.parametrize("case", SMS_FILE["cases"], ids=lambda c: c["name"])
def test_sms_fixture_case(plain_app, case):
    outcome = SMS_OUTCOMES[case["name"]]
    kind = sms_kind(case)
    if "malformed" in outcome:
        with pytest.raises(MalformedPayload) as error:
            receive(plain_app, kind, case["body"], headers=case["headers"])
        if isinstance(outcome["malformed"], list):
            assert error.value.details["missing"] == outcome["malformed"]
            assert all(name in str(error.value) for name in outcome["malformed"])
        else:
            assert outcome["malformed"] in str(error.value)
        return
    parsed = receive(plain_app, kind, case["body"], headers=case["headers"])
    if outcome.get("empty"):
        assert parsed == ParsedWebhook()
    elif kind == "inbound":
        assert parsed.statuses == []
        (message,) = parsed.messages
        expected = case["expected"]
        assert message.channel == "sms" and message.provider == "africastalking"
        assert message.provider_id == "ec9adc86-51d5-4bc8-8eb0-d8ab0bb53dc3"
        assert (message.text, message.sender) == (outcome["text"], outcome["sender"])
        assert message.recipient == "21512"
        assert message.received_at == datetime(2017, 5, 3, 6, 4, 45, tzinfo=UTC)
        assert message.extra == {"link_id": "03090445075804249226"}
        if "urn" in expected:  # courier's tel: URN is our E.164 sender
            assert expected["urn"] == f"tel:{message.sender}"
    else:
        assert parsed.messages == []
        (status,) = parsed.statuses
        assert status.provider_id == "ATXid_dda018a640edfcc5d2ce455de3e4a6e7"
        assert (status.status, status.raw_status) == (outcome["status"], outcome["raw"])
        assert status.opted_out is False and status.error_code is None


@pytest.mark.parametrize("case", SMS_FILE["cases"] + USSD_FILE["cases"], ids=lambda c: c["name"])
@pytest.mark.parametrize(
    "token, config",
    [
        pytest.param("wrong-token", CONFIG, id="wrong_token"),
        pytest.param(TOKEN[:-1], CONFIG, id="token_prefix"),
        pytest.param(TOKEN + "x", CONFIG, id="token_longer"),
        pytest.param(TOKEN, {**CONFIG, "AT_WEBHOOK_TOKEN": ""}, id="setting_missing"),
        pytest.param(TOKEN, {k: v for k, v in CONFIG.items() if k != "AT_WEBHOOK_TOKEN"}, id="setting_absent"),
    ],
)
def test_every_fixture_case_is_rejected_with_404_without_the_right_token(plain_app, case, token, config):
    kind = sms_kind(case) if "path" in case else "ussd"
    with pytest.raises(WebhookRejected) as error:
        receive(plain_app, kind, case["body"], token=token, config=config, headers=case["headers"])
    assert error.value.status == 404
    assert TOKEN not in str(error.value)


# --- SMS: our own cases ---------------------------------------------------------------------------------------


def sms_body(**fields) -> str:
    base = {"linkId": "1", "text": "Msg", "to": "21512", "id": "ATXid_in_1", "date": "2025-09-29 12:00:00",
            "from": "+26771234567"}  # fmt: skip
    base.update(fields)
    return urlencode({k: v for k, v in base.items() if v is not None})


@pytest.mark.parametrize(
    "text",
    ["Ke a leboga, ke tla tla ka Labobedi", "Dumela 👋🏾 ke a leboga 🙏", "Ɛyɛ ma wo ahoɔden", "1*2 # & = + %"],
    ids=["setswana", "emoji", "twi", "form_specials"],
)
def test_inbound_text_arrives_exactly(plain_app, text):
    (message,) = receive(plain_app, "inbound", sms_body(text=text)).messages
    assert message.text == text


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("2017-05-03T06:04:45Z", datetime(2017, 5, 3, 6, 4, 45, tzinfo=UTC)),
        ("2017-05-03 06:04:45", datetime(2017, 5, 3, 6, 4, 45, tzinfo=UTC)),
        ("2017-05-03T06:04:45", datetime(2017, 5, 3, 6, 4, 45, tzinfo=UTC)),
        ("2017-05-03 06:04:45.250", datetime(2017, 5, 3, 6, 4, 45, 250000, tzinfo=UTC)),
    ],
)
def test_both_date_formats_are_utc(plain_app, raw, expected):
    (message,) = receive(plain_app, "inbound", sms_body(date=raw)).messages
    assert message.received_at == expected


def test_missing_date_means_now(plain_app):
    before = datetime.now(UTC)
    (message,) = receive(plain_app, "inbound", sms_body(date=None)).messages
    assert before <= message.received_at <= datetime.now(UTC)


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("+26771234567", "+26771234567"),
        ("26771234567", "+26771234567"),  # some gateways drop the "+"
        (" 233241234567", "+233241234567"),  # a "+" sent unencoded decodes to a space
        ("MTN", "MTN"),
        ("Info-Sms", "Info-Sms"),
        ("21512", "21512"),  # a short code is not a phone number
        ("1", "1"),
    ],
)
def test_sender_is_e164_when_it_is_a_number(plain_app, raw, expected):
    (message,) = receive(plain_app, "inbound", sms_body(**{"from": raw})).messages
    assert message.sender == expected


@pytest.mark.parametrize("missing", [["id"], ["from"], ["id", "from"]])
def test_inbound_without_id_or_from_is_malformed(plain_app, missing):
    with pytest.raises(MalformedPayload) as error:
        receive(plain_app, "inbound", sms_body(**dict.fromkeys(missing)))
    assert error.value.details == {"missing": missing}


def test_network_code_is_kept_when_sent(plain_app):
    (message,) = receive(plain_app, "inbound", sms_body(networkCode="65201")).messages
    assert message.extra == {"link_id": "1", "network_code": "65201"}


def test_replayed_inbound_sms_has_the_same_provider_id(plain_app):
    first = receive(plain_app, "inbound", sms_body()).messages[0]
    again = receive(plain_app, "inbound", sms_body()).messages[0]
    assert first.provider_id == again.provider_id == "ATXid_in_1"


# --- delivery reports -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("Success", "delivered"),
        ("Sent", "sent"),
        ("Submitted", "sent"),
        ("Buffered", "sent"),
        ("Rejected", "failed"),
        ("Failed", "failed"),
        ("Expired", "failed"),
        ("Borked", None),
        ("success", None),  # AT's words are capitalised; anything else is unknown, kept raw
        ("Queued", None),
    ],
)
def test_delivery_status_table(plain_app, raw, expected):
    body = urlencode({"id": "ATXid_1", "status": raw, "phoneNumber": "+26771234567", "networkCode": "65201",
                      "retryCount": "0"})  # fmt: skip
    (status,) = receive(plain_app, "status", body).statuses
    assert (status.provider, status.provider_id, status.status, status.raw_status) == (
        "africastalking", "ATXid_1", expected, raw,
    )  # fmt: skip


@pytest.mark.parametrize(
    "reason, opted_out",
    [
        ("UserInBlackList", True),
        ("UserInBlacklist", True),
        ("DoNotDisturbRejection", True),
        ("InsufficientCredit", False),
        ("UserIsInactive", False),
        ("DeliveryFailure", False),
    ],
)
def test_failure_reason_is_the_error_code_and_blacklist_opts_out(plain_app, reason, opted_out):
    body = urlencode({"id": "ATXid_1", "status": "Rejected", "failureReason": reason})
    (status,) = receive(plain_app, "status", body).statuses
    assert (status.status, status.error_code, status.opted_out) == ("failed", reason, opted_out)


@pytest.mark.parametrize("body", ["status=Success", "id=ATXid_1", "id=&status=Success", "", "garbage"])
def test_delivery_report_without_id_or_status_is_ignored(plain_app, body):
    assert receive(plain_app, "status", body) == ParsedWebhook()


# --- USSD -----------------------------------------------------------------------------------------------------

USSD_SESSION = "ATUid_7c898d72eb11f723ed8ea05ef232f279"


def hop_id(history: str, sender: str = "+254739495441") -> str:
    """Keyed by the app's secret and the phone (bots/channels/africastalking.py ``hop_digest``)."""
    key = CONFIG.get("SECRET_KEY", "").encode()
    digest = hmac.new(key, (sender + "\n" + history).encode(), hashlib.sha256).hexdigest()[:40]
    return f"{USSD_SESSION}:{digest}"


def test_every_ussd_fixture_case_is_covered():
    assert {case["name"] for case in USSD_FILE["cases"]} == {
        "dial_first_request", "second_hop_option_1", "third_hop_history_joined_with_star",
        "free_text_input_with_spaces", "input_containing_star_is_ambiguous", "end_of_session_notification_failed",
    }  # fmt: skip


@pytest.mark.parametrize("case", USSD_FILE["cases"], ids=lambda c: c["name"])
def test_ussd_fixture_case(plain_app, case):
    (message,) = receive(plain_app, "ussd", case["body"], content_type=case["content_type"],
                         headers=case["headers"]).messages  # fmt: skip
    assert (message.channel, message.provider, message.session_id) == ("ussd", "africastalking", USSD_SESSION)
    assert message.sender == "+254739495441"
    assert message.extra["service_code"] == "*384*44135#"
    assert message.extra["network_code"] == "99999"
    expected = case["expected"]
    if case["name"] == "end_of_session_notification_failed":
        # AT's end-of-session notification, should its URL be pointed here: a close event, never a new session.
        assert message.session_event == "close"
        assert message.provider_id == f"{USSD_SESSION}:end"
        assert message.extra["ussd_history"] == "1"
        assert message.extra["status"] == "Failed" and message.extra["error_message"] == "timeout"
        return
    history = "*".join(expected.get("history", [])) if "history" in expected else "1*2*5*0"
    assert message.extra["ussd_history"] == history
    assert message.provider_id == hop_id(history)
    if history == "":
        assert (message.session_event, message.text) == ("new", "")
        assert expected["latest_input"] is None
    else:
        assert message.session_event == "resume"
        # Best effort: the last "*"-separated piece (for "1*2*5*0" the user may have typed "5*0" at one prompt;
        # flows read input from their stored state and the full history, never from this).
        assert message.text == expected.get("latest_input", "0")


def ussd_body(**fields) -> str:
    base = {"phoneNumber": "+26771234567", "serviceCode": "*384*2580#", "text": "", "sessionId": "ATUid_s1",
            "networkCode": "65202"}  # fmt: skip
    base.update(fields)
    return urlencode({k: v for k, v in base.items() if v is not None})


def test_ussd_hop_whose_input_contains_a_star_keeps_the_whole_history(plain_app):
    # The user answered "1" then typed "5*0" at a free-text prompt: AT sends "1*5*0".
    (message,) = receive(plain_app, "ussd", ussd_body(text="1*5*0")).messages
    assert message.extra["ussd_history"] == "1*5*0"
    assert message.text == "0"  # best effort only; the flow, knowing it has seen "1", reads "5*0"
    assert message.session_event == "resume"


def test_replayed_ussd_hop_has_the_same_id_and_the_next_hop_another(plain_app):
    first = receive(plain_app, "ussd", ussd_body(text="1")).messages[0]
    replay = receive(plain_app, "ussd", ussd_body(text="1")).messages[0]
    later = receive(plain_app, "ussd", ussd_body(text="1*2")).messages[0]
    dial = receive(plain_app, "ussd", ussd_body(text="")).messages[0]
    assert first.provider_id == replay.provider_id
    assert len({first.provider_id, later.provider_id, dial.provider_id}) == 3
    assert all(m.provider_id.startswith("ATUid_s1:") for m in (first, later, dial))


def test_ussd_free_text_in_setswana(plain_app):
    (message,) = receive(plain_app, "ussd", ussd_body(text="2*Ke a leboga")).messages
    assert message.text == "Ke a leboga" and message.extra["ussd_history"] == "2*Ke a leboga"


@pytest.mark.parametrize(
    "raw", ["*384*2580#", "%2A384%2A2580%23"], ids=["decoded", "double_encoded"]
)  # the second arrives as "%2A384%2A2580%23" after form decoding
def test_service_code_encoded_or_not(plain_app, raw):
    (message,) = receive(plain_app, "ussd", ussd_body(serviceCode=raw)).messages
    assert message.extra["service_code"] == "*384*2580#"


def test_ussd_phone_number_with_unencoded_plus(plain_app):
    body = ussd_body().replace("phoneNumber=%2B26771234567", "phoneNumber=+26771234567")
    (message,) = receive(plain_app, "ussd", body).messages
    assert message.sender == "+26771234567"


def test_ussd_without_text_field_is_a_new_session(plain_app):
    (message,) = receive(plain_app, "ussd", ussd_body(text=None)).messages
    assert (message.session_event, message.text, message.extra["ussd_history"]) == ("new", "", "")


@pytest.mark.parametrize(
    "fields, missing",
    [
        ({"sessionId": None}, ["sessionId"]),
        ({"phoneNumber": None}, ["phoneNumber"]),
        ({"sessionId": "", "phoneNumber": ""}, ["sessionId", "phoneNumber"]),
    ],
)
def test_ussd_without_session_or_phone_is_malformed(plain_app, fields, missing):
    with pytest.raises(MalformedPayload) as error:
        receive(plain_app, "ussd", ussd_body(**fields))
    assert error.value.details == {"missing": missing}


def test_ussd_phone_that_is_not_a_number_is_malformed(plain_app):
    with pytest.raises(MalformedPayload):
        receive(plain_app, "ussd", ussd_body(phoneNumber="MTN"))


@pytest.mark.parametrize("end, prefix", [(False, "CON "), (True, "END ")])
def test_ussd_response(plain_app, end, prefix):
    response = adapter().ussd_response("Choose:\n1. Stock\n2. Appointments", end=end)
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    assert response.get_data(as_text=True) == prefix + "Choose:\n1. Stock\n2. Appointments"


def test_a_long_ussd_screen_is_sent_whole_with_a_warning(plain_app, caplog):
    text = "1. Paracetamol 500mg 20 boxes\n" * 7
    response = adapter().ussd_response(text, end=False)
    assert response.get_data(as_text=True) == "CON " + text
    assert "may be cut" in caplog.text and "Paracetamol" not in caplog.text


def test_parse_refuses_unknown_kinds(plain_app):
    with plain_app.test_request_context("/", method="POST"):
        from flask import request

        with pytest.raises(MalformedPayload):
            adapter().parse(request, "voice")


@pytest.mark.parametrize("kind", ["inbound", "status"])
def test_acknowledge_is_an_empty_200(plain_app, kind):
    response = adapter().acknowledge(kind)
    assert (response.status_code, response.get_data()) == (200, b"")


# --- verify ---------------------------------------------------------------------------------------------------


def test_verify_uses_the_routed_token(plain_app):
    channel = adapter()
    with plain_app.test_request_context("/anything", method="POST", data=b"", content_type=FORM):
        from flask import request

        request.view_args = {"token": TOKEN}
        channel.verify(request, "inbound")
        request.view_args = {"token": "nope"}
        with pytest.raises(WebhookRejected) as error:
            channel.verify(request, "inbound")
        assert error.value.status == 404


@pytest.mark.parametrize(
    "path",
    [
        "/webhooks/africastalking/sms",
        "/webhooks/africastalking/",
        "/webhooks/twilio/sms",
        f"/{TOKEN}/sms",
        "/webhooks/africastalking/k%C3%A9y/sms",
    ],  # fmt: skip
)
def test_verify_rejects_paths_without_our_token(plain_app, path):
    with plain_app.test_request_context(path, method="POST", data=b"", content_type=FORM):
        from flask import request

        with pytest.raises(WebhookRejected) as error:
            adapter().verify(request, "inbound")
    assert error.value.status == 404


def test_verify_reads_the_token_from_the_path_when_the_request_was_not_routed(plain_app):
    with plain_app.test_request_context(f"/webhooks/africastalking/{TOKEN}/ussd", method="POST"):
        from flask import request

        request.view_args = None
        adapter().verify(request, "ussd")


def test_verify_rejects_unknown_kinds(plain_app):
    with plain_app.test_request_context(f"/webhooks/africastalking/{TOKEN}/voice", method="POST"):
        from flask import request

        with pytest.raises(WebhookRejected) as error:
            adapter().verify(request, "voice")
    assert error.value.status == 404


def test_configured_only_with_username_and_api_key():
    assert AfricasTalkingChannel.is_configured(CONFIG)
    assert not AfricasTalkingChannel.is_configured({**CONFIG, "AT_API_KEY": ""})
    assert not AfricasTalkingChannel.is_configured({"AT_API_KEY": API_KEY})
    assert AfricasTalkingChannel.sends == ("sms",)


# --- sending --------------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


@pytest.fixture(scope="module")
def _server():
    # One server for the module: stopping one takes half a second (serve_forever's poll interval).
    with FakeProvider() as server:
        yield server


@pytest.fixture
def fake(_server):
    _server.requests.clear()
    _server.answers.clear()
    return _server


def outbound(text: str = "Ke a leboga, ke tla tla ka Labobedi", address: str = "+26771234567", **kw):
    return OutboundMessage(id=uuid.uuid4(), channel=kw.pop("channel", "sms"), address=address, text=text, **kw)


def success(message_id: str = "ATXid_out_1", number: str = "+26771234567") -> dict:
    return {"SMSMessageData": {"Message": "Sent to 1/1 Total Cost: BWP 0.2000", "Recipients": [
        {"statusCode": 101, "number": number, "status": "Success", "cost": "BWP 0.2000", "messageId": message_id}]}}  # fmt: skip


def recipient_failure(code: int | None, status: str) -> dict:
    recipient = {"number": "+26771234567", "status": status, "cost": "0", "messageId": "None"}
    if code is not None:
        recipient["statusCode"] = code
    return {"SMSMessageData": {"Message": "Sent to 0/1 Total Cost: 0", "Recipients": [recipient]}}


def test_send_makes_the_exact_request(fake):
    fake.respond(200, success())
    result = adapter(AT_API_BASE_URL=fake.base_url).send(outbound())
    assert (result.provider, result.provider_id) == ("africastalking", "ATXid_out_1")
    (request,) = fake.requests
    assert (request.method, request.path) == ("POST", "/version1/messaging")
    assert request.headers["apiKey"] == API_KEY
    assert request.headers["Accept"] == "application/json"
    assert request.headers["Content-Type"] == FORM
    assert request.form == {
        "username": ["thusa"],
        "to": ["+26771234567"],
        "message": ["Ke a leboga, ke tla tla ka Labobedi"],
        "from": ["THUSA"],
        "bulkSMSMode": ["1"],
    }


def test_send_without_sender_id_omits_from(fake):
    fake.respond(200, success())
    adapter(AT_API_BASE_URL=fake.base_url, AT_SENDER_ID="").send(outbound())
    assert "from" not in fake.requests[0].form


def test_emoji_and_media_urls_travel_in_the_text(fake):
    fake.respond(200, success())
    message = outbound("Dumela 👋🏾", media_urls=("https://example.org/a.jpg",))
    adapter(AT_API_BASE_URL=fake.base_url).send(message)
    assert fake.requests[0].form["message"] == ["Dumela 👋🏾\nhttps://example.org/a.jpg"]


def test_base_url_is_applied_once_and_only_there(fake):
    fake.respond(200, success())
    adapter(AT_API_BASE_URL=fake.base_url + "/").send(outbound())  # a trailing slash is tolerated
    assert [r.path for r in fake.requests] == ["/version1/messaging"]
    # Unset: the SDK's own URL (live, or sandbox for the "sandbox" user); nothing is sent to build it.
    assert adapter()._client()._make_url("/messaging") == "https://api.africastalking.com/version1/messaging"
    sandbox = adapter(AT_USERNAME="sandbox")._client()._make_url("/messaging")
    assert sandbox == "https://api.sandbox.africastalking.com/version1/messaging"


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param((json.dumps(success()), {"Content-Type": "application/json; charset=utf-8"}), id="json_charset"),
        pytest.param((json.dumps(success()), {"Content-Type": "text/plain"}), id="text_plain"),
    ],
)
def test_a_str_answer_is_parsed_too(fake, answer):
    body, headers = answer
    fake.respond(200, body, headers)
    assert adapter(AT_API_BASE_URL=fake.base_url).send(outbound()).provider_id == "ATXid_out_1"


@pytest.mark.parametrize(
    "body, headers",
    [("<html>gateway</html>", {"Content-Type": "text/html"}), ("not json", {"Content-Type": "application/json"})],
    ids=["html", "json_content_type_not_json"],
)
def test_an_unreadable_2xx_may_have_been_sent_so_it_is_never_retried(fake, body, headers):
    fake.respond(200, body, headers)
    with pytest.raises(SendError) as error:
        adapter(AT_API_BASE_URL=fake.base_url).send(outbound())
    assert (error.value.maybe_sent, error.value.retryable, error.value.code) == (True, False, "bad_response")


@pytest.mark.parametrize(
    "code, status, retryable, opted_out",
    [
        (405, "InsufficientBalance", True, False),
        (500, "InternalServerError", True, False),
        (501, "GatewayError", True, False),
        (502, "RejectedByGateway", True, False),
        (407, "CouldNotRoute", True, False),
        (401, "RiskHold", True, False),
        (403, "InvalidPhoneNumber", False, False),
        (404, "UnsupportedNumberType", False, False),
        (402, "InvalidSenderId", False, False),
        (406, "UserInBlacklist", False, True),
        (409, "DoNotDisturbRejection", False, True),
        (None, "UserInBlacklist", False, True),  # no statusCode: the status word decides
        (None, "InvalidPhoneNumber", False, False),
        (None, "Failed", True, False),  # courier's "Explicit failed status" fixture: unknown, so fail over
        (499, "SomethingNew", True, False),
    ],
)
def test_a_refused_recipient_inside_a_200(fake, code, status, retryable, opted_out):
    fake.respond(200, recipient_failure(code, status))
    with pytest.raises(SendError) as error:
        adapter(AT_API_BASE_URL=fake.base_url).send(outbound())
    assert (error.value.retryable, error.value.opted_out) == (retryable, opted_out)
    assert error.value.code == (str(code) if code is not None else {"UserInBlacklist": "406",
                                "InvalidPhoneNumber": "403"}.get(status, status))  # fmt: skip
    assert len(fake.requests) == 1  # one attempt, no retries in the adapter


@pytest.mark.parametrize("code, status", [(100, "Processed"), (102, "Queued"), ("101", "Success")])
def test_success_codes(fake, code, status):
    answer = success()
    answer["SMSMessageData"]["Recipients"][0].update(statusCode=code, status=status)
    fake.respond(200, answer)
    assert adapter(AT_API_BASE_URL=fake.base_url).send(outbound()).provider_id == "ATXid_out_1"


def test_empty_recipients_is_permanent_with_the_message_as_reason(fake):
    fake.respond(200, {"SMSMessageData": {"Message": "InvalidSenderId", "Recipients": []}})
    with pytest.raises(SendError) as error:
        adapter(AT_API_BASE_URL=fake.base_url).send(outbound())
    assert (error.value.retryable, error.value.code) == (False, "no_recipients")
    assert "InvalidSenderId" in str(error.value)


def test_answer_without_sms_message_data_is_permanent(fake):
    fake.respond(200, {"unexpected": True})
    with pytest.raises(SendError) as error:
        adapter(AT_API_BASE_URL=fake.base_url).send(outbound())
    assert (error.value.retryable, error.value.code) == (False, "bad_response")


@pytest.mark.parametrize(
    "status, retryable",
    [(500, True), (502, True), (503, True), (429, True), (400, False), (401, False), (403, False), (404, False)],
)
def test_http_errors(fake, status, retryable):
    fake.respond(status, "The supplied authentication is invalid" if status == 401 else {"error": "failed"})
    with pytest.raises(SendError) as error:
        adapter(AT_API_BASE_URL=fake.base_url).send(outbound())
    assert (error.value.retryable, error.value.code, error.value.opted_out) == (retryable, f"http_{status}", False)
    assert len(fake.requests) == 1


def test_a_read_timeout_may_have_sent_the_message(monkeypatch):
    # The request reached AT and its answer came too late: AT may have taken it, so it must never go again.
    monkeypatch.setattr(at_module, "SEND_TIMEOUT", (1.0, 0.2))
    with FakeProvider(delay_seconds=0.6) as slow:
        slow.respond(200, success())
        with pytest.raises(SendError) as error:
            adapter(AT_API_BASE_URL=slow.base_url).send(outbound())
    assert (error.value.maybe_sent, error.value.retryable, error.value.code) == (True, False, "read_timeout")
    assert len(slow.requests) == 1


def test_a_connect_timeout_sent_nothing_and_is_retryable(monkeypatch):
    monkeypatch.setattr(at_module, "SEND_TIMEOUT", (0.2, 1.0))
    with SilentPort() as silent, pytest.raises(SendError) as error:
        adapter(AT_API_BASE_URL=silent.base_url).send(outbound())
    assert (error.value.maybe_sent, error.value.retryable, error.value.code) == (False, True, "timeout")


def test_a_reply_goes_from_the_short_code_the_person_wrote_to(fake):
    fake.respond(200, success())
    adapter(AT_API_BASE_URL=fake.base_url).send(outbound(sender="21512"))
    assert fake.requests[0].form["from"] == ["21512"]  # not AT_SENDER_ID "THUSA"


def test_the_timeout_is_bounded(fake, monkeypatch):
    seen = {}
    original = at_module.sms_service_class().send

    def spy(self, *args, **kwargs):
        seen.update(kwargs)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(at_module.sms_service_class(), "send", spy)
    fake.respond(200, success())
    adapter(AT_API_BASE_URL=fake.base_url).send(outbound())
    assert sum(seen["timeout"]) <= 10


def test_connection_refused_is_retryable():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(SendError) as error:
        adapter(AT_API_BASE_URL=f"http://127.0.0.1:{port}").send(outbound())
    assert (error.value.retryable, error.value.code) == (True, "connection")


def test_invalid_number_is_permanent_and_sends_nothing(fake):
    with pytest.raises(SendError) as error:
        adapter(AT_API_BASE_URL=fake.base_url).send(outbound(address="26771234567"))
    assert (error.value.retryable, error.value.code) == (False, "InvalidPhoneNumber")
    assert fake.requests == []


def test_only_sms_is_sent(fake):
    with pytest.raises(SendError) as error:
        adapter(AT_API_BASE_URL=fake.base_url).send(outbound(channel="whatsapp"))
    assert error.value.retryable is False and fake.requests == []


def test_the_api_key_and_body_never_reach_logs_or_errors(fake, caplog):
    caplog.set_level(logging.DEBUG)
    fake.respond(401, f"invalid key {API_KEY}")
    with pytest.raises(SendError) as error:
        adapter(AT_API_BASE_URL=fake.base_url).send(outbound("Secret clinic note"))
    assert API_KEY not in str(error.value)
    assert API_KEY not in caplog.text and "Secret clinic note" not in caplog.text
