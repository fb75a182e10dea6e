"""Twilio adapter: courier's captured webhooks through verify + parse, our own signed cases, and sends through the
real twilio client against a fake Twilio API that checks every request against Twilio's OpenAPI description."""

from __future__ import annotations

import base64
import json
import logging
import socket
import time
import uuid
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

import pytest
import requests
from flask import Flask, request
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client
from werkzeug.datastructures import MultiDict
from werkzeug.middleware.proxy_fix import ProxyFix

from app.messaging.envelopes import Button, OutboundMessage
from app.models.channel import SMS, WHATSAPP
from bots.channels.base import MalformedPayload, SendError, WebhookRejected
from bots.channels.twilio import EMPTY_TWIML, TwilioChannel
from tests.fakes.server import FakeProvider, SilentPort
from tests.fakes.twilio import FakeTwilio, create_message_contract

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "channels"
FORM = "application/x-www-form-urlencoded"


def load_cases(file_name: str) -> list[dict]:
    return json.loads((FIXTURES / file_name).read_text(encoding="utf-8"))["cases"]


CASES = load_cases("twilio_sms.json") + load_cases("twilio_whatsapp.json")
CASE_NAMES = {case["name"] for case in CASES}

# Courier's test channel is account "acctid" with auth token 6789: every fixture is signed with that token and
# names that account, so replays configure it as ours (the AccountSid check stays on).
FIXTURE_CONFIG = {"TWILIO_ACCOUNT_SID": "acctid", "TWILIO_AUTH_TOKEN": "6789"}

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "tw-auth-token-9f8e7d6c5b4a"
PUBLIC = "https://thusa.example"
CONTENT_SID = "HX" + "fedcba9876543210" * 2
OWN_CONFIG = {
    "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
    "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
    "TWILIO_FROM": "+15005550006",
    "TWILIO_WHATSAPP_FROM": "+14155238886",
    "TWILIO_WHATSAPP_CONTENT_SID": CONTENT_SID,
    "PUBLIC_BASE_URL": PUBLIC,
}
SETSWANA = "Ke a leboga, ke tla tla ka Labobedi"


def fixture_form(case: dict) -> MultiDict:
    return MultiDict(parse_qsl(case["body"], keep_blank_values=True))


def kind_of(case: dict) -> str:
    return "status" if case["path"].split("?")[0].endswith("/status") else "inbound"


def address(urn: str) -> str:
    """Courier's URN as our address: tel:+1413… → +1413…, whatsapp:1413… → +1413…, whatsapp:US.1234 stays."""
    scheme, _, path = urn.partition(":")
    return "+" + path if scheme == "whatsapp" and path.isdigit() else path


# Where we deliberately differ from courier (the fixture's `expected` describes courier).
DEVIATIONS = {
    # SignalWire channels skip signatures in courier; a Twilio endpoint must reject an unsigned request (403).
    "receive_signalwire_unsigned": {"outcome": "forbidden"},
    # Courier trusts X-Forwarded-Path from anyone. We do not: the public URL comes from PUBLIC_BASE_URL or from
    # ProxyFix's X-Forwarded-Proto/Host, so this request is checked against the path it arrived on and fails.
    # test_forwarded_path_case_validates_on_the_path_twilio_called shows the same signature passing there.
    "receive_behind_proxy_x_forwarded_path": {"outcome": "forbidden"},
    # Base64-decoding bodies is a courier heuristic, not documented Twilio behaviour; a real reply could look
    # like base64. We keep the text as the person sent it.
    "receive_base64_body": {"text": "QmFubm9uIEV4cGxhaW5zIFRoZSBXb3JsZCAuLi4K4oCcVGhlIENhbXAgb2YgdGhlIFNhaW50c+KA"},
    # Courier answers 400 to an unknown status, so Twilio retries it; ours is recorded raw with status None.
    "status_unknown_value": {"outcome": "status", "status": None},
    "wa_status_unknown_value": {"outcome": "status", "status": None},
    # Courier turns failed + 63018 (WhatsApp channel rate limit) into a retryable "errored". A StatusUpdate has
    # no such state: it is what Twilio said, failed, with the code for the caller to act on.
    "wa_status_failed_63018_rate_limit": {"status": "failed"},
    # Courier knows this came to its WhatsApp channel URL. One Thusa URL serves SMS and WhatsApp, and only the
    # whatsapp: prefix on From tells them apart, so a prefixless From is SMS.
    "wa_receive_prefixless_from": {"channel": SMS},
}


def expected(case: dict) -> dict:
    """Our outcome for a fixture case: courier's, translated to our types, then our deliberate deviations."""
    courier = case["expected"]
    form = fixture_form(case)
    if case["signature"]["mode"] != "valid":
        # Courier answers 400; INTERFACES.md: a bad or missing signature is 403 and nothing is stored.
        want = {"outcome": "forbidden"}
    elif courier["outcome"] == "message":
        want = {
            "outcome": "message",
            "channel": WHATSAPP if courier["urn"].startswith("whatsapp:") else SMS,
            "sender": address(courier["urn"]),
            "text": courier["text"],
            "provider_id": courier["external_id"],
            "media": courier.get("attachments", []),
        }
    elif courier["outcome"] == "status":
        want = {
            "outcome": "status",
            "status": courier["status"],
            "provider_id": form.get("MessageSid"),
            "error_code": (courier.get("error") or {}).get("code"),
        }
    elif courier["outcome"] == "ignored":
        want = {"outcome": "ignored"}
    else:  # signed but unreadable
        want = {"outcome": "malformed"}
    want.update(DEVIATIONS.get(case["name"], {}))
    if want["outcome"] == "status":
        want.setdefault("provider_id", form.get("MessageSid"))
        want.setdefault("error_code", form.get("ErrorCode"))
    return want


def test_every_deviation_names_a_fixture_case():
    assert set(DEVIATIONS) <= CASE_NAMES
    assert len(CASES) == 30


