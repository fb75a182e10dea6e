"""Sign-in, tokens and their edge cases: expired, tampered, ``alg: none``, revoked, refresh reuse → 401."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest
from flask_jwt_extended import create_access_token

from app.extensions import db
from app.models import AuditLog, User
from tests.conftest import PASSWORD, bearer, login, make_clinic, make_user


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _error(response) -> dict:
    body = response.get_json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}, body
    return body["error"]


@pytest.fixture
def staff(app):
    return make_user("staff", clinic=make_clinic("Mogoditshane Clinic"), phone="+26771234500")


def test_login_returns_a_token_pair_and_the_user(client, staff):
    body = login(client, staff)
    assert body["token_type"] == "Bearer" and body["expires_in"] == 15 * 60
    assert body["user"]["email"] == staff.email and "password_hash" not in body["user"]
    me = client.get("/api/v1/auth/me", headers=bearer(body["access_token"]))
    assert me.status_code == 200 and me.get_json()["id"] == str(staff.id)


@pytest.mark.parametrize(
    ("email", "password"),
    [("nobody@example.org", PASSWORD), (None, "wrong-password-123"), (None, "")],
    ids=["unknown-email", "wrong-password", "empty-password"],
)
def test_login_failures_are_indistinguishable(client, staff, email, password):
    response = client.post("/api/v1/auth/login", json={"email": email or staff.email, "password": password})
    if password == "":
        assert response.status_code == 422  # a missing password is a malformed request, not a failed sign-in
        return
    assert response.status_code == 401
    assert _error(response)["code"] == "invalid_credentials"


def test_login_is_case_insensitive_on_email_and_audited(client, staff):
    assert (
        client.post("/api/v1/auth/login", json={"email": staff.email.upper(), "password": PASSWORD}).status_code == 200
    )
    assert db.session.query(AuditLog).filter_by(action="auth.login", entity_id=str(staff.id)).count() == 1


def test_inactive_account_cannot_log_in_and_its_tokens_stop_working(client, staff):
    token = login(client, staff)["access_token"]
    staff.active = False
    db.session.commit()
    assert client.get("/api/v1/auth/me", headers=bearer(token)).status_code == 401
    response = client.post("/api/v1/auth/login", json={"email": staff.email, "password": PASSWORD})
    assert response.status_code == 401


def test_expired_access_token_is_401(client, staff):
    token = create_access_token(identity=str(staff.id), expires_delta=timedelta(seconds=-10))
    response = client.get("/api/v1/auth/me", headers=bearer(token))
    assert response.status_code == 401
    assert _error(response)["code"] == "token_expired"


def test_tampered_token_is_401(client, staff, people):
    token = login(client, staff)["access_token"]
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = str(people["users"]["admin"].id)  # try to become the admin
    response = client.get("/api/v1/users", headers=bearer(f"{header}.{_b64(claims)}.{signature}"))
    assert response.status_code == 401
    assert _error(response)["code"] == "token_invalid"


def test_alg_none_token_is_401(client, staff):
    claims = {"sub": str(staff.id), "type": "access", "fresh": False, "jti": "x", "iat": 1, "nbf": 1,
              "exp": 4_000_000_000}  # fmt: skip
    token = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."
    response = client.get("/api/v1/auth/me", headers=bearer(token))
    assert response.status_code == 401


def test_token_signed_with_another_key_is_401(client, app_factory, staff):
    other = app_factory(JWT_SECRET_KEY="another-key-entirely-" + "x" * 20)
    with other.app_context():
        token = create_access_token(identity=str(staff.id))
    assert client.get("/api/v1/auth/me", headers=bearer(token)).status_code == 401


@pytest.mark.parametrize("header", ["", "Bearer", "Bearer ", "Basic abc", "Bearer a.b.c"])
def test_missing_or_malformed_authorization_is_401(client, header):
    response = client.get("/api/v1/auth/me", headers={"Authorization": header} if header else {})
    assert response.status_code == 401
    assert response.headers.get("WWW-Authenticate") == "Bearer"
    _error(response)


def test_refresh_rotates_and_reuse_revokes_the_whole_chain(client, staff):
    first = login(client, staff)
    second = client.post("/api/v1/auth/refresh", headers=bearer(first["refresh_token"]))
    assert second.status_code == 200
    second = second.get_json()
    assert second["refresh_token"] != first["refresh_token"]
    assert client.get("/api/v1/auth/me", headers=bearer(second["access_token"])).status_code == 200

    reused = client.post("/api/v1/auth/refresh", headers=bearer(first["refresh_token"]))
    assert reused.status_code == 401
    assert _error(reused)["code"] == "refresh_token_reused"
    # Every token of the chain is dead now, including the ones the thief (or the user) got from the rotation.
    assert client.get("/api/v1/auth/me", headers=bearer(second["access_token"])).status_code == 401
    assert client.post("/api/v1/auth/refresh", headers=bearer(second["refresh_token"])).status_code == 401
    # A new sign-in starts a new, working chain.
    assert client.get("/api/v1/auth/me", headers=bearer(login(client, staff)["access_token"])).status_code == 200


def test_refresh_refuses_an_access_token_and_endpoints_refuse_a_refresh_token(client, staff):
    pair = login(client, staff)
    assert client.post("/api/v1/auth/refresh", headers=bearer(pair["access_token"])).status_code == 401
    assert client.get("/api/v1/auth/me", headers=bearer(pair["refresh_token"])).status_code == 401


def test_logout_revokes_the_access_token_and_its_refresh_chain(client, staff):
    pair = login(client, staff)
    other_device = login(client, staff)
    assert client.post("/api/v1/auth/logout", headers=bearer(pair["access_token"])).status_code == 204
    response = client.get("/api/v1/auth/me", headers=bearer(pair["access_token"]))
    assert response.status_code == 401 and _error(response)["code"] == "token_revoked"
    assert client.post("/api/v1/auth/refresh", headers=bearer(pair["refresh_token"])).status_code == 401
    # Another sign-in of the same user is another chain, untouched.
    assert client.get("/api/v1/auth/me", headers=bearer(other_device["access_token"])).status_code == 200


def test_revocations_outlive_an_app_restart(app_factory, staff):
    settings = {"JWT_SECRET_KEY": "k" * 48, "SECRET_KEY": "s" * 48}
    client = app_factory(**settings).test_client()
    pair = login(client, staff)
    assert client.post("/api/v1/auth/logout", headers=bearer(pair["access_token"])).status_code == 204

    restarted = app_factory(**settings).test_client()
    assert restarted.get("/api/v1/auth/me", headers=bearer(pair["access_token"])).status_code == 401
    assert restarted.post("/api/v1/auth/refresh", headers=bearer(pair["refresh_token"])).status_code == 401


def test_role_change_applies_at_once(client, people):
    staff = people["users"]["staff"]
    token = people["tokens"]["staff"]
    assert client.get("/api/v1/users", headers=bearer(token)).status_code == 403
    staff.role, staff.clinic_id = "admin", None
    db.session.commit()
    assert client.get("/api/v1/users", headers=bearer(token)).status_code == 200


def test_register_creates_an_active_pharmacist_only(client):
    body = {"name": "Akosua Boateng", "email": "Akosua@Example.org", "phone": "+233 24 123 4599",
            "password": "mixing-kenkey-2026", "pharmacy_name": "Osu Pharmacy", "language": "en"}  # fmt: skip
    response = client.post("/api/v1/auth/register", json=body)
    assert response.status_code == 201, response.get_json()
    user = response.get_json()
    assert (user["role"], user["active"], user["email"], user["phone"]) == (
        "pharmacist",
        True,
        "akosua@example.org",
        "+233241234599",
    )
    assert (
        client.post("/api/v1/auth/login", json={"email": body["email"], "password": body["password"]}).status_code
        == 200
    )

    again = client.post("/api/v1/auth/register", json=body)
    assert again.status_code == 409
    escalate = client.post("/api/v1/auth/register", json={**body, "email": "b@example.org", "role": "admin"})
    assert escalate.status_code == 422 and "role" in _error(escalate)["details"]["json"]


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("password", "short", "between 10"),
        ("password", "password123", "too common"),
        ("password", "qwertyuiop", "too common"),
        ("phone", "0712345678", "international form"),
        ("phone", "+2671", "phone number"),
        ("email", "not-an-email", "email"),
        ("pharmacy_name", "   ", "length"),
    ],
)
def test_register_rejects_bad_fields_by_name(client, field, value, fragment):
    body = {"name": "Kofi", "email": "kofi@example.org", "phone": "+233241234598", "password": "a-good-long-one-77",
            "pharmacy_name": "Kofi Chemists", field: value}  # fmt: skip
    response = client.post("/api/v1/auth/register", json=body)
    assert response.status_code == 422
    messages = " ".join(_error(response)["details"]["json"][field])
    assert fragment.lower() in messages.lower()
    assert db.session.query(User).count() == 0


# --- the per-account login back-off: a stranger with many addresses ----------------------------------------------

LOGIN = "/api/v1/auth/login"


def _login_from(client, address: str, email: str, password: str):
    return client.post(LOGIN, json={"email": email, "password": password}, environ_base={"REMOTE_ADDR": address})


def _fail_from_many_addresses(client, email: str, times: int = 10) -> list[int]:
    """``LOGIN_BACKOFF_AFTER`` (10) failed logins on ``email``, each from an address of its own."""
    return [_login_from(client, f"203.0.113.{n}", email, "wrong-password-1").status_code for n in range(times)]


def _end_the_wait(redis_conn) -> None:
    """What the passing of the wait would do (tests never wait on the clock)."""
    for key in redis_conn.scan_iter("thusa:login:wait:*"):
        redis_conn.delete(key)


def test_failures_from_many_addresses_make_the_account_wait_even_for_the_right_password(client, staff, redis_conn):
    assert _fail_from_many_addresses(client, staff.email) == [401] * 10

    response = _login_from(client, "198.51.100.7", staff.email, PASSWORD)

    assert response.status_code == 429
    error = _error(response)
    assert error["code"] == "login_backoff"
    assert 0 < error["details"]["retry_after"] <= 900 and error["details"]["retry_at"]
    # The limiter raises Retry-After to its own window's end when that is later.
    assert int(response.headers["Retry-After"]) >= error["details"]["retry_after"]
    # Once the wait is over, the right password works, and the failures are forgotten.
    _end_the_wait(redis_conn)
    assert _login_from(client, "198.51.100.7", staff.email, PASSWORD).status_code == 200
    assert _fail_from_many_addresses(client, staff.email, 9) == [401] * 9


def test_an_unknown_email_gets_the_same_back_off_as_a_real_account(client, staff):
    real = _fail_from_many_addresses(client, staff.email) + [
        _login_from(client, "198.51.100.7", staff.email, "wrong-password-1").status_code
    ]
    unknown = _fail_from_many_addresses(client, "nobody@example.org") + [
        _login_from(client, "198.51.100.7", "nobody@example.org", "wrong-password-1").status_code
    ]
    assert real == unknown == [401] * 10 + [429]


def test_the_wait_doubles_up_to_its_cap_and_tries_during_it_do_not_count(client, staff, redis_conn):
    _fail_from_many_addresses(client, staff.email)
    (failures,) = redis_conn.scan_iter("thusa:login:failures:*")
    (wait,) = redis_conn.scan_iter("thusa:login:wait:*")
    assert 0 < redis_conn.ttl(wait) <= 2  # the 10th failure in a row: 2 seconds

    for _ in range(3):  # hammering during the wait: refused unchecked, not counted, the wait not lengthened
        assert _login_from(client, "203.0.113.99", staff.email, "wrong-password-1").status_code == 429
    assert int(redis_conn.get(failures)) == 10

    redis_conn.set(failures, 40)  # a long attack: the next failure would wait 2**36 s without the cap
    _end_the_wait(redis_conn)
    assert _login_from(client, "203.0.113.99", staff.email, "wrong-password-1").status_code == 401
    (wait,) = redis_conn.scan_iter("thusa:login:wait:*")
    assert 2**9 < redis_conn.ttl(wait) <= 900


def test_an_address_the_account_signed_in_from_is_not_locked_out(client, staff):
    home = "192.0.2.10"
    assert _login_from(client, home, staff.email, PASSWORD).status_code == 200
    _fail_from_many_addresses(client, staff.email)

    assert _login_from(client, "198.51.100.7", staff.email, PASSWORD).status_code == 429
    assert _login_from(client, home, staff.email, PASSWORD).status_code == 200


def test_behind_a_proxy_the_back_off_follows_the_account_across_forwarded_addresses(app_factory, staff):
    client = app_factory(TRUST_PROXY_HOPS=1).test_client()
    for n in range(10):
        response = client.post(LOGIN, json={"email": staff.email, "password": "wrong-password-1"},
                               headers={"X-Forwarded-For": f"203.0.113.{n}"})  # fmt: skip
        assert response.status_code == 401
    response = client.post(LOGIN, json={"email": staff.email, "password": PASSWORD},
                           headers={"X-Forwarded-For": "198.51.100.7"})  # fmt: skip
    assert response.status_code == 429 and _error(response)["code"] == "login_backoff"


# --- revocations live in the database: a Redis wipe brings no token back -----------------------------------------


def test_a_signed_out_token_stays_dead_after_redis_is_wiped(client, staff, redis_conn):
    pair = login(client, staff)
    assert client.post("/api/v1/auth/logout", headers=bearer(pair["access_token"])).status_code == 204

    redis_conn.flushdb()

    response = client.get("/api/v1/auth/me", headers=bearer(pair["access_token"]))
    assert response.status_code == 401 and _error(response)["code"] == "token_revoked"
    assert client.post("/api/v1/auth/refresh", headers=bearer(pair["refresh_token"])).status_code == 401


def test_refresh_reuse_is_caught_after_redis_is_wiped(client, staff, redis_conn):
    first = login(client, staff)
    second = client.post("/api/v1/auth/refresh", headers=bearer(first["refresh_token"])).get_json()

    redis_conn.flushdb()

    reused = client.post("/api/v1/auth/refresh", headers=bearer(first["refresh_token"]))
    assert reused.status_code == 401 and _error(reused)["code"] == "refresh_token_reused"
    assert client.get("/api/v1/auth/me", headers=bearer(second["access_token"])).status_code == 401


def test_a_token_of_another_account_s_family_is_refused(client, staff, people):
    # A family id is not a bearer credential of its own: it must belong to the token's account.
    mine = login(client, staff)
    theirs = login(client, people["users"]["admin"])
    claims = json.loads(base64.urlsafe_b64decode(theirs["access_token"].split(".")[1] + "=="))
    with client.application.app_context():
        forged = create_access_token(identity=str(staff.id), additional_claims={"fam": claims["fam"], "gen": 0})
    assert client.get("/api/v1/auth/me", headers=bearer(forged)).status_code == 401
    assert client.get("/api/v1/auth/me", headers=bearer(mine["access_token"])).status_code == 200


# --- register: the 409 stays, limited per address -----------------------------------------------------------------


def test_registrations_that_tell_whether_an_email_is_taken_are_limited_per_address(app_factory):
    client = app_factory(RATELIMIT_REGISTER="2 per hour").test_client()
    body = {"name": "Akosua Boateng", "email": "akosua@example.org", "phone": "+233241234599",
            "password": "mixing-kenkey-2026", "pharmacy_name": "Osu Pharmacy", "language": "en"}  # fmt: skip

    mistakes = [client.post("/api/v1/auth/register", json={**body, "password": "short"}).status_code
                for _ in range(3)]  # fmt: skip
    created = client.post("/api/v1/auth/register", json=body).status_code
    taken = client.post("/api/v1/auth/register", json=body).status_code
    probe = client.post("/api/v1/auth/register", json={**body, "email": "someone@example.org"})

    assert mistakes == [422] * 3  # correcting a rejected form costs nothing
    assert (created, taken) == (201, 409)
    assert probe.status_code == 429 and _error(probe)["code"] == "rate_limited"
    elsewhere = client.post("/api/v1/auth/register", json={**body, "email": "kofi@example.org",
                                                           "phone": "+233241234598"},
                            environ_base={"REMOTE_ADDR": "198.51.100.7"})  # fmt: skip
    assert elsewhere.status_code == 201
