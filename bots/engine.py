"""The dialogue engine: one place that decides what happens with every inbound message.

Order for SMS and chat: global keywords first (opt-out, opt-in for opted-out contacts only, HELP, language), then
the contact's active flow, then a flow that wants to start (catch-all flows last), then a default reply in the
contact's language. An inbound message gets at most one reply (the outbox row is unique per inbound message). One
contact's messages are handled in order: the contact row is locked and every earlier unhandled message of theirs
goes first.

A message whose handling fails is kept ``failed`` and tried again: by RQ's retries of its job, then by the sweeper at
``retry_at`` (back-off up to ``INBOUND_RETRY_MAX``), ``INBOUND_MAX_ATTEMPTS`` times in all; then it stays ``failed``
(``retry_at`` empty) and is counted in ``/readyz``. While it waits for a retry, the contact's later messages wait
behind it (a retried old message never jumps ahead of a newer one: an old START must not undo a newer STOP); its
retry handles them after it, and once it is given up they go on without it.

USSD is synchronous: :func:`handle_ussd` returns the screen for the HTTP answer.
"""

from __future__ import annotations

import logging
import re
import uuid
from datetime import datetime, timedelta

from sqlalchemy import Select, and_, bindparam, or_, select

from app.extensions import db
from app.messaging import inbox
from app.messaging.envelopes import SESSION_CLOSE, InboundMessage
from app.messaging.outbox import OptedOut, SendCapReached, queue_outbound
from app.models import Contact, Conversation, Message, utcnow
from app.models.channel import SMS, USSD, WHATSAPP
from app.models.message_log import DIRECTION_IN, KIND_REPLY, STATUS_FAILED, STATUS_HANDLED, STATUS_RECEIVED
from app.transactions import transaction_memo
from bots.flows import FLOWS, Context, Flow, Reply

log = logging.getLogger(__name__)

INBOUND_MAX_ATTEMPTS = 10  # failed handlings of a message (its job's 5 RQ runs, then the sweeper's) before giving up
INBOUND_RETRY_FIRST = timedelta(minutes=1)  # the wait after the first failure, doubled after each one ...
INBOUND_RETRY_MAX = timedelta(minutes=30)  # ... up to this: about 2.5 hours from the first failure to the last try

OPT_OUT_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "REVOKE", "EMISA"})
OPT_IN_WORDS = frozenset({"START", "UNSTOP"})
HELP_WORDS = frozenset({"HELP", "THUSO"})
LANGUAGE_WORDS = {"ENGLISH": "en", "SEKGOA": "en", "SETSWANA": "tn", "TSWANA": "tn"}
MASK = "****"  # what the message log keeps of an input that may be a secret (a staff PIN)


def keyword(text: str) -> str:
    """The message as a keyword: upper case, no punctuation or extra spaces (``' stop! '`` → ``STOP``)."""
    return re.sub(r"[^\w ]+", "", text, flags=re.UNICODE).strip().upper()


def _conversation(contact: Contact, channel: str) -> Conversation:
    conversation = db.session.scalar(
        select(Conversation).where(Conversation.contact_id == contact.id, Conversation.channel == channel)
    )
    if conversation is None:
        conversation = Conversation(contact_id=contact.id, channel=channel, state={})
        db.session.add(conversation)
        db.session.flush()
    return conversation


def _lock_contact(contact_id: uuid.UUID) -> Contact:
    # PostgreSQL: a row lock serialises one contact's messages across workers. SQLite: BEGIN IMMEDIATE already has.
    return db.session.scalar(select(Contact).where(Contact.id == contact_id).with_for_update())


