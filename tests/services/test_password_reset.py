"""Password reset by SMS code, end to end through the REST API, the outbox and the database.

``POST /api/v1/auth/password-reset`` writes one outbound SMS row with a 6-digit code in the account's language
(stored masked: the real text waits in Redis for the sender); ``POST /api/v1/auth/password-reset/confirm`` spends
the code, sets the password and cuts off every earlier token. The auth endpoints allow 10 requests a minute per
address and endpoint; every test here stays below that, unless it is about that limit.
"""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update

import app.services.users
import bots.sending
from app.extensions import db
from app.i18n import t
from app.messaging import outbox
from app.messaging.envelopes import OutboundMessage, SendResult
from app.models import AuditLog, Contact, Message, MessageEvent, PasswordResetCode, utcnow
from app.models.message_log import DIRECTION_OUT, STATUS_FAILED, STATUS_QUEUED, STATUS_SENT
from bots.channels.base import REGISTRY, Channel, register
from bots.sending import send_message
from tests.conftest import PASSWORD, bearer, login, make_user

RESET = "/api/v1/auth/password-reset"
CONFIRM = "/api/v1/auth/password-reset/confirm"
LOGIN = "/api/v1/auth/login"
PHONE = "+26771234567"
NEW_PASSWORD = "lesedi-la-pula-2025"
ACCEPTED = {"message": "If an active account with a phone number has this email, a code is on its way by SMS."}
CODE = re.compile(r"(?<!\d)(\d{6})(?!\d)")


def _sms_rows() -> list[Message]:
    db.session.expire_all()
    return list(
        db.session.scalars(select(Message).where(Message.direction == DIRECTION_OUT).order_by(Message.created_at))
    )


def _code_in(message: Message) -> str:
    """The code in the text the provider gets (the stored text shows it masked)."""
    assert CODE.findall(message.text) == [], "the stored SMS shows the code"
    codes = CODE.findall(outbox.text_to_send(message))
    assert len(codes) == 1
    return codes[0]


def _request_code(client, email: str) -> str:
    """Ask for a code and return the one the newest SMS carries."""
    before = {row.id for row in _sms_rows()}
    response = client.post(RESET, json={"email": email})
    assert response.status_code == 202, response.get_json()
    new = [row for row in _sms_rows() if row.id not in before]
    assert len(new) == 1
    return _code_in(new[0])


def _confirm(client, email: str, code: str, password: str = NEW_PASSWORD):
    return client.post(CONFIRM, json={"email": email, "code": code, "password": password})


def _wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


def _login_status(client, email: str, password: str) -> int:
    return client.post(LOGIN, json={"email": email, "password": password}).status_code


# --- asking for a code ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("language", ["tn", "en"])
def test_a_reset_request_queues_one_sms_with_a_code_in_the_users_language(client, language):
    user = make_user("admin", phone=PHONE, language=language)

    response = client.post(RESET, json={"email": user.email})

    assert response.status_code == 202
    assert response.get_json() == ACCEPTED
    rows = _sms_rows()
    assert len(rows) == 1
    sms = rows[0]
    assert (sms.channel, sms.address, sms.status, sms.language, sms.user_id) == (
        "sms", PHONE, STATUS_QUEUED, language, user.id,
    )  # fmt: skip
    code = _code_in(sms)
    assert sms.text == t("password_reset_code", language, code="******", minutes=15)
    assert outbox.text_to_send(sms) == t("password_reset_code", language, code=code, minutes=15)
    if language == "tn":
        assert "nomoro ya go fetola password" in sms.text
    else:
        assert "your password reset code" in sms.text


def test_the_email_is_matched_without_case_or_surrounding_spaces(client):
    user = make_user("admin", email="mpho@example.org", phone=PHONE)

    assert client.post(RESET, json={"email": "  Mpho@Example.ORG "}).status_code == 202

    rows = _sms_rows()
    assert len(rows) == 1 and rows[0].user_id == user.id


