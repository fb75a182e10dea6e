"""The staff USSD menu (bots/flows/ussd_staff.py) through the real Africa's Talking endpoint and the real REST API.

Each hop is posted as Africa's Talking posts it (``text`` = every input so far joined with ``*``); what the menu
did is read back from the real database (PostgreSQL), the real Redis and ``GET /api/v1/stock``.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.engine import Engine

from app.extensions import db
from app.i18n import t
from app.i18n.gsm7 import septets
from app.messaging.envelopes import InboundMessage
from app.models import AuditLog, Message, MessageEvent, StockItem, StockMovement, User, utcnow
from app.models.message_log import DIRECTION_IN, DIRECTION_OUT
from app.services import pins, stock
from app.services.passwords import hash_pin
from bots.flows.ussd_menu import SCREEN_LIMIT
from bots.flows.ussd_staff_session import RESUME_TTL, SESSION_TTL
from tests.bots.test_webhooks import CONFIG
from tests.conftest import bearer, login, make_user
from tests.flows import PHONE, book, make_clinic
from tests.flows.test_ussd import Session

PIN = "2580"
COLLEAGUE = "+26773000002"


@pytest.fixture
def app(shared_app):
    application = shared_app(**CONFIG)
    with application.app_context():
        yield application
        db.session.remove()


def staff(clinic, *, phone: str = PHONE, language: str = "en", pin: str | None = PIN) -> User:
    user = make_user("staff", clinic=clinic, phone=phone, language=language)
    if pin is not None:
        user.pin_hash = hash_pin(pin)
        db.session.commit()
    return user


def item(clinic, name: str = "Paracetamol 500mg", *, unit: str = "boxes", level: int = 0, reorder: int = 10,
         code: str | None = None) -> StockItem:  # fmt: skip
    row = StockItem(clinic_id=clinic.id, name=name, unit=unit, level=0, reorder_level=reorder, code=code)
    db.session.add(row)
    db.session.commit()
    if level:
        stock.count(stock.StaffActor(user_id=None, role="staff", clinic_id=clinic.id), row.id, level)
        db.session.commit()
    return row


def signed_in(client, **options) -> Session:
    session = Session(client, **options)
    assert "PIN" in session.dial()
    assert session.send(PIN).startswith("CON ")
    return session


def level_of(row: StockItem) -> int:
    db.session.expire_all()
    return db.session.get(StockItem, row.id).level


def texts_to(address: str) -> list[str]:
    db.session.expire_all()
    return list(db.session.scalars(select(Message.text).where(Message.direction == DIRECTION_OUT,
                                                              Message.channel == "sms", Message.address == address)
                                   .order_by(Message.created_at)))  # fmt: skip


# --- PIN -----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("language", ["en", "tn"])
def test_the_first_screen_on_a_staff_phone_asks_for_the_pin(client, clinic, language):
    staff(clinic, language=language)
    book(clinic)  # staff may be patients too: the staff menu still wins

    body = Session(client).dial()

    assert body == f"CON {t('ussd_staff_pin', language)}"
    assert "PIN" in body


def test_the_right_pin_opens_the_main_menu(client, clinic):
    staff(clinic)
    session = Session(client)
    session.dial()

    assert session.send(PIN) == f"CON {t('ussd_staff_menu', 'en', clinic=clinic.sms_name)}"


def test_a_staff_member_without_a_pin_is_told_to_ask_for_one(client, clinic):
    staff(clinic, pin=None)

    assert Session(client).dial() == f"END {t('ussd_staff_no_pin', 'en')}"


def test_five_wrong_pins_lock_the_login_for_30_minutes(client, clinic):
    user = staff(clinic)
    session = Session(client)
    session.dial()
    for tries_left in (4, 3, 2, 1):
        assert session.send("1111") == f"CON {t('ussd_staff_wrong_pin', 'en', tries=tries_left)}"
    locked = f"END {t('ussd_staff_locked', 'en', minutes=30)}"
    assert session.send("1111") == locked

    again = Session(client)
    assert again.dial() == locked  # the right PIN is not even asked for while locked
    assert "PIN" in locked
    db.session.expire_all()
    until = db.session.get(User, user.id).pin_locked_until
    assert timedelta(minutes=29) < until - utcnow() <= timedelta(minutes=30)

    db.session.get(User, user.id).pin_locked_until = utcnow() - timedelta(seconds=1)  # 30 minutes later
    db.session.commit()
    assert signed_in(client)


def test_wrong_tries_count_across_sessions_and_a_right_pin_resets_them(client, clinic):
    user = staff(clinic)
    for _ in range(4):
        session = Session(client)
        session.dial()
        session.send("9999")
    signed_in(client)
    db.session.expire_all()
    assert db.session.get(User, user.id).pin_failed_attempts == 0
    assert pins.MAX_TRIES == 5


def test_no_pin_is_kept_in_the_message_log(client, clinic):
    staff(clinic)
    session = Session(client)
    session.dial()
    session.send("1357")  # wrong
    session.send(PIN)
    session.send("1")

    db.session.expire_all()
    stored = list(db.session.scalars(select(Message.text).where(Message.address == PHONE)))
    assert stored and not any(text and ("1357" in text or PIN in text) for text in stored)
    inbound = list(db.session.scalars(select(Message.text).where(Message.direction == DIRECTION_IN)
                                      .order_by(Message.created_at)))  # fmt: skip
    assert inbound[1:3] == ["****", "****"]


def test_the_pin_is_not_logged(client, clinic, caplog):
    staff(clinic)
    caplog.set_level("DEBUG")
    session = Session(client)
    session.dial()
    session.send("1357")
    session.send(PIN)

    assert "1357" not in caplog.text and PIN not in caplog.text


class StatementSpy:
    """Every parameter of every SQL statement any engine runs while active: what reached the database (and so its
    WAL and backups), whether or not it was committed. Long hex runs (UUIDs, HMAC digests) are left out: a 4-digit
    PIN may appear in them by chance."""

    def __enter__(self) -> StatementSpy:
        self.values: list[str] = []
        event.listen(Engine, "before_cursor_execute", self._seen)
        return self

    def __exit__(self, *exc) -> None:
        event.remove(Engine, "before_cursor_execute", self._seen)

    def _seen(self, conn, cursor, statement, parameters, context, executemany) -> None:
        self.values.append(re.sub(r"[0-9a-fA-F-]{16,}", "", repr(parameters)))

    def carried(self, secret: str) -> bool:
        return any(secret in value for value in self.values)


def _stored_anywhere(secret: str) -> list[str]:
    """Where ``secret`` is in the message log, its events or the audit log (texts, extras, details)."""
    db.session.expire_all()
    found = [f"message {m.id}" for m in db.session.scalars(select(Message))
             if secret in (m.text or "") or secret in json.dumps(m.extra or {}) or secret in (m.last_error or "")]  # fmt: skip
    found += [f"event {e.id}" for e in db.session.scalars(select(MessageEvent))
              if secret in f"{e.detail} {e.raw_status} {e.error_code}"]  # fmt: skip
    found += [f"audit {a.id}" for a in db.session.scalars(select(AuditLog)) if secret in json.dumps(a.details or {})]
    return found


def test_a_pin_hop_is_masked_before_anything_reaches_the_database(client, clinic, caplog):
    """Right PIN, wrong PIN, a PIN dialled with the code: no statement ever carries one; the flow still reads it."""
    staff(clinic)
    caplog.set_level("INFO")
    with StatementSpy() as spy:
        session = Session(client)
        session.dial()
        assert session.send("1357") == f"CON {t('ussd_staff_wrong_pin', 'en', tries=4)}"  # read as typed
        assert session.send(PIN) == f"CON {t('ussd_staff_menu', 'en', clinic=clinic.sms_name)}"
        assert session.send("1").startswith("CON ")
        dialled = Session(client)  # *384*2580*<PIN># : the PIN arrives on the first hop
        dialled.inputs.append(PIN)
        assert dialled.post(PIN) == f"CON {t('ussd_staff_pin', 'en')}"

    assert not spy.carried(PIN) and not spy.carried("1357")
    assert _stored_anywhere(PIN) == [] and _stored_anywhere("1357") == []
    assert PIN not in caplog.text and "1357" not in caplog.text
    inbound = list(db.session.scalars(select(Message.text).where(Message.direction == DIRECTION_IN)
                                      .order_by(Message.created_at)))  # fmt: skip
    assert inbound == ["", "****", "****", "1", "****"]  # after the PIN, menu choices are kept as typed


def test_a_pin_hop_that_fails_after_storage_stays_masked(app_factory, client, clinic, caplog):
    """Redis goes down between the dial and the PIN: the hop fails (the person gets the apology), and the stored
    hop, kept as failed, shows no PIN: it was masked before the first commit, not by the flow that never ran."""
    staff(clinic)
    session = Session(client)
    session.dial()
    redis_down = app_factory(**CONFIG, REDIS_URL="redis://127.0.0.1:1/0").test_client()
    session.client = redis_down
    caplog.set_level("INFO")
    with StatementSpy() as spy:
        assert session.send(PIN) == f"END {t('ussd_error', 'en')}"

    assert not spy.carried(PIN)
    assert _stored_anywhere(PIN) == []
    assert PIN not in caplog.text
    failed = db.session.scalar(select(Message).where(Message.direction == DIRECTION_IN, Message.status == "failed"))
    assert failed is not None and failed.text == "****"


def test_a_masked_envelope_keeps_the_real_input_in_memory_and_out_of_its_repr():
    hop = InboundMessage(channel="ussd", provider="africastalking", provider_id="s:1", sender=PHONE, text=PIN,
                         session_id="s", extra={"ussd_history": f"1*{PIN}"})  # fmt: skip
    masked = hop.masked("****")
    assert (masked.text, masked.typed, masked.masked("****").typed) == ("****", PIN, PIN)
    assert PIN not in repr(masked)  # neither the input nor the history (which holds it in every later hop)


def test_a_patients_input_is_stored_as_typed(client, clinic):
    staff(clinic)
    book(clinic, phone=COLLEAGUE)  # a patient, not a staff phone
    session = Session(client, phone=COLLEAGUE)
    session.dial()
    session.send("1")
    db.session.expire_all()
    stored = db.session.scalars(select(Message.text).where(Message.direction == DIRECTION_IN,
                                                           Message.address == COLLEAGUE)).all()  # fmt: skip
    assert sorted(stored) == ["", "1"]  # the dial, then the choice as typed


def test_the_session_state_lives_in_redis_with_a_ttl_and_no_pin(client, clinic, redis_conn):
    staff(clinic)
    session = signed_in(client)

    key = f"thusa:ussd:staff:{session.session_id}"
    ttl = redis_conn.ttl(key)
    assert 0 < ttl <= SESSION_TTL
    assert PIN not in redis_conn.get(key).decode()


def test_a_session_id_is_bound_to_its_phone(client, clinic):
    staff(clinic)
    staff(clinic, phone=COLLEAGUE)
    mine = signed_in(client)

    # Someone else's phone posting the signed-in session's id (and history) gets nothing of it.
    thief = Session(client, phone=COLLEAGUE, session_id=mine.session_id)
    thief.inputs = list(mine.inputs)
    assert thief.post("") == f"END {t('ussd_error', 'en')}"  # the owner's first hop, "replayed"
    assert thief.send("1") == f"END {t('ussd_error', 'en')}"
    # The owner's session goes on.
    assert mine.send("1").startswith("CON ")


# --- The "Done when" scenario --------------------------------------------------------------------------------------


def test_receive_dispense_count_and_the_api_sees_the_same_levels(client, clinic):
    user = staff(clinic)
    staff(clinic, phone=COLLEAGUE, language="tn")
    gloves = item(clinic, "Gloves", unit="boxes", level=0, reorder=10)

    session = signed_in(client)
    pick = session.send("2")
    assert pick.startswith("CON Receive: choose an item") and "\n1. Gloves 0 boxes\n" in pick
    assert session.send("1") == "CON " + t("ussd_staff_quantity", "en", action="Receive", item="Gloves", level=0,
                                           unit="boxes")  # fmt: skip
    confirm = session.send("20")
    assert confirm.endswith("1 Yes 2 No") and "Level 0 -> 20" in confirm
    assert session.send("1") == f"END {t('ussd_staff_saved', 'en', item='Gloves', level=20, unit='boxes')}"

    session = signed_in(client)
    session.send("3")
    session.send("1")
    assert session.send("12").endswith("1 Yes 2 No")
    assert session.send("1").startswith("END ")  # 20 -> 8: crosses the reorder level (10)

    session = signed_in(client)
    session.send("4")
    session.send("1")
    assert session.send("7").endswith("1 Yes 2 No")
    assert session.send("1").startswith("END ")

    assert level_of(gloves) == 7
    token = login(client, user)["access_token"]
    body = client.get("/api/v1/stock", headers=bearer(token)).get_json()
    assert [(i["name"], i["level"], i["unit"], i["reorder_level"]) for i in body["items"]] == [
        ("Gloves", 7, "boxes", 10)
    ]
    ledger = db.session.execute(select(StockMovement.kind, StockMovement.quantity, StockMovement.delta,
                                       StockMovement.channel).where(StockMovement.item_id == gloves.id)
                                .order_by(StockMovement.at)).all()  # fmt: skip
    assert ledger == [("received", 20, 20, "ussd"), ("dispensed", 12, -12, "ussd"), ("counted", 7, -1, "ussd")]
    assert db.session.scalar(select(func.sum(StockMovement.delta)).where(StockMovement.item_id == gloves.id)) == 7

    receipts = texts_to(PHONE)
    alerts = [text for text in receipts + texts_to(COLLEAGUE) if "alert" in text or "tlhaela" in text]
    assert len(alerts) == 2  # one alert each for the two staff members, in their own language
    assert t("stock_low_alert", "tn", clinic=clinic.sms_name, item="Gloves", level=8, unit="boxes", reorder=10) in \
        texts_to(COLLEAGUE)  # fmt: skip
    assert [text for text in receipts if "alert" not in text] == [
        t("stock_receipt_received", "en", quantity=20, unit="boxes", item="Gloves", level=20),
        t("stock_receipt_dispensed", "en", quantity=12, unit="boxes", item="Gloves", level=8),
        t("stock_receipt_counted", "en", item="Gloves", level=7, unit="boxes"),
    ]


def test_dispensing_more_than_the_level_is_refused_with_a_re_prompt(client, clinic):
    staff(clinic)
    gloves = item(clinic, "Gloves", level=5)
    session = signed_in(client)
    session.send("3")
    session.send("1")

    body = session.send("6")

    assert body.startswith("CON ") and t("ussd_staff_not_enough", "en", level=5, unit="boxes") in body
    assert session.send("5").endswith("1 Yes 2 No")
    assert level_of(gloves) == 5


@pytest.mark.parametrize("typed", ["abc", "-3", "2*0", "0.5", "100001", ""])
def test_a_bad_quantity_is_re_prompted_never_a_crash(client, clinic, typed):
    staff(clinic)
    item(clinic, "Gloves", level=5)
    session = signed_in(client)
    session.send("2")
    session.send("1")

    body = session.send(typed)

    assert body.startswith("CON ") and t("ussd_staff_enter_number", "en") in body


def test_no_at_the_confirmation_writes_nothing(client, clinic):
    staff(clinic)
    gloves = item(clinic, "Gloves", level=5)
    session = signed_in(client)
    for typed in ("2", "1", "20"):
        session.send(typed)

    assert session.send("2") == f"CON {t('ussd_staff_menu', 'en', clinic=clinic.sms_name)}"
    assert level_of(gloves) == 5
    assert db.session.scalar(select(func.count()).select_from(StockMovement)) == 1  # the initial count only


def test_a_replayed_confirmation_writes_once(client, clinic):
    staff(clinic)
    gloves = item(clinic, "Gloves", level=5)
    session = signed_in(client)
    for typed in ("2", "1", "20"):
        session.send(typed)
    first = session.send("1")

    assert session.post(session.history) == first  # Africa's Talking retried the same hop
    assert level_of(gloves) == 25
    # One receipt: the replay answers from the stored screen and runs no write (the receipt has no dedupe key).
    assert texts_to(PHONE) == [t("stock_receipt_received", "en", quantity=20, unit="boxes", item="Gloves", level=25)]


# --- The user kept in the session state, read again before every write ---------------------------------------------


def at_the_confirmation(client, clinic, action: str = "2") -> tuple[Session, StockItem]:
    """A signed-in session on the confirmation of a write of 20 Gloves (level 5): the next "1" writes."""
    gloves = item(clinic, "Gloves", level=5)
    session = signed_in(client)
    for typed in (action, "1", "20" if action != "3" else "2"):
        session.send(typed)
    return session, gloves


def as_admin(client, method: str, path: str, **body):
    admin = make_user("admin")
    response = client.open(path, method=method, json=body or None, headers=bearer(login(client, admin)["access_token"]))
    assert response.status_code == 200, response.get_json()
    return response


def nothing_written(gloves: StockItem, level: int = 5) -> None:
    assert level_of(gloves) == level
    assert db.session.scalar(select(func.count()).select_from(StockMovement).where(
        StockMovement.channel == "ussd")) == 0  # fmt: skip
    assert [text for text in texts_to(PHONE) if "Gloves" in text] == []  # no receipt


@pytest.mark.parametrize("action", ["2", "3", "4"])  # receive, dispense, count
def test_a_user_deactivated_mid_session_cannot_confirm_a_stock_write(client, clinic, redis_conn, action):
    user = staff(clinic)
    session, gloves = at_the_confirmation(client, clinic, action)
    as_admin(client, "DELETE", f"/api/v1/users/{user.id}")  # deactivated while the menu shows the confirmation

    assert session.send("1") == f"END {t('ussd_error', 'en')}"

    nothing_written(gloves)
    assert redis_conn.get(f"thusa:ussd:staff:{session.session_id}") is None  # the session is over
    assert list(redis_conn.scan_iter("thusa:ussd:pending:*")) == []  # and nothing is offered to resume
    assert session.post(session.history) == f"END {t('ussd_error', 'en')}"  # the gateway's retry: the same answer
    nothing_written(gloves)


def test_a_user_moved_to_another_clinic_mid_session_cannot_write_to_the_old_clinics_stock(client, clinic):
    user = staff(clinic)
    other = make_clinic("Mogoditshane Clinic")
    session, gloves = at_the_confirmation(client, clinic)
    as_admin(client, "PATCH", f"/api/v1/users/{user.id}", clinic_id=str(other.id))

    assert session.send("1") == f"END {t('ussd_error', 'en')}"
    nothing_written(gloves)


def test_a_user_whose_phone_changed_mid_session_cannot_write_from_the_old_phone(client, clinic):
    user = staff(clinic)
    session, gloves = at_the_confirmation(client, clinic)
    as_admin(client, "PATCH", f"/api/v1/users/{user.id}", phone="+26773000077")

    assert session.send("1") == f"END {t('ussd_error', 'en')}"
    nothing_written(gloves)


def visit_in_30_minutes(clinic):
    from app.services import appointments

    at = utcnow().replace(second=0, microsecond=0) + timedelta(minutes=30)
    if appointments.local_time(clinic, at).date() != appointments.local_time(clinic, utcnow()).date():
        pytest.skip("30 minutes from now is tomorrow in clinic time")
    return book(clinic, phone="+26772004321", at=at)


def test_a_user_deactivated_mid_session_looks_up_no_patient(client, clinic):
    user = staff(clinic)
    visit_in_30_minutes(clinic)
    session = signed_in(client)
    session.send("6")
    as_admin(client, "DELETE", f"/api/v1/users/{user.id}")

    assert session.send("4321") == f"END {t('ussd_error', 'en')}"  # not the visit's time and phone


def test_a_user_deactivated_mid_session_cannot_mark_a_visit_attended(client, clinic):
    user = staff(clinic)
    visit = visit_in_30_minutes(clinic)
    session = signed_in(client)
    for typed in ("6", "4321"):
        session.send(typed)
    as_admin(client, "DELETE", f"/api/v1/users/{user.id}")

    assert session.send("1") == f"END {t('ussd_error', 'en')}"
    db.session.expire_all()
    assert db.session.get(type(visit), visit.id).status != "attended"
    assert texts_to(PHONE) == []  # no receipt


def test_a_user_deactivated_between_the_dial_and_the_pin_gets_no_menu(client, clinic):
    user = staff(clinic)
    session = Session(client)
    session.dial()
    as_admin(client, "DELETE", f"/api/v1/users/{user.id}")

    assert session.send(PIN) == f"END {t('ussd_error', 'en')}"
    db.session.expire_all()
    assert db.session.get(User, user.id).pin_failed_attempts == 0  # the PIN was not even tried


class Statements:
    """The SQL statements run while active (their text, whitespace folded)."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def __enter__(self) -> Statements:
        event.listen(Engine, "before_cursor_execute", self._seen)
        return self

    def __exit__(self, *exc) -> None:
        event.remove(Engine, "before_cursor_execute", self._seen)

    def _seen(self, conn, cursor, statement, *_) -> None:
        self.seen.append(" ".join(statement.split()))

    def reading(self, table: str) -> list[str]:
        return [s for s in self.seen if f"FROM {table}" in s or f"JOIN {table}" in s]


