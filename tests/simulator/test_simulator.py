"""The simulator's endpoints on the Flask client, with the real webhooks answering over HTTP.

The app is also served by a real HTTP server on a free loopback port (``HOST``/``PORT``), because the simulator
posts each signed payload to the server's own webhook URL. The worker runs in burst mode in this process, so each
test walks the whole road: simulator → signed webhook → store → engine → outbox → console sender → message log.
"""

from __future__ import annotations

import io
import os
import re
import socket
import threading
import uuid
from contextlib import closing
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, text
from werkzeug.serving import make_server

from app import create_app
from app.config import SIMULATOR_SECRETS, ConfigError, load_config
from app.extensions import db, redis_client
from app.models import (
    Analysis,
    Appointment,
    ChatLinkCode,
    Clinic,
    Consultation,
    ConsultationImage,
    Contact,
    Message,
    Patient,
    Recommendation,
    StockItem,
    StockMovement,
    User,
    utcnow,
)
from app.models.appointment import STATUS_CANCELLED, STATUS_SCHEDULED
from app.models.clinic import DEFAULT_SEND_WINDOW
from app.services import stock
from app.services.appointments import set_attendance
from app.services.clinic_calendar import plan_reminders
from app.services.demo import seed_demo
from app.services.passwords import verify_pin
from bots.channels import senders_for
from bots.channels.twilio import TwilioChannel
from bots.flows.ussd_staff import StaffSession
from bots.simulator import demo, signing
from tests.conftest import bearer, login, make_clinic, make_user
from tests.photos import encode, sample_photo
from workers.runner import run_worker

SECRETS = {
    "TWILIO_AUTH_TOKEN": "simulator-twilio-token",
    "AT_WEBHOOK_TOKEN": "simulator-at-token",
    "TELEGRAM_WEBHOOK_SECRET": "simulator-telegram-secret",
    "WHATSAPP_APP_SECRET": "simulator-whatsapp-secret",
}
HEADERS = {"X-Simulator": "1"}
PATIENT = "+26772000002"  # Lesego Tau, English, visit in 3 days
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 64  # the simulator stores bytes; it does not decode them


def _free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def port() -> int:
    """One loopback port for the module's tests in this process, so that they share one app (its settings name
    the port): each test serves it there anew."""
    return _free_port()


@pytest.fixture
def served(shared_app, port, keep_signal_handlers):
    """The simulator on, demo data seeded, and the same app answering HTTP on a loopback port."""
    application = shared_app(SIMULATOR_ENABLED=True, HOST="127.0.0.1", PORT=port, **SECRETS)
    with application.app_context():
        seed_demo()
        db.session.remove()
    server = make_server("127.0.0.1", port, application, threaded=True)
    # A short poll interval: shutdown() waits for the loop's next poll (half a second by default).
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield application
    server.shutdown()
    server.server_close()  # the port is free for the next test's server at once
    thread.join(5)
    with application.app_context():
        db.session.remove()


@pytest.fixture
def sim(served):
    return served.test_client()


def work(application) -> None:
    run_worker(application, burst=True, with_scheduler=False)


def read(sim, address: str) -> list[dict]:
    response = sim.get("/simulator/api/messages", query_string={"address": address})
    assert response.status_code == 200, response.get_json()
    return response.get_json()[address]


def gaborone(sim) -> str:
    return sim.get("/simulator/api/state").get_json()["clinics"][0]["id"]


# --- on and off ---------------------------------------------------------------------------------------------------


def test_off_in_test_mode_unless_enabled(app_factory):
    client = app_factory().test_client()
    for path in ("/simulator", "/simulator/api/state", "/simulator/static/simulator.js"):
        assert client.get(path).status_code == 404
    assert client.post("/simulator/api/sms", json={}, headers=HEADERS).status_code == 404


def test_off_in_production_and_refused_there(app_factory):
    production = {"THUSA_ENV": "production", "SECRET_KEY": "p" * 40, "JWT_SECRET_KEY": "q" * 40}
    assert app_factory(**production).test_client().get("/simulator").status_code == 404
    # It would sign forged webhooks with the real secrets: the app does not start (tests/test_config.py).
    with pytest.raises(ConfigError, match="SIMULATOR_ENABLED"):
        app_factory(**production, SIMULATOR_ENABLED="true")


def test_without_generated_secrets_outside_development_it_names_the_settings_it_needs(app_factory, monkeypatch):
    monkeypatch.delenv("TWILIO_AUTH_TOKEN", raising=False)
    client = app_factory(SIMULATOR_ENABLED="true").test_client()  # test mode: nothing is generated
    assert client.get("/simulator").status_code == 200
    response = client.post("/simulator/api/sms", json={"phone": PATIENT, "text": "1"}, headers=HEADERS)
    assert response.status_code == 409
    assert response.get_json()["error"]["details"]["settings"] == ["TWILIO_AUTH_TOKEN"]


