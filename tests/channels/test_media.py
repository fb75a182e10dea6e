"""Downloading photos (``bots.channels.fetch_media``) from fake Telegram, WhatsApp Cloud and Twilio APIs on
127.0.0.1, and from the console media store: success, not found / expired, 5xx (retryable), oversize (announced
and streamed), wrong host, network failure, and that no token leaks into an error.
"""

from __future__ import annotations

import base64
import hashlib
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bots.channels import MediaError, fetch_media, save_media
from bots.channels import media as media_module
from tests.fakes.server import FakeProvider, RecordedRequest

PHOTO = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 40  # JPEG-looking bytes; the pipeline checks them later
PHOTO_BYTES = len(PHOTO)
BOT_TOKEN = "123456:TEST-bot-token_secret"
WA_TOKEN = "EAAGtestAccessToken0123456789abcdefSECRET"
SID, AUTH_TOKEN = "AC" + "1" * 32, "twilio-auth-token-secret"


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _routes(table: dict):
    """A fake answer function: ``(method, path) -> answer`` (or ``path -> answer``)."""

    def answer(request: RecordedRequest):
        found = table.get((request.method, request.path), table.get(request.path))
        if found is None:
            return 404, {"error": f"no route {request.method} {request.path}"}
        return found(request) if callable(found) else found

    return answer


