"""Proven phone numbers through the REST API: what registration, admins, the code and a reset do with the proof.

A phone typed at self-registration proves nothing (anyone can type a patient's or a colleague's number): it is
proven by ``POST /api/v1/auth/phone/verify`` (a code by SMS to the account's own phone) and ``.../confirm``, or by an
admin setting it. The chat, reset and USSD consequences are tested where those live (tests/flows/test_skin.py,
test_appointments.py, test_ussd.py); here: the proof itself, its caps, and the password reset that needs it.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from app.extensions import db
from app.i18n import t
from app.messaging.outbox import CODE_MASK, text_to_send
from app.models import AuditLog, Message, PhoneProofCode, User, utcnow
from app.models.message_log import DIRECTION_OUT, KIND_SYSTEM
from app.security import Actor
from app.services import phone_proof, users
from tests.conftest import PASSWORD, bearer, login, make_user

REGISTER = "/api/v1/auth/register"
VERIFY = "/api/v1/auth/phone/verify"
CONFIRM = "/api/v1/auth/phone/confirm"
RESET = "/api/v1/auth/password-reset"
PATIENT_PHONE = "+26772999000"
CODE = re.compile(r"(?<!\d)(\d{6})(?!\d)")


def register(client, phone: str = PATIENT_PHONE, email: str = "mallory@example.org", language: str = "en") -> dict:
    """Self-register a pharmacist (the attacker's way in) and sign in; the token pair and the user."""
    body = {"name": "Mallory", "email": email, "phone": phone, "password": PASSWORD,
            "pharmacy_name": "Nowhere Chemists", "language": language}  # fmt: skip
    response = client.post(REGISTER, json=body)
    assert response.status_code == 201, response.get_json()
    return client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD}).get_json()


def sms_to(phone: str) -> list[Message]:
    db.session.expire_all()
    return list(db.session.scalars(select(Message).where(Message.direction == DIRECTION_OUT, Message.address == phone)
                                   .order_by(Message.created_at)))  # fmt: skip


def send_code(client, token: str) -> str:
    """Ask for a code and read it from the newest SMS."""
    response = client.post(VERIFY, headers=bearer(token))
    assert response.status_code == 202, response.get_json()
    return CODE.findall(text_to_send(system_sms()[-1]))[0]


def system_sms() -> list[Message]:
    db.session.expire_all()
    return list(db.session.scalars(select(Message).where(Message.direction == DIRECTION_OUT, Message.kind == KIND_SYSTEM)
                                   .order_by(Message.created_at)))  # fmt: skip


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


def me(client, token: str) -> dict:
    return client.get("/api/v1/auth/me", headers=bearer(token)).get_json()


# --- who proves what ------------------------------------------------------------------------------------------------


def test_a_self_registered_phone_is_not_proven(client):
    pair = register(client)
    assert pair["user"]["phone_verified"] is False and pair["user"]["phone_verified_at"] is None
    assert me(client, pair["access_token"])["phone_verified"] is False


def test_an_admin_set_phone_is_proven_with_who_and_when(client, people):
    admin = people["users"]["admin"]
    body = {"email": "neo@example.org", "password": "a-long-enough-passphrase-9", "role": "staff",
            "clinic_id": str(people["home"].id), "phone": "+26771999001"}  # fmt: skip
    created = client.post("/api/v1/users", json=body, headers=bearer(people["tokens"]["admin"])).get_json()
    assert created["phone_verified"] is True and created["phone_verified_at"]
    row = db.session.get(User, created["id"])
    assert row.phone_verified_by == admin.id

    # A pharmacist registers, then an admin changes the number: the admin vouches for the new one.
    pharmacist = register(client)["user"]
    response = client.patch(f"/api/v1/users/{pharmacist['id']}", json={"phone": "+233241999002"},
                            headers=bearer(people["tokens"]["admin"]))  # fmt: skip
    assert response.get_json()["phone_verified"] is True
    db.session.expire_all()
    assert db.session.get(User, pharmacist["id"]).phone_verified_by == admin.id


