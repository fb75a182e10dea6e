"""Retention: message contents and skin photos older than ``MESSAGE_RETENTION_DAYS`` are erased, every kind of them.

Run on both backends (the batched UPDATE ... WHERE id IN (SELECT ... LIMIT) and the JSON-as-text tests are SQL that
each backend reads in its own way), with ``now`` passed in and every row's ``created_at`` set: nothing waits.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, func, select

from app.config import ConfigError, load_config
from app.extensions import db
from app.models import Analysis, AuditLog, Consultation, ConsultationImage, Message, Recommendation
from app.services.retention import erase_expired
from bots.channels.console import save_media
from tests.conftest import make_clinic, make_user
from tests.factories import store_appointment

pytestmark = pytest.mark.both_backends

NOW = datetime(2030, 3, 4, 10, 0, tzinfo=UTC)
DAYS = 30
OLD = NOW - timedelta(days=DAYS + 1)
RECENT = NOW - timedelta(days=DAYS - 1)
PHOTO = b"\xff\xd8\xff\xe0" + b"\x01" * 2000
TG_MEDIA = [{"content_type": "image/jpeg", "url": None, "provider_media_id": "AgACAgQAAxkBAAIB"}]


@pytest.fixture
def app(shared_app):
    application = shared_app(MESSAGE_RETENTION_DAYS=DAYS)
    with application.app_context():
        yield application
        db.session.remove()


def message(created_at: datetime = OLD, *, direction: str = "out", channel: str = "sms", status: str = "sent",
            kind: str | None = None, text: str | None = "Thusa: hello", **fields) -> Message:  # fmt: skip
    row = Message(direction=direction, channel=channel, address="+26771234567", text=text, status=status, kind=kind,
                  created_at=created_at, updated_at=created_at, **fields)  # fmt: skip
    db.session.add(row)
    db.session.commit()
    return row


# Every kind of message: what the old retention kept forever (nothing tied them to an appointment) and what it erased.
KINDS = {
    "reminder": {"kind": "reminder", "segments": 1, "encoding": "GSM-7"},
    "password reset code": {"kind": "system", "text": "Thusa: your password reset code is 123456.", "segments": 1},
    "staff sms": {"kind": "api", "text": "Please bring your card"},
    "ussd hop in": {"direction": "in", "channel": "ussd", "status": "handled", "text": "1*2*2580"},
    "ussd screen out": {"channel": "ussd", "text": "CON 1. Stock\n2. Visits"},
    "unclaimed patient text": {"direction": "in", "status": "handled", "text": "Who is this? My child is sick"},
    "failed inbound": {"direction": "in", "status": "failed", "text": "Ee"},
    "chat photo in": {"direction": "in", "channel": "telegram", "status": "handled", "text": None, "media": TG_MEDIA,
                      "extra": {"from_id": 700000002}},
    "chat contact card": {"direction": "in", "channel": "telegram", "status": "handled", "text": None,
                          "extra": {"contact": {"phone_number": "+26771234567", "user_id": 7}}},
    "chat reply with buttons": {"channel": "whatsapp", "kind": "reply", "status": "read", "text": "Is it itchy?",
                                "buttons": [{"id": "yes", "title": "Yes"}]},
    "failed send": {"status": "failed", "kind": "reply", "error_code": "30003"},
    "unknown send": {"status": "unknown", "kind": "notice"},
    "delivered notice": {"status": "delivered", "kind": "notice"},
}  # fmt: skip


@pytest.mark.parametrize("name", list(KINDS))
def test_every_kind_of_message_loses_its_contents_after_the_period(app, name):
    fields = KINDS[name]
    old, recent = message(OLD, **fields), message(RECENT, **fields)
    before = {c: getattr(old, c) for c in ("direction", "channel", "status", "kind", "segments", "encoding")}

    counts = erase_expired(now=NOW)

    assert counts == {"messages": 1, "photos": 0, "reviews": 0, "cancelled": 0, "done": 1}
    db.session.expire_all()
    erased = db.session.get(Message, old.id)
    assert (erased.text, erased.buttons, erased.media, erased.extra) == (None, [], [], None)
    assert {c: getattr(erased, c) for c in before} == before  # counts and statuses survive
    kept = db.session.get(Message, recent.id)
    assert (kept.text, kept.media, kept.extra) == (fields.get("text", "Thusa: hello"), fields.get("media", []),
                                                   fields.get("extra"))  # fmt: skip


def test_messages_about_an_appointment_go_too_and_keep_their_link(app):
    appointment = store_appointment(make_clinic(), NOW - timedelta(days=40), phone="+26771234567")
    reminder = message(OLD, kind="reminder", appointment_id=appointment.id, buttons=[{"id": "1", "title": "Ee"}])
    reply = message(OLD, direction="in", status="handled", text="Ee, ke tla tla", appointment_id=appointment.id)

    assert erase_expired(now=NOW)["messages"] == 2
    db.session.expire_all()
    for row in (reminder, reply):
        erased = db.session.get(Message, row.id)
        assert (erased.text, erased.buttons, erased.appointment_id) == (None, [], appointment.id)


@pytest.mark.parametrize(
    ("direction", "status"),
    [("out", "scheduled"), ("out", "queued"), ("out", "sending"), ("in", "received")],
)
def test_messages_still_to_be_sent_or_handled_are_never_erased(app, direction, status):
    waiting = message(OLD, direction=direction, status=status, kind="reminder" if direction == "out" else None,
                      send_at=NOW + timedelta(hours=1) if status == "scheduled" else None, media=TG_MEDIA)  # fmt: skip

    assert erase_expired(now=NOW)["messages"] == 0
    db.session.expire_all()
    assert (db.session.get(Message, waiting.id).text, db.session.get(Message, waiting.id).media) == (
        "Thusa: hello",
        TG_MEDIA,
    )


# --- skin photos --------------------------------------------------------------------------------------------------


def consultation(status: str, *, created_at: datetime = OLD, photos: int = 2) -> Consultation:
    pharmacist = make_user("pharmacist")
    made = Consultation(user_id=pharmacist.id, channel="telegram", status=status, age_group="adult", itch=True,
                        created_at=created_at, updated_at=created_at)  # fmt: skip
    db.session.add(made)
    db.session.flush()
    for position in range(photos):
        image = ConsultationImage(consultation_id=made.id, position=position, status="stored", provider="telegram",
                                  media=dict(TG_MEDIA[0]), data=PHOTO, content_type="image/jpeg", width=640,
                                  height=480, stored_bytes=len(PHOTO), quality_ok=True, created_at=created_at,
                                  updated_at=created_at)  # fmt: skip
        db.session.add(image)
        db.session.flush()
        db.session.add(Analysis(consultation_id=made.id, image_id=image.id, status="completed", model_name="m",
                                top=[["eczema", 0.7]], created_at=created_at))  # fmt: skip
    if status == "completed":
        db.session.add(Recommendation(consultation_id=made.id, level="pharmacy", rule_ids=["eczema"],
                                      advice="Use an emollient.", created_at=created_at))  # fmt: skip
    db.session.commit()
    return made


def photos_of(made: Consultation) -> list[tuple]:
    db.session.expire_all()
    return db.session.execute(
        select(ConsultationImage.status, ConsultationImage.data.is_not(None), ConsultationImage.media,
               ConsultationImage.stored_bytes)
        .where(ConsultationImage.consultation_id == made.id)
        .order_by(ConsultationImage.position)
    ).all()  # fmt: skip


@pytest.mark.parametrize("status", ["completed", "failed", "cancelled"])
def test_photos_of_finished_consultations_are_erased_and_the_triage_outcome_stays(app, status):
    old, recent = consultation(status), consultation(status, created_at=RECENT)

    counts = erase_expired(now=NOW)

    assert (counts["photos"], counts["cancelled"]) == (2, 0)
    assert photos_of(old) == [("stored", False, {}, len(PHOTO))] * 2  # the facts and counts stay, not the bytes
    assert photos_of(recent) == [("stored", True, TG_MEDIA[0], len(PHOTO))] * 2
    analyses = db.session.scalars(select(Analysis.top).where(Analysis.consultation_id == old.id)).all()
    assert analyses == [[["eczema", 0.7]]] * 2
    kept = db.session.get(Consultation, old.id)
    assert (kept.status, kept.age_group, kept.itch) == (status, "adult", True)
    if status == "completed":
        assert db.session.scalar(select(Recommendation.level).where(Recommendation.consultation_id == old.id)) == (
            "pharmacy"
        )


def test_photos_waiting_for_analysis_are_kept(app):
    queued = consultation("queued")
    assert erase_expired(now=NOW)["photos"] == 0
    assert photos_of(queued) == [("stored", True, TG_MEDIA[0], len(PHOTO))] * 2


def test_a_consultation_abandoned_while_collecting_is_cancelled_and_its_photos_erased(app):
    abandoned, active = consultation("collecting"), consultation("collecting", created_at=RECENT)

    counts = erase_expired(now=NOW)

    assert (counts["cancelled"], counts["photos"]) == (1, 2)
    db.session.expire_all()
    assert db.session.get(Consultation, abandoned.id).status == "cancelled"
    assert db.session.get(Consultation, active.id).status == "collecting"
    assert photos_of(abandoned) == [("stored", False, {}, len(PHOTO))] * 2
    assert photos_of(active) == [("stored", True, TG_MEDIA[0], len(PHOTO))] * 2


# --- batches, budget, audit ---------------------------------------------------------------------------------------


def _updates(statements: list[str], table: str) -> int:
    return sum(s.lstrip().upper().startswith(f"UPDATE {table.upper()} ") for s in statements)


@pytest.mark.parametrize(("scan_rows", "message_updates"), [(50_000, 3), (12, 5)])
def test_a_backlog_is_erased_in_bounded_batches(app, scan_rows, message_updates):
    for _ in range(25):
        message(OLD, kind="system")
    consultation("completed", photos=5)
    statements: list[str] = []
    engine = db.engine

    def record(_conn, _cursor, statement, _params, _context, _many):
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        counts = erase_expired(now=NOW, message_batch=10, photo_batch=2, scan_rows=scan_rows, pause_seconds=0)
    finally:
        event.remove(engine, "before_cursor_execute", record)

    assert counts == {"messages": 25, "photos": 5, "reviews": 0, "cancelled": 0, "done": 1}
    # Each statement changes at most one batch: 10 + 10 + 5 from one scan, or 10 + 2, 10 + 2, 1 from three.
    assert _updates(statements, "messages") == message_updates
    assert _updates(statements, "consultation_images") == 3  # 2 + 2 + 1
    left = db.session.scalar(select(func.count()).select_from(Message).where(Message.text.is_not(None)))
    assert left == 0


def test_a_run_out_of_budget_leaves_the_rest_for_the_next_run(app):
    rows = [message(OLD) for _ in range(3)]
    assert erase_expired(now=NOW, budget_seconds=0) == {
        "messages": 0,
        "photos": 0,
        "reviews": 0,
        "cancelled": 0,
        "done": 0,
    }
    assert erase_expired(now=NOW) == {"messages": 3, "photos": 0, "reviews": 0, "cancelled": 0, "done": 1}
    db.session.expire_all()
    assert [db.session.get(Message, row.id).text for row in rows] == [None] * 3


def test_one_audit_row_per_run_that_erased_anything_and_a_second_run_finds_nothing(app):
    message(OLD)
    consultation("completed", photos=1)

    erase_expired(now=NOW)
    assert erase_expired(now=NOW) == {"messages": 0, "photos": 0, "reviews": 0, "cancelled": 0, "done": 1}

    (row,) = db.session.scalars(select(AuditLog).where(AuditLog.action == "retention.erase")).all()
    assert row.details == {"messages": 1, "photos": 1, "reviews": 0, "cancelled": 0, "done": 1, "days": DAYS}


def test_the_period_defaults_to_a_year(shared_app):
    application = shared_app()
    with application.app_context():
        assert application.config["MESSAGE_RETENTION_DAYS"] == 365
        row = message(NOW - timedelta(days=364))
        assert erase_expired(now=NOW)["messages"] == 0
        assert erase_expired(now=NOW + timedelta(days=2))["messages"] == 1
        db.session.expire_all()
        assert db.session.get(Message, row.id).text is None
        db.session.remove()


@pytest.mark.parametrize(("value", "ok"), [("365", True), ("1", True), ("0", False), ("-5", False), ("a year", False)])
def test_the_retention_setting_must_be_a_positive_whole_number_of_days(monkeypatch, tmp_path, value, ok):
    monkeypatch.setenv("MESSAGE_RETENTION_DAYS", value)
    if ok:
        assert load_config({"THUSA_ENV": "test", "INSTANCE_PATH": str(tmp_path)})["MESSAGE_RETENTION_DAYS"] == int(
            value
        )
    else:
        with pytest.raises(ConfigError, match="MESSAGE_RETENTION_DAYS"):
            load_config({"THUSA_ENV": "test", "INSTANCE_PATH": str(tmp_path)})


# --- the nightly job: the database and the console media store ---------------------------------------------------


def test_the_nightly_job_also_deletes_old_pictures_from_the_console_media_store(app, monkeypatch):
    from workers import reminders

    config = app.config
    old_id, new_id = save_media(config, PHOTO, "image/jpeg"), save_media(config, PHOTO, "image/jpeg")
    folder = os.path.join(config["INSTANCE_PATH"], "console-media")
    long_ago = (datetime.now(UTC) - timedelta(days=DAYS + 1)).timestamp()
    for name in (old_id, f"{old_id}.type"):
        os.utime(os.path.join(folder, name), (long_ago, long_ago))
    with open(os.path.join(folder, "notes.txt"), "w") as other:  # not the store's: never touched
        other.write("x")
    os.utime(os.path.join(folder, "notes.txt"), (long_ago, long_ago))
    message(datetime.now(UTC) - timedelta(days=DAYS + 1))

    counts = reminders.erase_expired_texts()

    assert (counts["messages"], counts["media_files"]) == (1, 1)
    assert sorted(os.listdir(folder)) == sorted([new_id, f"{new_id}.type", "notes.txt"])