@pytest.mark.parametrize("case", ["unknown", "no_phone", "inactive"])
def test_the_answer_is_the_same_and_nothing_is_sent_without_an_active_account_with_a_phone(client, case):
    if case == "no_phone":
        email = make_user("admin").email
    elif case == "inactive":
        email = make_user("admin", phone=PHONE, active=False).email
    else:
        email = "nobody@example.org"

    response = client.post(RESET, json={"email": email})

    assert response.status_code == 202
    assert response.get_json() == ACCEPTED
    assert _sms_rows() == []
    assert db.session.scalars(select(PasswordResetCode)).all() == []


def test_reset_requests_are_rate_limited_per_address(client):
    user = make_user("admin", phone=PHONE)
    statuses = [client.post(RESET, json={"email": user.email}).status_code for _ in range(11)]

    assert statuses == [202] * 10 + [429]
    assert len(_sms_rows()) == 3  # PASSWORD_RESET_CODES_PER_HOUR


# --- confirming ---------------------------------------------------------------------------------------------------------


def test_the_code_sets_the_new_password(client):
    user = make_user("admin", phone=PHONE)
    code = _request_code(client, user.email)

    response = _confirm(client, user.email, code)

    assert response.status_code == 204
    assert response.data == b""
    assert _login_status(client, user.email, NEW_PASSWORD) == 200
    assert _login_status(client, user.email, PASSWORD) == 401


def test_a_code_works_once(client):
    user = make_user("admin", phone=PHONE)
    code = _request_code(client, user.email)
    assert _confirm(client, user.email, code).status_code == 204

    response = _confirm(client, user.email, code, "another-long-passphrase-9")

    assert response.status_code == 422
    assert response.get_json()["error"]["code"] == "invalid_reset_code"
    assert _login_status(client, user.email, NEW_PASSWORD) == 200


def test_a_code_is_bound_to_its_account(client):
    owner = make_user("admin", phone=PHONE)
    other = make_user("admin", phone="+26772345678")
    code = _request_code(client, owner.email)

    assert _confirm(client, other.email, code).status_code == 422
    assert _login_status(client, other.email, PASSWORD) == 200


def test_tokens_issued_before_the_reset_are_refused_afterwards(client):
    user = make_user("admin", phone=PHONE)
    old = login(client, user)
    assert client.get("/api/v1/auth/me", headers=bearer(old["access_token"])).status_code == 200

    assert _confirm(client, user.email, _request_code(client, user.email)).status_code == 204

    assert client.get("/api/v1/auth/me", headers=bearer(old["access_token"])).status_code == 401
    assert client.post("/api/v1/auth/refresh", headers=bearer(old["refresh_token"])).status_code == 401
    fresh = login(client, user, NEW_PASSWORD)
    assert client.get("/api/v1/auth/me", headers=bearer(fresh["access_token"])).status_code == 200
    assert client.post("/api/v1/auth/refresh", headers=bearer(fresh["refresh_token"])).status_code == 200


def test_a_token_issued_earlier_in_the_same_second_as_the_reset_is_refused(client, monkeypatch):
    # JWT's iat has whole seconds; a reset a moment after a login, within the same second, must still cut it off.
    user = make_user("admin", phone=PHONE)
    code = _request_code(client, user.email)
    for _ in range(5):
        before = time.time()
        old = login(client, user)
        reset_at = time.time() + 0.001  # just after the token was issued
        if int(before) == int(reset_at):  # the token and the reset share one whole second
            break
    else:
        pytest.fail("five logins in a row straddled a second boundary")
    monkeypatch.setattr(app.services.users, "utcnow", lambda: datetime.fromtimestamp(reset_at, UTC))

    assert _confirm(client, user.email, code).status_code == 204

    assert client.get("/api/v1/auth/me", headers=bearer(old["access_token"])).status_code == 401
    assert client.post("/api/v1/auth/refresh", headers=bearer(old["refresh_token"])).status_code == 401