def test_menu_and_paging_hops_read_no_user_and_paging_reads_no_stock(client, clinic):
    staff(clinic)
    for n in range(10):
        item(clinic, f"Item {n:02d} with a long name", unit="capsules", level=100 + n)
    session = signed_in(client)
    with Statements() as listed:
        first = session.send("1")
    with Statements() as paged:
        second = session.send("9")
        back = session.send("0")
    with Statements() as chosen:
        session.send("00")
        session.send("2")
        quantity = session.send("1")

    assert listed.reading("users") == [] and len(listed.reading("stock_items")) == 1
    assert paged.reading("users") == paged.reading("stock_items") == []
    assert "Stock 2/" in second and back == first
    assert chosen.reading("users") == [] and len(chosen.reading("stock_items")) == 1  # the list, not the item
    assert "Item 00 with a long name" in quantity and "100" in quantity


def test_a_write_reads_its_item_again_under_its_lock_whatever_the_list_showed(client, clinic):
    staff(clinic)
    gloves = item(clinic, "Gloves", level=5)
    session = signed_in(client)
    for typed in ("3", "1"):  # dispense Gloves: the screen shows 5
        session.send(typed)
    assert session.send("4").endswith("1 Yes 2 No")
    stock.dispense(stock.StaffActor(user_id=None, role="staff", clinic_id=clinic.id), gloves.id, 3)  # meanwhile
    db.session.commit()

    body = session.send("1")  # 4 of the 2 left: refused, and re-prompted with the level as it is now

    assert body.startswith("CON ") and t("ussd_staff_not_enough", "en", level=2, unit="boxes") in body
    assert level_of(gloves) == 2


