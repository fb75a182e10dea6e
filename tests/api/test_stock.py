"""``/api/v1/stock`` and ``PUT /api/v1/users/{id}/pin`` on PostgreSQL: levels, the ledger, days of stock
left, low stock, alerts through the outbox, scoping by clinic, audited reads and the errors."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import AuditLog, Message, StockItem, StockMovement, User, utcnow
from app.services import stock
from app.services.passwords import verify_pin
from tests.conftest import bearer, make_user

BASE = "/api/v1/stock"


def headers(people, who: str = "staff") -> dict:
    return bearer(people["tokens"][who])


def create(client, people, who: str = "staff", **fields) -> dict:
    body = {"name": "Paracetamol 500mg", "unit": "tablets", "reorder_level": 100, **fields}
    response = client.post(BASE, json=body, headers=headers(people, who))
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def move(client, people, item_id, kind: str, quantity: int, who: str = "staff", **fields):
    return client.post(f"{BASE}/{item_id}/movements", json={"kind": kind, "quantity": quantity, **fields},
                       headers=headers(people, who))  # fmt: skip


def sms_texts(address: str) -> list[str]:
    db.session.expire_all()
    return list(db.session.scalars(select(Message.text).where(Message.address == address, Message.channel == "sms")
                                   .order_by(Message.created_at)))  # fmt: skip


def test_create_shows_the_interface_fields_and_records_the_initial_level_as_a_count(client, people):
    body = create(client, people, level=500, code="PCM500")

    assert {"id", "name", "unit", "level", "reorder_level"} <= body.keys()
    assert (body["name"], body["unit"], body["level"], body["reorder_level"], body["code"]) == (
        "Paracetamol 500mg", "tablets", 500, 100, "PCM500")  # fmt: skip
    assert body["clinic_id"] == str(people["home"].id) and body["low"] is False
    assert body["days_of_stock_left"] is None  # nothing dispensed yet
    (movement,) = db.session.scalars(select(StockMovement)).all()
    assert (movement.kind, movement.quantity, movement.delta, movement.level_after) == ("counted", 500, 500, 500)


def test_a_second_item_with_the_same_name_or_code_is_a_conflict(client, people):
    create(client, people, code="PCM500")
    for fields in ({}, {"name": "Other", "code": "PCM500"}):
        response = client.post(BASE, json={"name": "Paracetamol 500mg", "unit": "tablets", "reorder_level": 1,
                                           **fields}, headers=headers(people))  # fmt: skip
        assert response.status_code == 409
    # Another clinic may use the same name.
    create(client, people, "admin", clinic_id=str(people["other"].id))


def test_admins_must_name_the_clinic(client, people):
    response = client.post(BASE, json={"name": "X", "unit": "u", "reorder_level": 1}, headers=headers(people, "admin"))

    assert response.status_code == 422
    assert "clinic_id" in response.get_json()["error"]["details"]["json"]


@pytest.mark.parametrize(
    ("body", "field"),
    [({"name": "", "unit": "u", "reorder_level": 1}, "name"), ({"name": "X", "unit": "u", "reorder_level": -1},
     "reorder_level"), ({"name": "X", "unit": "u" * 13, "reorder_level": 1}, "unit"),
     ({"name": "X", "unit": "u", "reorder_level": "5"}, "reorder_level"), ({"name": "X", "unit": "u"}, "reorder_level"),
     ({"name": "X", "unit": "u", "reorder_level": 1, "level": -5}, "level")],
)  # fmt: skip
def test_bad_items_are_refused_naming_the_field(client, people, body, field):
    response = client.post(BASE, json=body, headers=headers(people))

    assert response.status_code == 422
    assert field in response.get_json()["error"]["details"]["json"]
    assert db.session.scalar(select(func.count()).select_from(StockItem)) == 0


def test_movements_keep_the_level_equal_to_the_ledger(client, people):
    item = create(client, people, level=10)
    assert move(client, people, item["id"], "received", 20, batch="B1", expiry_date="2027-06-30").status_code == 201
    assert move(client, people, item["id"], "dispensed", 5).status_code == 201
    assert move(client, people, item["id"], "expired", 3, batch="B0").status_code == 201
    assert move(client, people, item["id"], "adjusted", -2, note="broken bottle").status_code == 201
    response = move(client, people, item["id"], "counted", 19, note="monthly count")
    assert response.status_code == 201
    assert response.get_json()["delta"] == -1 and response.get_json()["level_after"] == 19
    assert response.get_json()["user_name"] == people["users"]["staff"].name

    level = client.get(f"{BASE}/{item['id']}", headers=headers(people)).get_json()["level"]
    ledger = db.session.scalar(
        select(func.sum(StockMovement.delta)).where(StockMovement.item_id == uuid.UUID(item["id"]))
    )
    assert level == ledger == 19


def test_a_level_never_goes_negative_and_nothing_is_written(client, people):
    item = create(client, people, level=4)

    for kind, quantity in (("dispensed", 5), ("expired", 5), ("adjusted", -5)):
        response = move(client, people, item["id"], kind, quantity, note="x")
        assert response.status_code == 409, response.get_json()
        assert response.get_json()["error"]["code"] == "insufficient_stock"
        assert "quantity" in response.get_json()["error"]["details"]["json"]
    assert client.get(f"{BASE}/{item['id']}", headers=headers(people)).get_json()["level"] == 4
    assert db.session.scalar(select(func.count()).select_from(StockMovement)) == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [({"kind": "received", "quantity": 0}, "quantity"), ({"kind": "dispensed", "quantity": -1}, "quantity"),
     ({"kind": "adjusted", "quantity": 0, "note": "x"}, "quantity"), ({"kind": "adjusted", "quantity": 3}, "note"),
     ({"kind": "dispensed", "quantity": 1, "expiry_date": "2027-01-01"}, "expiry_date"),
     ({"kind": "stolen", "quantity": 1}, "kind"), ({"kind": "counted", "quantity": 1.5}, "quantity")],
)  # fmt: skip
def test_bad_movements_are_refused_naming_the_field(client, people, body, field):
    item = create(client, people, level=4)

    response = client.post(f"{BASE}/{item['id']}/movements", json=body, headers=headers(people))

    assert response.status_code == 422
    assert field in response.get_json()["error"]["details"]["json"]


def test_put_sets_a_counted_level_and_the_reorder_level(client, people):
    item = create(client, people, level=50)

    response = client.put(f"{BASE}/{item['id']}", json={"level": 42, "reorder_level": 45, "note": "shelf count"},
                          headers=headers(people))  # fmt: skip

    assert response.status_code == 200
    assert (response.get_json()["level"], response.get_json()["reorder_level"], response.get_json()["low"]) == (
        42, 45, True)  # fmt: skip
    kinds = db.session.scalars(select(StockMovement.kind).order_by(StockMovement.at)).all()
    assert kinds == ["counted", "counted"]
    assert client.put(f"{BASE}/{item['id']}", json={"note": "only a note"}, headers=headers(people)).status_code == 422


def test_days_of_stock_left_come_from_the_last_30_days_of_dispensing(client, people):
    item = create(client, people, level=300)
    actor = stock.actor_for(db.session.get(User, people["users"]["staff"].id))
    stock.dispense(actor, uuid.UUID(item["id"]), 60)  # 60 in 30 days: 2 a day
    old = stock.dispense(actor, uuid.UUID(item["id"]), 90)
    old.at = utcnow() - timedelta(days=31)  # outside the window
    db.session.commit()

    body = client.get(BASE, headers=headers(people)).get_json()

    assert body["total"] == 1 and body["items"][0]["level"] == 150
    assert body["items"][0]["days_of_stock_left"] == 75.0


def test_low_lists_items_at_or_below_reorder_level_fewest_days_first(client, people):
    actor = stock.actor_for(db.session.get(User, people["users"]["staff"].id))
    ids = {}
    for name, level, reorder, dispensed in (("Slow", 30, 40, 3), ("Fast", 30, 40, 15), ("Unknown", 5, 10, 0),
                                            ("Empty", 0, 10, 0), ("Fine", 100, 10, 3)):  # fmt: skip
        ids[name] = create(client, people, name=name, level=level + dispensed, reorder_level=reorder)["id"]
        if dispensed:
            stock.dispense(actor, uuid.UUID(ids[name]), dispensed)
    db.session.commit()

    body = client.get(f"{BASE}/low", headers=headers(people)).get_json()

    assert [i["name"] for i in body["items"]] == ["Empty", "Fast", "Slow", "Unknown"]
    assert [i["days_of_stock_left"] for i in body["items"]] == [0.0, 60.0, 300.0, None]
    listed = client.get(f"{BASE}?low=true&q=fa", headers=headers(people)).get_json()
    assert [i["name"] for i in listed["items"]] == ["Fast"]


def test_staff_and_viewers_see_only_their_clinic(client, people):
    create(client, people, name="Home item")
    create(client, people, "other_staff", name="Other item")

    for who in ("staff", "viewer"):
        assert [i["name"] for i in client.get(BASE, headers=headers(people, who)).get_json()["items"]] == ["Home item"]
    assert client.get(BASE, headers=headers(people, "admin")).get_json()["total"] == 2
    other = client.get(f"{BASE}?clinic_id={people['other'].id}", headers=headers(people, "staff"))
    assert other.status_code == 403


def test_crossing_the_reorder_level_alerts_once_until_back_above(client, people):
    staff = people["users"]["staff"]
    tn_staff = make_user("staff", clinic=people["home"], phone="+26771999999", language="tn")
    item = create(client, people, name="ORS", unit="sachets", level=12, reorder_level=10)
    alerts = lambda: [m for m in sms_texts(staff.phone) + sms_texts(tn_staff.phone) if "ORS" in m]  # noqa: E731

    move(client, people, item["id"], "dispensed", 1)  # 11: still above
    assert alerts() == []
    move(client, people, item["id"], "dispensed", 1)  # 10: at the reorder level
    assert len(alerts()) == 2  # one per recipient, each in their language
    assert sms_texts(tn_staff.phone)[-1].startswith("Thusa, ") and "tlhaela" in sms_texts(tn_staff.phone)[-1]
    assert "stock alert" in sms_texts(staff.phone)[-1]
    move(client, people, item["id"], "dispensed", 3)  # 7: still low, no repeat
    move(client, people, item["id"], "received", 2)  # 9: still low
    assert len(alerts()) == 2
    move(client, people, item["id"], "received", 5)  # 14: back above, re-armed
    move(client, people, item["id"], "counted", 3)  # 3: crossed again
    assert len(alerts()) == 4


def test_alert_recipients_follow_the_clinics_setting(client, people):
    chosen = make_user("viewer", clinic=people["home"], phone="+26771888888")
    response = client.patch(f"/api/v1/clinics/{people['home'].id}", json={"alert_recipient_ids": [str(chosen.id)]},
                            headers=headers(people, "admin"))  # fmt: skip
    assert response.status_code == 200 and response.get_json()["alert_recipient_ids"] == [str(chosen.id)]
    nobody = make_user("viewer", clinic=people["home"])
    refused = client.patch(f"/api/v1/clinics/{people['home'].id}", json={"alert_recipient_ids": [str(nobody.id)]},
                           headers=headers(people, "admin"))  # fmt: skip
    assert refused.status_code == 422 and "alert_recipient_ids" in refused.get_json()["error"]["details"]["json"]
    item = create(client, people, level=101)

    move(client, people, item["id"], "dispensed", 1)

    assert len(sms_texts(chosen.phone)) == 1 and sms_texts(people["users"]["staff"].phone) == []


def test_manual_alert_goes_to_the_recipients_with_the_note(client, people):
    item = create(client, people, level=50)

    response = client.post(f"{BASE}/alert", json={"item_id": item["id"], "note": "Fridge broken, move stock"},
                           headers=headers(people))  # fmt: skip

    assert response.status_code == 202 and response.get_json()["recipients"] == 1
    assert sms_texts(people["users"]["staff"].phone)[-1].endswith(": Fridge broken, move stock")
    too_long = client.post(f"{BASE}/alert", json={"item_id": item["id"], "note": "x" * 61}, headers=headers(people))
    assert too_long.status_code == 422 and "note" in too_long.get_json()["error"]["details"]["json"]


def test_reading_movements_is_audited(client, people):
    item = create(client, people, level=50)

    response = client.get(f"{BASE}/{item['id']}/movements", headers=headers(people, "viewer"))

    assert response.status_code == 200 and response.get_json()["items"][0]["user_name"] == "Staff"
    row = db.session.scalar(select(AuditLog).where(AuditLog.action == "stock.movements.read"))
    assert row.actor_id == people["users"]["viewer"].id and row.entity_id == item["id"]


# --- PIN -----------------------------------------------------------------------------------------------------------


def test_staff_set_their_own_pin_and_it_is_stored_hashed(client, people):
    staff = people["users"]["staff"]

    response = client.put(f"/api/v1/users/{staff.id}/pin", json={"pin": "2580"}, headers=headers(people))

    assert response.status_code == 204
    db.session.expire_all()
    stored = db.session.get(User, staff.id)
    assert stored.pin_hash != "2580" and verify_pin(stored.pin_hash, "2580") and not verify_pin(stored.pin_hash, "2581")
    audit_row = db.session.scalar(select(AuditLog).where(AuditLog.action == "user.pin_set"))
    assert "2580" not in str(audit_row.details)


@pytest.mark.parametrize("pin", ["258", "25800", "abcd", "1111", "1234", "9876", "25 8", "２５８０"])
def test_weak_or_malformed_pins_are_refused(client, people, pin):
    response = client.put(f"/api/v1/users/{people['users']['staff'].id}/pin", json={"pin": pin},
                          headers=headers(people, "admin"))  # fmt: skip

    assert response.status_code == 422
    assert "pin" in response.get_json()["error"]["details"]["json"]


def test_only_staff_accounts_get_a_pin_and_setting_one_unlocks(client, people):
    viewer = people["users"]["viewer"]
    response = client.put(f"/api/v1/users/{viewer.id}/pin", json={"pin": "2580"}, headers=headers(people, "admin"))
    assert response.status_code == 422
    missing = client.put("/api/v1/users/00000000-0000-0000-0000-000000000000/pin", json={"pin": "2580"},
                         headers=headers(people, "admin"))  # fmt: skip
    assert missing.status_code == 404
    staff = db.session.get(User, people["users"]["staff"].id)
    staff.pin_locked_until, staff.pin_failed_attempts = utcnow() + timedelta(minutes=10), 3
    db.session.commit()

    assert client.put(f"/api/v1/users/{staff.id}/pin", json={"pin": "4826"},
                      headers=headers(people, "admin")).status_code == 204  # fmt: skip
    db.session.expire_all()
    assert (db.session.get(User, staff.id).pin_locked_until, db.session.get(User, staff.id).pin_failed_attempts) == (
        None, 0)  # fmt: skip