def test_five_wrong_codes_spend_the_code(client):
    user = make_user("admin", phone=PHONE)
    code = _request_code(client, user.email)

    for _ in range(5):
        response = _confirm(client, user.email, _wrong(code))
        assert response.status_code == 422
        assert response.get_json()["error"]["code"] == "invalid_reset_code"

    assert _confirm(client, user.email, code).status_code == 422
    assert _login_status(client, user.email, PASSWORD) == 200
    assert _login_status(client, user.email, NEW_PASSWORD) == 401


def test_four_wrong_codes_leave_the_right_one_usable(client):
    user = make_user("admin", phone=PHONE)
    code = _request_code(client, user.email)

    for _ in range(4):
        assert _confirm(client, user.email, _wrong(code)).status_code == 422

    assert _confirm(client, user.email, code).status_code == 204


def test_an_expired_code_fails(client):
    user = make_user("admin", phone=PHONE)
    code = _request_code(client, user.email)
    db.session.execute(
        update(PasswordResetCode)
        .where(PasswordResetCode.user_id == user.id)
        .values(expires_at=utcnow() - timedelta(seconds=1))
    )
    db.session.commit()

    response = _confirm(client, user.email, code)

    assert response.status_code == 422
    assert response.get_json()["error"]["code"] == "invalid_reset_code"
    assert _login_status(client, user.email, PASSWORD) == 200


def test_a_new_request_invalidates_the_earlier_code(client):
    user = make_user("admin", phone=PHONE)
    first = _request_code(client, user.email)
    second = _request_code(client, user.email)
    while second == first:  # one chance in a million; a third request invalidates the second just the same
        second = _request_code(client, user.email)

    assert _confirm(client, user.email, first).status_code == 422
    assert _confirm(client, user.email, second).status_code == 204
    assert len(_sms_rows()) >= 2


@pytest.mark.parametrize("weak", ["qwertyuiop", "short", "SAME-AS-EMAIL"])
def test_a_weak_new_password_is_refused_and_the_code_stays_usable(client, weak):
    user = make_user("admin", phone=PHONE)
    code = _request_code(client, user.email)
    weak = user.email if weak == "SAME-AS-EMAIL" else weak

    response = _confirm(client, user.email, code, weak)

    assert response.status_code == 422
    assert "password" in response.get_json()["error"]["details"]["json"]
    assert _login_status(client, user.email, PASSWORD) == 200
    assert _confirm(client, user.email, code).status_code == 204
    assert _login_status(client, user.email, NEW_PASSWORD) == 200


@pytest.mark.parametrize(
    "code", ["12345", "1234567", "abcdef", "12 456", ""], ids=["five", "seven", "letters", "space", "empty"]
)
def test_a_malformed_code_is_refused_before_it_costs_a_try(client, code):
    user = make_user("admin", phone=PHONE)
    real = _request_code(client, user.email)

    assert _confirm(client, user.email, code).status_code == 422
    reset = db.session.scalars(select(PasswordResetCode)).one()
    assert reset.attempts == 0
    assert _confirm(client, user.email, real).status_code == 204


# --- a stranger asking: no oracle, a bounded number of SMS, no code kept in clear ----------------------------------


def _ask(client, email: str, address: str):
    """A reset request from ``address`` (a stranger with many addresses gets past the per-address limit)."""
    return client.post(RESET, json={"email": email}, environ_base={"REMOTE_ADDR": address})


def _answer(response) -> tuple[int, str, bytes]:
    return response.status_code, response.content_type, response.get_data()


def test_25_requests_for_one_account_get_25_identical_answers_and_at_most_3_codes(client):
    user = make_user("admin", phone=PHONE)

    answers = [_answer(_ask(client, user.email, f"198.51.100.{n}")) for n in range(25)]
    unknown = _answer(_ask(client, "nobody@example.org", "198.51.100.200"))

    assert set(answers) == {unknown}
    assert unknown[0] == 202 and json.loads(unknown[2]) == ACCEPTED
    assert len(_sms_rows()) == 3
    assert db.session.scalar(select(func.count()).select_from(PasswordResetCode)) == 3