# The same replay straight (Twilio called us at https://localhost) and behind a TLS proxy (the request shows the
# internal http://10.0.0.5:8000, PUBLIC_BASE_URL says the public one).
ROUTES = {
    "direct": ("https://localhost", {}),
    "behind_proxy": ("http://10.0.0.5:8000", {"PUBLIC_BASE_URL": "https://localhost"}),
}


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("case", CASES, ids=lambda case: case["name"])
def test_fixture_case(plain_app, case, route):
    base_url, extra_config = ROUTES[route]
    adapter = TwilioChannel({**FIXTURE_CONFIG, **extra_config})
    kind = kind_of(case)
    want = expected(case)
    with plain_app.test_request_context(
        case["path"],
        method=case["method"],
        data=case["body"].encode("utf-8"),
        headers=case["headers"],
        base_url=base_url,
    ):
        if want["outcome"] == "forbidden":
            with pytest.raises(WebhookRejected) as rejected:
                adapter.verify(request, kind)
            assert rejected.value.status == 403
            return
        adapter.verify(request, kind)
        if want["outcome"] == "malformed":
            with pytest.raises(MalformedPayload) as malformed:
                adapter.parse(request, kind)
            assert malformed.value.details == {"missing": ["MessageSid", "From"]}
            assert "MessageSid" in str(malformed.value)
            return
        parsed = adapter.parse(request, kind)

    if want["outcome"] == "ignored":
        assert parsed.messages == [] and parsed.statuses == []
    elif want["outcome"] == "status":
        assert parsed.messages == []
        (update,) = parsed.statuses
        form = fixture_form(case)
        assert update.provider == "twilio"
        assert update.provider_id == want["provider_id"]
        assert update.status == want["status"]
        assert update.raw_status == form["MessageStatus"]
        assert update.error_code == want["error_code"]
        assert update.opted_out == (want["error_code"] == "21610")
    else:
        assert parsed.statuses == []
        (message,) = parsed.messages
        assert message.provider == "twilio"
        assert message.channel == want["channel"]
        assert message.sender == want["sender"]
        assert message.text == want["text"]
        assert message.provider_id == want["provider_id"]
        assert [media.url for media in message.media] == want["media"]
        assert message.recipient == fixture_form(case)["To"].removeprefix("whatsapp:")
        assert message.received_at is not None

    # Twilio wants TwiML on both URLs (courier answers status callbacks with JSON; Twilio's own advice for them is
    # an empty <Response/>, error 11750).
    answer = adapter.acknowledge(kind)
    assert answer.status_code == 200
    assert answer.mimetype == "text/xml"
    assert answer.get_data(as_text=True) == '<?xml version="1.0" encoding="UTF-8"?><Response/>' == EMPTY_TWIML


@pytest.mark.parametrize("case", [c for c in CASES if c["signature"]["mode"] == "valid"], ids=lambda c: c["name"])
def test_fixture_signed_url_is_the_url_we_check(plain_app, case):
    """The URL we rebuild is exactly the one each fixture was signed over (except the X-Forwarded-Path case)."""
    adapter = TwilioChannel(FIXTURE_CONFIG)
    with plain_app.test_request_context(
        case["path"], method="POST", data=case["body"].encode(), headers=case["headers"], base_url="https://localhost"
    ):
        rebuilt = adapter._signed_url(request)
        assert RequestValidator("6789").validate(
            case["signature"]["signed_url"], request.form, case["headers"]["X-Twilio-Signature"]
        )
    if case["name"] == "receive_behind_proxy_x_forwarded_path":
        assert rebuilt != case["signature"]["signed_url"]
    else:
        assert rebuilt == case["signature"]["signed_url"]


def test_forwarded_path_case_validates_on_the_path_twilio_called(plain_app):
    """With a proxy that keeps the path (or PUBLIC_BASE_URL and ProxyFix), the same signed request passes."""
    case = next(c for c in CASES if c["name"] == "receive_behind_proxy_x_forwarded_path")
    public_path = case["headers"]["X-Forwarded-Path"]
    headers = {k: v for k, v in case["headers"].items() if k != "X-Forwarded-Path"}
    adapter = TwilioChannel({**FIXTURE_CONFIG, "PUBLIC_BASE_URL": "https://localhost"})
    with plain_app.test_request_context(
        public_path, method="POST", data=case["body"].encode(), headers=headers, base_url="http://10.0.0.5:8000"
    ):
        adapter.verify(request, "inbound")
        (message,) = adapter.parse(request, "inbound").messages
    assert message.text == "Msg"


VALID_WITH_BODY = [c for c in CASES if c["signature"]["mode"] == "valid" and c["body"].strip()]


@pytest.mark.parametrize("case", VALID_WITH_BODY, ids=lambda c: c["name"])
@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda path, body: (path, body + "&Body=forged"), id="added_param"),
        pytest.param(lambda path, body: (path, body.replace("SM", "SX", 1)), id="changed_value"),
        pytest.param(lambda path, body: (path.split("?")[0] + "?uuid=other", body), id="changed_query"),
        pytest.param(lambda path, body: (path.replace("/c/", "/d/"), body), id="other_path"),
    ],
)
def test_forged_fixture_requests_are_rejected(plain_app, case, tamper):
    path, body = tamper(case["path"], case["body"])
    adapter = TwilioChannel(FIXTURE_CONFIG)
    with (
        plain_app.test_request_context(
            path, method="POST", data=body.encode(), headers=case["headers"], base_url="https://localhost"
        ),
        pytest.raises(WebhookRejected) as rejected,
    ):
        adapter.verify(request, kind_of(case))
    assert rejected.value.status == 403