# --- Paging and navigation -----------------------------------------------------------------------------------------


def test_check_stock_pages_with_9_more_0_back_00_main(client, clinic):
    staff(clinic)
    for n in range(10):
        item(clinic, f"Item {n:02d} with a long name", unit="capsules", level=100 + n)
    session = signed_in(client)

    first = session.send("1")
    assert first.startswith("CON Stock 1/") and "1. Item 00 with a long name 100 capsules" in first
    assert "9 More" in first
    second = session.send("9")
    assert "Stock 2/" in second and "Item 00" not in second
    assert session.send("0") == first
    assert session.send("0") == f"CON {t('ussd_staff_menu', 'en', clinic=clinic.sms_name)}"
    session.send("1")
    session.send("9")
    assert session.send("00") == f"CON {t('ussd_staff_menu', 'en', clinic=clinic.sms_name)}"
    pages = []
    session.send("1")
    body = first
    while "9 More" in body:
        pages.append(body)
        body = session.send("9")
    pages.append(body)
    shown = [line for page in pages for line in page.split("\n") if ". Item" in line]
    assert len(shown) == 10  # every item once, across the pages


def test_low_stock_lists_fewest_days_left_first(client, clinic):
    user = staff(clinic)
    actor = stock.actor_for(user)
    slow = item(clinic, "Slow", level=10, reorder=10)
    fast = item(clinic, "Fast", level=10, reorder=10)
    item(clinic, "Plenty", level=100, reorder=10)
    stock.dispense(actor, slow.id, 1)
    stock.dispense(actor, fast.id, 5)
    db.session.commit()
    session = signed_in(client)

    body = session.send("5")

    assert body.split("\n")[1:3] == ["1. Fast 5 boxes", "2. Slow 9 boxes"]
    assert "Plenty" not in body