def _keywords(ctx: Context) -> Reply | None:
    word = keyword(ctx.text)
    contact = ctx.contact
    if contact.opted_out_at is not None:
        if word in OPT_IN_WORDS:
            inbox.opt_in(contact)
            return Reply(ctx.t("opt_in_confirmation"))
        return None  # nothing else is ever sent to an opted-out contact
    if word in OPT_OUT_WORDS:
        inbox.opt_out(contact)
        ctx.conversation.flow, ctx.conversation.state = None, {}
        return Reply(ctx.t("opt_out_confirmation"))
    if word in HELP_WORDS:
        return Reply(ctx.t("help"))
    if word in LANGUAGE_WORDS:
        contact.language = LANGUAGE_WORDS[word]
        return Reply(ctx.t("language_set"))
    return None


_NO_FLOW = object()


def _starting_flow(ctx: Context) -> Flow | None:
    """The first flow (in registration order) that this message starts; catch-all flows only after the others."""
    for catch_all in (False, True):
        for flow in FLOWS.values():
            if flow.catch_all == catch_all and ctx.channel in flow.channels and flow.can_start(ctx):
                return flow
    return None


def _run_flows(ctx: Context):
    """The active or starting flow's reply (``None``: the flow chose not to answer), or ``_NO_FLOW``."""
    conversation = ctx.conversation
    active = FLOWS.get(conversation.flow or "")
    if active is not None:
        reply = active.resume(ctx)
        flow = active
    else:
        flow = _starting_flow(ctx)
        if flow is None:
            return _NO_FLOW
        conversation.state = {}
        reply = flow.start(ctx)
    if ctx.finished or (reply is not None and reply.end):
        flow.close(ctx)
        conversation.flow, conversation.state = None, {}
    elif conversation.flow != flow.name:  # unchanged: no write for the flush to look at
        conversation.flow = flow.name
    return reply


def decide(message: Message, contact: Contact) -> Reply | None:
    """What to answer ``message`` (and the state changes that go with it, in the current transaction)."""
    ctx = Context(contact=contact, conversation=_conversation(contact, message.channel), message=message,
                  text=(message.text or "").strip())  # fmt: skip
    reply = _keywords(ctx)
    if reply is None and contact.opted_out_at is None:
        reply = _run_flows(ctx)
        if reply is _NO_FLOW:
            reply = Reply(ctx.t("default_reply"))
    return reply


def _reply(message: Message, contact: Contact, reply: Reply) -> None:
    if message.channel in (SMS, WHATSAPP) and not message.address.startswith("+"):
        log.info("no reply to message %s: the sender is not a phone number", message.id)  # e.g. a network's alert
        return
    try:
        queue_outbound(
            channel=message.channel,
            address=message.address,
            text=reply.text,
            language=reply.language or contact.language,
            kind=KIND_REPLY,
            # A flow that linked the message to an appointment (a patient's answer) links its reply too: the
            # clinic sees both in its message log, and retention erases both with the appointment.
            clinic_id=message.clinic_id,
            appointment_id=message.appointment_id,
            reply_to_id=message.id,
            buttons=reply.buttons,
            dedupe_key=reply.dedupe_key,
            allow_opted_out=contact.opted_out_at is not None,  # the one opt-out confirmation
        )
    except (OptedOut, SendCapReached) as exc:
        log.warning("no reply to message %s: %s", message.id, exc.code)


def retry_at(attempts: int, now: datetime) -> datetime | None:
    """When a message that failed ``attempts`` times is tried again; None once it has had its last try."""
    if attempts >= INBOUND_MAX_ATTEMPTS:
        return None
    return now + min(INBOUND_RETRY_FIRST * 2 ** max(attempts - 1, 0), INBOUND_RETRY_MAX)


