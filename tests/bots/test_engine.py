"""The dialogue engine through its own entry points: keywords, flows, default replies, ordering, USSD, consent.

Inbound messages are stored as the webhook layer stores them (``store_inbound`` + commit), then handed to
``bots.engine.handle_message`` as the job would; what the engine decided is read back from the outbound rows in
the real database (PostgreSQL). Test flows are registered per test and removed afterwards; the flows of
the application (if any are registered) are set aside so they cannot answer in a test's place.
"""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.i18n import t
from app.messaging.envelopes import InboundMessage
from app.messaging.inbox import contact_for, store_inbound
from app.messaging.outbox import OptedOut, queue_outbound
from app.models import Contact, Conversation, Message, utcnow
from app.models.message_log import DIRECTION_OUT, STATUS_FAILED, STATUS_HANDLED, STATUS_SENT
from bots.engine import close_ussd, handle_message, handle_ussd
from bots.flows import FLOWS, Context, Flow, Reply, register
from bots.sending import send_message
from tests.flows import contact, conversation

PHONE = "+26771234567"
CHAT_ID = "123456789"
OPT_OUT_TEXTS = (
    "STOP",
    "STOPALL",
    "UNSUBSCRIBE",
    "CANCEL",
    "END",
    "QUIT",
    "OPTOUT",
    "REVOKE",
    "EMISA",
    "stop",
    " Stop! ",
    "Emisa",
    "Cancel.",
)


# --- helpers -------------------------------------------------------------------------------------------------------


def inbound(
    text: str,
    *,
    sender: str = PHONE,
    channel: str = "sms",
    provider: str = "twilio",
    received_at=None,
    session_event: str | None = None,
    session_id: str | None = None,
) -> Message:
    """Store one inbound message as the webhook layer does, and commit it."""
    message, created = store_inbound(
        InboundMessage(
            channel=channel,
            provider=provider,
            provider_id=f"id-{uuid.uuid4().hex}",
            sender=sender,
            text=text,
            received_at=received_at,
            session_event=session_event,
            session_id=session_id,
        )
    )
    assert created
    db.session.commit()
    return message


def handle(message: Message) -> int:
    return handle_message(str(message.id))


def say(text: str, **kwargs) -> Message:
    """Store and handle one message; return it as the database has it afterwards."""
    message = inbound(text, **kwargs)
    handle(message)
    return reload(message)


def reload(message: Message) -> Message:
    db.session.expire_all()
    return db.session.get(Message, message.id)


def outbound(address: str = PHONE) -> list[Message]:
    """Every outbound row to ``address``, oldest first."""
    db.session.expire_all()
    return list(
        db.session.scalars(
            select(Message)
            .where(Message.direction == DIRECTION_OUT, Message.address == address)
            .order_by(Message.created_at, Message.id)
        )
    )


def replies_to(message: Message) -> list[Message]:
    db.session.expire_all()
    return list(db.session.scalars(select(Message).where(Message.reply_to_id == message.id)))


def the_reply(message: Message) -> Message:
    rows = replies_to(message)
    assert len(rows) == 1, [r.text for r in rows]
    return rows[0]


def new_contact(address: str = PHONE, *, language: str | None = None, opted_out: bool = False) -> Contact:
    person = contact_for(address)
    person.language = language
    person.opted_out_at = utcnow() if opted_out else None
    db.session.commit()
    return person


# --- test flows ----------------------------------------------------------------------------------------------------


class SurveyFlow(Flow):
    """Starts on SURVEY, asks two questions, keeps the answers in its state, then finishes."""

    name = "test-survey"
    channels = ("sms", "whatsapp", "telegram")
    closed = 0

    def can_start(self, ctx: Context) -> bool:
        return ctx.text.upper() == "SURVEY"

    def start(self, ctx: Context) -> Reply:
        ctx.save(answers=[])
        return Reply("Q1: how old are you?")

    def resume(self, ctx: Context) -> Reply:
        answers = [*ctx.state["answers"], ctx.text]
        ctx.save(answers=answers)
        if len(answers) == 2:
            ctx.finish()
            return Reply("Thanks: " + ", ".join(answers))
        return Reply("Q2: do you smoke?")

    def close(self, ctx: Context) -> None:
        type(self).closed += 1