@pytest.mark.parametrize(
    "config",
    [
        pytest.param({**FIXTURE_CONFIG, "TWILIO_ACCOUNT_SID": "AC" + "1" * 32}, id="another_account"),
        pytest.param({**FIXTURE_CONFIG, "TWILIO_AUTH_TOKEN": ""}, id="no_auth_token"),
        pytest.param({**FIXTURE_CONFIG, "TWILIO_AUTH_TOKEN": "6788"}, id="other_auth_token"),
        pytest.param({**FIXTURE_CONFIG, "PUBLIC_BASE_URL": "https://thusa.example"}, id="other_public_host"),
    ],
)
def test_signed_fixture_rejected_with_other_settings(plain_app, config):
    case = next(c for c in CASES if c["name"] == "receive_text")
    with (
        plain_app.test_request_context(
            case["path"],
            method="POST",
            data=case["body"].encode(),
            headers=case["headers"],
            base_url="https://localhost",
        ),
        pytest.raises(WebhookRejected) as rejected,
    ):
        TwilioChannel(config).verify(request, "inbound")
    assert rejected.value.status == 403


def test_other_kinds_are_not_twilio_webhooks(plain_app):
    with (
        plain_app.test_request_context("/webhooks/twilio/ussd", method="POST"),
        pytest.raises(WebhookRejected) as rejected,
    ):
        TwilioChannel(OWN_CONFIG).verify(request, "ussd")
    assert rejected.value.status == 404


# --- our own signed requests ---------------------------------------------------------------------------------------


def signed_context(
    app: Flask,
    path: str,
    params,
    *,
    signed_base: str = PUBLIC,
    arrives_at: str | None = None,
    token: str = AUTH_TOKEN,
    headers: dict | None = None,
):
    """A request context for a form POST signed like Twilio signs it (over ``signed_base`` + ``path``)."""
    form = MultiDict(params)
    signature = RequestValidator(token).compute_signature(signed_base + path, form)
    return app.test_request_context(
        path,
        method="POST",
        data=urlencode(list(form.items(multi=True))).encode(),
        headers={"Content-Type": FORM, "X-Twilio-Signature": signature, **(headers or {})},
        base_url=arrives_at or signed_base,
    )


def inbound(**fields) -> dict:
    """A real-shaped inbound SMS webhook (Twilio's parameter set), with overrides; None removes a field."""
    params = {
        "ToCountry": "BW",
        "SmsMessageSid": "SM" + "5" * 32,
        "NumMedia": "0",
        "SmsSid": "SM" + "5" * 32,
        "SmsStatus": "received",
        "Body": "Ee",
        "FromCountry": "BW",
        "To": "+26772000000",
        "NumSegments": "1",
        "MessageSid": "SM" + "5" * 32,
        "AccountSid": ACCOUNT_SID,
        "From": "+26771234567",
        "ApiVersion": "2010-04-01",
    }
    params.update(fields)
    return {key: value for key, value in params.items() if value is not None}


OWN_INBOUND = [
    pytest.param(inbound(Body=SETSWANA), {"channel": SMS, "text": SETSWANA, "sender": "+26771234567"}, id="setswana"),
    pytest.param(
        inbound(Body="Ee 👍🏾 ke tla tla. Ke itumetse 😊"), {"text": "Ee 👍🏾 ke tla tla. Ke itumetse 😊"}, id="emoji"
    ),
    pytest.param(inbound(Body="  Nnyaa\n"), {"text": "  Nnyaa\n"}, id="whitespace_kept_as_sent"),
    pytest.param(inbound(From="MTNInfo"), {"channel": SMS, "sender": "MTNInfo"}, id="alphanumeric_sender"),
    pytest.param(inbound(To="384387"), {"recipient": "384387"}, id="short_code"),
    pytest.param(inbound(Body=None), {"text": ""}, id="no_body"),
    pytest.param(
        inbound(From="whatsapp:+26771234567", To="whatsapp:+14155238886", Body="Dumela 🙏🏾", ProfileName="Mpho"),
        {
            "channel": WHATSAPP,
            "sender": "+26771234567",
            "recipient": "+14155238886",
            "text": "Dumela 🙏🏾",
            "sender_name": "Mpho",
        },
        id="whatsapp_profile_name",
    ),
    pytest.param(
        inbound(
            From="whatsapp:+26771234567",
            To="whatsapp:+14155238886",
            Body="Ee",
            ButtonText="Ee, ke tla tla",
            ButtonPayload="appointment:confirm",
        ),
        {"channel": WHATSAPP, "text": "Ee, ke tla tla", "extra": {"callback_data": "appointment:confirm"}},
        id="whatsapp_button",
    ),
    pytest.param(
        inbound(From="whatsapp:BW.8f3a2c", ExternalUserId="whatsapp:BW.8f3a2c", To="whatsapp:+14155238886"),
        {"channel": WHATSAPP, "sender": "BW.8f3a2c", "extra": {"external_user_id": "BW.8f3a2c"}},
        id="whatsapp_bsuid_sender",
    ),
    pytest.param(
        inbound(
            From="whatsapp:+26771234567",
            Body=None,
            NumMedia="2",
            MediaUrl0="https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1",
            MediaContentType0="image/jpeg",
            MediaUrl1="https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME2",
            MediaContentType1="image/png",
        ),
        {
            "channel": WHATSAPP,
            "text": "",
            "media": [
                ("image/jpeg", "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1"),
                ("image/png", "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME2"),
            ],
        },
        id="whatsapp_photos_only",
    ),
    pytest.param(
        inbound(
            Body="Setshwantsho sa letlalo",
            NumMedia="1",
            MediaUrl0="https://api.twilio.com/m/ME3",
            MediaContentType0="image/jpeg",
        ),
        {"text": "Setshwantsho sa letlalo", "media": [("image/jpeg", "https://api.twilio.com/m/ME3")]},
        id="mms_with_caption",
    ),
    pytest.param(
        inbound(NumMedia="many", MediaUrl0="https://api.twilio.com/m/ME4"),
        {"media": [(None, "https://api.twilio.com/m/ME4")]},
        id="unreadable_num_media",
    ),
]