def test_an_admin_editing_other_fields_does_not_prove_a_self_registered_phone(client, people):
    pharmacist = register(client)["user"]
    response = client.patch(f"/api/v1/users/{pharmacist['id']}", json={"name": "Renamed", "phone": PATIENT_PHONE},
                            headers=bearer(people["tokens"]["admin"]))  # fmt: skip
    assert response.status_code == 200 and response.get_json()["phone_verified"] is False


def test_changing_the_phone_clears_the_proof(app):
    user = make_user("pharmacist", phone="+233241999003")
    assert phone_proof.proven(user)
    users.update_user(Actor(user.id, "pharmacist", None, "127.0.0.1"), user.id, {"phone": "+233241999004"})
    db.session.expire_all()
    changed = db.session.get(User, user.id)
    assert (changed.phone, changed.phone_verified_at, changed.phone_verified_by) == ("+233241999004", None, None)


def test_an_admin_takes_a_squatted_number_back_for_its_owner(client, people):
    """A stranger registered a staff member's number first; the admin can still give it to the staff member."""
    squatter = register(client, phone="+26771999005")["user"]
    body = {"email": "owner@example.org", "password": "a-long-enough-passphrase-9", "role": "staff",
            "clinic_id": str(people["home"].id), "phone": "+26771999005"}  # fmt: skip
    response = client.post("/api/v1/users", json=body, headers=bearer(people["tokens"]["admin"]))
    assert response.status_code == 201 and response.get_json()["phone_verified"] is True
    db.session.expire_all()
    assert db.session.get(User, squatter["id"]).phone is None
    assert (
        db.session.scalar(select(AuditLog).where(AuditLog.action == "user.phone_released")).entity_id == squatter["id"]
    )


def test_a_proven_number_is_not_taken_from_its_owner(client, people):
    body = {"email": "other@example.org", "password": "a-long-enough-passphrase-9", "role": "pharmacist",
            "pharmacy_name": "Osu Pharmacy", "phone": people["users"]["pharmacist"].phone}  # fmt: skip
    response = client.post("/api/v1/users", json=body, headers=bearer(people["tokens"]["admin"]))
    assert response.status_code == 409


# --- the code -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("language", ["en", "tn"])
def test_verify_then_confirm_proves_the_phone(client, language):
    pair = register(client, language=language)
    token = pair["access_token"]

    response = client.post(VERIFY, headers=bearer(token))
    assert response.status_code == 202 and response.get_json()["expires_at"]
    (sms,) = sms_to(PATIENT_PHONE)  # to the account's own phone, nowhere else
    code = CODE.findall(text_to_send(sms))[0]
    assert text_to_send(sms) == t("phone_proof_code", language, code=code, minutes=phone_proof.CODE_MINUTES)
    assert sms.text == t("phone_proof_code", language, code=CODE_MASK, minutes=phone_proof.CODE_MINUTES)
    assert (sms.channel, sms.kind, str(sms.user_id)) == ("sms", KIND_SYSTEM, pair["user"]["id"])
    stored = db.session.scalar(select(PhoneProofCode))
    assert code not in (stored.code_hash, stored.phone) and len(stored.code_hash) == 64  # only its HMAC is kept

    response = client.post(CONFIRM, json={"code": code}, headers=bearer(token))
    assert response.status_code == 200 and response.get_json()["phone_verified"] is True
    assert me(client, token)["phone_verified"] is True
    user = db.session.get(User, pair["user"]["id"])
    assert user.phone_verified_by == user.id
    actions = set(db.session.scalars(select(AuditLog.action).where(AuditLog.entity_id == str(user.id))))
    assert {"auth.phone_code_send", "auth.phone_proven"} <= actions
    # Proven: asking again is pointless, and the code is spent.
    assert client.post(VERIFY, headers=bearer(token)).status_code == 409
    assert client.post(CONFIRM, json={"code": code}, headers=bearer(token)).status_code == 422