class QuietFlow(Flow):
    """Starts on QUIET and chooses not to answer."""

    name = "test-quiet"
    channels = ("sms",)

    def can_start(self, ctx: Context) -> bool:
        return ctx.text.upper() == "QUIET"

    def start(self, ctx: Context) -> None:
        ctx.save(heard=True)
        return None


class BrokenFlow(Flow):
    """Starts on BREAK; changes state and the contact, then raises (until it is 'fixed')."""

    name = "test-broken"
    channels = ("sms",)
    broken = True

    def can_start(self, ctx: Context) -> bool:
        return ctx.text.upper() == "BREAK"

    def start(self, ctx: Context) -> Reply:
        ctx.save(progress="half-way")
        if type(self).broken:
            ctx.contact.name = "Half-written"
            raise RuntimeError("the flow has a bug")
        return Reply("fixed and answered")


class RecorderFlow(Flow):
    """Takes every SMS; records what it saw, in the order it saw it."""

    name = "test-recorder"
    channels = ("sms",)

    def can_start(self, ctx: Context) -> bool:
        return True

    def start(self, ctx: Context) -> Reply:
        seen = [*ctx.state.get("seen", []), ctx.text]
        ctx.save(seen=seen)
        return Reply(f"seen {len(seen)}: {ctx.text}")


class UssdMenuFlow(Flow):
    """A two-level USSD menu; counts hops in its state."""

    name = "test-ussd"
    channels = ("ussd",)
    closed = 0

    def can_start(self, ctx: Context) -> bool:
        return True

    def start(self, ctx: Context) -> Reply:
        ctx.save(step="menu", hops=1)
        return Reply("Thusa\n1. Stock\n2. Exit")

    def resume(self, ctx: Context) -> Reply:
        ctx.save(hops=ctx.state["hops"] + 1)
        choice = ctx.text.split("*")[-1]
        if choice == "2":
            return Reply(f"Goodbye after {ctx.state['hops']} screens", end=True)
        if ctx.state["step"] == "menu" and choice == "1":
            ctx.save(step="stock")
            return Reply("Stock\n1. Paracetamol 20 boxes\n2. Exit")
        return Reply("Choose 1 or 2")

    def close(self, ctx: Context) -> None:
        type(self).closed += 1


@pytest.fixture(autouse=True)
def isolated_flows():
    """Only the flows a test registers answer; the application's own flows are put back afterwards."""
    saved = dict(FLOWS)
    FLOWS.clear()
    SurveyFlow.closed = UssdMenuFlow.closed = 0
    BrokenFlow.broken = True
    yield FLOWS
    FLOWS.clear()
    FLOWS.update(saved)


@pytest.fixture
def survey():
    register(SurveyFlow)
    yield FLOWS[SurveyFlow.name]
    FLOWS.pop(SurveyFlow.name, None)


@pytest.fixture
def quiet():
    register(QuietFlow)
    yield FLOWS[QuietFlow.name]
    FLOWS.pop(QuietFlow.name, None)


@pytest.fixture
def broken():
    register(BrokenFlow)
    yield BrokenFlow
    FLOWS.pop(BrokenFlow.name, None)


@pytest.fixture
def recorder():
    register(RecorderFlow)
    yield FLOWS[RecorderFlow.name]
    FLOWS.pop(RecorderFlow.name, None)


@pytest.fixture
def ussd_menu():
    register(UssdMenuFlow)
    yield UssdMenuFlow
    FLOWS.pop(UssdMenuFlow.name, None)


# --- keywords ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", OPT_OUT_TEXTS)
@pytest.mark.parametrize("language", ["en", "tn"])
def test_an_opt_out_word_opts_out_with_one_confirmation_in_the_contacts_language(app, text, language):
    new_contact(language=language)

    message = say(text)

    assert message.status == STATUS_HANDLED
    assert contact().opted_out_at is not None
    reply = the_reply(message)
    assert reply.text == t("opt_out_confirmation", language)
    assert (reply.channel, reply.address, reply.kind, reply.language) == ("sms", PHONE, "reply", language)
    assert [row.id for row in outbound()] == [reply.id]


def test_a_first_message_stop_from_a_new_number_creates_an_opted_out_contact(app):
    message = say("STOP")

    assert contact().opted_out_at is not None
    assert the_reply(message).text == t("opt_out_confirmation", "en")


def test_stop_twice_confirms_once_only(app):
    say("STOP")
    second = say("STOP")

    assert second.status == STATUS_HANDLED
    assert replies_to(second) == []
    assert len(outbound()) == 1