@pytest.mark.parametrize(("params", "want"), OWN_INBOUND)
def test_own_inbound(plain_app, params, want):
    adapter = TwilioChannel(OWN_CONFIG)
    with signed_context(plain_app, "/webhooks/twilio/sms", params):
        adapter.verify(request, "inbound")
        (message,) = adapter.parse(request, "inbound").messages
    assert message.provider == "twilio"
    assert message.provider_id == "SM" + "5" * 32
    for key, value in want.items():
        if key == "media":
            assert [(media.content_type, media.url) for media in message.media] == value
        else:
            assert getattr(message, key) == value, key


@pytest.mark.parametrize(
    ("params", "missing"),
    [
        pytest.param(inbound(From=None), ["From"], id="no_from"),
        pytest.param(inbound(From="  "), ["From"], id="blank_from"),
        pytest.param(inbound(MessageSid=None), ["MessageSid"], id="no_message_sid"),
        pytest.param({"AccountSid": ACCOUNT_SID}, ["MessageSid", "From"], id="nothing"),
    ],
)
def test_inbound_without_required_fields_is_malformed(plain_app, params, missing):
    adapter = TwilioChannel(OWN_CONFIG)
    with signed_context(plain_app, "/webhooks/twilio/sms", params):
        adapter.verify(request, "inbound")
        with pytest.raises(MalformedPayload) as malformed:
            adapter.parse(request, "inbound")
    assert malformed.value.details == {"missing": missing}
    assert all(name in str(malformed.value) for name in missing)


def test_setswana_body_signed_over_utf8_and_tampered_accent_rejected(plain_app):
    params = inbound(Body="Ke a leboga 🙏🏾 — ke tla tla ka Labobedi")
    adapter = TwilioChannel(OWN_CONFIG)
    with signed_context(plain_app, "/webhooks/twilio/sms", params):
        adapter.verify(request, "inbound")
    signature = RequestValidator(AUTH_TOKEN).compute_signature(PUBLIC + "/webhooks/twilio/sms", params)
    forged = {**params, "Body": params["Body"].replace("🙏🏾", "🙏")}
    with (
        plain_app.test_request_context(
            "/webhooks/twilio/sms",
            method="POST",
            data=urlencode(forged).encode(),
            headers={"Content-Type": FORM, "X-Twilio-Signature": signature},
            base_url=PUBLIC,
        ),
        pytest.raises(WebhookRejected),
    ):
        adapter.verify(request, "inbound")


def test_behind_tls_proxy_public_base_url_validates(plain_app):
    """Twilio signed https://thusa.example/...; the app sees http://10.0.0.5:8000/... from the proxy."""
    params = inbound(Body=SETSWANA)
    with signed_context(plain_app, "/webhooks/twilio/sms", params, arrives_at="http://10.0.0.5:8000"):
        assert request.url.startswith("http://10.0.0.5:8000/")
        TwilioChannel(OWN_CONFIG).verify(request, "inbound")
        without_public = {key: value for key, value in OWN_CONFIG.items() if key != "PUBLIC_BASE_URL"}
        with pytest.raises(WebhookRejected) as rejected:
            TwilioChannel(without_public).verify(request, "inbound")
        assert rejected.value.status == 403


def test_behind_tls_proxy_query_string_is_part_of_the_signed_url(plain_app):
    path = "/webhooks/twilio/status?id=3f2c&attempt=2"
    params = {"MessageSid": "SM" + "6" * 32, "MessageStatus": "delivered", "AccountSid": ACCOUNT_SID}
    with signed_context(plain_app, path, params, arrives_at="http://10.0.0.5:8000"):
        TwilioChannel(OWN_CONFIG).verify(request, "status")
    signature = RequestValidator(AUTH_TOKEN).compute_signature(PUBLIC + path, params)
    with (
        plain_app.test_request_context(
            path.replace("attempt=2", "attempt=3"),
            method="POST",
            data=urlencode(params).encode(),
            base_url="http://10.0.0.5:8000",
            headers={"Content-Type": FORM, "X-Twilio-Signature": signature},
        ),
        pytest.raises(WebhookRejected),
    ):
        TwilioChannel(OWN_CONFIG).verify(request, "status")


def test_empty_query_string_adds_no_question_mark(plain_app):
    params = {"MessageSid": "SM" + "6" * 32, "MessageStatus": "sent"}
    signature = RequestValidator(AUTH_TOKEN).compute_signature(PUBLIC + "/webhooks/twilio/status", params)
    with plain_app.test_request_context(
        "/webhooks/twilio/status?",
        method="POST",
        data=urlencode(params).encode(),
        headers={"Content-Type": FORM, "X-Twilio-Signature": signature},
        base_url="http://10.0.0.5:8000",
    ):
        assert request.full_path == "/webhooks/twilio/status?"
        TwilioChannel(OWN_CONFIG).verify(request, "status")


def test_proxy_fix_makes_request_url_public_without_public_base_url():
    """With TRUST_PROXY_HOPS the app wraps itself in ProxyFix; request.url is then the public URL."""
    adapter = TwilioChannel({key: value for key, value in OWN_CONFIG.items() if key != "PUBLIC_BASE_URL"})
    app = Flask(__name__)
    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1, x_port=1)

    @app.post("/webhooks/twilio/sms")
    def sms():
        try:
            adapter.verify(request, "inbound")
        except WebhookRejected as exc:
            return str(exc), exc.status
        return adapter.acknowledge("inbound")

    params = inbound(Body=SETSWANA)
    signature = RequestValidator(AUTH_TOKEN).compute_signature(PUBLIC + "/webhooks/twilio/sms", params)
    headers = {"X-Twilio-Signature": signature}
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "thusa.example", "X-Forwarded-For": "54.1.2.3"}
    client = app.test_client()
    answer = client.post(
        "/webhooks/twilio/sms", data=params, headers={**headers, **forwarded}, base_url="http://10.0.0.5:8000"
    )
    assert answer.status_code == 200
    assert answer.content_type.startswith("text/xml")
    assert (
        client.post("/webhooks/twilio/sms", data=params, headers=headers, base_url="http://10.0.0.5:8000").status_code
        == 403
    )