def test_development_turns_it_on_and_keeps_generated_secrets_that_configure_no_sender(tmp_path, monkeypatch):
    for name in (*SIMULATOR_SECRETS, "SIMULATOR_ENABLED", "TWILIO_ACCOUNT_SID", "TWILIO_FROM"):
        monkeypatch.delenv(name, raising=False)
    overrides = {"THUSA_ENV": "development", "INSTANCE_PATH": str(tmp_path)}
    first, second = load_config(overrides), load_config(overrides)
    assert first["SIMULATOR_ENABLED"] is True
    for name in SIMULATOR_SECRETS:
        assert first[name] and first[name] == second[name], name
        assert (tmp_path / f".{name.lower()}").stat().st_mode & 0o077 == 0
    # A generated auth token alone does not make Twilio a sender: outbound stays on the console.
    assert not TwilioChannel.is_configured(first)
    assert [sender.name for sender in senders_for("sms", first)] == ["console"]
    assert [sender.name for sender in senders_for("whatsapp", first)] == ["console"]
    assert [sender.name for sender in senders_for("telegram", first)] == ["console"]


def test_development_never_invents_a_token_for_a_real_twilio_account(tmp_path, monkeypatch):
    monkeypatch.delenv("TWILIO_AUTH_TOKEN", raising=False)
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", "AC" + "1" * 32)
    config = load_config({"THUSA_ENV": "development", "INSTANCE_PATH": str(tmp_path)})
    assert config["TWILIO_AUTH_TOKEN"] == ""
    assert not (tmp_path / ".twilio_auth_token").exists()


def test_simulator_enabled_false_turns_it_off_in_development(tmp_path, monkeypatch):
    monkeypatch.setenv("SIMULATOR_ENABLED", "false")
    config = load_config({"THUSA_ENV": "development", "INSTANCE_PATH": str(tmp_path)})
    assert config["SIMULATOR_ENABLED"] is False
    assert not (tmp_path / ".at_webhook_token").exists()


# --- the signing is the providers' own: the real webhooks accept it, and refuse a wrong secret ----------------


def _post(client, signed: signing.SignedRequest):
    return client.post(signed.path, data=signed.body, headers=signed.headers)


def test_the_real_webhooks_accept_the_simulators_signed_requests_and_refuse_other_secrets(served):
    client = served.test_client()
    config = dict(served.config)
    builders = {
        "twilio": lambda c: signing.twilio_sms(c, phone=PATIENT, text="hello"),
        "telegram": lambda c: signing.telegram_update(c, chat_id=demo.TELEGRAM_CHAT_ID, name="Kwame", text="hi"),
        "whatsapp": lambda c: signing.whatsapp_message(c, phone="+233241000002", name="Kwame", text="hi"),
        "ussd": lambda c: signing.africastalking_ussd(c, phone=PATIENT, session_id="ATUid_x1", history=""),
    }
    # The Flask client's requests show http://localhost/ as their URL: Twilio signs PUBLIC_BASE_URL + path.
    config["PUBLIC_BASE_URL"] = "http://localhost"
    for name, build in builders.items():
        response = _post(client, build(config))
        assert response.status_code == 200, (name, response.get_data(as_text=True))
    forged = {**config, **{key: value + "-forged" for key, value in SECRETS.items()}}
    expected = {"twilio": 403, "telegram": 403, "whatsapp": 403, "ussd": 404}
    for name, build in builders.items():
        assert _post(client, build(forged)).status_code == expected[name], name
    with served.app_context():
        assert db.session.scalar(select(func.count()).select_from(Message).where(Message.direction == "in")) == 4


# --- the SMS phone -------------------------------------------------------------------------------------------------


def test_a_reminder_goes_out_and_the_patients_reply_is_answered(served, sim):
    response = sim.post("/simulator/api/reminders", json={"clinic_id": gaborone(sim), "phone": PATIENT},
                        headers=HEADERS)  # fmt: skip
    assert response.status_code == 200
    assert response.get_json()["result"] == "queued"
    assert read(sim, PATIENT) == []  # queued, not yet sent by the worker: the phone has received nothing
    work(served)
    (reminder,) = read(sim, PATIENT)
    assert reminder["direction"] == "out" and reminder["provider"] == "console"
    assert "Reply 1 to confirm" in reminder["text"]

    response = sim.post("/simulator/api/sms", json={"phone": PATIENT, "text": "1"}, headers=HEADERS)
    assert response.status_code == 200 and response.get_json() == {"ok": True, "webhook_status": 200}
    work(served)
    thread = read(sim, PATIENT)
    assert [(m["direction"], m["provider"]) for m in thread] == [("out", "console"), ("in", "twilio"),
                                                                  ("out", "console")]  # fmt: skip
    assert thread[1]["text"] == "1"
    assert "is confirmed" in thread[2]["text"]


