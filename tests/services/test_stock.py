"""The stock service (app/services/stock.py) on SQLite and PostgreSQL: concurrent writers under the row lock,
the ledger, and the crossing rule of low-stock alerts."""

from __future__ import annotations

import threading
import uuid

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import Message, StockItem, StockMovement
from app.models.stock import CHANNEL_USSD
from app.services import stock
from tests.conftest import make_clinic, make_user

# concurrent dispensing: row locks on PostgreSQL, the write lock on SQLite
pytestmark = pytest.mark.both_backends

THREADS = 6
DISPENSES = 10  # per thread, one unit each


def new_item(clinic, level: int, reorder: int = 0) -> StockItem:
    item = StockItem(clinic_id=clinic.id, name=f"Item {uuid.uuid4().hex[:6]}", unit="boxes", level=0,
                     reorder_level=reorder)  # fmt: skip
    db.session.add(item)
    db.session.commit()
    if level:
        stock.count(actor(clinic), item.id, level)
        db.session.commit()
    return item


def actor(clinic) -> stock.StaffActor:
    return stock.StaffActor(user_id=None, role="staff", clinic_id=clinic.id)


def _dispense(app, clinic_id, item_id, start: threading.Barrier, refused: list, errors: list) -> None:
    try:
        with app.app_context():
            start.wait()
            who = stock.StaffActor(user_id=None, role="staff", clinic_id=clinic_id)
            for _ in range(DISPENSES):
                try:
                    stock.dispense(who, item_id, 1)
                    db.session.commit()
                except stock.InsufficientStock:
                    db.session.rollback()
                    refused.append(1)
            db.session.remove()
    except Exception as exc:  # asserted on in the main thread
        errors.append(exc)
        start.abort()


def test_concurrent_dispensing_never_loses_an_update_nor_goes_below_zero(app, clinic):
    # 60 dispenses of one unit against a level of 45: exactly 45 succeed, 15 are refused, the level ends at 0.
    item = new_item(clinic, 45, reorder=5)
    make_user("staff", clinic=clinic, phone="+26771234500")
    start, refused, errors = threading.Barrier(THREADS), [], []
    threads = [threading.Thread(target=_dispense, args=(app, clinic.id, item.id, start, refused, errors))
               for _ in range(THREADS)]  # fmt: skip
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)

    assert errors == [] and not any(thread.is_alive() for thread in threads)
    db.session.expire_all()
    assert db.session.get(StockItem, item.id).level == 0
    assert len(refused) == THREADS * DISPENSES - 45
    assert db.session.scalar(select(func.sum(StockMovement.delta)).where(StockMovement.item_id == item.id)) == 0
    assert db.session.scalar(select(func.count()).select_from(StockMovement)
                             .where(StockMovement.kind == "dispensed")) == 45  # fmt: skip
    # Crossing 5 happened once, whatever the interleaving: one alert.
    assert db.session.scalar(select(func.count()).select_from(Message).where(Message.address == "+26771234500")) == 1


def test_each_movement_records_who_how_and_the_level_after(app, clinic):
    user = make_user("staff", clinic=clinic)
    item = new_item(clinic, 10)

    movement = stock.receive(stock.actor_for(user), item.id, 5, channel=CHANNEL_USSD, batch="B2")
    db.session.commit()

    assert (movement.user_id, movement.channel, movement.batch, movement.level_after, movement.delta) == (
        user.id, "ussd", "B2", 15, 5)  # fmt: skip


def test_another_clinics_staff_cannot_move_stock(app, clinic):
    item = new_item(clinic, 10)
    other = make_clinic("Kumasi Clinic", "GH", "Africa/Accra", "en")

    with pytest.raises(stock.Forbidden):
        stock.dispense(actor(other), item.id, 1)


def test_a_count_equal_to_the_level_is_recorded_with_a_zero_delta(app, clinic):
    item = new_item(clinic, 10)

    movement = stock.count(actor(clinic), item.id, 10)

    assert (movement.kind, movement.delta, movement.level_after) == ("counted", 0, 10)


def test_display_names_fit_the_screens(app, clinic):
    item = StockItem(clinic_id=clinic.id, name="Tšhabong amoxicillin suspension 125mg/5ml", unit="bottles of 100ml",
                     level=0, reorder_level=0)  # fmt: skip

    assert stock.display_name(item) == "Tshabong amoxicillin sus"
    assert stock.display_unit(item) == "bottles of 1"