def handle_message(message_id: str) -> int:
    """Handle an inbound SMS or chat message, and any earlier unhandled ones of the same contact, in order.

    A retry of a failed message also handles the contact's later messages that waited behind it.

    Args:
        message_id: the stored inbound message.

    Returns:
        How many messages this call handled (0 when another worker already did, or when an earlier message of
        the contact waits for its retry: this one waits behind it).

    Raises:
        Exception: whatever a flow raised; the message is marked ``failed`` first (with its next try, see
            :func:`retry_at`), and the job is retried.
    """
    message = db.session.get(Message, uuid.UUID(message_id))
    if message is None or message.direction != DIRECTION_IN:
        return 0
    contact = _lock_contact(inbox.link_contact(message).id)
    # Another worker may have handled these messages while this one waited for the lock: read them afresh.
    db.session.expire_all()
    query = select(Message).where(
        Message.address == contact.address,
        Message.direction == DIRECTION_IN,
        Message.channel != USSD,
        or_(
            Message.status == STATUS_RECEIVED,
            Message.id == message.id,
            and_(Message.status == STATUS_FAILED, Message.retry_at.is_not(None)),  # waiting for a retry
        ),
    )
    if message.status != STATUS_FAILED:  # a retry goes on with the messages that waited behind it
        query = query.where(Message.received_at <= message.received_at)
    pending = db.session.scalars(query.order_by(Message.received_at, Message.created_at)).all()
    handled = 0
    for item in pending:
        if item.status not in (STATUS_RECEIVED, STATUS_FAILED):
            continue
        if item.status == STATUS_FAILED and item.id != message.id:
            # Another message waits for its retry: it and everything after it stay as they are, in order.
            log.info("inbound message %s waits behind message %s, which failed and will be retried", message.id,
                     item.id)  # fmt: skip
            break
        inbox.link_contact(item)
        try:
            with db.session.begin_nested():
                reply = decide(item, contact)
                if reply is not None:
                    _reply(item, contact, reply)
                item.status = STATUS_HANDLED
                item.last_error = None
                item.retry_at = None
        except Exception as exc:
            item.status = STATUS_FAILED
            item.last_error = f"{exc.__class__.__name__}"[:500]
            item.attempts = (item.attempts or 0) + 1
            item.retry_at = retry_at(item.attempts, utcnow())
            db.session.commit()
            if item.retry_at is None:
                log.exception("handling inbound message %s failed %d times; given up, it stays failed", item.id,
                              item.attempts)  # fmt: skip
            else:
                log.exception("handling inbound message %s failed; it is kept and will be retried", item.id)
            raise
        handled += 1
    db.session.commit()
    return handled


def _forget_flow(contact: Contact, conversation: Conversation, message: Message | inbox.InboundRow) -> None:
    flow = FLOWS.get(conversation.flow or "")
    if flow is not None:
        flow.close(Context(contact=contact, conversation=conversation, message=message, text=""))
    conversation.flow, conversation.state = None, {}


def storable_ussd(inbound: InboundMessage) -> InboundMessage:
    """A USSD hop as it may be stored: its input masked when a USSD flow says it may be a secret (a staff PIN).

    Asked before the hop is stored, so that a PIN never reaches the database (nor its WAL and backups), whatever
    happens to the hop afterwards; the flow gets the real input from :attr:`InboundMessage.typed`, in memory. The
    phone's contact is locked first, in the hop's transaction (:func:`handle_ussd` takes it from there).
    """
    if not inbound.text or inbound.session_event == SESSION_CLOSE:
        return inbound
    # The phone's contact is locked first (one phone's hops then run one after another), so that what a flow reads
    # here of its session's state is still what the hop acts on: the flow may keep it for the hop
    # (transaction_memo), and the hop's handling takes the contact from here.
    transaction_memo(db.session())[_LOCKED_CONTACT] = _ussd_contact(None, inbound.sender, inbound.channel)
    flows = [flow for flow in FLOWS.values() if USSD in flow.channels]
    if any(flow.secret_input(inbound.sender, inbound.session_id) for flow in flows):
        return inbound.masked(MASK)
    return inbound