def test_replayed_request_parses_to_the_same_idempotency_key(plain_app):
    """Twilio may deliver a webhook twice; the webhook layer dedupes on (provider, MessageSid)."""
    adapter = TwilioChannel(OWN_CONFIG)
    seen = []
    for _ in range(2):
        with signed_context(plain_app, "/webhooks/twilio/sms", inbound(Body=SETSWANA)):
            adapter.verify(request, "inbound")
            seen.append(adapter.parse(request, "inbound").messages[0].provider_id)
    assert seen == ["SM" + "5" * 32] * 2


def test_signature_for_one_webhook_is_rejected_on_the_other(plain_app):
    params = inbound()
    signature = RequestValidator(AUTH_TOKEN).compute_signature(PUBLIC + "/webhooks/twilio/sms", params)
    with (
        plain_app.test_request_context(
            "/webhooks/twilio/status",
            method="POST",
            data=urlencode(params).encode(),
            headers={"Content-Type": FORM, "X-Twilio-Signature": signature},
            base_url=PUBLIC,
        ),
        pytest.raises(WebhookRejected),
    ):
        TwilioChannel(OWN_CONFIG).verify(request, "status")


def test_status_without_account_sid_is_accepted(plain_app):
    with signed_context(plain_app, "/webhooks/twilio/status", {"MessageSid": "SM1", "MessageStatus": "sent"}):
        TwilioChannel(OWN_CONFIG).verify(request, "status")


# --- status callbacks ----------------------------------------------------------------------------------------------

STATUS_TABLE = [
    ("accepted", "sent"),
    ("scheduled", "sent"),
    ("queued", "sent"),
    ("sending", "sent"),
    ("sent", "sent"),
    ("delivered", "delivered"),
    ("partially_delivered", "delivered"),
    ("read", "read"),
    ("failed", "failed"),
    ("undelivered", "failed"),
    ("canceled", "failed"),
    ("receiving", None),
    ("received", None),
    ("huh", None),
    ("", None),
]


@pytest.mark.parametrize(("raw", "status"), [s for s in STATUS_TABLE if s[0]])
def test_status_values(plain_app, raw, status):
    params = {"MessageSid": "SM" + "7" * 32, "MessageStatus": raw, "AccountSid": ACCOUNT_SID, "To": "+26771234567"}
    adapter = TwilioChannel(OWN_CONFIG)
    with signed_context(plain_app, "/webhooks/twilio/status", params):
        adapter.verify(request, "status")
        (update,) = adapter.parse(request, "status").statuses
    assert (update.provider, update.provider_id, update.status, update.raw_status) == (
        "twilio",
        "SM" + "7" * 32,
        status,
        raw,
    )
    assert update.error_code is None and update.opted_out is False


def test_status_table_covers_every_status_in_twilios_spec():
    spec_statuses = set(create_message_contract().statuses)
    assert spec_statuses == {raw for raw, _ in STATUS_TABLE if raw not in ("huh", "")}
    inbound_only = {"receiving", "received"}
    assert set(TwilioChannel.status_map) == spec_statuses - inbound_only
    assert set(TwilioChannel.status_map.values()) == {"sent", "delivered", "read", "failed"}


@pytest.mark.parametrize(
    ("fields", "error_code", "opted_out"),
    [
        pytest.param({"MessageStatus": "failed", "ErrorCode": "21610"}, "21610", True, id="stop"),
        pytest.param({"MessageStatus": "undelivered", "ErrorCode": "30003"}, "30003", False, id="unreachable"),
        pytest.param({"MessageStatus": "failed", "ErrorCode": "63016"}, "63016", False, id="outside_window"),
        pytest.param({"MessageStatus": "delivered", "ErrorCode": ""}, None, False, id="blank_code"),
    ],
)
def test_status_error_codes(plain_app, fields, error_code, opted_out):
    adapter = TwilioChannel(OWN_CONFIG)
    with signed_context(plain_app, "/webhooks/twilio/status", {"MessageSid": "SM" + "8" * 32, **fields}):
        adapter.verify(request, "status")
        (update,) = adapter.parse(request, "status").statuses
    assert (update.error_code, update.opted_out) == (error_code, opted_out)


@pytest.mark.parametrize(
    "params",
    [
        pytest.param({"MessageSid": "SM" + "8" * 32}, id="no_status"),
        pytest.param({"MessageStatus": "delivered"}, id="no_sid"),
        pytest.param({"MessageSid": "", "MessageStatus": "delivered"}, id="blank_sid"),
        pytest.param({"AccountSid": ACCOUNT_SID}, id="neither"),
    ],
)
def test_status_without_sid_or_status_is_ignored_not_rejected(plain_app, params):
    adapter = TwilioChannel(OWN_CONFIG)
    with signed_context(plain_app, "/webhooks/twilio/status", params):
        adapter.verify(request, "status")
        parsed = adapter.parse(request, "status")
    assert parsed.messages == [] and parsed.statuses == []
    assert adapter.acknowledge("status").status_code == 200


# --- settings ------------------------------------------------------------------------------------------------------