def test_the_same_reminder_twice_is_sent_once(served, sim):
    body = {"clinic_id": gaborone(sim), "phone": "+26772000001"}
    assert sim.post("/simulator/api/reminders", json=body, headers=HEADERS).get_json()["result"] == "queued"
    second = sim.post("/simulator/api/reminders", json=body, headers=HEADERS).get_json()
    assert second["result"] == "sent_before"
    assert "already sent" in second["notice"]
    work(served)
    assert len(read(sim, "+26772000001")) == 1


@pytest.mark.parametrize("hours_ahead", [3, 33, 60])
def test_the_same_reminder_twice_is_sent_once_whenever_the_visit_is(served, sim, hours_ahead):
    """Seen at 00:10 in Gaborone: a visit more than a day ahead got a second reminder, for the earliest offset."""
    body = {"clinic_id": gaborone(sim), "phone": "+26772000001"}
    with served.app_context():
        visit = db.session.scalar(select(Appointment).join(Patient).where(Patient.phone == body["phone"],
                                                                          Appointment.status == STATUS_SCHEDULED)
                                  .order_by(Appointment.appointment_datetime).limit(1))  # fmt: skip
        visit.appointment_datetime = utcnow() + timedelta(hours=hours_ahead)
        plan_reminders(visit)
        db.session.commit()

    assert sim.post("/simulator/api/reminders", json=body, headers=HEADERS).get_json()["result"] == "queued"
    assert sim.post("/simulator/api/reminders", json=body, headers=HEADERS).get_json()["result"] == "sent_before"
    work(served)
    assert len(read(sim, body["phone"])) == 1


def test_reminders_widen_the_demo_clinics_hours_and_reset_restores_them(served, sim):
    sim.post("/simulator/api/reminders", json={"clinic_id": gaborone(sim), "phone": PATIENT}, headers=HEADERS)
    with served.app_context():
        clinic = db.session.scalar(select(Clinic).where(Clinic.name == "Gaborone Main Clinic"))
        assert (clinic.send_window_start, clinic.send_window_end) == demo.ALL_DAY
    assert sim.post("/simulator/api/reset", json={}, headers=HEADERS).status_code == 200
    with served.app_context():
        clinic = db.session.scalar(select(Clinic).where(Clinic.name == "Gaborone Main Clinic"))
        assert (clinic.send_window_start, clinic.send_window_end) == DEFAULT_SEND_WINDOW


def test_the_reminder_answer_is_in_setswana_on_a_setswana_page(served, sim):
    response = sim.post("/simulator/api/reminders?lang=tn", json={"clinic_id": gaborone(sim), "phone": PATIENT},
                        headers=HEADERS)  # fmt: skip
    assert response.get_json()["notice"].startswith("Kgakololo ya ga Lesego Tau")


# --- the USSD phone ------------------------------------------------------------------------------------------------


def test_the_patient_ussd_menu_walks_to_cannot_come(served, sim):
    first = sim.post("/simulator/api/ussd", json={"phone": PATIENT}, headers=HEADERS).get_json()
    assert first["end"] is False and first["history"] == ""
    assert "1 Confirm" in first["screen"] and "3 I cannot come" in first["screen"]
    session = first["session_id"]
    check = sim.post("/simulator/api/ussd", json={"phone": PATIENT, "session_id": session, "history": "3"},
                     headers=HEADERS).get_json()  # fmt: skip
    assert check["screen"].endswith("1 Yes, I cannot come\n2 No, go back") and check["end"] is False
    done = sim.post("/simulator/api/ussd", json={"phone": PATIENT, "session_id": session, "history": "3*1"},
                    headers=HEADERS).get_json()  # fmt: skip
    assert done["end"] is True
    with served.app_context():
        statuses = dict(db.session.execute(select(Appointment.external_ref, Appointment.status)).all())
        # Lesego Tau's visit only (the demo's visit of yesterday, DEMO-0, stays as seeded)
        assert statuses == {"DEMO-0": STATUS_SCHEDULED, "DEMO-1": STATUS_SCHEDULED, "DEMO-2": STATUS_CANCELLED,
                            "DEMO-3": STATUS_SCHEDULED}  # fmt: skip


def test_a_staff_phone_gets_the_staff_menu(served, sim):
    screen = sim.post("/simulator/api/ussd", json={"phone": "+26771000001"}, headers=HEADERS).get_json()
    assert screen["screen"]  # the staff menu's PIN screen