@pytest.mark.parametrize("text", ["hello", "HELP", "THUSO", "YES", "SETSWANA", "When is my appointment?", "SURVEY"])
def test_an_opted_out_contact_gets_no_reply_at_all(app, survey, text):
    new_contact(opted_out=True)

    message = say(text)

    assert message.status == STATUS_HANDLED
    assert replies_to(message) == []
    assert outbound() == []
    person = contact()
    assert person.opted_out_at is not None  # YES is never an opt-in word
    assert person.language is None  # not even the language keyword acts
    assert conversation() is None or conversation().flow is None  # no flow starts either


@pytest.mark.parametrize("text", ["START", "UNSTOP", "start", " Start. "])
@pytest.mark.parametrize("language", ["en", "tn"])
def test_an_opt_in_word_from_an_opted_out_contact_opts_in_with_one_confirmation(app, text, language):
    new_contact(language=language, opted_out=True)

    message = say(text)

    assert contact().opted_out_at is None
    assert the_reply(message).text == t("opt_in_confirmation", language)
    assert len(outbound()) == 1


def test_slash_start_on_telegram_opts_an_opted_out_chat_back_in(app):
    stop = say("/stop", sender=CHAT_ID, channel="telegram", provider="telegram")
    assert contact(CHAT_ID).opted_out_at is not None
    assert the_reply(stop).channel == "telegram"

    start = say("/start", sender=CHAT_ID, channel="telegram", provider="telegram")

    assert contact(CHAT_ID).opted_out_at is None
    reply = the_reply(start)
    assert (reply.channel, reply.address, reply.text) == ("telegram", CHAT_ID, t("opt_in_confirmation", "en"))


def test_after_opting_back_in_the_contact_gets_replies_again(app):
    say("STOP")
    say("START")

    message = say("hello")

    assert the_reply(message).text == t("default_reply", "en")


@pytest.mark.parametrize("text", ["START", "UNSTOP", "YES"])
def test_start_from_a_contact_who_is_not_opted_out_is_not_an_opt_in(app, text):
    new_contact(language="tn")

    message = say(text)

    assert the_reply(message).text == t("default_reply", "tn")
    assert contact().opted_out_at is None


@pytest.mark.parametrize("text", ["HELP", "help", "THUSO", "Thuso?"])
@pytest.mark.parametrize("language", ["en", "tn"])
def test_help_words_answer_the_help_text_in_the_contacts_language(app, text, language):
    new_contact(language=language)

    message = say(text)

    assert the_reply(message).text == t("help", language)
    assert contact().opted_out_at is None


@pytest.mark.parametrize(
    ("before", "text", "after"),
    [
        (None, "SETSWANA", "tn"),
        (None, "setswana", "tn"),
        ("en", "SETSWANA", "tn"),
        ("tn", "ENGLISH", "en"),
        ("tn", "SEKGOA", "en"),
        ("tn", "English!", "en"),
        ("en", "ENGLISH", "en"),
    ],
)
def test_a_language_word_sets_the_language_and_confirms_in_the_new_language(app, before, text, after):
    new_contact(language=before)

    message = say(text)

    assert contact().language == after
    reply = the_reply(message)
    assert reply.text == t("language_set", after)
    assert reply.language == after

    later = say("what?")
    assert the_reply(later).text == t("default_reply", after)


# --- default reply, one reply per message --------------------------------------------------------------------------


@pytest.mark.parametrize(("language", "expected"), [(None, "en"), ("en", "en"), ("tn", "tn")])
def test_the_default_reply_is_in_the_contacts_language(app, language, expected):
    new_contact(language=language)

    message = say("Dumela, ke batla thuso ka pilisi")

    assert message.status == STATUS_HANDLED
    reply = the_reply(message)
    assert reply.text == t("default_reply", expected)
    assert (reply.direction, reply.kind, reply.reply_to_id) == (DIRECTION_OUT, "reply", message.id)


def test_handling_a_message_twice_still_gives_one_reply(app):
    message = inbound("hello")

    assert handle(message) == 1
    assert handle(message) == 0

    assert len(replies_to(message)) == 1
    assert len(outbound()) == 1


def test_even_when_the_engine_runs_again_on_a_message_the_reply_stays_unique(app):
    """A job retried after its commit (status put back to received) must not produce a second reply."""
    message = inbound("hello")
    handle(message)
    first = the_reply(message)
    row = reload(message)
    row.status = "received"
    db.session.commit()

    assert handle(message) == 1

    assert [r.id for r in replies_to(message)] == [first.id]
    assert len(outbound()) == 1