class StreamingServer:
    """Answers 200 with no Content-Length and ``size`` bytes, closing the connection at the end (HTTP/1.0)."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __enter__(self) -> StreamingServer:
        size = self.size

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                self.send_response(200)
                self.send_header("Content-Type", "image/jpeg")
                self.end_headers()
                sent = 0
                try:
                    while sent < size:
                        chunk = b"\x00" * min(65536, size - sent)
                        self.wfile.write(chunk)
                        sent += len(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client stopped reading at the cap

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()


def _fails(provider, media, config, *, code, retryable, secret=None) -> MediaError:
    with pytest.raises(MediaError) as caught:
        fetch_media(provider, media, config)
    assert (caught.value.code, caught.value.retryable) == (code, retryable), str(caught.value)
    if secret:
        assert secret not in str(caught.value)
    return caught.value


# --- Telegram ---------------------------------------------------------------------------------------------------


def _telegram(fake: FakeProvider, **extra) -> dict:
    return {"TELEGRAM_BOT_TOKEN": BOT_TOKEN, "TELEGRAM_API_BASE_URL": fake.base_url, **extra}


TG_MEDIA = {"content_type": "image/jpeg", "url": None, "provider_media_id": "AgACAgQAAxkBAAIB"}


def _get_file(path="photos/file_1.jpg", size=PHOTO_BYTES):
    result = {"file_id": "AgACAgQAAxkBAAIB", "file_unique_id": "AQADx", "file_path": path}
    if size is not None:
        result["file_size"] = size
    return 200, {"ok": True, "result": result}


def test_telegram_get_file_then_download():
    with FakeProvider() as fake:
        fake.respond(_routes({f"/bot{BOT_TOKEN}/getFile": _get_file(),
                              f"/file/bot{BOT_TOKEN}/photos/file_1.jpg": (200, PHOTO)}))  # fmt: skip
        data, content_type = fetch_media("telegram", TG_MEDIA, _telegram(fake))

    assert data == PHOTO
    assert content_type == "image/jpeg"  # the file server says octet-stream; the message said a photo
    get_file, download = fake.requests
    assert (get_file.method, get_file.path) == ("POST", f"/bot{BOT_TOKEN}/getFile")
    assert get_file.form == {"file_id": ["AgACAgQAAxkBAAIB"]}
    assert (download.method, download.path) == ("GET", f"/file/bot{BOT_TOKEN}/photos/file_1.jpg")


def test_telegram_wrong_or_expired_file_id_is_not_retried():
    with FakeProvider() as fake:
        fake.respond(400, {"ok": False, "error_code": 400,
                           "description": "Bad Request: wrong file_id or the file is temporarily unavailable"})  # fmt: skip
        error = _fails("telegram", TG_MEDIA, _telegram(fake), code="not_found", retryable=False, secret=BOT_TOKEN)
    assert "wrong file_id" in str(error)


def test_telegram_expired_download_link_is_not_found():
    with FakeProvider() as fake:
        fake.respond(_routes({f"/bot{BOT_TOKEN}/getFile": _get_file()}))  # the file URL answers 404
        _fails("telegram", TG_MEDIA, _telegram(fake), code="not_found", retryable=False, secret=BOT_TOKEN)


@pytest.mark.parametrize(
    ("answer", "code"),
    [
        ((500, {"ok": False, "error_code": 500, "description": "Internal Server Error"}), "server_error"),
        ((502, "Bad Gateway"), "server_error"),
        ((429, {"ok": False, "error_code": 429, "description": "Too Many Requests: retry after 5"}), "rate_limited"),
        ((200, "<html>not json</html>"), "bad_answer"),
        ((200, {}), "bad_answer"),
    ],
)
def test_telegram_server_trouble_is_retryable(answer, code):
    with FakeProvider() as fake:
        fake.respond(*answer)
        _fails("telegram", TG_MEDIA, _telegram(fake), code=code, retryable=True, secret=BOT_TOKEN)


def test_telegram_answer_without_file_path_is_not_retried():
    with FakeProvider() as fake:
        fake.respond(200, {"ok": True, "result": {}})
        _fails("telegram", TG_MEDIA, _telegram(fake), code="not_found", retryable=False)


def test_telegram_file_size_over_the_cap_is_refused_before_downloading():
    with FakeProvider() as fake:
        fake.respond(_routes({f"/bot{BOT_TOKEN}/getFile": _get_file(size=5000),
                              f"/file/bot{BOT_TOKEN}/photos/file_1.jpg": (200, PHOTO)}))  # fmt: skip
        error = _fails("telegram", TG_MEDIA, _telegram(fake, IMAGE_MAX_BYTES=4999), code="too_large", retryable=False)
    assert "5000 bytes; the limit is 4999" in str(error)
    assert len(fake.requests) == 1  # no download


def test_telegram_bot_api_too_big_is_too_large():
    with FakeProvider() as fake:
        fake.respond(400, {"ok": False, "error_code": 400, "description": "Bad Request: file is too big"})
        _fails("telegram", TG_MEDIA, _telegram(fake), code="too_large", retryable=False)


def test_telegram_network_failure_is_retryable():
    config = {"TELEGRAM_BOT_TOKEN": BOT_TOKEN, "TELEGRAM_API_BASE_URL": f"http://127.0.0.1:{_closed_port()}"}
    _fails("telegram", TG_MEDIA, config, code="network", retryable=True, secret=BOT_TOKEN)


# --- byte cap while streaming (any provider) --------------------------------------------------------------------


def test_a_body_without_content_length_is_cut_at_the_cap():
    with StreamingServer(size=10 * 1024 * 1024) as server, pytest.raises(MediaError) as caught:
        media_module.download(server.base_url + "/big.jpg", "test download", max_bytes=200_000)
    assert (caught.value.code, caught.value.retryable) == ("too_large", False)


def test_a_body_without_content_length_under_the_cap_is_read_whole():
    with StreamingServer(size=150_000) as server:
        data, content_type = media_module.download(server.base_url + "/ok.jpg", "test download", max_bytes=200_000)
    assert len(data) == 150_000 and content_type == "image/jpeg"


def test_an_announced_content_length_over_the_cap_is_refused_before_reading():
    with FakeProvider() as fake:
        fake.respond(200, PHOTO)
        with pytest.raises(MediaError) as caught:
            media_module.download(fake.base_url + "/x", "test download", max_bytes=len(PHOTO) - 1)
    assert caught.value.code == "too_large"
    assert f"{len(PHOTO)} bytes" in str(caught.value)


# --- WhatsApp Cloud ---------------------------------------------------------------------------------------------


def _whatsapp(fake: FakeProvider, **extra) -> dict:
    return {"WHATSAPP_TOKEN": WA_TOKEN, "WHATSAPP_PHONE_NUMBER_ID": "1234567890", "WHATSAPP_API_BASE_URL": fake.base_url,
            "WHATSAPP_API_VERSION": "v21.0", **extra}  # fmt: skip


WA_MEDIA = {"content_type": "image/jpeg", "url": None, "provider_media_id": "1037543291543636"}


def _lookup(fake: FakeProvider, *, url=None, sha256=None, size=PHOTO_BYTES):
    body = {"messaging_product": "whatsapp", "url": url or f"{fake.base_url}/whatsapp_business/attachments/?mid=1037",
            "mime_type": "image/jpeg", "sha256": sha256 or hashlib.sha256(PHOTO).hexdigest(), "file_size": size,
            "id": "1037543291543636"}  # fmt: skip
    return 200, body


def test_whatsapp_media_id_to_url_to_bytes_with_the_bearer_token():
    with FakeProvider() as fake:
        fake.respond(_routes({"/v21.0/1037543291543636": _lookup(fake),
                              "/whatsapp_business/attachments/": (200, PHOTO, {"Content-Type": "image/jpeg"})}))  # fmt: skip
        data, content_type = fetch_media("whatsapp", WA_MEDIA, _whatsapp(fake))

    assert (data, content_type) == (PHOTO, "image/jpeg")
    lookup, download = fake.requests
    assert (lookup.method, lookup.path) == ("GET", "/v21.0/1037543291543636")
    assert download.path == "/whatsapp_business/attachments/" and download.query == {"mid": ["1037"]}
    assert lookup.headers["Authorization"] == download.headers["Authorization"] == f"Bearer {WA_TOKEN}"


@pytest.mark.parametrize(
    ("answer", "code", "retryable"),
    [
        ((400, {"error": {"message": "Unsupported get request. Object with ID '1037' does not exist", "code": 100}}),
         "not_found", False),
        ((404, {"error": {"message": "not found", "code": 100}}), "not_found", False),
        ((401, {"error": {"message": f"Invalid OAuth access token {WA_TOKEN}", "code": 190}}), "refused", False),
        ((500, {"error": {"message": "An unexpected error has occurred", "code": 2}}), "server_error", True),
        ((503, "Service Unavailable"), "server_error", True),
        ((400, {"error": {"message": "Media download error", "code": 131053}}), "server_error", True),
        ((429, {"error": {"message": "rate limit", "code": 130429}}), "rate_limited", True),
    ],
)  # fmt: skip
def test_whatsapp_lookup_errors(answer, code, retryable):
    with FakeProvider() as fake:
        fake.respond(*answer)
        _fails("whatsapp", WA_MEDIA, _whatsapp(fake), code=code, retryable=retryable, secret=WA_TOKEN)


def test_whatsapp_expired_media_url_is_not_found_and_a_5xx_download_is_retryable():
    with FakeProvider() as fake:
        fake.respond(_routes({"/v21.0/1037543291543636": _lookup(fake)}))  # the download URL answers 404
        _fails("whatsapp", WA_MEDIA, _whatsapp(fake), code="not_found", retryable=False)
    with FakeProvider() as fake:
        fake.respond(_routes({"/v21.0/1037543291543636": _lookup(fake),
                              "/whatsapp_business/attachments/": (500, "oops")}))  # fmt: skip
        _fails("whatsapp", WA_MEDIA, _whatsapp(fake), code="server_error", retryable=True)


def test_whatsapp_oversize_is_refused_before_downloading():
    with FakeProvider() as fake:
        fake.respond(_routes({"/v21.0/1037543291543636": _lookup(fake, size=20_000_000)}))
        _fails("whatsapp", WA_MEDIA, _whatsapp(fake), code="too_large", retryable=False)
    assert len(fake.requests) == 1


def test_whatsapp_url_on_another_host_gets_no_token():
    with FakeProvider() as fake:
        fake.respond(_routes({"/v21.0/1037543291543636": _lookup(fake, url="https://attacker.example/x.jpg")}))
        _fails("whatsapp", WA_MEDIA, _whatsapp(fake), code="bad_host", retryable=False)
    assert len(fake.requests) == 1


def test_whatsapp_checksum_mismatch_is_retryable():
    with FakeProvider() as fake:
        fake.respond(_routes({"/v21.0/1037543291543636": _lookup(fake, sha256="0" * 64),
                              "/whatsapp_business/attachments/": (200, PHOTO)}))  # fmt: skip
        _fails("whatsapp", WA_MEDIA, _whatsapp(fake), code="checksum", retryable=True)


def test_whatsapp_media_hosts():
    allowed = media_module.host_allowed
    hosts = ("fbsbx.com",)
    assert allowed("https://lookaside.fbsbx.com/whatsapp_business/attachments/?mid=1", domains=hosts)
    assert not allowed("http://lookaside.fbsbx.com/x", domains=hosts)  # never the token over plain http
    assert not allowed("https://fbsbx.com.attacker.example/x", domains=hosts)
    assert not allowed("https://evilfbsbx.com/x", domains=hosts)
    assert not allowed("file:///etc/passwd", domains=hosts)
    assert allowed("http://127.0.0.1:8080/x", domains=hosts, base_url="http://127.0.0.1:8080")
    assert not allowed("http://127.0.0.1:8081/x", domains=hosts, base_url="http://127.0.0.1:8080")


# --- Twilio -----------------------------------------------------------------------------------------------------


def _twilio(fake: FakeProvider, **extra) -> dict:
    return {"TWILIO_ACCOUNT_SID": SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN, "TWILIO_API_BASE_URL": fake.base_url, **extra}


def _twilio_media(fake: FakeProvider) -> dict:
    return {"content_type": "image/jpeg", "provider_media_id": None,
            "url": f"{fake.base_url}/2010-04-01/Accounts/{SID}/Messages/MM1/Media/ME1"}  # fmt: skip


def test_twilio_media_url_with_basic_auth():
    with FakeProvider() as fake:
        fake.respond(200, PHOTO, {"Content-Type": "image/jpeg"})
        data, content_type = fetch_media("twilio", _twilio_media(fake), _twilio(fake))

    assert (data, content_type) == (PHOTO, "image/jpeg")
    (request,) = fake.requests
    assert request.path == f"/2010-04-01/Accounts/{SID}/Messages/MM1/Media/ME1"
    expected = "Basic " + base64.b64encode(f"{SID}:{AUTH_TOKEN}".encode()).decode()
    assert request.headers["Authorization"] == expected
    assert request.headers["Accept-Encoding"] == "identity"


def test_twilio_redirect_on_the_same_api_host_is_followed():
    with FakeProvider() as fake:
        fake.respond(_routes({f"/2010-04-01/Accounts/{SID}/Messages/MM1/Media/ME1":
                              (307, b"", {"Location": "/cdn/ME1.jpg"}),
                              "/cdn/ME1.jpg": (200, PHOTO, {"Content-Type": "image/jpeg"})}))  # fmt: skip
        data, _ = fetch_media("twilio", _twilio_media(fake), _twilio(fake))
    assert data == PHOTO
    assert [r.path for r in fake.requests][-1] == "/cdn/ME1.jpg"
    assert all("Authorization" in r.headers for r in fake.requests)  # same API origin: the credentials follow


def test_credentials_go_only_where_auth_for_allows_them():
    # Twilio's API answers with a redirect to its media CDN: the CDN must not get the account's credentials.
    with FakeProvider() as api, FakeProvider() as cdn:
        cdn.respond(200, PHOTO, {"Content-Type": "image/jpeg"})
        api.respond(307, b"", {"Location": f"{cdn.base_url}/media/ME1"})
        data, _ = media_module.download(
            f"{api.base_url}/Media/ME1", "test download", max_bytes=10**6, auth=(SID, AUTH_TOKEN),
            headers={"X-Api": "1"}, allowed=lambda url: True,
            auth_for=lambda url: media_module.origin(url) == media_module.origin(api.base_url),
        )  # fmt: skip
    assert data == PHOTO
    assert api.requests[0].headers["Authorization"].startswith("Basic ") and api.requests[0].headers["X-Api"] == "1"
    assert "Authorization" not in cdn.requests[0].headers and "X-Api" not in cdn.requests[0].headers


def test_twilio_redirect_to_another_host_is_refused():
    with FakeProvider() as fake:
        fake.respond(307, b"", {"Location": "https://attacker.example/steal"})
        _fails("twilio", _twilio_media(fake), _twilio(fake), code="bad_host", retryable=False, secret=AUTH_TOKEN)


def test_twilio_never_fetches_a_url_off_its_hosts():
    media = {"content_type": "image/jpeg", "url": "https://attacker.example/x.jpg", "provider_media_id": None}
    _fails("twilio", media, {"TWILIO_ACCOUNT_SID": SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN}, code="bad_host",
           retryable=False)  # fmt: skip
    media["url"] = "http://127.0.0.1:9/2010-04-01/x"  # loopback but not TWILIO_API_BASE_URL's origin
    _fails("twilio", media, {"TWILIO_ACCOUNT_SID": SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN}, code="bad_host",
           retryable=False)  # fmt: skip


def test_twilio_media_hosts():
    assert media_module.host_allowed("https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1",
                                     domains=("api.twilio.com",))  # fmt: skip
    assert not media_module.host_allowed("https://api.twilio.com.evil.example/x", domains=("api.twilio.com",))


@pytest.mark.parametrize(
    ("status", "code", "retryable"),
    [(404, "not_found", False), (401, "refused", False), (503, "server_error", True), (429, "rate_limited", True)],
)
def test_twilio_errors(status, code, retryable):
    with FakeProvider() as fake:
        fake.respond(status, {"code": 20404, "message": "The requested resource was not found"})
        _fails("twilio", _twilio_media(fake), _twilio(fake), code=code, retryable=retryable)


def test_twilio_oversize_is_refused():
    with FakeProvider() as fake:
        fake.respond(200, PHOTO)
        _fails("twilio", _twilio_media(fake), _twilio(fake, IMAGE_MAX_BYTES=100), code="too_large", retryable=False)


# --- console media store --------------------------------------------------------------------------------------


def test_console_store_answers_when_the_provider_is_not_configured(tmp_path: Path):
    config = {"INSTANCE_PATH": str(tmp_path)}
    media_id = save_media(config, PHOTO, "image/jpeg; charset=binary")
    assert re.fullmatch(r"[0-9a-f]{32}", media_id)  # the same ids as the simulator's photos

    for provider in ("telegram", "whatsapp", "console"):
        data, content_type = fetch_media(provider, {"content_type": None, "provider_media_id": media_id}, config)
        assert (data, content_type) == (PHOTO, "image/jpeg")
    stored = tmp_path / "console-media" / media_id
    assert stored.read_bytes() == PHOTO
    assert stored.stat().st_mode & 0o077 == 0  # readable by this user only
    assert not list((tmp_path / "console-media").glob("*.partial"))


def test_console_store_refuses_unknown_and_malformed_ids(tmp_path: Path):
    config = {"INSTANCE_PATH": str(tmp_path)}
    save_media(config, PHOTO, "image/jpeg")
    (tmp_path / "secret.txt").write_text("not a photo")
    for media_id in ("0" * 32, "../secret.txt", "0" * 32 + "/../../secret.txt", "A" * 32, ""):
        _fails("telegram", {"provider_media_id": media_id}, config, code="not_found" if media_id else "not_configured",
               retryable=False)  # fmt: skip


def test_console_store_byte_cap_and_url_only_attachments(tmp_path: Path):
    config = {"INSTANCE_PATH": str(tmp_path), "IMAGE_MAX_BYTES": 10}
    media_id = save_media(config, PHOTO, "image/jpeg")
    _fails("whatsapp", {"provider_media_id": media_id}, config, code="too_large", retryable=False)
    # Twilio attachments carry only a URL: without Twilio credentials nothing can fetch them.
    _fails("twilio", {"url": "https://api.twilio.com/2010-04-01/x"}, config, code="not_configured", retryable=False)


def test_console_store_keeps_no_bogus_content_type(tmp_path: Path):
    config = {"INSTANCE_PATH": str(tmp_path)}
    media_id = save_media(config, PHOTO, "not a type\n../x")
    assert fetch_media("console", {"provider_media_id": media_id}, config) == (PHOTO, None)
    assert fetch_media("console", {"provider_media_id": media_id, "content_type": "image/png"}, config)[1] == (
        "image/png"
    )


def test_unknown_provider():
    _fails("carrier-pigeon", {"provider_media_id": "x"}, {}, code="not_configured", retryable=False)


def test_a_stored_photo_goes_from_the_store_through_the_pipeline_to_the_model(tmp_path: Path):
    from app.services import images, skin_model
    from tests.conftest import PLACEHOLDER_MODEL_DIR
    from tests.photos import encode, sample_photo

    config = {"INSTANCE_PATH": str(tmp_path), "IMAGE_MAX_BYTES": 5_000_000}
    media_id = save_media(config, encode(sample_photo(1600, 1200), "HEIF", quality=85), "image/heic")

    data, content_type = fetch_media("telegram", {"content_type": "image/jpeg", "provider_media_id": media_id}, config)
    stored = images.process(data, max_bytes=config["IMAGE_MAX_BYTES"])
    prediction = skin_model.get_model(skin_model.model_dir_from_config({"SKIN_MODEL_DIR": PLACEHOLDER_MODEL_DIR}))
    prediction = prediction.predict(stored.data)

    assert content_type == "image/heic" and stored.source_format == "HEIF"
    assert len(prediction.top) == 3


# --- tricky URLs: the host that is checked is the host requests connects to ---------------------------------------

TWILIO_API = ("api.twilio.com",)
TRICKY_URLS = [  # (url, allowed on api.twilio.com)
    ("https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1", True),
    ("HTTPS://API.TWILIO.COM/2010-04-01/x", True),  # the same host in upper case
    ("https://api.twilio.com:443/x", True),  # the default port, spelled out
    ("https://api.twilio.com/x#frag", True),
    ("https://evil.example\\@api.twilio.com/x", False),  # urlparse: api.twilio.com; urllib3: evil.example
    ("https://evil.example\\.api.twilio.com/x", False),
    ("https://api.twilio.com\\@evil.example/x", False),
    ("https://api.twilio.com/x\\y", False),  # a backslash anywhere
    ("https://evil.example@api.twilio.com/x", False),  # userinfo
    ("https://AC1:token@api.twilio.com/x", False),
    ("https://api.twilio.com@evil.example/x", False),
    ("https://api.twilio.com/x@y", False),  # an @ anywhere
    ("https://evil.example%2F@api.twilio.com/x", False),
    ("https://evil.example%5C@api.twilio.com/x", False),
    ("https://api.twilio.com%2F.evil.example/x", False),
    ("https://api%2etwilio.com/x", False),  # urllib3 decodes the escape, urlparse does not: the parsers disagree
    ("https://api.twilio.com#@evil.example/x", False),
    ("https://evil.example#.api.twilio.com/x", False),
    ("https://evil.example?.api.twilio.com/x", False),
    ("https://api.twilio.com./x", False),  # a trailing dot
    ("https://api.twilio.com.evil.example/x", False),
    ("https://\u0430pi.twilio.com/x", False),  # a Cyrillic a: an IDN look-alike
    ("https://xn--pi-6kc.twilio.com/x", False),  # the same in punycode: another host
    ("https://api.twilio.com:8443/x", False),  # another port
    ("https://api.twilio.com:65536/x", False),
    ("https://api.twilio.com:+443/x", False),
    ("http://api.twilio.com/x", False),  # never credentials over plain http
    ("http://api.twilio.com:443/x", False),
    ("https:api.twilio.com/x", False),
    ("//api.twilio.com/x", False),
    ("https:///api.twilio.com/x", False),
    ("ftp://api.twilio.com/x", False),
    ("https://api.twilio.com\t/x", False),
    (" https://api.twilio.com/x", False),
    ("https://[::1]/x", False),
    ("", False),
]


@pytest.mark.parametrize(("url", "allowed"), TRICKY_URLS)
def test_media_hosts_are_read_as_requests_connects(url, allowed):
    assert media_module.host_allowed(url, domains=TWILIO_API) is allowed
    if not allowed:  # refused before any connection: nothing to resolve, nothing sent
        media = {"content_type": "image/jpeg", "url": url, "provider_media_id": None}
        _fails("twilio", media, {"TWILIO_ACCOUNT_SID": SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN},
               code="not_found" if not url else "bad_host", retryable=False)  # fmt: skip


# Tricky URLs between two servers on 127.0.0.1: {api} is the allowed origin (*_API_BASE_URL), {evil} another.
TRICKY_LOOPBACK = [
    "http://{evil}\\@{api}/2010-04-01/x",  # urlparse reads {api}; requests connected to {evil} with the credentials
    "http://localhost:{evil_port}\\@{api}/2010-04-01/x",
    "http://{evil}\\.{api}/x",
    "http://{evil}%2F@{api}/x",
    "http://{evil}#@{api}/x",
    "http://{evil}?@{api}/x",
    "http://{api}@{evil}/x",
    "http://user:pw@{api}/x",
]


def _refused(provider: str, media: dict, config: dict, secret: str) -> None:
    with pytest.raises(MediaError) as caught:
        fetch_media(provider, media, config)
    # bad_answer: a Location so broken that requests itself cannot read it (it parses one even when not following)
    assert caught.value.code in ("bad_host", "bad_answer") and not caught.value.retryable, str(caught.value)
    assert secret not in str(caught.value)


def _tricky(template: str, api: FakeProvider, evil: FakeProvider) -> str:
    return template.format(api=api.base_url.removeprefix("http://"), evil=evil.base_url.removeprefix("http://"),
                           evil_port=evil.base_url.rsplit(":", 1)[1])  # fmt: skip


@pytest.mark.parametrize("template", TRICKY_LOOPBACK)
@pytest.mark.parametrize("how", ["media url", "redirect"])
def test_twilio_credentials_never_reach_another_host(template, how):
    with FakeProvider() as api, FakeProvider() as evil:
        evil.respond(200, PHOTO, {"Content-Type": "image/jpeg"})
        url = _tricky(template, api, evil)
        api.respond(307, b"", {"Location": url})
        media = _twilio_media(api) if how == "redirect" else {"content_type": "image/jpeg", "url": url}
        _refused("twilio", media, _twilio(api), AUTH_TOKEN)
    assert evil.requests == []
    assert len(api.requests) == (1 if how == "redirect" else 0)


@pytest.mark.parametrize("template", TRICKY_LOOPBACK)
@pytest.mark.parametrize("how", ["lookup url", "redirect"])
def test_whatsapp_token_never_reaches_another_host(template, how):
    with FakeProvider() as api, FakeProvider() as evil:
        evil.respond(200, PHOTO, {"Content-Type": "image/jpeg"})
        url = _tricky(template, api, evil)
        download = f"{api.base_url}/whatsapp_business/attachments/?mid=1037" if how == "redirect" else url
        api.respond(_routes({"/v21.0/1037543291543636": _lookup(api, url=download),
                             "/whatsapp_business/attachments/": (307, b"", {"Location": url})}))  # fmt: skip
        _refused("whatsapp", WA_MEDIA, _whatsapp(api), WA_TOKEN)
    assert evil.requests == []


def test_twilio_s3_redirects_are_checked_on_the_path_requests_asks_for():
    # Dot segments are removed before the request goes out: this is another bucket, not Twilio's.
    with FakeProvider() as api:
        api.respond(307, b"", {"Location": "https://s3.amazonaws.com/media.twiliocdn.com/../evil-bucket/x.jpg"})
        _fails("twilio", _twilio_media(api), _twilio(api), code="bad_host", retryable=False)
    assert media_module.path("https://s3.amazonaws.com/media.twiliocdn.com/../evil-bucket/x") == "/evil-bucket/x"