# --- the chat phone ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("app_name", ["whatsapp", "telegram"])
def test_a_photo_is_stored_in_the_console_media_store_and_sent_by_media_id(served, sim, app_name):
    response = sim.post(
        "/simulator/api/chat/photo",
        headers=HEADERS,
        content_type="multipart/form-data",
        data={"app": app_name, "photo": (io.BytesIO(JPEG), "rash.jpg", "image/jpeg")},
    )
    assert response.status_code == 200, response.get_json()
    with served.app_context():
        (message,) = db.session.scalars(select(Message).where(Message.direction == "in")).all()
    assert message.channel == app_name and message.provider == app_name
    media_id = message.media[0]["provider_media_id"]
    folder = Path(served.config["INSTANCE_PATH"]) / "console-media"
    assert (folder / media_id).read_bytes() == JPEG
    assert (folder / f"{media_id}.type").read_text() == "image/jpeg"
    address = demo.TELEGRAM_CHAT_ID if app_name == "telegram" else demo.pharmacist().address
    assert message.address == address


def test_a_photo_of_another_type_is_refused_and_nothing_is_stored(served, sim):
    response = sim.post(
        "/simulator/api/chat/photo",
        headers=HEADERS,
        content_type="multipart/form-data",
        data={"app": "whatsapp", "photo": (io.BytesIO(b"%PDF"), "a.pdf", "application/pdf")},
    )
    assert response.status_code == 400
    assert "photo" in response.get_json()["error"]["details"]
    assert not (Path(served.config["INSTANCE_PATH"]) / "console-media").exists()


@pytest.mark.parametrize("app_name", ["whatsapp", "telegram"])
def test_chat_texts_and_button_presses_reach_the_webhook(served, sim, app_name):
    for body in ({"text": "hello"}, {"button": {"id": "age:adult", "title": "Adult"}}):
        response = sim.post("/simulator/api/chat", json={"app": app_name, **body}, headers=HEADERS)
        assert response.status_code == 200, response.get_json()
    with served.app_context():
        rows = db.session.scalars(select(Message).where(Message.direction == "in").order_by(Message.created_at)).all()
    assert [m.text for m in rows] == ["hello", "age:adult" if app_name == "telegram" else "Adult"]


def test_a_shared_telegram_contact_is_the_senders_own(served, sim):
    assert (
        sim.post("/simulator/api/chat", json={"app": "telegram", "contact": True}, headers=HEADERS).status_code == 200
    )
    with served.app_context():
        message = db.session.scalar(select(Message).where(Message.direction == "in"))
    assert message.address == demo.TELEGRAM_CHAT_ID


# --- only the demo phones ------------------------------------------------------------------------------------------


