"""``app.messaging.inbox`` (contacts, inbound storage, delivery status, consent) and the SMS encoding helper.

The database tests run on SQLite and PostgreSQL; rows are read back after commit. ``advance_status`` is tested
as a table of (current, reported) → result, so every transition the code allows or refuses is written down.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.i18n.gsm7 import sms_encoding
from app.messaging.envelopes import InboundMessage, Media, StatusUpdate
from app.messaging.inbox import advance_status, apply_status, contact_for, store_inbound
from app.models import Contact, Message, MessageEvent, utcnow
from app.models.message_log import DIRECTION_OUT

# INSERT ... ON CONFLICT is spelled per dialect (contacts, inbound de-duplication)
pytestmark = pytest.mark.both_backends

PHONE = "+26771234567"


def count(model, *where) -> int:
    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def inbound(
    provider_id: str = "SM1", *, provider: str = "twilio", channel: str = "sms", sender: str = PHONE, **fields
) -> InboundMessage:
    return InboundMessage(channel=channel, provider=provider, provider_id=provider_id, sender=sender, **fields)


def outbound(
    status: str = "sent", *, provider: str = "twilio", provider_id: str = "SMout1", with_contact: bool = True
) -> Message:
    contact = contact_for(PHONE) if with_contact else None
    message = Message(
        direction=DIRECTION_OUT,
        channel="sms",
        address=PHONE,
        text="Reminder",
        status=status,
        provider=provider,
        provider_id=provider_id,
        contact_id=contact.id if contact else None,
    )
    db.session.add(message)
    db.session.commit()
    return message


def reload(message: Message) -> Message:
    db.session.expire_all()
    return db.session.get(Message, message.id)


def events() -> list[MessageEvent]:
    db.session.expire_all()
    return list(db.session.scalars(select(MessageEvent).order_by(MessageEvent.at, MessageEvent.id)))


def report(
    status: str | None,
    raw: str | None = None,
    *,
    provider_id: str = "SMout1",
    provider: str = "twilio",
    at: datetime | None = None,
    **fields,
) -> Message | None:
    """Apply one delivery report and commit."""
    result = apply_status(
        StatusUpdate(
            provider=provider, provider_id=provider_id, status=status, raw_status=raw or status or "?", at=at, **fields
        )
    )
    db.session.commit()
    return result


# --- store_inbound, contacts ---------------------------------------------------------------------------------------


def test_store_inbound_stores_the_message_and_its_contact(app):
    sent = datetime(2025, 3, 1, 8, 30, tzinfo=UTC)
    message, created = store_inbound(
        inbound(
            text="Dumela", received_at=sent, sender_name="Neo", media=(Media("image/jpeg", "https://x.test/1.jpg"),)
        )
    )
    db.session.commit()

    assert created
    row = reload(message)
    assert (row.direction, row.channel, row.provider, row.provider_id) == ("in", "sms", "twilio", "SM1")
    assert (row.address, row.text, row.status, row.received_at) == (PHONE, "Dumela", "received", sent)
    assert row.media == [{"content_type": "image/jpeg", "url": "https://x.test/1.jpg", "provider_media_id": None}]
    contact = db.session.get(Contact, row.contact_id)
    assert (contact.address, contact.opted_out_at) == (PHONE, None)


def test_store_inbound_without_a_provider_time_uses_now(app):
    before = utcnow()
    message, _ = store_inbound(inbound())
    db.session.commit()

    assert reload(message).received_at >= before - timedelta(seconds=1)


def test_the_same_provider_id_twice_is_stored_once(app):
    first, created_first = store_inbound(inbound("SM1", text="hello"))
    db.session.commit()
    again, created_again = store_inbound(inbound("SM1", text="hello (retried)"))
    db.session.commit()

    assert (created_first, created_again) == (True, False)
    assert again.id == first.id
    assert reload(first).text == "hello"
    assert count(Message) == 1
    assert count(Contact) == 1


def test_the_same_provider_id_twice_in_one_transaction_is_stored_once(app):
    first, _ = store_inbound(inbound("SM1"))
    again, created = store_inbound(inbound("SM1"))
    db.session.commit()

    assert created is False and again.id == first.id
    assert count(Message) == 1


def test_the_same_id_from_two_providers_is_two_messages_of_one_contact(app):
    twilio, created_twilio = store_inbound(inbound("ATXid_1", provider="twilio"))
    at, created_at = store_inbound(inbound("ATXid_1", provider="africastalking"))
    db.session.commit()

    assert (created_twilio, created_at) == (True, True)
    assert twilio.id != at.id
    assert count(Message) == 2
    assert count(Contact) == 1
    assert reload(twilio).contact_id == reload(at).contact_id


def test_contact_for_is_idempotent_and_fills_a_missing_name_only(app):
    first = contact_for(PHONE)
    db.session.commit()
    second = contact_for(PHONE, name="Neo")
    db.session.commit()
    third = contact_for(PHONE, name="Someone Else")
    db.session.commit()

    assert first.id == second.id == third.id
    assert count(Contact) == 1
    db.session.expire_all()
    assert db.session.get(Contact, first.id).name == "Neo"


def test_contacts_are_per_address(app):
    contact_for(PHONE)
    contact_for("123456789")
    contact_for(PHONE)
    db.session.commit()

    assert count(Contact) == 2


def test_a_whatsapp_message_opens_the_24_hour_window_and_an_sms_does_not(app):
    before = utcnow()
    store_inbound(inbound("SM1", channel="sms"))
    db.session.commit()
    assert contact_for(PHONE).last_whatsapp_inbound_at is None

    store_inbound(inbound("wamid.1", channel="whatsapp", provider="whatsapp"))
    db.session.commit()
    db.session.expire_all()
    opened = contact_for(PHONE).last_whatsapp_inbound_at
    assert opened is not None and opened >= before - timedelta(seconds=1)


def test_a_retried_whatsapp_message_does_not_move_the_window(app):
    store_inbound(inbound("wamid.1", channel="whatsapp", provider="whatsapp"))
    db.session.commit()
    contact = contact_for(PHONE)
    contact.last_whatsapp_inbound_at = datetime(2025, 1, 1, tzinfo=UTC)
    db.session.commit()

    store_inbound(inbound("wamid.1", channel="whatsapp", provider="whatsapp"))
    db.session.commit()

    db.session.expire_all()
    assert contact_for(PHONE).last_whatsapp_inbound_at == datetime(2025, 1, 1, tzinfo=UTC)


# --- advance_status ------------------------------------------------------------------------------------------------

# (current, reported, status afterwards). Forward only along queued < sending|unknown < sent < delivered < read;
# failed is final and beats anything before delivery; a failure after delivery is a late callback and is ignored.
TRANSITIONS = [
    ("queued", "sending", "sending"),
    ("queued", "sent", "sent"),
    ("queued", "delivered", "delivered"),
    ("queued", "read", "read"),
    ("queued", "failed", "failed"),
    ("scheduled", "queued", "queued"),
    ("scheduled", "failed", "failed"),
    ("sending", "sent", "sent"),
    ("sending", "delivered", "delivered"),
    ("sending", "failed", "failed"),
    ("sending", "queued", "sending"),
    ("sending", "unknown", "sending"),
    ("unknown", "sent", "sent"),  # a provider's report proves a send the dead worker could not record
    ("unknown", "delivered", "delivered"),
    ("unknown", "failed", "failed"),
    ("unknown", "queued", "unknown"),
    ("unknown", "sending", "unknown"),
    ("sent", "sent", "sent"),
    ("sent", "delivered", "delivered"),
    ("sent", "read", "read"),
    ("sent", "failed", "failed"),
    ("sent", "queued", "sent"),
    ("sent", "sending", "sent"),
    ("sent", "unknown", "sent"),
    ("delivered", "read", "read"),
    ("delivered", "delivered", "delivered"),
    ("delivered", "sent", "delivered"),
    ("delivered", "queued", "delivered"),
    ("delivered", "failed", "delivered"),
    ("read", "delivered", "read"),
    ("read", "sent", "read"),
    ("read", "failed", "read"),
    ("read", "read", "read"),
    ("failed", "sent", "failed"),
    ("failed", "delivered", "failed"),
    ("failed", "read", "failed"),
    ("failed", "queued", "failed"),
    ("failed", "failed", "failed"),
    ("sent", "received", "sent"),  # inbound-only statuses never apply to an outbound message
    ("sent", "handled", "sent"),
    ("sent", "bogus", "sent"),
]


@pytest.mark.parametrize(("current", "reported", "expected"), TRANSITIONS)
def test_advance_status(app, current, reported, expected):
    message = outbound(current)

    changed = advance_status(message, reported)
    db.session.commit()

    assert reload(message).status == expected
    assert changed is (expected != current)


# --- apply_status --------------------------------------------------------------------------------------------------


def test_every_report_is_kept_and_the_status_ends_at_the_furthest(app):
    message = outbound("sent")

    for status in ("delivered", "sent", "delivered", "queued"):
        assert report(status).id == message.id

    assert reload(message).status == "delivered"
    kept = events()
    assert [(e.kind, e.status, e.message_id) for e in kept] == [
        ("status", s, message.id) for s in ("delivered", "sent", "delivered", "queued")
    ]
    assert {(e.provider, e.provider_id) for e in kept} == {("twilio", "SMout1")}


@pytest.mark.parametrize(
    "order",
    [
        ("sent", "delivered", "read"),
        ("read", "delivered", "sent"),
        ("delivered", "read", "sent"),
        ("sent", "read", "delivered"),
    ],
)
def test_out_of_order_reports_end_at_the_furthest_status(app, order):
    message = outbound("sending")

    for status in order:
        report(status)

    assert reload(message).status == "read"
    assert len(events()) == 3


def test_the_providers_time_and_raw_word_are_kept(app):
    message = outbound("sent")
    at = datetime(2025, 3, 1, 8, 31, 5, tzinfo=UTC)

    report("delivered", "DeliveredToTerminal", at=at)

    (event,) = events()
    assert (event.raw_status, event.status, event.at, event.message_id) == (
        "DeliveredToTerminal",
        "delivered",
        at,
        message.id,
    )


def test_a_report_for_an_unknown_provider_id_is_recorded_without_a_message(app):
    message = outbound("sent")

    assert report("delivered", provider_id="SM-nobody-knows") is None

    (event,) = events()
    assert (event.message_id, event.provider, event.provider_id, event.status) == (
        None,
        "twilio",
        "SM-nobody-knows",
        "delivered",
    )
    assert reload(message).status == "sent"


def test_a_report_matches_the_provider_as_well_as_its_id(app):
    message = outbound("sent", provider="twilio", provider_id="shared-id-1")

    assert report("delivered", provider="africastalking", provider_id="shared-id-1") is None

    assert reload(message).status == "sent"
    assert events()[0].message_id is None


def test_a_report_for_an_inbound_message_with_that_id_does_not_touch_it(app):
    message, _ = store_inbound(inbound("SMout1"))
    db.session.commit()

    assert report("delivered") is None
    assert reload(message).status == "received"


def test_an_unknown_status_is_recorded_raw_and_moves_nothing(app):
    message = outbound("sent")

    assert report(None, "accepted-by-carrier-42").id == message.id

    assert reload(message).status == "sent"
    (event,) = events()
    assert (event.status, event.raw_status) == (None, "accepted-by-carrier-42")


def test_a_very_long_raw_status_is_cut_to_the_column(app):
    outbound("sent")

    report(None, "x" * 200)

    assert events()[0].raw_status == "x" * 64


def test_a_failure_records_its_error_code(app):
    message = outbound("sent")

    report("failed", "undelivered", error_code="30003")

    row = reload(message)
    assert (row.status, row.error_code) == ("failed", "30003")


def test_a_failure_after_delivery_is_kept_as_an_event_only(app):
    message = outbound("delivered")

    report("failed", "undelivered", error_code="30005")

    row = reload(message)
    assert (row.status, row.error_code) == ("delivered", None)
    assert [(e.status, e.error_code) for e in events()] == [("failed", "30005")]


def test_an_opted_out_report_opts_the_contact_out(app):
    message = outbound("sent")

    report("failed", "undelivered", error_code="21610", opted_out=True)

    assert reload(message).status == "failed"
    contact = contact_for(PHONE)
    assert contact.opted_out_at is not None


def test_an_opted_out_report_for_an_already_opted_out_contact_keeps_the_first_time(app):
    outbound("sent")
    contact = contact_for(PHONE)
    first = datetime(2025, 1, 2, tzinfo=UTC)
    contact.opted_out_at = first
    db.session.commit()

    report("failed", "undelivered", error_code="21610", opted_out=True)

    db.session.expire_all()
    assert contact_for(PHONE).opted_out_at == first


def test_an_opted_out_report_for_a_number_that_never_wrote_to_us_still_opts_it_out(app):
    message = outbound("sent", with_contact=False)
    assert message.contact_id is None

    report("failed", "undelivered", error_code="21610", opted_out=True)

    db.session.expire_all()
    contact = db.session.scalar(select(Contact).where(Contact.address == PHONE))
    assert contact is not None and contact.opted_out_at is not None


@pytest.mark.postgres_only
def test_a_long_provider_error_code_is_recorded_not_an_error(app):
    message = outbound("sent")
    reason = "UserNotSubscribedToProductOrServiceX"  # 36 characters: a free-text failureReason from a provider
    assert len(reason) > 32

    report("failed", "Failed", provider_id="SMout1", error_code=reason)

    assert reload(message).status == "failed"
    assert events()[0].error_code == reason[:32]


def test_status_events_of_a_message_are_deleted_with_it_but_orphans_stay(app):
    message = outbound("sent")
    report("delivered")
    report("delivered", provider_id="unknown-1")

    db.session.delete(reload(message))
    db.session.commit()

    assert [(e.message_id, e.provider_id) for e in events()] == [(None, "unknown-1")]


def test_apply_status_does_not_commit(app):
    message = outbound("sent")

    apply_status(StatusUpdate(provider="twilio", provider_id="SMout1", status="delivered", raw_status="delivered"))
    db.session.rollback()

    assert reload(message).status == "sent"
    assert events() == []


# --- sms_encoding --------------------------------------------------------------------------------------------------

ENCODINGS = [
    ("", "GSM-7", 1),
    ("a", "GSM-7", 1),
    ("a" * 160, "GSM-7", 1),
    ("a" * 161, "GSM-7", 2),
    ("a" * 306, "GSM-7", 2),  # 2 × 153
    ("a" * 307, "GSM-7", 3),
    ("a" * 459, "GSM-7", 3),
    ("a" * 460, "GSM-7", 4),
    ("€" * 80, "GSM-7", 1),  # extension characters cost two septets each: 160
    ("€" * 80 + "a", "GSM-7", 2),
    ("a" * 159 + "{", "GSM-7", 2),  # 161 septets
    ("a" * 158 + "[", "GSM-7", 1),  # 160 septets
    ("^{}\\[~]|€", "GSM-7", 1),
    ("@£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ!¡¿ÄÖÑÜ§äöñüà", "GSM-7", 1),
    ("Ke a leboga, ke tla tla ka Labobedi", "GSM-7", 1),
    ("ê", "UCS-2", 1),  # Setswana circumflex: outside GSM-7
    ("ê" * 70, "UCS-2", 1),
    ("ê" * 71, "UCS-2", 2),
    ("ê" * 134, "UCS-2", 2),  # 2 × 67
    ("ê" * 135, "UCS-2", 3),
    ("a" * 69 + "’", "UCS-2", 1),  # one curly apostrophe turns the whole SMS into UCS-2
    ("a" * 70 + "’", "UCS-2", 2),
    ("🙏", "UCS-2", 1),
    ("🙏" * 35, "UCS-2", 1),  # an emoji is two UTF-16 code units: 70
    ("🙏" * 35 + "a", "UCS-2", 2),
    ("a" * 69 + "🙏", "UCS-2", 2),  # 71 code units
    ("🙏🏾", "UCS-2", 1),
    ("a" * 159 + "ç", "UCS-2", 3),  # ç is not GSM-7 (only Ç is): 160 code units
]


@pytest.mark.parametrize(("text", "encoding", "segments"), ENCODINGS)
def test_sms_encoding(text, encoding, segments):
    assert sms_encoding(text) == (encoding, segments)