def test_the_outbox_keeps_one_reply_per_inbound_message(app):
    message = inbound("hello")
    handle(message)
    first = the_reply(message)

    again = queue_outbound(channel="sms", address=PHONE, text="a second answer", reply_to_id=message.id)
    db.session.commit()

    assert again.id == first.id
    assert len(outbound()) == 1


def test_unknown_or_outbound_ids_are_ignored(app):
    assert handle_message(str(uuid.uuid4())) == 0
    sent = queue_outbound(channel="sms", address=PHONE, text="hi")
    db.session.commit()
    assert handle_message(str(sent.id)) == 0
    assert len(outbound()) == 1


# --- flows ---------------------------------------------------------------------------------------------------------


def test_a_flow_starts_on_its_keyword_keeps_state_across_messages_and_finishes(app, survey):
    first = say("SURVEY")
    assert the_reply(first).text == "Q1: how old are you?"
    chat = conversation()
    assert (chat.flow, chat.state) == ("test-survey", {"answers": []})

    second = say("34")
    assert the_reply(second).text == "Q2: do you smoke?"
    chat = conversation()
    assert (chat.flow, chat.state) == ("test-survey", {"answers": ["34"]})

    third = say("no")
    assert the_reply(third).text == "Thanks: 34, no"
    chat = conversation()
    assert (chat.flow, chat.state) == (None, {})
    assert SurveyFlow.closed == 1

    after = say("34")  # the flow is over: this starts nothing
    assert the_reply(after).text == t("default_reply", "en")


def test_keywords_win_over_an_active_flow(app, survey):
    say("SURVEY")

    helped = say("HELP")
    assert the_reply(helped).text == t("help", "en")
    assert conversation().flow == "test-survey"  # HELP answered, the flow still waits for its answer
    assert the_reply(say("34")).text == "Q2: do you smoke?"

    stop = say("STOP")
    assert the_reply(stop).text == t("opt_out_confirmation", "en")
    assert contact().opted_out_at is not None
    chat = conversation()
    assert (chat.flow, chat.state) == (None, {})

    say("START")
    resumed = say("no")
    assert the_reply(resumed).text == t("default_reply", "en")  # the flow was cleared, not resumed


def test_a_flow_that_returns_none_sends_no_reply_not_even_the_default(app, quiet):
    message = say("QUIET")

    assert message.status == STATUS_HANDLED
    assert replies_to(message) == []
    assert outbound() == []
    chat = conversation()
    assert (chat.flow, chat.state) == ("test-quiet", {"heard": True})


def test_a_failing_flow_keeps_the_message_failed_keeps_none_of_its_work_and_is_retried(app, broken):
    new_contact(language="tn")
    message = inbound("BREAK")

    with pytest.raises(RuntimeError, match="the flow has a bug"):
        handle(message)

    row = reload(message)
    assert row.status == STATUS_FAILED
    assert "RuntimeError" in row.last_error
    assert replies_to(message) == []
    chat = conversation()
    assert chat is None or "progress" not in (chat.state or {})
    assert chat is None or chat.flow is None
    assert contact().name is None  # the flow's change to the contact was rolled back with it

    BrokenFlow.broken = False  # the bug is fixed; RQ runs the job again
    assert handle(message) == 1

    row = reload(message)
    assert row.status == STATUS_HANDLED
    assert row.last_error is None
    assert the_reply(message).text == "fixed and answered"
    assert conversation().state == {"progress": "half-way"}
    assert contact().language == "tn"


def test_the_engine_persists_a_flows_state_in_the_database(app, survey):
    say("SURVEY")
    say("41")
    db.session.remove()  # a new session, as a later job has

    chat = conversation()
    assert chat.flow == "test-survey"
    assert chat.state == {"answers": ["41"]}


class CatchAllFlow(Flow):
    """Takes every SMS, like the appointment replies take every message of a patient with an upcoming visit."""

    name = "test-catch-all"
    channels = ("sms",)
    catch_all = True

    def can_start(self, ctx: Context) -> bool:
        return True

    def start(self, ctx: Context) -> Reply:
        ctx.finish()
        return Reply("caught")