def test_only_demo_numbers_can_be_read_or_spoken_for(served, sim):
    with served.app_context():
        make_clinic("Molepolole Clinic")
        db.session.add(Message(direction="out", channel="sms", address="+26771234567", text="private", status="sent"))
        db.session.commit()
    response = sim.get("/simulator/api/messages", query_string={"address": "+26771234567"})
    assert response.status_code == 400 and "address" in response.get_json()["error"]["details"]
    response = sim.get("/simulator/api/messages", query_string={"address": [PATIENT, "+26771234567"]})
    assert response.status_code == 400
    assert sim.post("/simulator/api/sms", json={"phone": "+26771234567", "text": "1"},
                    headers=HEADERS).status_code == 400  # fmt: skip
    assert sim.post("/simulator/api/ussd", json={"phone": "+233241000002"}, headers=HEADERS).status_code == 400
    with served.app_context():
        other = db.session.scalar(select(Clinic.id).where(Clinic.name == "Molepolole Clinic"))
    response = sim.post("/simulator/api/reminders", json={"clinic_id": str(other), "phone": PATIENT}, headers=HEADERS)
    assert response.status_code == 400 and "clinic_id" in response.get_json()["error"]["details"]


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/simulator/api/sms", None, "body"),
        ("/simulator/api/sms", {"phone": PATIENT}, "text"),
        ("/simulator/api/sms", {"phone": PATIENT, "text": 5}, "text"),
        ("/simulator/api/sms", {"phone": PATIENT, "text": "x" * 1601}, "text"),
        ("/simulator/api/ussd", {"phone": PATIENT, "session_id": "abc", "history": "1"}, "session_id"),
        ("/simulator/api/ussd", {"phone": PATIENT, "session_id": "ATUid_1", "history": ""}, "history"),
        ("/simulator/api/chat", {"app": "signal", "text": "hi"}, "app"),
        ("/simulator/api/chat", {"app": "whatsapp", "button": {"id": 1}}, "button"),
        ("/simulator/api/reminders", {"clinic_id": "not-a-uuid", "phone": PATIENT}, "clinic_id"),
        ("/simulator/api/reminders", {"clinic_id": None, "phone": PATIENT}, "clinic_id"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(served, sim, path, body, field):
    kwargs = {"json": body} if body is not None else {"data": "not json", "content_type": "text/plain"}
    response = sim.post(path, headers=HEADERS, **kwargs)
    assert response.status_code == 400, response.get_data(as_text=True)
    assert field in response.get_json()["error"]["details"]
    with served.app_context():
        assert db.session.scalar(select(func.count()).select_from(Message)) == 0


def test_posts_without_the_simulator_header_are_refused(served, sim):
    response = sim.post("/simulator/api/sms", json={"phone": PATIENT, "text": "1"})
    assert response.status_code == 403
    assert sim.post("/simulator/api/reset", json={}).status_code == 403


# --- reset -----------------------------------------------------------------------------------------------------------


def test_reset_puts_the_demo_back_touches_nothing_else_and_can_be_repeated(served, sim):
    sim.post("/simulator/api/reminders", json={"clinic_id": gaborone(sim), "phone": PATIENT}, headers=HEADERS)
    sim.post("/simulator/api/sms", json={"phone": PATIENT, "text": "3"}, headers=HEADERS)
    work(served)
    with served.app_context():
        db.session.add(Message(direction="out", channel="sms", address="+26771234567", text="keep", status="sent"))
        past = db.session.scalar(select(Appointment).where(Appointment.external_ref == "DEMO-0"))
        set_attendance(None, past, False)  # the demo's visit of yesterday, missed: the reset schedules it again
        db.session.commit()
    for _ in range(2):
        response = sim.post("/simulator/api/reset", json={}, headers=HEADERS)
        assert response.status_code == 200 and response.get_json()["result"] == "reset"
        assert read(sim, PATIENT) == []
        with served.app_context():
            appointments = db.session.scalars(select(Appointment)).all()
            assert sorted(a.external_ref for a in appointments) == ["DEMO-0", "DEMO-1", "DEMO-2", "DEMO-3"]
            assert {a.status for a in appointments} == {STATUS_SCHEDULED}
            assert db.session.scalar(select(Message.text).where(Message.address == "+26771234567")) == "keep"
    # And the demo works again from the start.
    body = {"clinic_id": gaborone(sim), "phone": PATIENT}
    assert sim.post("/simulator/api/reminders", json=body, headers=HEADERS).get_json()["result"] == "queued"


def test_reset_also_removes_the_demo_patients_series_and_tracing_outcomes(served, sim):
    from app.models import AppointmentSeries, TracingOutcome
    from app.services import series

    with served.app_context():
        visit = db.session.scalar(select(Appointment).where(Appointment.external_ref == "DEMO-1"))
        series.start(visit, 28, None)
        visit.status = "missed"
        db.session.add(TracingOutcome(appointment_id=visit.id, clinic_id=visit.clinic_id, outcome="unreachable"))
        db.session.commit()

    response = sim.post("/simulator/api/reset", json={}, headers=HEADERS)

    assert response.status_code == 200 and response.get_json()["result"] == "reset"
    with served.app_context():
        assert db.session.scalar(select(func.count()).select_from(TracingOutcome)) == 0
        assert db.session.scalar(select(func.count()).select_from(AppointmentSeries)) == 0


# --- reset, with the stock and the skin consultations of the demo ------------------------------------------------

STAFF = "+26771000001"  # Neo Molefe, Gaborone Main Clinic, PIN 2580
STRANGER = "700000777"  # a Telegram chat that is not a demo one
MAIN_MENU = re.compile(r"^1 \S.*^5 \S.*^7 \S", re.M | re.S)  # the staff menu's shape (its text is in Setswana)


def _ussd(sim, phone: str, *typed: str) -> tuple[str, list[dict]]:
    """Dial, then type each input in turn: the session id and every screen answered."""
    screens = [sim.post("/simulator/api/ussd", json={"phone": phone}, headers=HEADERS).get_json()]
    session, history = screens[0]["session_id"], ""
    for value in typed:
        history = f"{history}*{value}" if history else value
        body = {"phone": phone, "session_id": session, "history": history}
        screens.append(sim.post("/simulator/api/ussd", json=body, headers=HEADERS).get_json())
    return session, screens


def _user(email: str) -> User:
    return db.session.scalar(select(User).where(User.email == email))


def _demo_state(application) -> dict:
    """What the seed leaves of stock and skin consultations: stock levels, ledgers, alerts, the demo accounts' chat work."""
    with application.app_context():
        clinic = db.session.scalar(select(Clinic).where(Clinic.name == "Gaborone Main Clinic"))
        items = db.session.scalars(select(StockItem).where(StockItem.clinic_id == clinic.id)).all()
        ledger = {i.name: db.session.scalars(select(StockMovement.delta).where(StockMovement.item_id == i.id)
                                             .order_by(StockMovement.at)).all() for i in items}  # fmt: skip
        staff = db.session.scalar(select(User).where(User.phone == STAFF))
        pharmacist = _user("pharmacist@thusa.example")
        return {
            "items": sorted(
                (i.name, i.code, i.unit, i.level, i.reorder_level, i.low_alert_at is not None) for i in items
            ),  # fmt: skip
            "ledger": ledger,
            "pin": (staff.pin_failed_attempts, staff.pin_locked_until, verify_pin(staff.pin_hash, demo.DEMO_PIN)),
            "language": staff.language,
            "consultations": db.session.scalar(
                select(func.count()).select_from(Consultation).where(Consultation.user_id == pharmacist.id)
            ),  # fmt: skip
            "link_codes": db.session.scalar(
                select(func.count()).select_from(ChatLinkCode).where(ChatLinkCode.user_id == pharmacist.id)
            ),  # fmt: skip
        }


def _consult_by_whatsapp(served, sim) -> None:
    """The demo pharmacist sends a real photo and answers every question with its first button."""
    photo = encode(sample_photo(800, 600), "JPEG", quality=90)
    response = sim.post("/simulator/api/chat/photo", headers=HEADERS, content_type="multipart/form-data",
                        data={"app": "whatsapp", "photo": (io.BytesIO(photo), "rash.jpg", "image/jpeg")})  # fmt: skip
    assert response.status_code == 200, response.get_json()
    for _ in range(20):
        work(served)
        last = read(sim, demo.pharmacist().address)[-1]
        if not last["buttons"]:
            break
        button = last["buttons"][0]
        sim.post("/simulator/api/chat", json={"app": "whatsapp", "button": button}, headers=HEADERS)
    work(served)


def _others(served, sim) -> dict:
    """A clinic and a pharmacist that are not demo data, with stock and a consultation of their own."""
    with served.app_context():
        clinic = make_clinic("Tlokweng Clinic")
        row = StockItem(clinic_id=clinic.id, name="Paracetamol 500mg", code="PCM500", unit="tablets", level=0,
                        reorder_level=100)  # fmt: skip
        db.session.add(row)
        db.session.commit()
        stock.count(stock.StaffActor(user_id=None, role="staff", clinic_id=clinic.id), row.id, 40)
        db.session.commit()
        other = make_user("pharmacist", phone="+233241999999")
        db.session.add(Contact(address="700000888", user_id=other.id))  # the other pharmacist's linked chat
        db.session.commit()
        item_id, other_id = row.id, other.id
        token = login(sim, other)["access_token"]
    photo = encode(sample_photo(640, 480, seed=2), "JPEG", quality=90)
    response = sim.post("/api/v1/consultations", headers=bearer(token), content_type="multipart/form-data",
                        data={"image": (io.BytesIO(photo), "skin.jpg", "image/jpeg")})  # fmt: skip
    assert response.status_code == 201, response.get_json()
    work(served)
    return {"item_id": item_id, "pharmacist_id": other_id, "consultation_id": response.get_json()["id"]}


def _untouched(served, others: dict) -> None:
    with served.app_context():
        item = db.session.get(StockItem, others["item_id"])
        assert item is not None and item.level == 40
        assert db.session.scalars(select(StockMovement.delta).where(StockMovement.item_id == item.id)).all() == [40]
        (kept,) = db.session.scalars(select(Consultation).where(Consultation.user_id == others["pharmacist_id"]))
        assert str(kept.id) == others["consultation_id"] and len(kept.images) == 1
        assert db.session.scalar(select(func.count()).select_from(Analysis)
                                 .where(Analysis.consultation_id == kept.id)) == 1  # fmt: skip
        assert db.session.scalar(select(Recommendation.id).where(Recommendation.consultation_id == kept.id))
        assert db.session.scalar(select(Contact.user_id).where(Contact.address == "700000888")) == kept.user_id


def test_reset_puts_the_stock_pin_and_consultations_back_as_seeded_and_only_those(served, sim):
    seeded = _demo_state(served)
    others = _others(served, sim)
    # The demo staff member receives 20 of the first item through the USSD menu (an SMS receipt goes out) ...
    _session, screens = _ussd(sim, STAFF, demo.DEMO_PIN, "2", "1", "20", "1")
    assert MAIN_MENU.search(screens[1]["screen"]) and screens[-1]["end"] is True
    # ... dispenses 20 pairs of gloves, which takes them to their reorder level (the low-stock alert goes out),
    _session, screens = _ussd(sim, STAFF, demo.DEMO_PIN, "3", "3", "20", "1")
    assert screens[-1]["end"] is True
    # switches the menu to English, and adds an item of the clinic's own through the REST API ...
    _session, screens = _ussd(sim, STAFF, demo.DEMO_PIN, "7", "1")
    with served.app_context():
        token = login(sim, _user("staff@thusa.example"), "thusa-staff-demo")["access_token"]
    response = sim.post("/api/v1/stock", json={"name": "Syringes 5ml", "unit": "pieces", "reorder_level": 10},
                        headers=bearer(token))  # fmt: skip
    assert response.status_code == 201, response.get_json()
    work(served)
    # ... leaves a session half-way through a receipt (its state in Redis) and an unfinished write to resume ...
    halfway, _screens = _ussd(sim, STAFF, demo.DEMO_PIN, "2", "1")
    with served.app_context():
        staff_id = str(db.session.scalar(select(User.id).where(User.phone == STAFF)))
        StaffSession("ATUid_not_demo", {"phone": "+26773000009", "user_id": str(uuid.uuid4())}).save()
        StaffSession("ATUid_pending", {"user_id": staff_id, "step": "quantity", "action": "receive"}).keep_pending()
        assert redis_client.client.exists(f"thusa:ussd:staff:{halfway}", f"thusa:ussd:pending:{staff_id}") == 2
    # ... then locks the PIN with 5 wrong tries.
    _session, screens = _ussd(sim, STAFF, "1111", "1112", "1113", "1114", "1115")
    assert screens[-1]["end"] is True
    _session, screens = _ussd(sim, STAFF, demo.DEMO_PIN)
    assert screens[-1]["end"] is True and not MAIN_MENU.search(screens[-1]["screen"])  # locked, even with 2580
    # The demo pharmacist makes a photo consultation on WhatsApp and asks for a Telegram link code.
    _consult_by_whatsapp(served, sim)
    with served.app_context():
        pharmacist = _user("pharmacist@thusa.example")
        (consultation,) = db.session.scalars(select(Consultation).where(Consultation.user_id == pharmacist.id))
        assert consultation.status == "completed" and consultation.images[0].message_id is not None
        assert db.session.scalar(select(Recommendation.id).where(Recommendation.consultation_id == consultation.id))
    token = login(sim, pharmacist, "thusa-pharmacist-demo")["access_token"]
    response = sim.post("/api/v1/auth/chat-link", headers=bearer(token))
    assert response.status_code in (200, 201), response.get_json()
    # Someone else's Telegram chat (not a demo number) links itself to the demo account with that code.
    link = signing.telegram_update(dict(served.config), chat_id=STRANGER, name="Efua",
                                   text=f"/link {response.get_json()['code']}")  # fmt: skip
    assert _post(sim, link).status_code == 200
    work(served)
    with served.app_context():
        assert db.session.scalar(select(Contact.user_id).where(Contact.address == STRANGER)) == pharmacist.id
    changed = _demo_state(served)
    assert changed["pin"][1] is not None and changed["language"] == "en" and changed["consultations"] == 1
    assert changed["link_codes"] == 1 and len(changed["items"]) == len(seeded["items"]) + 1
    gloves = {name: alert for name, *_rest, alert in changed["items"]}["Gloves"]
    assert gloves is True and {name: alert for name, *_rest, alert in seeded["items"]}["Gloves"] is False
    assert sum(map(len, changed["ledger"].values())) == sum(map(len, seeded["ledger"].values())) + 2

    for _ in range(2):
        response = sim.post("/simulator/api/reset", json={}, headers=HEADERS)
        assert response.status_code == 200, response.get_json()
        assert _demo_state(served) == seeded
    with served.app_context():
        assert db.session.scalar(select(func.count()).select_from(ConsultationImage)) == 1  # the other's only
        assert redis_client.client.exists(f"thusa:ussd:staff:{halfway}", f"thusa:ussd:pending:{staff_id}") == 0
        assert redis_client.client.exists("thusa:ussd:staff:ATUid_not_demo") == 1
    _untouched(served, others)
    with served.app_context():  # the stranger's chat is not demo data: it stays, only unlinked from the demo account
        assert db.session.execute(select(Contact.address, Contact.user_id).where(Contact.address == STRANGER)).one() \
            == (STRANGER, None)  # fmt: skip
        assert db.session.scalar(select(Message.text).where(Message.address == STRANGER, Message.direction == "in"))
    # And the PIN works again: straight to the main menu (no "continue where you left off?").
    _session, screens = _ussd(sim, STAFF, demo.DEMO_PIN)
    assert MAIN_MENU.search(screens[-1]["screen"]) and screens[-1]["end"] is False


# --- the page ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("language", "title"), [("en", "Thusa phone simulator"), ("tn", "Thusa: megala ya go leka")])
def test_the_page_is_in_the_chosen_language_with_labelled_controls(served, sim, language, title):
    response = sim.get("/simulator", query_string={"lang": language})
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert f'<html lang="{language}">' in html and f"<title>{title}</title>" in html
    for control in ("sms-text", "ussd-input", "chat-text", "chat-photo"):
        assert f'<label for="{control}">' in html
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    for asset in ("simulator.js", "simulator.css"):
        assert sim.get(f"/simulator/static/{asset}").status_code == 200


def test_the_secrets_never_reach_the_browser(served, sim):
    html = sim.get("/simulator").get_data(as_text=True)
    state = sim.get("/simulator/api/state").get_data(as_text=True)
    for secret in SECRETS.values():
        assert secret not in html and secret not in state


def test_the_webhook_target_is_never_taken_from_the_request(served, sim):
    # A forged Host header must not make the server post signed webhooks (and their secrets) elsewhere.
    response = sim.post("/simulator/api/sms", json={"phone": PATIENT, "text": "1"}, headers=HEADERS,
                        base_url="http://attacker.example")  # fmt: skip
    assert response.status_code == 200
    assert signing.webhook_base(served.config) == f"http://127.0.0.1:{served.config['PORT']}"


def test_the_webhook_base_is_loopback_for_a_wildcard_bind_and_public_when_set():
    assert signing.webhook_base({"HOST": "0.0.0.0", "PORT": 5000}) == "http://127.0.0.1:5000"  # noqa: S104
    assert signing.webhook_base({"PUBLIC_BASE_URL": "https://thusa.example/", "PORT": 1}) == "https://thusa.example"


def test_create_app_in_development_serves_the_simulator(tmp_path, monkeypatch):
    monkeypatch.delenv("SIMULATOR_ENABLED", raising=False)
    application = create_app({"THUSA_ENV": "development", "INSTANCE_PATH": str(tmp_path),
                              "DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}",
                              "REDIS_URL": os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")})  # fmt: skip
    assert "simulator.page" in application.view_functions


def test_a_reset_blocked_by_another_areas_rows_changes_nothing_and_says_so(served, sim):
    # Stands for a table of an area the reset does not know yet, still pointing at demo data the reset removes.
    sim.post("/simulator/api/sms", json={"phone": PATIENT, "text": "hello"}, headers=HEADERS)
    with served.app_context():
        kind = "uuid" if db.engine.dialect.name == "postgresql" else "CHAR(32)"
        db.session.execute(text(f"CREATE TABLE sim_probe (appointment_id {kind} NOT NULL "
                                "REFERENCES appointments (id) ON DELETE RESTRICT)"))  # fmt: skip
        db.session.execute(text("INSERT INTO sim_probe (appointment_id) SELECT id FROM appointments LIMIT 1"))
        db.session.commit()
    try:
        response = sim.post("/simulator/api/reset", json={}, headers=HEADERS)
        assert response.status_code == 409
        assert response.get_json()["error"]["code"] == "reset_blocked"
        assert [m["text"] for m in read(sim, PATIENT)] == ["hello"]
    finally:
        with served.app_context():
            db.session.execute(text("DROP TABLE sim_probe"))
            db.session.commit()


# --- fuzz: whatever the body, a 4xx JSON error or a real answer, never a 500 ---------------------------------------

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=30),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=12), children, max_size=3),
    max_leaves=8,
)
_FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "phone": st.sampled_from([PATIENT, "+26771000001", "+1", ""]) | _JSON,
        "text": st.text(max_size=40) | _JSON,
        "session_id": st.sampled_from(["ATUid_fuzz", "x"]) | _JSON,
        "history": st.text(max_size=20) | _JSON,
        "app": st.sampled_from(["whatsapp", "telegram", "sms"]) | _JSON,
        "button": st.fixed_dictionaries({"id": st.text(max_size=8), "title": st.text(max_size=8)}) | _JSON,
        "contact": _JSON,
        "clinic_id": st.uuids().map(str) | _JSON,
    },
)


