"""Liveness and readiness."""

from tests.conftest import TEST_REDIS_URL


def test_healthz_answers_without_auth(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_readyz_checks_database_and_redis(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json()["checks"] == {"database": "ok", "redis": "ok"}


def test_readyz_is_503_naming_redis_when_redis_is_down(app_factory):
    app = app_factory(REDIS_URL="redis://127.0.0.1:1/0")
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["redis"].startswith("unavailable")


def test_readyz_is_503_naming_the_database_when_it_is_down(app_factory):
    app = app_factory(DATABASE_URL="postgresql+psycopg://nobody@127.0.0.1:1/none", REDIS_URL=TEST_REDIS_URL)
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["checks"]["database"].startswith("unavailable")


def test_health_endpoints_are_never_rate_limited(app_factory):
    client = app_factory(RATELIMIT_DEFAULT="2 per minute").test_client()
    assert all(client.get("/healthz").status_code == 200 for _ in range(5))
    assert all(client.get("/readyz").status_code == 200 for _ in range(5))