def test_configuration():
    account = {"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN}
    assert TwilioChannel.name == "twilio"
    assert TwilioChannel.sends == (SMS, WHATSAPP)
    assert TwilioChannel.is_configured(account)
    assert not TwilioChannel.is_configured({"TWILIO_ACCOUNT_SID": ACCOUNT_SID})
    assert not TwilioChannel.is_configured_for(SMS, account)
    assert not TwilioChannel.is_configured_for(WHATSAPP, account)
    assert TwilioChannel.is_configured_for(SMS, {**account, "TWILIO_FROM": "+15005550006"})
    assert not TwilioChannel.is_configured_for(WHATSAPP, {**account, "TWILIO_FROM": "+15005550006"})
    assert TwilioChannel.is_configured_for(WHATSAPP, {**account, "TWILIO_WHATSAPP_FROM": "+14155238886"})
    assert not TwilioChannel.is_configured_for("telegram", OWN_CONFIG)
    assert not TwilioChannel.is_configured_for(SMS, {"TWILIO_FROM": "+15005550006"})


# --- sending -------------------------------------------------------------------------------------------------------


@pytest.fixture
def clean_env(monkeypatch):
    # The twilio client reads these from the environment (TWILIO_EDGE/REGION rewrite the host); requests honours
    # proxies. None of them may steer a test.
    for name in (
        "TWILIO_EDGE",
        "TWILIO_REGION",
        "TWILIO_ACCOUNT_SID",
        "TWILIO_AUTH_TOKEN",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "http_proxy",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


@pytest.fixture
def fake(clean_env):
    with FakeTwilio(ACCOUNT_SID, AUTH_TOKEN) as server:
        yield server
    assert server.violations == []


def twilio_for(base_url: str, **overrides) -> TwilioChannel:
    config = {**OWN_CONFIG, "TWILIO_API_BASE_URL": base_url, **overrides}
    return TwilioChannel({key: value for key, value in config.items() if value is not None})


def outbound(channel: str = SMS, text: str = SETSWANA, **fields) -> OutboundMessage:
    return OutboundMessage(id=uuid.uuid4(), channel=channel, address="+26771234567", text=text, **fields)


def basic(sid: str, token: str) -> str:
    return "Basic " + base64.b64encode(f"{sid}:{token}".encode()).decode()


def single(form: dict[str, list[str]]) -> dict[str, str]:
    return {name: values[0] if len(values) == 1 else values for name, values in form.items()}


def test_sms_send_reaches_the_base_url_override(fake):
    result = twilio_for(fake.base_url).send(outbound())

    (sent,) = fake.requests
    assert sent.method == "POST"
    assert sent.path == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    assert sent.headers["Authorization"] == basic(ACCOUNT_SID, AUTH_TOKEN)
    assert sent.headers["Content-Type"] == FORM
    assert single(sent.form) == {
        "To": "+26771234567",
        "From": "+15005550006",
        "Body": SETSWANA,
        "StatusCallback": "https://thusa.example/webhooks/twilio/status",
    }
    assert result.provider == "twilio"
    assert result.provider_id == fake.resources[0]["sid"]
    assert create_message_contract().sid_pattern.match(result.provider_id)


def test_sms_emoji_body_arrives_intact(fake):
    twilio_for(fake.base_url).send(outbound(text="Ke a leboga 🙏🏾 ⚕️"))
    assert fake.created[0]["Body"] == "Ke a leboga 🙏🏾 ⚕️"


def test_whatsapp_send(fake):
    result = twilio_for(fake.base_url).send(outbound(WHATSAPP, text="Dumela Mpho 👋"))
    assert single(fake.requests[0].form) == {
        "To": "whatsapp:+26771234567",
        "From": "whatsapp:+14155238886",
        "Body": "Dumela Mpho 👋",
        "StatusCallback": "https://thusa.example/webhooks/twilio/status",
    }
    assert result.provider_id == fake.resources[0]["sid"]


def test_whatsapp_sender_setting_may_carry_the_prefix(fake):
    twilio_for(fake.base_url, TWILIO_WHATSAPP_FROM="whatsapp:+14155238886").send(outbound(WHATSAPP))
    assert fake.created[0]["From"] == "whatsapp:+14155238886"


@pytest.mark.parametrize(
    ("variables", "content_variables"),
    [
        pytest.param({"1": "Mpho", "2": "Labobedi 09:00"}, {"1": "Mpho", "2": "Labobedi 09:00"}, id="mapping"),
        pytest.param(["Mpho", "Labobedi 09:00"], {"1": "Mpho", "2": "Labobedi 09:00"}, id="list"),
        pytest.param(None, {}, id="none"),
    ],
)
def test_whatsapp_template_outside_the_window(fake, variables, content_variables):
    message = outbound(
        WHATSAPP,
        template={"name": "appointment_reminder", "variables": variables},
        media_urls=("https://thusa.example/m/1.jpg",),
    )
    twilio_for(fake.base_url).send(message)
    form = single(fake.requests[0].form)
    # ContentSid alone: a Body (or media) outside the 24-hour window fails with 63016.
    assert form == {
        "To": "whatsapp:+26771234567",
        "From": "whatsapp:+14155238886",
        "ContentSid": CONTENT_SID,
        "ContentVariables": form["ContentVariables"],
        "StatusCallback": "https://thusa.example/webhooks/twilio/status",
    }
    assert json.loads(form["ContentVariables"]) == content_variables


def test_whatsapp_template_without_content_sid_is_not_sent(fake):
    adapter = twilio_for(fake.base_url, TWILIO_WHATSAPP_CONTENT_SID=None)
    with pytest.raises(SendError) as failed:
        adapter.send(outbound(WHATSAPP, template={"name": "appointment_reminder", "variables": {}}))
    assert (failed.value.retryable, failed.value.code) == (False, "template_not_configured")
    assert fake.requests == []


def test_whatsapp_media(fake):
    urls = ("https://thusa.example/media/a.jpg", "https://thusa.example/media/b.png")
    twilio_for(fake.base_url).send(outbound(WHATSAPP, text="Ditshwantsho", media_urls=urls))
    assert fake.requests[0].form["MediaUrl"] == list(urls)
    assert fake.created[0]["Body"] == "Ditshwantsho"
    assert fake.resources[0]["num_media"] == "2"


def test_sms_sends_text_only(fake):
    twilio_for(fake.base_url).send(outbound(SMS, media_urls=("https://thusa.example/media/a.jpg",)))
    assert "MediaUrl" not in fake.requests[0].form


def test_buttons_become_numbered_choices(fake):
    buttons = (Button("yes", "Ee"), Button("no", "Nnyaa"))
    twilio_for(fake.base_url).send(outbound(WHATSAPP, text="A o tla tla?", buttons=buttons))
    assert fake.created[0]["Body"] == "A o tla tla?\n1. Ee\n2. Nnyaa"


@pytest.mark.parametrize(
    ("public", "callback"),
    [
        pytest.param(None, None, id="absent"),
        pytest.param("", None, id="empty"),
        pytest.param("https://thusa.example/", "https://thusa.example/webhooks/twilio/status", id="trailing_slash"),
        pytest.param(
            "https://health.example.org/thusa", "https://health.example.org/thusa/webhooks/twilio/status", id="prefix"
        ),
    ],
)
def test_status_callback(fake, public, callback):
    twilio_for(fake.base_url, PUBLIC_BASE_URL=public).send(outbound())
    assert fake.created[0].get("StatusCallback") == callback


@pytest.mark.parametrize(
    ("status", "code", "retryable", "opted_out"),
    [
        pytest.param(500, 20500, True, False, id="500"),
        pytest.param(503, None, True, False, id="503"),
        pytest.param(429, 20429, True, False, id="429"),
        pytest.param(400, 21610, False, True, id="opted_out"),
        pytest.param(400, 21211, False, False, id="invalid_number"),
        pytest.param(400, 21614, False, False, id="not_mobile"),
        pytest.param(400, 21408, False, False, id="region_not_enabled"),
        pytest.param(400, 63016, False, False, id="outside_whatsapp_window"),
        pytest.param(403, 20003, False, False, id="forbidden"),
    ],
)
def test_send_errors(fake, status, code, retryable, opted_out):
    fake.fail(status, code)
    with pytest.raises(SendError) as failed:
        twilio_for(fake.base_url).send(outbound())
    error = failed.value
    assert (error.retryable, error.opted_out) == (retryable, opted_out)
    assert error.code == str(code if code is not None else 20000 + status)
    assert len(fake.requests) == 1  # one attempt: no client-side retry


def test_send_error_from_a_non_json_5xx(clean_env):
    with FakeProvider() as server:
        server.respond(502, "<html>Bad gateway</html>")
        with pytest.raises(SendError) as failed:
            twilio_for(server.base_url).send(outbound())
    assert failed.value.retryable
    assert len(server.requests) == 1


def test_wrong_credentials_are_permanent(fake):
    with pytest.raises(SendError) as failed:
        twilio_for(fake.base_url, TWILIO_AUTH_TOKEN="not-the-token").send(outbound())
    assert (failed.value.retryable, failed.value.code) == (False, "20003")


@pytest.mark.parametrize("channel", [SMS, WHATSAPP])
def test_a_read_timeout_may_have_sent_the_message(fake, monkeypatch, channel):
    # The request reached Twilio and its answer came too late: Twilio may have taken it, so it must never go again.
    monkeypatch.setattr(TwilioChannel, "timeout_seconds", 0.3)
    fake.slow(1)
    started = time.monotonic()
    with pytest.raises(SendError) as failed:
        twilio_for(fake.base_url).send(outbound(channel))
    assert time.monotonic() - started < 1
    assert (failed.value.maybe_sent, failed.value.retryable, failed.value.code) == (True, False, "read_timeout")
    assert len(fake.requests) == 1


def test_a_connect_timeout_sent_nothing_and_is_retryable(clean_env, monkeypatch):
    monkeypatch.setattr(TwilioChannel, "timeout_seconds", 0.3)
    with SilentPort() as silent, pytest.raises(SendError) as failed:
        twilio_for(silent.base_url).send(outbound())
    assert (failed.value.maybe_sent, failed.value.retryable) == (False, True)
    assert "ConnectTimeout" in str(failed.value)


@pytest.mark.parametrize(("channel", "prefix"), [(SMS, ""), (WHATSAPP, "whatsapp:")])
def test_a_reply_goes_from_the_number_the_person_wrote_to(fake, channel, prefix):
    twilio_for(fake.base_url).send(outbound(channel, sender="+15005550009"))
    assert fake.created[0]["From"] == prefix + "+15005550009"  # not TWILIO_FROM / TWILIO_WHATSAPP_FROM


def test_connection_refused_is_retryable(clean_env):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(SendError) as failed:
        twilio_for(f"http://127.0.0.1:{port}").send(outbound())
    assert failed.value.retryable
    assert "Connection" in str(failed.value)


def test_default_timeout_is_bounded():
    adapter = TwilioChannel(OWN_CONFIG)
    client = adapter._rest_client()
    assert isinstance(client.http_client, TwilioHttpClient)
    assert 0 < client.http_client.timeout <= 10
    assert client.api.base_url == "https://api.twilio.com"  # no override: the real API


def test_edge_and_region_environment_do_not_redirect_the_override(fake, monkeypatch):
    monkeypatch.setenv("TWILIO_EDGE", "dublin")
    monkeypatch.setenv("TWILIO_REGION", "ie1")
    twilio_for(fake.base_url).send(outbound())
    assert len(fake.requests) == 1


def test_accepted_without_a_sid(clean_env):
    with FakeProvider() as server:
        server.respond(201, {})
        result = twilio_for(server.base_url).send(outbound())
    assert result.provider == "twilio" and result.provider_id is None


def test_unreadable_success_answer_may_have_been_sent_so_it_is_never_retried(clean_env):
    with FakeProvider() as server:
        server.respond(200, "<html>captive portal</html>")
        with pytest.raises(SendError) as failed:
            twilio_for(server.base_url).send(outbound())
    assert (failed.value.maybe_sent, failed.value.retryable, failed.value.code) == (True, False, "bad_response")


@pytest.mark.parametrize(
    ("message", "config", "code"),
    [
        pytest.param(outbound("telegram"), {}, "unsupported_channel", id="telegram"),
        pytest.param(outbound(SMS), {"TWILIO_FROM": None}, "not_configured", id="no_sms_sender"),
        pytest.param(outbound(WHATSAPP), {"TWILIO_WHATSAPP_FROM": None}, "not_configured", id="no_whatsapp_sender"),
    ],
)
def test_cannot_send(fake, message, config, code):
    with pytest.raises(SendError) as failed:
        twilio_for(fake.base_url, **config).send(message)
    assert (failed.value.retryable, failed.value.code) == (False, code)
    assert fake.requests == []


def test_auth_token_and_bodies_never_logged(fake, caplog, monkeypatch):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setattr(TwilioChannel, "timeout_seconds", 0.3)
    adapter = twilio_for(fake.base_url)
    errors = []
    adapter.send(outbound(text=SETSWANA))
    adapter.send(outbound(WHATSAPP, text=SETSWANA))
    for script in (lambda: fake.fail(400, 21610), lambda: fake.fail(500), lambda: fake.slow(5)):
        script()
        with pytest.raises(SendError) as failed:
            adapter.send(outbound(text=SETSWANA))
        errors.append(failed.value)
    with pytest.raises(SendError) as failed:
        twilio_for(fake.base_url, TWILIO_AUTH_TOKEN=AUTH_TOKEN + "x").send(outbound(text=SETSWANA))
    errors.append(failed.value)

    secrets = (AUTH_TOKEN, basic(ACCOUNT_SID, AUTH_TOKEN).split()[1], base64.b64encode(AUTH_TOKEN.encode()).decode())
    assert caplog.records, "the adapter and the client log something"
    for record in caplog.records:
        text = record.getMessage()
        assert not any(secret in text for secret in secrets), record.name
        if record.levelno >= logging.INFO:
            assert SETSWANA not in text, record.name
    for error in errors:
        assert not any(secret in f"{error} {error!r} {error.args}" for secret in secrets)


# --- the fake itself holds requests to Twilio's spec ----------------------------------------------------------------


def test_fake_rejects_a_parameter_the_spec_does_not_have(clean_env):
    with FakeTwilio(ACCOUNT_SID, AUTH_TOKEN) as server:
        client = Client(ACCOUNT_SID, AUTH_TOKEN, http_client=TwilioHttpClient(timeout=5))
        client.api.base_url = server.base_url
        with pytest.raises(TwilioRestException) as refused:
            # MessageIntent is in twilio-python 9.13 but not in the 2010 spec the fake was built from.
            client.messages.create(to="+26771234567", from_="+15005550006", body="x", message_intent="reminder")
    assert (refused.value.status, refused.value.code) == (400, 20001)
    assert server.violations == ["Unknown parameter 'MessageIntent'"]


@pytest.mark.parametrize(
    ("form", "code"),
    [
        pytest.param({"From": "+15005550006", "Body": "x"}, 21604, id="no_to"),
        pytest.param({"To": "+26771234567", "Body": "x"}, 21603, id="no_from"),
        pytest.param({"To": "+26771234567", "From": "+15005550006"}, 21602, id="no_body"),
        pytest.param({"To": "+267", "From": "+1", "Body": "x", "ContentSid": "HX1"}, 20001, id="bad_content_sid"),
        pytest.param({"To": "+267", "From": "+1", "Body": ["x", "y"]}, 20001, id="repeated_body"),
        pytest.param({"To": "+267", "From": "+1", "Body": "x", "StatusCallback": "not a url"}, 20001, id="bad_url"),
        pytest.param({"To": "+267", "From": "+1", "Body": "x", "RiskCheck": "maybe"}, 20001, id="bad_enum"),
    ],
)
def test_fake_rejects_requests_breaking_the_contract(clean_env, form, code):
    with FakeTwilio(ACCOUNT_SID, AUTH_TOKEN) as server:
        answer = requests.post(
            server.base_url + server.messages_path(), data=form, auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=5
        )
    assert answer.status_code == 400
    body = answer.json()
    assert body["code"] == code and body["status"] == 400
    assert body["more_info"] == f"https://www.twilio.com/docs/errors/{code}"
    assert len(server.violations) == 1


def test_fake_checks_path_and_auth(clean_env):
    with FakeTwilio(ACCOUNT_SID, AUTH_TOKEN) as server:
        form = {"To": "+26771234567", "From": "+15005550006", "Body": "x"}
        wrong_auth = requests.post(
            server.base_url + server.messages_path(), data=form, auth=(ACCOUNT_SID, "nope"), timeout=5
        )
        wrong_path = requests.post(
            server.base_url + "/2010-04-01/Accounts/AC1/Messages.json",
            data=form,
            auth=(ACCOUNT_SID, AUTH_TOKEN),
            timeout=5,
        )
    assert (wrong_auth.status_code, wrong_auth.json()["code"]) == (401, 20003)
    assert (wrong_path.status_code, wrong_path.json()["code"]) == (404, 20404)
    assert server.created == []


def test_fake_answers_with_the_specs_message_resource(clean_env):
    contract = create_message_contract()
    with FakeTwilio(ACCOUNT_SID, AUTH_TOKEN) as server:
        answer = requests.post(
            server.base_url + server.messages_path(),
            auth=(ACCOUNT_SID, AUTH_TOKEN),
            timeout=5,
            data={"To": "+26771234567", "From": "+15005550006", "Body": SETSWANA},
        )
    assert answer.status_code == 201
    resource = answer.json()
    assert set(resource) == set(contract.message_properties)
    assert contract.sid_pattern.match(resource["sid"]) and resource["sid"].startswith("SM")
    assert resource["status"] == "queued" and resource["status"] in contract.statuses
    assert (resource["to"], resource["from"], resource["body"]) == ("+26771234567", "+15005550006", SETSWANA)
    assert resource["account_sid"] == ACCOUNT_SID
    assert resource["uri"] == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{resource['sid']}.json"