def test_a_wrong_menu_choice_is_re_prompted(client, clinic):
    staff(clinic)
    session = signed_in(client)

    body = session.send("9")

    assert body.startswith("CON ") and t("ussd_staff_menu", "en", clinic=clinic.sms_name) in body
    assert body != f"CON {t('ussd_staff_menu', 'en', clinic=clinic.sms_name)}"


def test_language_choice_changes_the_menu_and_the_receipts(client, clinic):
    user = staff(clinic, language="en")
    item(clinic, "Gloves", level=5)
    session = signed_in(client)
    session.send("7")

    assert session.send("2") == f"CON {t('ussd_staff_menu', 'tn', clinic=clinic.sms_name)}"
    db.session.expire_all()
    assert db.session.get(User, user.id).language == "tn"
    for typed in ("2", "1", "3", "1"):
        session.send(typed)
    assert texts_to(PHONE)[-1] == t("stock_receipt_received", "tn", quantity=3, unit="boxes", item="Gloves", level=8)


# --- Resume after a redial -----------------------------------------------------------------------------------------


def test_an_unfinished_write_is_offered_after_the_correct_pin_on_redial(client, clinic, redis_conn):
    staff(clinic)
    gloves = item(clinic, "Gloves", level=5)
    cut = signed_in(client)
    for typed in ("2", "1", "20"):
        cut.send(typed)  # the network drops the session at the confirmation
    assert 0 < redis_conn.ttl(next(iter(redis_conn.scan_iter("thusa:ussd:pending:*")))) <= RESUME_TTL

    again = Session(client)
    assert again.dial() == f"CON {t('ussd_staff_pin', 'en')}"  # nothing is offered before the PIN
    assert again.send("1111").startswith("CON Wrong PIN")  # nor after a wrong one
    offer = again.send(PIN)
    assert offer == f"CON {t('ussd_staff_resume', 'en', summary='Receive Gloves 20 boxes')}"
    assert offer.endswith("1 Yes 2 No")
    assert again.send("1").endswith("1 Yes 2 No")  # the confirmation again, with today's level
    assert again.send("1").startswith("END Saved.")
    assert level_of(gloves) == 25

    third = Session(client)
    third.dial()
    assert third.send(PIN) == f"CON {t('ussd_staff_menu', 'en', clinic=clinic.sms_name)}"  # nothing left


