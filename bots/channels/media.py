"""Downloading the attachments people send (skin photos), through the provider they came from.

:func:`fetch_media` is what the analysis job calls with a stored ``Message.media`` item (``content_type``, ``url``,
``provider_media_id``). The vendor part lives in each adapter's ``fetch_media`` (Telegram ``getFile``, WhatsApp
Cloud media ids, Twilio ``MediaUrl`` with HTTP Basic auth); this module holds what they share: the byte cap
enforced while streaming (a provider's ``Content-Length`` is checked first, but never trusted alone), and the
console media store that answers when the provider is not configured (the embedded default of ``make run``, and
the phone simulator, which saves a picture with :func:`bots.channels.console.save_media` and then posts a real
webhook payload carrying its id).

The error, :class:`MediaError`, is defined in :mod:`bots.channels.base` beside the other errors adapters raise (the
base class raises it too) and is importable from here as well.

Errors never carry a URL: Telegram's download URL contains the bot token, and requests' exception texts contain
the URL, so only exception class names and provider error descriptions are kept.

Hosts that receive credentials are checked with :func:`host_allowed`, which reads a URL with urllib3's parser (the
one requests connects with) and refuses backslashes, ``@``/userinfo and any URL the two parsers read differently.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING
from urllib.parse import urljoin, urlsplit

from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

from bots.channels.base import REGISTRY, MediaError

if TYPE_CHECKING:
    import requests

CONNECT_TIMEOUT_SECONDS = 5.0
READ_TIMEOUT_SECONDS = 20.0  # longest wait for the next chunk
DOWNLOAD_SECONDS = 60.0  # whole download: a server trickling bytes cannot hold the worker for longer
DEFAULT_MAX_BYTES = 15 * 1024 * 1024  # IMAGE_MAX_BYTES
CHUNK_BYTES = 64 * 1024
MAX_REDIRECTS = 3
DEFAULT_PORTS = {"https": 443, "http": 80}
_PRINTABLE_ASCII = re.compile(r"[!-~]+")  # no spaces, controls or non-ASCII: provider URLs have none
_HOST = re.compile(r"[a-z0-9-]+(?:\.[a-z0-9-]+)*")  # a DNS name or IPv4 address, lower case, no trailing dot


def max_bytes_from(config: Mapping) -> int:
    """The byte cap for downloads: ``IMAGE_MAX_BYTES``."""
    try:
        return int(config.get("IMAGE_MAX_BYTES") or DEFAULT_MAX_BYTES)
    except (TypeError, ValueError):
        return DEFAULT_MAX_BYTES


def status_error(what: str, status: int, detail: str = "") -> MediaError:
    """The :class:`MediaError` for an HTTP error answer from a provider."""
    suffix = f" ({detail})" if detail else ""
    if status in (404, 410):
        return MediaError(f"{what}: not found or expired (HTTP {status}){suffix}", retryable=False, code="not_found",
                          status=status)  # fmt: skip
    if status == 429:
        return MediaError(f"{what}: rate limited (HTTP 429){suffix}", retryable=True, code="rate_limited", status=429)
    if status >= 500:
        return MediaError(f"{what}: server error (HTTP {status}){suffix}", retryable=True, code="server_error",
                          status=status)  # fmt: skip
    return MediaError(f"{what}: refused (HTTP {status}){suffix}", retryable=False, code="refused", status=status)


def too_large(what: str, size: int | None, max_bytes: int) -> MediaError:
    told = f"{size} bytes" if size is not None else "more bytes"
    return MediaError(f"{what}: the file has {told}; the limit is {max_bytes}", retryable=False, code="too_large")


def request(method: str, url: str, what: str, **kwargs) -> requests.Response:
    """One HTTP request with the module's timeouts; network failures become retryable :class:`MediaError`."""
    import requests  # ~3 MB with its dependencies: downloads run in the workers, the web process never needs it

    try:
        return requests.request(method, url, timeout=(CONNECT_TIMEOUT_SECONDS, READ_TIMEOUT_SECONDS), **kwargs)
    except requests.Timeout:
        raise MediaError(f"{what}: timed out", retryable=True, code="network") from None
    except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema, requests.exceptions.InvalidSchema):
        raise MediaError(f"{what}: not a usable URL", retryable=False, code="bad_host") from None
    except requests.RequestException as exc:  # connection refused or reset, DNS, a broken chunked body ...
        raise MediaError(f"{what}: network error ({type(exc).__name__})", retryable=True, code="network") from None
    except ValueError:  # requests reads a redirect's Location even when not following it, and may choke on it
        raise MediaError(f"{what}: an unreadable answer", retryable=False, code="bad_answer") from None


