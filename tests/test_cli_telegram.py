"""``flask telegram set-webhook`` / ``webhook-info`` through the real python-telegram-bot client against a fake Bot
API on 127.0.0.1."""

from __future__ import annotations

import json
import socket
from urllib.parse import quote

import pytest

from bots.channels import telegram, telegram_client
from tests.fakes.server import FakeProvider

TOKEN = "123456789:AAF-test_TOKEN-must-never-be-logged"
SECRET = "s3cr3t_T0ken-abc"
PUBLIC = "https://thusa.example.org"
ALLOWED = ["message", "callback_query"]
WEBHOOK_INFO = {
    "url": f"{PUBLIC}/webhooks/telegram",
    "has_custom_certificate": False,
    "pending_update_count": 3,
    "last_error_date": 1735725600,
    "last_error_message": "Wrong response from the webhook: 403 Forbidden",
    "max_connections": 40,
    "allowed_updates": ALLOWED,
}


@pytest.fixture(autouse=True)
def _fresh_bot_api_loop():
    yield
    telegram.shutdown()


@pytest.fixture
def fake():
    with FakeProvider() as server:
        yield server


@pytest.fixture
def cli(app_factory, fake):
    """Run a ``flask telegram ...`` command on an app pointed at the fake Bot API, with extra settings."""

    def invoke(*args: str, **settings):
        config = {
            "TELEGRAM_BOT_TOKEN": TOKEN,
            "TELEGRAM_WEBHOOK_SECRET": SECRET,
            "PUBLIC_BASE_URL": PUBLIC,
            "TELEGRAM_API_BASE_URL": fake.base_url,
        }
        config.update(settings)
        result = app_factory(**config).test_cli_runner().invoke(args=["telegram", *args])
        assert_no_token(result.output)
        return result

    return invoke


def assert_no_token(text: str) -> None:
    assert TOKEN not in text
    assert quote(TOKEN, safe="") not in text
    assert TOKEN.split(":")[1] not in text


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# --- set-webhook -----------------------------------------------------------------------------------------------


def test_set_webhook(cli, fake):
    fake.respond(200, {"ok": True, "result": True})
    result = cli("set-webhook")
    assert result.exit_code == 0, result.output
    [call] = fake.requests
    assert (call.method, call.path) == ("POST", f"/bot{TOKEN}/setWebhook")
    assert call.form == {
        "url": [f"{PUBLIC}/webhooks/telegram"],
        "secret_token": [SECRET],
        "allowed_updates": [json.dumps(ALLOWED)],
        "drop_pending_updates": ["false"],
    }
    assert f"{PUBLIC}/webhooks/telegram" in result.output
    assert SECRET not in result.output
    assert telegram_client._loop is None  # the command closed the Bot API client and its loop thread


def test_set_webhook_can_drop_pending_updates(cli, fake):
    fake.respond(200, {"ok": True, "result": True})
    result = cli("set-webhook", "--drop-pending")
    assert result.exit_code == 0, result.output
    assert fake.requests[0].form["drop_pending_updates"] == ["true"]
    assert "dropped" in result.output


@pytest.mark.parametrize(
    ("public", "url"),
    [
        ("https://thusa.example.org/", "https://thusa.example.org/webhooks/telegram"),
        ("https://thusa.example.org:8443/thusa", "https://thusa.example.org:8443/thusa/webhooks/telegram"),
        ("http://127.0.0.1:5000", "http://127.0.0.1:5000/webhooks/telegram"),  # local only: tests, a local Bot API
        ("http://localhost:5000", "http://localhost:5000/webhooks/telegram"),
    ],
)
def test_webhook_url(cli, fake, public, url):
    fake.respond(200, {"ok": True, "result": True})
    result = cli("set-webhook", PUBLIC_BASE_URL=public)
    assert result.exit_code == 0, result.output
    assert fake.requests[0].form["url"] == [url]
    assert url in result.output