def test_no_resume_after_a_finished_or_declined_write_or_after_5_minutes(client, clinic, redis_conn):
    staff(clinic)
    item(clinic, "Gloves", level=5)
    menu = f"CON {t('ussd_staff_menu', 'en', clinic=clinic.sms_name)}"
    declined = signed_in(client)
    for typed in ("2", "1", "20", "2"):
        declined.send(typed)
    fresh = Session(client)
    fresh.dial()
    assert fresh.send(PIN) == menu

    cut = signed_in(client)
    for typed in ("3", "1"):
        cut.send(typed)
    for key in redis_conn.scan_iter("thusa:ussd:pending:*"):
        redis_conn.delete(key)  # what the 5-minute TTL does
    late = Session(client)
    late.dial()
    assert late.send(PIN) == menu


def test_declining_the_resume_offer_forgets_it(client, clinic):
    staff(clinic)
    item(clinic, "Gloves", level=5)
    cut = signed_in(client)
    for typed in ("4", "1"):
        cut.send(typed)
    again = Session(client)
    again.dial()
    assert again.send(PIN).startswith("CON Continue where you left off?\nCount Gloves")
    assert again.send("2") == f"CON {t('ussd_staff_menu', 'en', clinic=clinic.sms_name)}"
    last = Session(client)
    last.dial()
    assert last.send(PIN) == f"CON {t('ussd_staff_menu', 'en', clinic=clinic.sms_name)}"


