"""The JSON bodies of WhatsApp Cloud API sends (``POST /<version>/<phone number id>/messages``), built offline.

Free text, an interactive message with up to 3 reply buttons (more buttons, or titles that collide once cut to 20
characters, become a numbered list in the text), an image with the text as caption (an image header when there are
buttons), or an approved template with body parameters.

Template languages: Meta has no Setswana template language, so ``tn`` maps to ``en`` unless the template says which
approved language to use (``template["language"]``: a Meta code such as ``en_US``, or a mapping from our language
to a Meta code).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping

from app.messaging.envelopes import OutboundMessage
from bots.channels.base import SendError
from bots.channels.whatsapp_webhook import BSUID

log = logging.getLogger("bots.channels.whatsapp")  # the adapter's logger: operators filter on this name

MAX_TEXT_LENGTH = 4096  # free text body
MAX_INTERACTIVE_BODY_LENGTH = 1024  # interactive body and media caption
MAX_REPLY_BUTTONS = 3
MAX_BUTTON_TITLE_LENGTH = 20
MAX_BUTTON_ID_LENGTH = 256

# Our language → the Meta template language code used when the template does not say.
TEMPLATE_LANGUAGES = {"en": "en", "tn": "en"}


def build_payload(message: OutboundMessage, config: Mapping) -> dict:
    """The JSON body for ``/messages`` (no network).

    Args:
        message: the outbound message; ``address`` is an E.164 number (or a BSUID).
        config: the app settings (``WHATSAPP_TEMPLATE_REMINDER``: the template used when the message names none).

    Raises:
        SendError: not retryable, for a message WhatsApp cannot take (empty, over 4096 characters, or a
            template without a name).
    """
    payload: dict = {"messaging_product": "whatsapp", "recipient_type": "individual"}
    address = message.address.removeprefix("whatsapp:")
    if BSUID.fullmatch(address):
        # Users known only by a business-scoped user id are addressed with "recipient" instead of "to".
        payload["recipient"] = address
    else:
        payload["to"] = address.removeprefix("+")
    if message.template:
        payload["type"] = "template"
        payload["template"] = _template(message, config)
        return payload

    text = message.text or ""
    buttons = message.buttons
    media_urls = message.media_urls
    if len(media_urls) > 1:
        log.warning("WhatsApp message %s: sending 1 of %d images", message.id, len(media_urls))
    if buttons and _buttons_fit(text, buttons):
        interactive: dict = {
            "type": "button",
            "body": {"text": text},
            "action": {
                "buttons": [
                    {"type": "reply", "reply": {"id": button.id, "title": _button_title(button.title)}}
                    for button in buttons
                ]
            },
        }
        if media_urls:
            interactive["header"] = {"type": "image", "image": {"link": media_urls[0]}}
        payload["type"] = "interactive"
        payload["interactive"] = interactive
        return payload
    if buttons:
        text = _numbered(text, buttons)
    if media_urls and len(text) <= MAX_INTERACTIVE_BODY_LENGTH:
        image = {"link": media_urls[0]}
        if text:
            image["caption"] = text
        payload["type"] = "image"
        payload["image"] = image
        return payload
    if media_urls:
        # A caption is limited to 1024 characters; the text matters more than the picture.
        log.warning("WhatsApp message %s: text too long for a caption, image not sent", message.id)
    if not text:
        raise SendError("nothing to send", retryable=False, code="empty_message")
    if len(text) > MAX_TEXT_LENGTH:
        raise SendError(f"WhatsApp text is limited to {MAX_TEXT_LENGTH} characters", retryable=False, code="too_long")
    payload["type"] = "text"
    payload["text"] = {"body": text}
    return payload


def _template(message: OutboundMessage, config: Mapping) -> dict:
    template = message.template or {}
    name = template.get("name") or config.get("WHATSAPP_TEMPLATE_REMINDER")
    if not name:
        raise SendError("WhatsApp template without a name", retryable=False, code="template_missing")
    result: dict = {"name": name, "language": {"policy": "deterministic", "code": _template_language(message)}}
    variables = template.get("variables") or ()
    if isinstance(variables, dict) and all(str(key).isdecimal() for key in variables):
        # {"1": ..., "2": ...} fills the positional {{1}}, {{2}} placeholders.
        variables = [variables[key] for key in sorted(variables, key=int)]
    if isinstance(variables, dict):
        # Templates created with named parameters ({{first_name}}) take parameter_name.
        parameters = [
            {"type": "text", "parameter_name": str(key), "text": _parameter_text(value)}
            for key, value in variables.items()
        ]
    else:
        parameters = [{"type": "text", "text": _parameter_text(value)} for value in variables]
    if parameters:
        result["components"] = [{"type": "body", "parameters": parameters}]
    return result


def _template_language(message: OutboundMessage) -> str:
    ours = message.language or "en"
    configured = (message.template or {}).get("language")
    if isinstance(configured, dict):
        configured = configured.get(ours)
    if configured and isinstance(configured, str):
        # Our own language names are mapped too, so a template built with language="tn" still works.
        return TEMPLATE_LANGUAGES.get(configured, configured)
    return TEMPLATE_LANGUAGES.get(ours, "en")


def _buttons_fit(text: str, buttons: tuple) -> bool:
    """True when the buttons can be WhatsApp reply buttons (else they become a numbered list)."""
    if not text or len(text) > MAX_INTERACTIVE_BODY_LENGTH or len(buttons) > MAX_REPLY_BUTTONS:
        return False
    if any(not button.id or len(button.id) > MAX_BUTTON_ID_LENGTH for button in buttons):
        return False
    titles = [_button_title(button.title) for button in buttons]
    ids = [button.id for button in buttons]
    # Meta rejects duplicate titles or ids within one message.
    return all(titles) and len(set(titles)) == len(titles) and len(set(ids)) == len(ids)


def _button_title(title: str) -> str:
    title = title.strip()
    return title if len(title) <= MAX_BUTTON_TITLE_LENGTH else title[: MAX_BUTTON_TITLE_LENGTH - 1] + "…"


def _numbered(text: str, buttons: tuple) -> str:
    options = "\n".join(f"{number}. {button.title}" for number, button in enumerate(buttons, start=1))
    return f"{text}\n\n{options}" if text else options


def _parameter_text(value: object) -> str:
    # Meta refuses template parameters with newlines, tabs or more than 4 consecutive spaces (error 100).
    text = re.sub(r"\s*[\r\n\t]+\s*", " ", str(value))
    return re.sub(r" {5,}", "    ", text)