class KeywordFlow(Flow):
    """Starts on LINK only."""

    name = "test-keyword"
    channels = ("sms",)

    def can_start(self, ctx: Context) -> bool:
        return ctx.text.upper().startswith("LINK")

    def start(self, ctx: Context) -> Reply:
        ctx.finish()
        return Reply("linked")


class LinkingFlow(Flow):
    """Links the message to a clinic, answers in Setswana once per key (the text names the key)."""

    name = "test-linking"
    channels = ("sms",)
    clinic_id = None

    def can_start(self, ctx: Context) -> bool:
        return ctx.text.startswith("KEY")

    def start(self, ctx: Context) -> Reply:
        ctx.message.clinic_id = type(self).clinic_id
        ctx.finish()
        return Reply(f"answer to {ctx.text}", language="tn", dedupe_key=f"test:{ctx.text}")


def test_a_catch_all_flow_starts_only_when_no_other_flow_does(app):
    register(CatchAllFlow)  # registered first, still tried last
    register(KeywordFlow)

    assert the_reply(say("LINK 123456")).text == "linked"
    assert the_reply(say("anything else")).text == "caught"


def test_a_reply_carries_the_flows_links_language_and_dedupe_key(app):
    from tests.conftest import make_clinic

    clinic = make_clinic()
    LinkingFlow.clinic_id = clinic.id
    register(LinkingFlow)
    new_contact(language="en")

    first = say("KEY-1")

    reply = the_reply(first)
    assert (first.clinic_id, reply.clinic_id, reply.appointment_id) == (clinic.id, clinic.id, None)
    assert (reply.text, reply.language, reply.dedupe_key) == ("answer to KEY-1", "tn", "test:KEY-1")

    again = say("KEY-1")  # the same key: this message gets no reply of its own
    assert again.status == STATUS_HANDLED
    assert replies_to(again) == []
    assert the_reply(say("KEY-2")).text == "answer to KEY-2"
    assert len(outbound()) == 2


# --- ordering ------------------------------------------------------------------------------------------------------


def test_earlier_messages_of_the_contact_are_handled_first_in_received_order(app, recorder):
    t0 = utcnow() - timedelta(minutes=5)
    # Stored out of order (as concurrent webhooks can store them): the received time decides.
    third = inbound("three", received_at=t0 + timedelta(seconds=2))
    first = inbound("one", received_at=t0)
    second = inbound("two", received_at=t0 + timedelta(seconds=1))

    assert handle(third) == 3

    for message in (first, second, third):
        assert reload(message).status == STATUS_HANDLED
    rows = outbound()
    assert [row.reply_to_id for row in rows] == [first.id, second.id, third.id]
    assert [row.text for row in rows] == ["seen 1: one", "seen 2: two", "seen 3: three"]
    assert conversation().state == {"seen": ["one", "two", "three"]}

    assert handle(first) == 0
    assert handle(second) == 0
    assert len(outbound()) == 3


def test_a_stop_received_before_another_message_takes_effect_first(app):
    t0 = utcnow() - timedelta(minutes=5)
    later = inbound("hello", received_at=t0 + timedelta(seconds=1))
    stop = inbound("STOP", received_at=t0)

    assert handle(later) == 2

    assert the_reply(stop).text == t("opt_out_confirmation", "en")
    assert replies_to(later) == []


def test_messages_received_after_the_handled_one_wait_for_their_own_job(app):
    t0 = utcnow() - timedelta(minutes=5)
    first = inbound("one", received_at=t0)
    second = inbound("two", received_at=t0 + timedelta(seconds=1))

    assert handle(first) == 1

    assert reload(second).status == "received"
    assert handle(second) == 1


def test_other_contacts_messages_are_not_handled_by_this_contacts_job(app):
    mine = inbound("hello")
    theirs = inbound("hello", sender="+26772345678")

    assert handle(mine) == 1

    assert reload(theirs).status == "received"
    assert outbound("+26772345678") == []