# --- Today's visits ------------------------------------------------------------------------------------------------


def test_todays_visits_count_and_mark_attended_by_the_last_4_digits(client, clinic):
    staff(clinic)
    at = utcnow().replace(second=0, microsecond=0) + timedelta(minutes=30)
    from app.services import appointments

    local = appointments.local_time(clinic, at)
    if local.date() != appointments.local_time(clinic, utcnow()).date():
        pytest.skip("30 minutes from now is tomorrow in clinic time")
    visit = book(clinic, phone="+26772004321", at=at)
    session = signed_in(client)

    assert session.send("6") == f"CON {t('ussd_staff_visits', 'en', total=1, attended=0)}"
    assert session.send("9999").startswith("CON " + t("ussd_staff_no_visit", "en", digits="9999"))
    assert session.send("432").startswith("CON ")  # not 4 digits: re-prompted
    label = f"{local:%H:%M} ...4321"
    assert session.send("4321") == f"CON {t('ussd_staff_confirm_attend', 'en', visit=label)}"
    assert session.send("1") == f"END {t('ussd_staff_attended', 'en', visit=label)}"
    db.session.expire_all()
    assert db.session.get(type(visit), visit.id).status == "attended"
    assert texts_to(PHONE)[-1] == t("visit_receipt_attended", "en", visit=label)