def test_five_wrong_codes_spend_the_code(client):
    token = register(client)["access_token"]
    code = send_code(client, token)
    for _ in range(phone_proof.MAX_TRIES):
        response = client.post(CONFIRM, json={"code": wrong(code)}, headers=bearer(token))
        assert response.status_code == 422 and response.get_json()["error"]["code"] == "invalid_phone_code"
    response = client.post(CONFIRM, json={"code": code}, headers=bearer(token))  # the right one, too late
    assert response.status_code == 422
    assert me(client, token)["phone_verified"] is False


def test_four_wrong_codes_then_the_right_one_proves(client):
    token = register(client)["access_token"]
    code = send_code(client, token)
    for _ in range(phone_proof.MAX_TRIES - 1):
        client.post(CONFIRM, json={"code": wrong(code)}, headers=bearer(token))
    assert client.post(CONFIRM, json={"code": code}, headers=bearer(token)).status_code == 200


def test_at_most_three_codes_an_hour(client):
    token = register(client)["access_token"]
    codes = [send_code(client, token) for _ in range(phone_proof.MAX_SENDS_PER_HOUR)]
    response = client.post(VERIFY, headers=bearer(token))
    assert response.status_code == 429 and response.get_json()["error"]["code"] == "too_many_codes"
    assert len(sms_to(PATIENT_PHONE)) == 3
    # Only the newest code works: an older one was spent when the next was sent.
    assert client.post(CONFIRM, json={"code": codes[0]}, headers=bearer(token)).status_code == 422
    assert client.post(CONFIRM, json={"code": codes[-1]}, headers=bearer(token)).status_code == 200


def test_an_expired_code_proves_nothing(client):
    token = register(client)["access_token"]
    code = send_code(client, token)
    db.session.execute(update(PhoneProofCode).values(expires_at=utcnow() - timedelta(seconds=1)))
    db.session.commit()
    assert client.post(CONFIRM, json={"code": code}, headers=bearer(token)).status_code == 422


def test_another_accounts_code_proves_nothing(client):
    victim = register(client, phone="+233241999006", email="victim@example.org")["access_token"]
    attacker = register(client, phone="+233241999007", email="attacker@example.org")["access_token"]
    send_code(client, attacker)
    victim_code = send_code(client, victim)
    assert client.post(CONFIRM, json={"code": victim_code}, headers=bearer(attacker)).status_code == 422
    assert me(client, attacker)["phone_verified"] is False


def test_a_code_sent_to_the_old_number_does_not_prove_a_new_one(client):
    pair = register(client)
    code = send_code(client, pair["access_token"])
    actor = Actor(pair["user"]["id"], "pharmacist", None, "127.0.0.1")  # not an admin: the new number is unproven
    users.update_user(actor, pair["user"]["id"], {"phone": "+233241999008"})
    assert client.post(CONFIRM, json={"code": code}, headers=bearer(pair["access_token"])).status_code == 422


def test_no_phone_no_code(client, people):
    response = client.post(VERIFY, headers=bearer(people["tokens"]["admin"]))
    assert response.status_code == 422 and response.get_json()["error"]["code"] == "no_phone"
    assert system_sms() == []


# --- password reset needs a proven phone ----------------------------------------------------------------------------


def test_a_reset_for_an_unproven_phone_sends_nothing_and_answers_the_same(client):
    """The attacker registered with a patient's number: a reset would text the patient a code in Thusa's name."""
    proven = make_user("pharmacist", phone="+233241999009")
    pair = register(client)

    expected = client.post(RESET, json={"email": proven.email})
    assert expected.status_code == 202 and len(sms_to("+233241999009")) == 1

    response = client.post(RESET, json={"email": pair["user"]["email"]})
    assert response.status_code == 202 and response.get_json() == expected.get_json()
    assert sms_to(PATIENT_PHONE) == []

    # Once proven, the reset code goes out.
    code = send_code(client, pair["access_token"])
    client.post(CONFIRM, json={"code": code}, headers=bearer(pair["access_token"]))
    assert client.post(RESET, json={"email": pair["user"]["email"]}).status_code == 202
    assert len(sms_to(PATIENT_PHONE)) == 2  # the proof code, then the reset code


def test_login_answers_phone_verified(client):
    user = make_user("pharmacist", phone="+233241999010", phone_proven=False)
    assert login(client, user)["user"]["phone_verified"] is False