@pytest.mark.sqlite_only
@settings(max_examples=80, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(path=st.sampled_from(["sms", "ussd", "chat", "reminders"]), body=_FIELDS | _JSON)
def test_no_body_makes_a_simulator_endpoint_fail_with_a_500(served, sim, path, body):
    response = sim.post(f"/simulator/api/{path}", json=body, headers=HEADERS)
    assert response.status_code in (200, 400), (response.status_code, response.get_data(as_text=True))
    if response.status_code == 400:
        assert response.get_json()["error"]["details"]


# --- second opinions -------------------------------------------------------------------------------------------


def test_the_pharmacists_phone_shows_the_clinicians_answer_arriving(served, sim):
    none = sim.post("/simulator/api/review-answer", json={}, headers=HEADERS)
    assert none.status_code == 200 and none.get_json()["result"] == "none"
    _consult_by_whatsapp(served, sim)
    pharmacist = demo.pharmacist().address
    messages = read(sim, pharmacist)
    asks = [b for m in messages for b in m["buttons"] if b["id"].startswith("skin:review:")]
    if asks and not any("will review this consultation" in (m["text"] or "") for m in messages):
        sim.post("/simulator/api/chat", json={"app": "whatsapp", "button": asks[-1]}, headers=HEADERS)
        work(served)
    response = sim.post("/simulator/api/review-answer", json={}, headers=HEADERS)
    assert response.status_code == 200 and response.get_json()["result"] == "answered", response.get_json()
    work(served)
    answers = [m for m in read(sim, pharmacist) if "a clinician answered" in (m["text"] or "")]
    assert len(answers) == 1 and demo.DEMO_ADVICE in answers[0]["text"]
    again = sim.post("/simulator/api/review-answer", json={}, headers=HEADERS)
    assert again.get_json()["result"] == "none"  # answered once; nothing else waits
    work(served)
    assert len([m for m in read(sim, pharmacist) if "a clinician answered" in (m["text"] or "")]) == 1