@pytest.mark.parametrize(
    ("settings", "says"),
    [
        ({"TELEGRAM_BOT_TOKEN": ""}, "TELEGRAM_BOT_TOKEN is not set"),
        ({"TELEGRAM_WEBHOOK_SECRET": ""}, "TELEGRAM_WEBHOOK_SECRET is not set"),
        ({"PUBLIC_BASE_URL": ""}, "PUBLIC_BASE_URL is not set"),
        ({"PUBLIC_BASE_URL": "http://thusa.example.org"}, "must be https"),
        ({"PUBLIC_BASE_URL": "http://10.0.0.5:8000"}, "must be https"),
        ({"PUBLIC_BASE_URL": "thusa.example.org"}, "not an http(s) URL"),
        ({"PUBLIC_BASE_URL": "ftp://thusa.example.org"}, "not an http(s) URL"),
        ({"TELEGRAM_WEBHOOK_SECRET": "has a space"}, "A-Z, a-z, 0-9, _ and -"),
        ({"TELEGRAM_WEBHOOK_SECRET": "s3cr3t:colon"}, "A-Z, a-z, 0-9, _ and -"),
        ({"TELEGRAM_WEBHOOK_SECRET": "sécret"}, "A-Z, a-z, 0-9, _ and -"),
        ({"TELEGRAM_WEBHOOK_SECRET": "x" * 257}, "1-256 characters"),
    ],
    ids=[
        "no-token",
        "no-secret",
        "no-public-url",
        "http",
        "http-private-ip",
        "no-scheme",
        "ftp",
        "secret-space",
        "secret-colon",
        "secret-non-ascii",
        "secret-too-long",
    ],  # fmt: skip
)
def test_set_webhook_refusals(cli, fake, settings, says):
    result = cli("set-webhook", **settings)
    assert result.exit_code == 1
    assert "Error:" in result.output and says in result.output
    assert fake.requests == []  # nothing reached Telegram
    secret = settings.get("TELEGRAM_WEBHOOK_SECRET")
    if secret:
        assert secret not in result.output


def test_longest_secret_is_accepted(cli, fake):
    fake.respond(200, {"ok": True, "result": True})
    secret = "A-z_9" * 51 + "x"  # 256 characters
    result = cli("set-webhook", TELEGRAM_WEBHOOK_SECRET=secret)
    assert result.exit_code == 0, result.output
    assert fake.requests[0].form["secret_token"] == [secret]


@pytest.mark.parametrize(
    ("answer", "says"),
    [
        ((400, {"ok": False, "error_code": 400, "description": "Bad Request: bad webhook: Failed to resolve host"}),
         "setwebhook refused (badrequest: bad webhook: failed to resolve host)"),
        ((401, {"ok": False, "error_code": 401, "description": "Unauthorized"}), "was rejected"),
        ((500, {"ok": False, "error_code": 500, "description": "Internal Server Error"}), "unreachable or failing"),
        ((200, {"ok": True, "result": False}), "did not answer true"),
    ],
    ids=["400", "401", "500", "false"],
)  # fmt: skip
def test_set_webhook_errors_from_telegram(cli, fake, answer, says):
    fake.respond(*answer)
    result = cli("set-webhook")
    assert result.exit_code == 1
    assert says.lower() in result.output.lower(), result.output  # PTB rewrites the case of the description
    assert len(fake.requests) == 1


def test_bot_api_unreachable(cli):
    result = cli("set-webhook", TELEGRAM_API_BASE_URL=closed_port_url())
    assert result.exit_code == 1
    assert "setWebhook: Bot API unreachable" in result.output


def test_slow_bot_api(cli, fake, monkeypatch):
    monkeypatch.setattr(telegram.TelegramChannel, "send_timeout", 0.3)
    fake.delay_seconds = 1.0
    fake.respond(200, {"ok": True, "result": True})
    result = cli("set-webhook")
    assert result.exit_code == 1
    assert "no answer within 0.3 s" in result.output


# --- webhook-info ---------------------------------------------------------------------------------------------


def test_webhook_info(cli, fake):
    fake.respond(200, {"ok": True, "result": WEBHOOK_INFO})
    result = cli("webhook-info")
    assert result.exit_code == 0, result.output
    [call] = fake.requests
    assert (call.method, call.path) == ("POST", f"/bot{TOKEN}/getWebhookInfo")
    lines = result.output.splitlines()
    assert f"url: {PUBLIC}/webhooks/telegram" in lines
    assert "pending_update_count: 3" in lines
    assert "last_error_message: Wrong response from the webhook: 403 Forbidden" in lines
    assert "last_error_date: 2025-01-01T10:00:00+00:00" in lines
    assert "allowed_updates: message, callback_query" in lines


def test_webhook_info_without_a_webhook(cli, fake):
    fake.respond(200, {"ok": True, "result": {"url": "", "has_custom_certificate": False, "pending_update_count": 0}})
    result = cli("webhook-info", PUBLIC_BASE_URL="", TELEGRAM_WEBHOOK_SECRET="")  # only the token is needed
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "url: (none: no webhook set)",
        "pending_update_count: 0",
        "last_error_message: (none)",
    ]


def test_webhook_info_refusals_and_errors(cli, fake):
    result = cli("webhook-info", TELEGRAM_BOT_TOKEN="")
    assert result.exit_code == 1 and "TELEGRAM_BOT_TOKEN is not set" in result.output
    assert fake.requests == []
    fake.respond(401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
    result = cli("webhook-info")
    assert result.exit_code == 1 and "getWebhookInfo: the bot token (TELEGRAM_BOT_TOKEN) was rejected" in result.output


def test_the_commands_are_listed(cli):
    result = cli("--help")
    assert result.exit_code == 0
    assert "set-webhook" in result.output and "webhook-info" in result.output