def handle_ussd(message: Message | inbox.InboundRow, *, session_id: str | None = None, history: str | None = None,
                text: str | None = None) -> Reply:  # fmt: skip
    """The screen for one USSD hop (the caller stores it and renders ``CON``/``END``).

    A hop of a new session starts afresh: whatever a previous session left (one that ended without a close
    notification) is closed and forgotten first. The USSD entry flow (``bots.flows.ussd``) answers; without a USSD
    flow, the session ends politely. The contact is locked and its conversation read in one statement; the hop's
    status and contact are set on ``message`` for the caller to write (the webhook writes them with the screen).

    Args:
        message: the stored hop (locked by the caller): its row, or a new hop's :class:`~app.messaging.inbox.InboundRow`.
        session_id: the provider's session id; ``None`` when unknown (no session check).
        history: every input of the session so far, joined with ``*`` (Africa's Talking's ``text``); flows read
            the new input relative to the history they stored (``ctx.extra["ussd_history"]``).
        text: the hop's input when the stored one is masked (:func:`storable_ussd`); default: the stored text.

    Returns:
        The screen, with ``end`` set when the session ends.
    """
    locked = transaction_memo(db.session()).pop(_LOCKED_CONTACT, None)  # by storable_ussd, in this transaction
    if locked is not None and locked[0].address == message.address:
        contact, conversation = locked
    else:
        contact, conversation = _ussd_contact(message.contact_id, message.address, message.channel)
    if session_id is not None and conversation.session_id != session_id:
        _forget_flow(contact, conversation, message)
        conversation.session_id = session_id
    extra = {} if history is None else {"ussd_history": history}
    typed = message.text if text is None else text
    ctx = Context(contact=contact, conversation=conversation, message=message, text=(typed or "").strip(),
                  extra=extra)  # fmt: skip
    reply = _run_flows(ctx)
    if reply is _NO_FLOW or reply is None:
        reply = Reply(ctx.t("ussd_unavailable"), end=True)
    # Linked here, with the status, so the hop's row gets one UPDATE (no flow reads the link before).
    # No activity stamp on the conversation: the hop's own row records when it came, and a USSD flow keeps its state
    # in Redis, so an UPDATE of the conversation on every hop would record nothing new.
    message.contact_id = contact.id
    message.status = STATUS_HANDLED
    return reply


def _contact_with_conversation(by_id: bool) -> Select:
    # Built once (bound at execution): building it cost a USSD hop more than running it.
    contact = Contact.id == bindparam("contact") if by_id else Contact.address == bindparam("contact")
    its_conversation = and_(Conversation.contact_id == Contact.id, Conversation.channel == bindparam("channel"))
    # FOR UPDATE OF contacts only: the conversation is the outer join's nullable side, which PostgreSQL cannot lock.
    return (
        select(Contact, Conversation)
        .outerjoin(Conversation, its_conversation)
        .where(contact)
        .with_for_update(of=Contact)
    )


_CONTACT_WITH_CONVERSATION = {by_id: _contact_with_conversation(by_id) for by_id in (False, True)}


_LOCKED_CONTACT = "ussd_contact"


def _ussd_contact(contact_id: uuid.UUID | None, address: str, channel: str) -> tuple[Contact, Conversation]:
    """A USSD hop's contact, locked, and its USSD conversation: one statement for a known number (the hot path)."""
    by_id = contact_id is not None
    row = db.session.execute(_CONTACT_WITH_CONVERSATION[by_id],
                             {"contact": contact_id if by_id else address, "channel": channel}).first()  # fmt: skip
    if row is None:  # first contact: created, then locked
        contact = _lock_contact(inbox.contact_for(address).id)
        return contact, _conversation(contact, channel)
    contact, conversation = row
    return contact, conversation if conversation is not None else _conversation(contact, channel)


def close_ussd(message: Message, *, session_id: str | None = None) -> None:
    """The provider says the USSD session ended: let the active flow close, and forget its state.

    A late notification for an older session (the person has already dialled again) leaves the new session alone.
    """
    contact = _lock_contact(inbox.link_contact(message).id)
    conversation = _conversation(contact, message.channel)
    if session_id is None or conversation.session_id in (None, session_id):
        _forget_flow(contact, conversation, message)
    message.status = STATUS_HANDLED