@pytest.mark.postgres_only
def test_a_job_that_waited_for_the_contact_lock_does_not_handle_a_message_again(app, recorder):
    """A contact sends two messages quickly; two workers take the two jobs at once (PostgreSQL).

    Job B (for the first message) reads it, still ``received``, then waits for the contact's row lock while job A
    (for the second message) handles both, in order, and commits. Once B has the lock the first message is
    ``handled``: B must do nothing, not run the flow on it a second time (and after the second message).
    """
    t0 = utcnow() - timedelta(minutes=1)
    first = inbound("one", received_at=t0)
    second = inbound("two", received_at=t0 + timedelta(seconds=1))
    stale = db.session.get(Message, first.id)  # job B has read its message ...
    assert stale.status == "received"

    handled_by_a: list[int] = []

    def job_a():
        with app.app_context():
            try:
                handled_by_a.append(handle_message(str(second.id)))
            finally:
                db.session.remove()

    worker = threading.Thread(target=job_a)
    worker.start()
    worker.join(timeout=30)
    assert handled_by_a == [2]

    handled_by_b = handle(first)  # ... and gets the contact's lock only after job A committed

    assert conversation().state == {"seen": ["one", "two"]}  # each message went through the flow once, in order
    assert len(outbound()) == 2
    assert handled_by_b == 0


# --- conversations per (contact, channel) --------------------------------------------------------------------------


def test_a_flow_on_sms_does_not_leak_into_the_same_contacts_whatsapp_conversation(app, survey):
    say("SURVEY")  # SMS

    on_whatsapp = say("34", channel="whatsapp")

    reply = the_reply(on_whatsapp)
    assert (reply.channel, reply.text) == ("whatsapp", t("default_reply", "en"))
    assert conversation(channel="whatsapp").flow is None
    sms_chat = conversation(channel="sms")
    assert (sms_chat.flow, sms_chat.state) == ("test-survey", {"answers": []})

    on_sms = say("34")
    assert the_reply(on_sms).text == "Q2: do you smoke?"
    count = db.session.scalar(select(func.count()).select_from(Conversation))
    assert count == 2
    assert db.session.scalar(select(func.count()).select_from(Contact)) == 1


# --- USSD ----------------------------------------------------------------------------------------------------------


def ussd(text: str, *, session: str = "ATUid_1", event: str = "resume") -> Message:
    return inbound(text, channel="ussd", provider="africastalking", session_event=event, session_id=session)


@pytest.mark.parametrize(("language", "expected"), [(None, "en"), ("tn", "tn")])
def test_ussd_without_a_ussd_flow_ends_politely(app, survey, language, expected):
    new_contact(language=language)
    hop = ussd("", event="new")

    reply = handle_ussd(hop)
    db.session.commit()

    assert reply == Reply(t("ussd_unavailable", expected), end=True)
    assert reload(hop).status == STATUS_HANDLED
    assert outbound() == []  # USSD answers in the HTTP response, never through the outbox


def test_a_ussd_flow_answers_con_and_end_and_keeps_state_between_hops(app, ussd_menu):
    first = handle_ussd(ussd("", event="new"))
    db.session.commit()
    assert (first.text, first.end) == ("Thusa\n1. Stock\n2. Exit", False)
    chat = conversation(channel="ussd")
    assert (chat.flow, chat.state) == ("test-ussd", {"step": "menu", "hops": 1})

    second = handle_ussd(ussd("1"))
    db.session.commit()
    assert (second.text, second.end) == ("Stock\n1. Paracetamol 20 boxes\n2. Exit", False)
    assert conversation(channel="ussd").state == {"step": "stock", "hops": 2}

    third = handle_ussd(ussd("1*2"))
    db.session.commit()
    assert (third.text, third.end) == ("Goodbye after 3 screens", True)
    chat = conversation(channel="ussd")
    assert (chat.flow, chat.state) == (None, {})
    assert UssdMenuFlow.closed == 1
    assert outbound() == []


def test_closing_a_ussd_session_closes_the_flow_and_clears_its_state(app, ussd_menu):
    handle_ussd(ussd("", event="new"))
    db.session.commit()
    assert conversation(channel="ussd").flow == "test-ussd"

    ended = ussd("", event="close")
    close_ussd(ended)
    db.session.commit()

    chat = conversation(channel="ussd")
    assert (chat.flow, chat.state) == (None, {})
    assert UssdMenuFlow.closed == 1
    assert reload(ended).status == STATUS_HANDLED

    again = handle_ussd(ussd("", session="ATUid_2", event="new"))  # a new session starts afresh
    assert again.text == "Thusa\n1. Stock\n2. Exit"


def test_ussd_messages_are_not_picked_up_by_the_sms_engine(app, ussd_menu):
    hop = ussd("", event="new")
    message = inbound("hello")

    assert handle(message) == 1
    assert reload(hop).status == "received"