def download(
    url: str,
    what: str,
    *,
    max_bytes: int,
    headers: dict | None = None,
    auth: tuple[str, str] | None = None,
    allowed: Callable[[str], bool] | None = None,
    auth_for: Callable[[str], bool] | None = None,
) -> tuple[bytes, str | None]:
    """GET ``url`` and read at most ``max_bytes`` of it.

    Args:
        url: what to download.
        what: names the download in error messages (never the URL).
        max_bytes: the cap; a bigger ``Content-Length`` is refused before reading, a body that grows past it is
            refused as soon as it does.
        headers, auth: sent with the request (to redirect targets only when ``auth_for`` allows them).
        allowed: when given, ``url`` must pass it, and redirects are followed by hand (at most 3) and only to URLs
            it accepts (use :func:`host_allowed`, which reads hosts the way requests connects).
        auth_for: which URLs may receive ``headers``/``auth``; default: all allowed ones.

    Returns:
        The bytes and the answer's content type (without parameters), if any.

    Raises:
        MediaError: as :func:`status_error`, :func:`too_large`, or a network failure (retryable).
    """
    if allowed is not None and not allowed(url):
        raise MediaError(f"{what}: the URL is not on an allowed host", retryable=False, code="bad_host")
    deadline = time.monotonic() + DOWNLOAD_SECONDS
    # Photos are compressed already; asking for no transfer encoding keeps a gzip bomb out of the decoder.
    plain = {"Accept-Encoding": "identity"}
    for _ in range(MAX_REDIRECTS + 1):
        credentials = auth_for is None or auth_for(url)
        sent_headers = {**plain, **(headers or {})} if credentials else plain
        response = request("GET", url, what, stream=True, allow_redirects=False, headers=sent_headers,
                           auth=auth if credentials else None)  # fmt: skip
        with response:
            if response.is_redirect and allowed is not None:
                target = urljoin(url, response.headers.get("Location", ""))
                if not allowed(target):
                    raise MediaError(f"{what}: redirected to a host that is not allowed", retryable=False,
                                     code="bad_host")  # fmt: skip
                url = target
                continue
            if response.status_code != 200:
                raise status_error(what, response.status_code)
            return _read(response, what, max_bytes, deadline), _content_type(response.headers.get("Content-Type"))
    raise MediaError(f"{what}: more than {MAX_REDIRECTS} redirects", retryable=False, code="bad_answer")


def _read(response: requests.Response, what: str, max_bytes: int, deadline: float) -> bytes:
    import requests  # loaded by request() already

    declared = response.headers.get("Content-Length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise too_large(what, int(declared), max_bytes)
    body = bytearray()
    try:
        for chunk in response.iter_content(CHUNK_BYTES):
            body += chunk
            if len(body) > max_bytes:
                raise too_large(what, None, max_bytes)
            if time.monotonic() > deadline:
                raise MediaError(f"{what}: took longer than {DOWNLOAD_SECONDS:.0f} s", retryable=True, code="network")
    except requests.RequestException as exc:
        raise MediaError(f"{what}: network error ({type(exc).__name__})", retryable=True, code="network") from None
    return bytes(body)


def _content_type(value: str | None) -> str | None:
    kind = (value or "").split(";")[0].strip().lower()
    return kind or None


def fetch_media(provider: str, media: Mapping, config: Mapping) -> tuple[bytes, str | None]:
    """Bytes and content type of one stored attachment, through the provider's own API.

    Args:
        provider: the adapter the message came through (``Message.provider``: ``telegram``, ``whatsapp``,
            ``twilio``, ``console``).
        media: one ``Message.media`` item: ``content_type``, ``url``, ``provider_media_id``.
        config: the app config (credentials, ``*_API_BASE_URL``, ``IMAGE_MAX_BYTES``, ``INSTANCE_PATH``).

    When the provider is not configured, the console media store answers instead (by ``provider_media_id``).

    Raises:
        MediaError: see its attributes; ``retryable`` tells the job whether to try again later.
    """
    adapter_class = REGISTRY.get(provider)
    if adapter_class is None:
        raise MediaError(f"no channel adapter named {provider!r}", retryable=False, code="not_configured")
    if not adapter_class.is_configured(config):
        adapter_class = REGISTRY["console"]
    return adapter_class(config).fetch_media(media, max_bytes=max_bytes_from(config))


def origin(url: str) -> tuple[str, str, int] | None:
    """``(scheme, host, port)`` of a plain http(s) URL as requests will connect to it, or ``None``.

    The host is read by urllib3's parser, the one requests connects with (default ports filled in). ``None`` for
    anything that is not plainly ``scheme://host[:port]/...``: characters other than printable ASCII, a backslash,
    an ``@`` (userinfo, or a host hidden behind one), a host that is not a lower-case DNS name or IPv4 address (a
    trailing dot, a Unicode IDN, percent escapes), and any URL the standard library's parser reads as another
    origin. ``https://evil.example\\@api.twilio.com/`` is the reason: ``urlparse`` says ``api.twilio.com``,
    urllib3 connects to ``evil.example``.
    """
    if not isinstance(url, str) or not _PRINTABLE_ASCII.fullmatch(url) or "\\" in url or "@" in url:
        return None
    try:
        parts = parse_url(url)
        other = urlsplit(url)
        other_port = other.port
    except (LocationParseError, ValueError):
        return None
    scheme = (parts.scheme or "").lower()
    if scheme not in DEFAULT_PORTS or parts.auth is not None or not parts.host or not _HOST.fullmatch(parts.host):
        return None
    port = parts.port or DEFAULT_PORTS[scheme]
    if (other.scheme.lower(), other.hostname, other_port or DEFAULT_PORTS[scheme]) != (scheme, parts.host, port):
        return None
    return scheme, parts.host, port


def path(url: str) -> str:
    """The path requests will ask for (urllib3's parser: dot segments removed), or ``""``."""
    try:
        return parse_url(url).path or ""
    except LocationParseError:
        return ""


def host_allowed(url: str, *, domains: tuple[str, ...], base_url: str | None = None) -> bool:
    """True for an https URL on port 443 of one of ``domains`` (or a subdomain), or a URL on ``base_url``'s origin
    (the ``*_API_BASE_URL`` setting, which may be plain http on 127.0.0.1 for tests and local fakes). Hosts are
    compared as :func:`origin` reads them: anything it refuses is never allowed."""
    where = origin(url)
    if where is None:
        return False
    if base_url and where == origin(base_url):
        return True
    scheme, host, port = where
    on_a_domain = any(host == domain or host.endswith("." + domain) for domain in domains)
    return scheme == "https" and port == 443 and on_a_domain
