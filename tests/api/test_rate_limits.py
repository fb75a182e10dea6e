"""Rate limits: per user, per address when anonymous, tighter on sign-in; 429 JSON with Retry-After."""

from __future__ import annotations

from tests.conftest import PASSWORD, bearer


def test_login_allows_ten_a_minute_per_address_then_429(client, people, redis_conn):
    email = people["users"]["staff"].email
    redis_conn.flushdb()  # forget the sign-ins the fixture made
    # Ten different emails: the per-account back-off (tests/api/test_auth.py) stays out of this.
    statuses = [
        client.post(
            "/api/v1/auth/login", json={"email": f"guess{n}@example.org", "password": "wrong-password-1"}
        ).status_code
        for n in range(10)
    ]
    assert statuses == [401] * 10
    response = client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) > 0
    assert response.get_json()["error"]["code"] == "rate_limited"
    # Another address is not affected.
    other = client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD},
                        environ_base={"REMOTE_ADDR": "10.9.9.9"})  # fmt: skip
    assert other.status_code == 200


def test_default_limit_is_per_user_not_per_address(app_factory, people):
    client = app_factory(RATELIMIT_DEFAULT="3 per minute").test_client()
    admin, staff = bearer(people["tokens"]["admin"]), bearer(people["tokens"]["staff"])
    assert [client.get("/api/v1/clinics", headers=admin).status_code for _ in range(3)] == [200] * 3
    assert client.get("/api/v1/clinics", headers=admin).status_code == 429
    # Same address, another user: their own budget.
    assert client.get("/api/v1/clinics", headers=staff).status_code == 200


def test_limiter_falls_back_to_memory_when_redis_is_down(app_factory, people):
    client = app_factory(REDIS_URL="redis://127.0.0.1:1/0", RATELIMIT_AUTH="2 per minute").test_client()
    email = people["users"]["staff"].email
    statuses = [
        client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD}).status_code for _ in range(3)
    ]
    assert statuses == [200, 200, 429]  # still limited, never a 500