# --- Tracing patients who missed a visit ---------------------------------------------------------------------------


@pytest.mark.parametrize("language", ["en", "tn"])
def test_tracing_counts_finds_by_the_last_4_digits_and_the_outcome_shows_in_the_api(client, clinic, language):
    from app.services import appointments

    staff(clinic, language=language)
    yesterday = utcnow() - timedelta(days=1)
    visits = [book(clinic, phone=phone, at=utcnow() + timedelta(days=2)) for phone in ("+26772004321", "+26772114321")]
    for visit in visits:
        visit.appointment_datetime, visit.status = yesterday, "missed"
    db.session.commit()
    session = signed_in(client)

    assert session.send("8") == f"CON {t('ussd_staff_trace', language, count=2)}"
    assert session.send("9999").startswith("CON " + t("ussd_staff_no_trace", language, digits="9999"))
    assert session.send("4321").startswith(f"CON {t('ussd_staff_which_visit', language)}")  # two match
    day = appointments.local_time(clinic, yesterday).strftime("%d/%m")
    label = t("ussd_staff_trace_label", language, date=day, digits="4321")
    assert session.send("2") == f"CON {t('ussd_staff_trace_outcome', language, visit=label)}"
    assert session.send("3") == f"END {t('ussd_staff_traced', language, visit=label)}"

    viewer = make_user("viewer", clinic=clinic)
    listed = client.get("/api/v1/appointments/tracing", headers=bearer(login(client, viewer)["access_token"]))
    outcomes = sorted(str(item["last_outcome"]) for item in listed.get_json()["items"])
    assert outcomes == ["None", "unreachable"]  # the second match; unreachable keeps a visit on the list