def test_an_opted_out_phone_gets_the_same_answer_and_nothing_is_sent(client):
    user = make_user("admin", phone=PHONE)
    db.session.add(Contact(address=PHONE, opted_out_at=utcnow()))
    db.session.commit()

    response = _ask(client, user.email, "198.51.100.1")

    assert _answer(response) == _answer(_ask(client, "nobody@example.org", "198.51.100.2"))
    assert _sms_rows() == []
    assert db.session.scalars(select(PasswordResetCode)).all() == []  # no code that no SMS carries


def test_over_the_unauthenticated_sms_budget_the_answer_is_the_same_and_nothing_is_sent(app_factory):
    budgeted = app_factory(SMS_BUDGET_UNAUTHENTICATED_HOUR=2)
    with budgeted.app_context():
        client = budgeted.test_client()
        users = [make_user("pharmacist", phone=f"+2677123450{n}") for n in range(3)]

        answers = [_answer(_ask(client, user.email, f"198.51.100.{n}")) for n, user in enumerate(users)]

        assert len(set(answers)) == 1 and answers[0][0] == 202
        assert sorted(row.address for row in _sms_rows()) == ["+26771234500", "+26771234501"]
        db.session.remove()


class RecordingChannel(Channel):
    """A provider that accepts everything and remembers what it was given."""

    name = "test-recording"
    sent: list[OutboundMessage] = []

    def send(self, message: OutboundMessage) -> SendResult:
        type(self).sent.append(message)
        return SendResult(provider=self.name, provider_id=f"rec-{message.id}")


@pytest.fixture
def recording_channel(monkeypatch):
    register(RecordingChannel)
    RecordingChannel.sent = []
    monkeypatch.setattr(bots.sending, "senders_for", lambda channel, config: [REGISTRY[RecordingChannel.name](config)])
    yield RecordingChannel
    REGISTRY.pop(RecordingChannel.name, None)


def _stored_texts() -> list[str]:
    """Every text the database keeps: messages, their events, the audit log."""
    db.session.expire_all()
    texts = [text for text in db.session.scalars(select(Message.text)) if text]
    texts += [detail for detail in db.session.scalars(select(MessageEvent.detail)) if detail]
    texts += [json.dumps(row.details) for row in db.session.scalars(select(AuditLog))]
    return texts


def test_no_reset_code_is_stored_in_clear_while_the_provider_gets_it(client, recording_channel):
    user = make_user("admin", phone=PHONE)
    assert client.post(RESET, json={"email": user.email}).status_code == 202
    sms = _sms_rows()[0]

    assert send_message(str(sms.id)) == STATUS_SENT

    (delivered,) = recording_channel.sent
    (code,) = CODE.findall(delivered.text)
    assert delivered.text == t("password_reset_code", "en", code=code, minutes=15)
    assert not [text for text in _stored_texts() if code in text]
    assert _row_text(sms.id) == t("password_reset_code", "en", code="******", minutes=15)
    assert outbox.text_to_send(sms) is None  # sent: the real text is gone from Redis too
    assert _confirm(client, user.email, code).status_code == 204


def test_a_reset_sms_whose_code_redis_lost_fails_and_sends_nothing(client, recording_channel, redis_conn):
    user = make_user("admin", phone=PHONE)
    assert client.post(RESET, json={"email": user.email}).status_code == 202
    sms = _sms_rows()[0]
    redis_conn.flushdb()  # Redis restarted without persistence before the worker got to it

    assert send_message(str(sms.id)) == STATUS_FAILED

    assert recording_channel.sent == []  # never the masked text
    db.session.expire_all()
    assert db.session.get(Message, sms.id).error_code == "secret_expired"


def _row_text(message_id) -> str:
    db.session.expire_all()
    return db.session.get(Message, message_id).text