class HistoryFlow(Flow):
    """Shows the history the engine passed, and what it remembered from the previous hop."""

    name = "test-history"
    channels = ("ussd",)
    closed = 0

    def can_start(self, ctx: Context) -> bool:
        return True

    def start(self, ctx: Context) -> Reply:
        return self.resume(ctx)

    def resume(self, ctx: Context) -> Reply:
        before = ctx.state.get("history")
        ctx.save(history=ctx.extra.get("ussd_history"))
        return Reply(f"{before} -> {ctx.extra.get('ussd_history')}")

    def close(self, ctx: Context) -> None:
        type(self).closed += 1


@pytest.fixture
def history_flow():
    HistoryFlow.closed = 0
    register(HistoryFlow)
    yield HistoryFlow
    FLOWS.pop(HistoryFlow.name, None)


def hop(history: str, session: str) -> Reply:
    message = ussd(history.rsplit("*", 1)[-1], session=session, event="resume" if history else "new")
    reply = handle_ussd(message, session_id=session, history=history)
    db.session.commit()
    return reply


def test_handle_ussd_passes_the_history_and_keeps_state_within_a_session(app, history_flow):
    assert hop("", "ATUid_A").text == "None -> "
    assert hop("1", "ATUid_A").text == " -> 1"
    assert hop("1*2*3", "ATUid_A").text == "1 -> 1*2*3"
    chat = conversation(channel="ussd")
    assert (chat.flow, chat.session_id, chat.state) == ("test-history", "ATUid_A", {"history": "1*2*3"})
    assert HistoryFlow.closed == 0


def test_a_new_session_closes_and_forgets_what_the_last_one_left(app, history_flow):
    hop("", "ATUid_A")
    hop("1", "ATUid_A")  # no close notification ever comes for this session

    assert hop("", "ATUid_B").text == "None -> "  # not "1 -> "

    assert HistoryFlow.closed == 1
    chat = conversation(channel="ussd")
    assert (chat.session_id, chat.state) == ("ATUid_B", {"history": ""})


def test_a_late_close_notification_of_an_old_session_is_ignored(app, history_flow):
    hop("", "ATUid_A")
    hop("", "ATUid_B")
    hop("4", "ATUid_B")

    late = ussd("", session="ATUid_A", event="close")
    close_ussd(late, session_id="ATUid_A")
    db.session.commit()

    chat = conversation(channel="ussd")
    assert (chat.flow, chat.state) == ("test-history", {"history": "4"})
    assert reload(late).status == STATUS_HANDLED

    current = ussd("", session="ATUid_B", event="close")
    close_ussd(current, session_id="ATUid_B")
    db.session.commit()
    chat = conversation(channel="ussd")
    assert (chat.flow, chat.state) == (None, {})


# --- nothing from the outbox to an opted-out contact ---------------------------------------------------------------


def test_the_outbox_refuses_an_opted_out_address(app):
    new_contact(opted_out=True)

    with pytest.raises(OptedOut) as caught:
        queue_outbound(channel="sms", address=PHONE, text="Your appointment is tomorrow", kind="reminder")
    db.session.rollback()

    assert caught.value.code == "opted_out"
    assert outbound() == []


def test_a_message_queued_before_the_opt_out_is_not_sent(app):
    early = queue_outbound(channel="sms", address=PHONE, text="Your appointment is tomorrow", kind="reminder")
    db.session.commit()
    stop = say("STOP")
    confirmation = the_reply(stop)

    assert send_message(str(early.id)) == STATUS_FAILED
    row = reload(early)
    assert (row.status, row.error_code) == (STATUS_FAILED, "opted_out")
    assert row.provider_id is None and row.sent_at is None

    assert send_message(str(confirmation.id)) == STATUS_SENT  # the one confirmation does go out


def test_a_message_queued_before_the_opt_out_of_a_known_contact_is_not_sent(app):
    new_contact()
    early = queue_outbound(channel="sms", address=PHONE, text="Your results are ready", kind="api")
    db.session.commit()
    say("EMISA")

    assert send_message(str(early.id)) == STATUS_FAILED
    assert reload(early).error_code == "opted_out"
    assert reload(early).contact_id == contact().id


def test_after_opting_back_in_new_messages_are_sent(app):
    say("STOP")
    say("START")

    # An API send: a reminder is checked against its appointment at send time, and this one has none.
    message = queue_outbound(channel="sms", address=PHONE, text="Your results are ready", kind="api")
    db.session.commit()

    assert send_message(str(message.id)) == STATUS_SENT