# --- Every screen fits ---------------------------------------------------------------------------------------------

LONG_NAME = "Amoxicillin 250mg capsules for children"  # cut to 24 characters on screens
LONG_UNIT = "test kits 25 per box"  # cut to 12


@pytest.mark.parametrize("language", ["en", "tn"])
def test_every_screen_fits_160_gsm7_characters(client, app, language):
    clinic = make_clinic("Tlokweng Main Clinic Extension", language=language)
    staff(clinic, language=language)
    for n in range(7):
        item(clinic, f"{n} {LONG_NAME}", unit=LONG_UNIT, level=99999, reorder=99999 if n < 5 else 1)
    shown: list[str] = []

    def hop(session: Session, typed: str | None = None) -> str:
        body = session.dial() if typed is None else session.send(typed)
        shown.append(body)
        return body

    def walk(*typed: str, pin: bool = True) -> None:
        session = Session(client)
        hop(session)
        if pin:
            hop(session, PIN)
        for value in typed:
            hop(session, value)

    walk("9", "1", "x", "9", "9", "9", "0", "00", "5", "9", "00", "7", "3", "1")  # lists, paging, language
    walk("2", "9", "1", "abc", "99999", "0", "5", "7", "2")  # receive: bad numbers, back, a wrong choice, no
    walk("3", "1", "100000", "5")  # dispense: more than in stock, then cut off at the confirmation
    walk("5", "1", "1")  # redial: the resume offer, a wrong choice, yes, saved
    walk("4", "1", "0", "1", "7", "1")  # count
    walk("6", "12", "1234", "0")  # today's visits: not 4 digits, no such visit
    walk("8", "12", "1234", "0")  # tracing: not 4 digits, nobody to trace
    for _ in range(5):
        walk("1111", pin=False)  # wrong PINs, then locked
    walk(pin=False)
    make_user("staff", clinic=clinic, phone="+26773000009")
    shown.append(Session(client, phone="+26773000009").dial())  # no PIN set

    assert len(set(shown)) >= 30
    for body in shown:
        assert body[:4] in ("CON ", "END "), body
        assert septets(body[4:]) is not None, body
        assert len(body[4:]) <= SCREEN_LIMIT, (len(body[4:]), body)
