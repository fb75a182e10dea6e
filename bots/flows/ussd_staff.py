"""The staff USSD menu: PIN, stock (check, receive, dispense, count, low), today's visits, language.

A staff phone dials the same service code as patients (:mod:`bots.flows.ussd` routes it here). The session's
state (:mod:`bots.flows.ussd_staff_session`) lives in Redis under its session id, with a TTL, bound to the phone that opened it; every later hop reads
the new input relative to the history length stored there (Africa's Talking sends every input joined with ``*``
and an input may itself hold ``*``). The history itself is never stored, only its length and an HMAC of it, so
the PIN it contains is kept nowhere. A hop that may carry the PIN (:meth:`StaffMenu.secret_input`: the PIN screen
is showing, or nobody knows which screen is) is stored as ``****`` by the webhook before anything is committed; the
flow reads the real input from memory.

Who is signed in (:class:`~bots.flows.ussd_staff_session.StaffUser`: id, clinic, role, language, the clinic's name
and language) is kept in the state for the session's life: taken from the user's row on the dial and again, under
the row's lock, on the PIN. A hop that only shows a screen reads no user; the stock list on screen is kept there too
while it shows (paging and choosing an item read nothing). Every write, and every screen of patients' data, reads
the row again first (:meth:`StaffMenu.current_user`): a user deactivated, moved to another clinic, or whose phone
changed since the PIN gets the error screen, nothing is written, and the session and its unfinished write go. A stock
write still locks and reads its item again.

Screens (every one at most 160 GSM-7 characters after ``CON``/``END``; ``00`` is the main menu everywhere); what
reads the input on each is the table ``StaffMenu.inputs``::

    pin      PIN ok → (an unfinished write within 5 min → resume) → menu · wrong → pin (5 in a row: locked 30 min)
    resume   1 → the unfinished write's screen · 2 → menu
    menu     1 list · 2/3/4 pick (receive/dispense/count) · 5 list of low stock · 6 visits · 7 language · 8 trace
    list     9 next page · 0 previous page or menu
    pick     1..n an item → qty · 9 · 0 as list
    qty      a number → confirm (re-prompt when not a number, or more than in stock) · 0 → pick
    confirm  1 → write, SMS receipt, END · 2 → menu · 0 → qty
    visits   4 digits → one visit: visit_ok, several: visit_pick · 0 → menu
    visit_ok 1 → mark attended, SMS receipt, END · 2 → menu
    trace    4 digits → one missed visit: trace_ok, several: trace_pick · 0 → menu
    trace_ok 1..5 → record the tracing outcome, END · 0 → trace
    lang     1 English · 2 Setswana → menu · 0 → menu

A write cut off by the network (the person was at ``qty`` or ``confirm``) is kept per user for 5 minutes; after
the next correct PIN, "Continue where you left off?" takes them back to that screen.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import Callable

from redis.exceptions import RedisError
from sqlalchemy import select
from sqlalchemy.orm import lazyload

from app.errors import ServiceError
from app.extensions import db
from app.models import Appointment, User
from app.models.appointment import TRACING_OUTCOMES
from app.models.channel import USSD
from app.models.stock import CHANNEL_USSD, KIND_COUNTED, KIND_DISPENSED, KIND_RECEIVED
from app.models.user import ROLE_STAFF
from app.services import appointments, pins, stock, tracing, visits
from app.services.stock import StockLine
from app.transactions import transaction_memo
from bots.flows import Context, Flow, Reply, ussd_menu
from bots.flows.ussd_menu import chosen, first_fitting
from bots.flows.ussd_staff_session import StaffSession, StaffUser, forget

# forget: the demo reset clears staff sessions through this module.
__all__ = ["STAFF_MENU", "StaffMenu", "StaffUser", "forget", "paginate", "staff_user", "stock_line"]

log = logging.getLogger(__name__)

PAGE_ITEMS = 4  # at most this many stock lines a screen (fewer when long names would not fit)
MAX_USSD_QUANTITY = 100_000  # a typing slip guard; larger numbers go through the API

ACTIONS = {"receive": KIND_RECEIVED, "dispense": KIND_DISPENSED, "count": KIND_COUNTED}
MENU_ACTIONS = {"2": "receive", "3": "dispense", "4": "count"}


# --- Screens ----------------------------------------------------------------------------------------------------


def _again(ctx: Context, screen: str, key: str = "ussd_invalid_choice") -> Reply:
    """``screen`` under a short "try again" line; the shorter hint, or the screen alone, when it would not fit."""
    hint = ctx.t(key, menu=screen) if key == "ussd_invalid_choice" else f"{ctx.t(key)}\n{screen}"
    return Reply(first_fitting(hint, f"{ctx.t('ussd_staff_try_again')}\n{screen}", screen))


def _footer(ctx: Context, *, more: bool) -> str:
    parts = ([ctx.t("ussd_nav_more")] if more else []) + [ctx.t("ussd_nav_back"), ctx.t("ussd_nav_main")]
    return " ".join(parts)


def stock_line(number: int, item: StockLine) -> str:
    """``N. <name> <level> <unit>`` (INTERFACES.md)."""
    return f"{number}. {item.name} {item.level} {item.unit}"


def paginate(ctx: Context, header: str, items: list[StockLine]) -> list[list[StockLine]]:
    """Items cut into screens of at most :data:`PAGE_ITEMS` lines that fit with the header and footer."""
    widest = header.format(page=99, pages=99)
    return ussd_menu.paginate(items, lambda page: _page_text(ctx, widest, page, more=True), PAGE_ITEMS)


def _page_text(ctx: Context, header: str, items: list[StockLine], *, more: bool) -> str:
    lines = [stock_line(number, item) for number, item in enumerate(items, start=1)]
    return "\n".join([header, *lines, _footer(ctx, more=more)])


def _action_label(ctx: Context, action: str) -> str:
    return ctx.t(f"ussd_staff_action_{action}")


def _line_json(line: StockLine) -> list:
    return [str(line.id), line.name, line.unit, line.level]


def _line_of(data: list) -> StockLine:
    return StockLine(uuid.UUID(data[0]), data[1], data[2], int(data[3]))


# --- The flow ---------------------------------------------------------------------------------------------------


class StaffMenu(Flow):
    """The staff member's menu, behind their PIN."""

    name = "ussd-staff"
    channels = (USSD,)

    def __init__(self) -> None:
        # The step a session is on → what reads the input typed on that step's screen (the PIN step is read
        # before these, so that the PIN is masked first); a step without an entry shows the main menu.
        self.inputs: dict[str, Callable[[Context, StaffSession, StaffUser, str], Reply]] = {
            "resume": self._on_resume,
            "menu": self._on_menu,
            "list": self._on_list,
            "pick": self._on_list,  # the same list, whose numbers choose an item
            "qty": self._on_qty,
            "confirm": self._on_confirm,
            "visits": self._on_visits,
            "visit_pick": self._on_visit_pick,
            "visit_ok": self._on_visit_ok,
            "lang": self._on_lang,
            "trace": self._on_trace,
            "trace_pick": self._on_trace_pick,
            "trace_ok": self._on_trace_ok,
        }
        # The step → its screen, shown on entering it (a resumed write); a step without an entry: the main menu.
        self.screens: dict[str, Callable[[Context, StaffSession, StaffUser], Reply]] = {
            "list": self._list,
            "pick": self._list,
            "qty": self._quantity,
            "confirm": self._confirm,
            "visits": self._visits_screen,
            "visit_ok": self._visit_confirm,
            "lang": self._language_screen,
            "trace": self._trace_screen,
            "trace_ok": self._trace_confirm,
        }

    # Entry points ------------------------------------------------------------------------------------------------

    def start(self, ctx: Context) -> Reply:
        """The first hop: the PIN screen (or why it cannot be shown)."""
        session_id = ctx.conversation.session_id or str(ctx.message.id)
        existing = StaffSession.load(session_id)
        if existing is not None and existing.data.get("phone") != ctx.contact.address:
            log.warning("USSD session %s reused from another phone; refused", session_id)
            return Reply(ctx.t("ussd_error"), end=True)
        user = ctx.extra.get("user") or staff_user(ctx.contact.address)
        if user is None:
            return Reply(ctx.t("ussd_error"), end=True)
        staff = StaffUser.of(user)
        self._language(ctx, staff)
        history = ctx.extra.get("ussd_history")
        session = StaffSession(session_id, {"phone": ctx.contact.address}, batched=True)
        session.sign_in(staff)
        session.new_input(history or "", "")
        return self._pin_screen(ctx, session, user)

    def resume(self, ctx: Context) -> Reply:
        """A later hop: the input, read from the session state, on the current screen."""
        session_id = ctx.conversation.session_id or ""
        kept = transaction_memo(db.session()).pop(_memo_key(session_id), None)  # read by secret_input for this hop
        session = StaffSession(session_id, kept, batched=True) if kept else StaffSession.load(session_id, batched=True)
        if session is None:  # expired (a very long pause): start again from the PIN
            return self.start(ctx)
        if session.data.get("phone") != ctx.contact.address:
            log.warning("USSD session %s used from another phone; refused", session_id)
            return Reply(ctx.t("ussd_error"), end=True)
        staff = session.user
        if staff is None:  # a state saved without the user (by an older release): take it from the row once
            user = self._user_row(ctx, uuid.UUID(session.data["user_id"]), None)
            if user is None:
                session.delete()
                return Reply(ctx.t("ussd_error"), end=True)
            staff = StaffUser.of(user)
            session.sign_in(staff)
        self._language(ctx, staff)
        typed = session.new_input(ctx.extra.get("ussd_history"), ctx.text)
        if session.step == "pin":
            reply = self._on_pin(ctx, session, staff, typed)
        elif typed == "00":
            session.drop_pending()
            reply = self._menu(ctx, session, staff)
        else:
            handler = self.inputs.get(session.step)
            reply = handler(ctx, session, staff, typed) if handler else self._menu(ctx, session, staff)
        if reply.end:
            session.delete()
        else:
            session.save()
        return reply

    def close(self, ctx: Context) -> None:
        """The session ended: forget its state (an unfinished write stays resumable for 5 minutes)."""
        session = StaffSession.load(ctx.conversation.session_id) if ctx.conversation.session_id else None
        if session is not None and session.data.get("phone") == ctx.contact.address:  # never another phone's
            session.delete()

    def secret_input(self, address: str, session_id: str | None) -> bool:
        """Whether a hop from ``address`` may carry the PIN: on a staff phone, unless the session's state shows a
        screen after the PIN. A session not known yet (the first hop, which may be dialled with inputs:
        ``*384*2580*1234#``), expired, of another phone, or whose state cannot be read (Redis down) counts as the
        PIN screen: the hop is masked when in doubt."""
        try:
            session = StaffSession.load(session_id) if session_id else None
        except RedisError:
            session = None
        if session is not None and session.data.get("phone") == address:
            # Read under the phone's contact lock (engine.storable_ussd): kept for this hop, which reads it no more.
            transaction_memo(db.session())[_memo_key(session.session_id)] = session.data
            return session.step == "pin"  # this phone's own staff session: no database read on the hot path
        return staff_user(address) is not None

    # The user's row, read again -----------------------------------------------------------------------------------

    @staticmethod
    def _user_row(ctx: Context, user_id: uuid.UUID, clinic_id: uuid.UUID | None, *,
                  lock: str | None = None) -> User | None:  # fmt: skip
        """The user's row if they may still use this menu from this phone: an active staff account whose proven
        phone this is (as :func:`staff_user`), of ``clinic_id`` when given (the clinic the session shows).

        ``lock``: ``"share"`` keeps the row from changing (a deactivation waits) until the hop commits; ``"update"``
        for a hop that changes the row. PostgreSQL checks the conditions again on a row changed meanwhile.
        """
        stmt = select(User).where(User.id == user_id, User.active.is_(True), User.role == ROLE_STAFF,
                                  User.clinic_id.is_not(None), User.phone == ctx.contact.address,
                                  User.phone_verified_at.is_not(None))  # fmt: skip
        if clinic_id is not None:
            stmt = stmt.where(User.clinic_id == clinic_id)
        if lock is not None:
            stmt = stmt.with_for_update(read=lock == "share", of=User)
        # The clinic, when a screen needs it, is read apart: a FOR UPDATE cannot reach the outer join's side.
        return db.session.scalar(stmt.options(lazyload(User.clinic)).execution_options(populate_existing=True))

    def current_user(self, ctx: Context, staff: StaffUser, *, lock: str | None = "share") -> User | None:
        """The signed-in user's row, read again before a write or a screen of patients' data, or None when they may
        no longer use the menu, or have moved to another clinic than the one the session shows (deactivated, moved,
        their phone changed or unproven since the PIN). A write goes on only with it (``lock``: see
        :meth:`_user_row`)."""
        return self._user_row(ctx, staff.id, staff.clinic_id, lock=lock)

    @staticmethod
    def _refused(session: StaffSession, ctx: Context) -> Reply:
        session.drop_pending()
        return Reply(ctx.t("ussd_error"), end=True)

    # PIN ---------------------------------------------------------------------------------------------------------

    @staticmethod
    def _language(ctx: Context, staff: StaffUser) -> None:
        ctx.default_language = staff.language or staff.clinic_language

    def _pin_screen(self, ctx: Context, session: StaffSession, user: User) -> Reply:
        if user.pin_hash is None:
            return Reply(ctx.t("ussd_staff_no_pin"), end=True)
        if pins.locked_until(user) is not None:
            return Reply(ctx.t("ussd_staff_locked", minutes=_minutes(pins.LOCK_FOR)), end=True)
        session.go("pin")
        session.save()
        return Reply(ctx.t("ussd_staff_pin"))

    def _on_pin(self, ctx: Context, session: StaffSession, staff: StaffUser, typed: str) -> Reply:
        # The row, locked, as the PIN is checked: whoever passes is who the session keeps (their clinic may have
        # changed since the dial; a deactivated user gets no further).
        user = self._user_row(ctx, staff.id, None, lock="update")
        if user is None:
            return self._refused(session, ctx)
        check = pins.check_pin(user, typed)
        if check.outcome == "unset":
            return Reply(ctx.t("ussd_staff_no_pin"), end=True)
        if check.outcome == "locked":
            return Reply(ctx.t("ussd_staff_locked", minutes=_minutes(pins.LOCK_FOR)), end=True)
        if check.outcome == "wrong":
            return Reply(ctx.t("ussd_staff_wrong_pin", tries=check.tries_left))
        if user.clinic_id != staff.clinic_id:
            staff = StaffUser.of(user)  # reads the clinic
        elif user.language != staff.language:
            staff = dataclasses.replace(staff, language=user.language)
        self._language(ctx, staff)
        session.sign_in(staff)
        pending = session.pending()
        if pending and self._summary(ctx, staff, pending):
            session.go("resume")
            return Reply(ctx.t("ussd_staff_resume", summary=self._summary(ctx, staff, pending)))
        return self._menu(ctx, session, staff)

    def _summary(self, ctx: Context, staff: StaffUser, pending: dict) -> str | None:
        """One line about an unfinished write, or None when it can no longer be resumed."""
        action = pending.get("action")
        if action == "attend":
            appointment = db.session.get(Appointment, uuid.UUID(pending.get("appointment_id", str(uuid.UUID(int=0)))))
            if appointment is None or appointment.clinic_id != staff.clinic_id:
                return None
            return f"{_action_label(ctx, 'attend')} {self._visit_label(appointment)}"
        item = self._fresh_item(staff, pending.get("item_id"))
        if action not in ACTIONS or item is None:
            return None
        quantity = pending.get("quantity")
        tail = f" {quantity} {item.unit}" if quantity is not None else ""
        return f"{_action_label(ctx, action)} {item.name}{tail}"

    def _on_resume(self, ctx: Context, session: StaffSession, staff: StaffUser, typed: str) -> Reply:
        pending = session.pending()
        if pending is None or not self._summary(ctx, staff, pending):  # expired or gone meanwhile
            return self._menu(ctx, session, staff)
        if typed == "1":
            session.go(pending["step"], **{k: v for k, v in pending.items() if k != "step"})
            return self._show(ctx, session, staff)
        if typed in ("2", "0"):
            session.drop_pending()
            return self._menu(ctx, session, staff)
        return _again(ctx, ctx.t("ussd_staff_resume", summary=self._summary(ctx, staff, pending)))

    # Main menu ---------------------------------------------------------------------------------------------------

    def _menu(self, ctx: Context, session: StaffSession, staff: StaffUser) -> Reply:
        session.go("menu")
        return Reply(ctx.t("ussd_staff_menu", clinic=staff.clinic_name))

    def _on_menu(self, ctx: Context, session: StaffSession, staff: StaffUser, typed: str) -> Reply:
        if typed == "1":
            session.go("list", low=False, page=0)
        elif typed == "5":
            session.go("list", low=True, page=0)
        elif typed in MENU_ACTIONS:
            session.go("pick", action=MENU_ACTIONS[typed], page=0)
        elif typed == "6":
            session.go("visits")
        elif typed == "7":
            session.go("lang")
        elif typed == "8":
            session.go("trace")
        else:
            return _again(ctx, self._menu(ctx, session, staff).text)
        return self._show(ctx, session, staff)

    def _show(self, ctx: Context, session: StaffSession, staff: StaffUser) -> Reply:
        """The current step's screen."""
        return self.screens.get(session.step, self._menu)(ctx, session, staff)

    # Stock lists and item choice ---------------------------------------------------------------------------------

    def _header(self, ctx: Context, session: StaffSession) -> str:
        if session.step == "pick":
            return ctx.t("ussd_staff_pick", action=_action_label(ctx, session.data["action"]), page="{page}",
                         pages="{pages}")  # fmt: skip
        return ctx.t("ussd_staff_low" if session.data.get("low") else "ussd_staff_stock", page="{page}",
                     pages="{pages}")  # fmt: skip

    def _pages(self, ctx: Context, session: StaffSession, staff: StaffUser) -> list[list[StockLine]]:
        """The list's pages: read from the database on entering the list, then from the session state while the
        list shows (paging and choosing an item read nothing; the levels are as of the list's first screen, and a
        write locks and reads its item again)."""
        if "items" in session.data:
            items = [_line_of(data) for data in session.data["items"]]
            pages, start = [], 0
            for size in session.data["pages"]:
                pages.append(items[start : start + size])
                start += size
            return pages
        items = stock.clinic_items(staff.clinic_id, low=bool(session.data.get("low")))
        pages = paginate(ctx, self._header(ctx, session), items)
        session.data.update(items=[_line_json(line) for line in items], pages=[len(page) for page in pages])
        return pages

    def _list(self, ctx: Context, session: StaffSession, staff: StaffUser,
              pages: list[list[StockLine]] | None = None) -> Reply:  # fmt: skip
        header = self._header(ctx, session)
        if pages is None:
            pages = self._pages(ctx, session, staff)
        if not pages:
            empty = "ussd_staff_low_none" if session.data.get("low") else "ussd_staff_stock_none"
            return Reply(f"{ctx.t(empty)}\n{ctx.t('ussd_nav_back')} {ctx.t('ussd_nav_main')}")
        page = min(int(session.data.get("page", 0)), len(pages) - 1)
        session.data["page"] = page
        title = header.format(page=page + 1, pages=len(pages))
        return Reply(_page_text(ctx, title, pages[page], more=page + 1 < len(pages)))

    def _on_list(self, ctx: Context, session: StaffSession, staff: StaffUser, typed: str) -> Reply:
        pages = self._pages(ctx, session, staff)
        page = int(session.data.get("page", 0))
        if typed == "9" and page + 1 < len(pages):
            session.data["page"] = page + 1
        elif typed == "0":
            if page == 0:
                return self._menu(ctx, session, staff)
            session.data["page"] = page - 1
        elif session.step == "pick" and pages and (index := chosen(typed, len(pages[page]))) is not None:
            item = pages[page][index]
            session.go("qty", action=session.data["action"], item_id=str(item.id), page=page, item=_line_json(item))
            session.keep_pending()
            return self._quantity(ctx, session, staff)
        else:
            return _again(ctx, self._list(ctx, session, staff, pages).text)
        return self._list(ctx, session, staff, pages)

    # Quantity and confirmation -----------------------------------------------------------------------------------

    @staticmethod
    def _fresh_item(staff: StaffUser, item_id: str | None) -> StockLine | None:
        return stock.clinic_item(staff.clinic_id, uuid.UUID(item_id)) if item_id else None

    def _item(self, session: StaffSession, staff: StaffUser) -> StockLine | None:
        """The item being written to: as the list showed it (kept in the state), else (a resumed write) read now."""
        kept = session.data.get("item")
        if kept is not None and kept[0] == session.data.get("item_id"):
            return _line_of(kept)
        item = self._fresh_item(staff, session.data.get("item_id"))
        if item is not None:
            session.data["item"] = _line_json(item)
        return item

    def _quantity(self, ctx: Context, session: StaffSession, staff: StaffUser, problem: str | None = None) -> Reply:
        item = self._item(session, staff)
        if item is None:
            session.drop_pending()
            return self._menu(ctx, session, staff)
        action = session.data["action"]
        key = "ussd_staff_count_prompt" if action == "count" else "ussd_staff_quantity"
        screen = ctx.t(key, action=_action_label(ctx, action), item=item.name, level=item.level, unit=item.unit)
        if problem is not None:
            return _again(ctx, screen, problem) if problem.startswith("ussd_") else _prefixed(problem, screen)
        return Reply(screen)

    def _on_qty(self, ctx: Context, session: StaffSession, staff: StaffUser, typed: str) -> Reply:
        if typed == "0":
            session.drop_pending()
            session.go("pick", action=session.data["action"], page=session.data.get("page", 0))
            return self._list(ctx, session, staff)
        item = self._item(session, staff)
        if item is None:
            return self._quantity(ctx, session, staff)
        action = session.data["action"]
        smallest = 0 if action == "count" else 1
        if not typed.isdigit() or not smallest <= int(typed) <= MAX_USSD_QUANTITY:
            return self._quantity(ctx, session, staff, problem="ussd_staff_enter_number")
        quantity = int(typed)
        if action == "dispense" and quantity > item.level:
            return self._quantity(ctx, session, staff, problem=ctx.t("ussd_staff_not_enough", level=item.level,
                                                                     unit=item.unit))  # fmt: skip
        session.data.update(step="confirm", quantity=quantity)
        session.keep_pending()
        return self._confirm(ctx, session, staff)

    def _confirm(self, ctx: Context, session: StaffSession, staff: StaffUser) -> Reply:
        item = self._item(session, staff)
        if item is None:
            session.drop_pending()
            return self._menu(ctx, session, staff)
        action, quantity = session.data["action"], int(session.data["quantity"])
        after = quantity if action == "count" else item.level + (quantity if action == "receive" else -quantity)
        return Reply(ctx.t(f"ussd_staff_confirm_{action}", item=item.name, quantity=quantity, unit=item.unit,
                           before=item.level, after=after))  # fmt: skip

    def _on_confirm(self, ctx: Context, session: StaffSession, staff: StaffUser, typed: str) -> Reply:
        if typed == "2":
            session.drop_pending()
            return self._menu(ctx, session, staff)
        if typed == "0":
            session.data["step"] = "qty"
            return self._quantity(ctx, session, staff)
        if typed != "1":
            return _again(ctx, self._confirm(ctx, session, staff).text)
        user = self.current_user(ctx, staff)  # still allowed, and kept so until this write commits
        if user is None:
            return self._refused(session, ctx)
        item = self._item(session, staff)
        if item is None:
            return self._quantity(ctx, session, staff)
        action, quantity = session.data["action"], int(session.data["quantity"])
        writer = {"receive": stock.receive, "dispense": stock.dispense, "count": stock.count}[action]
        try:
            # No savepoint: the writer refuses before it writes anything, and the item's row stays locked from its
            # read to the hop's commit, so every round trip spent here makes the next writer of that item wait.
            movement = writer(stock.actor_for(user), item.id, quantity, channel=CHANNEL_USSD)
        except stock.InsufficientStock:
            session.data["step"] = "qty"
            session.data.pop("item", None)  # the level changed meanwhile: show it as it is now
            item = self._item(session, staff)
            if item is None:
                return self._quantity(ctx, session, staff)
            return self._quantity(ctx, session, staff, problem=ctx.t("ussd_staff_not_enough", level=item.level,
                                                                     unit=item.unit))  # fmt: skip
        except ServiceError:
            session.drop_pending()
            return Reply(ctx.t("ussd_error"), end=True)
        stock.receipt(user, movement, item)
        session.drop_pending()
        return Reply(ctx.t("ussd_staff_saved", item=item.name, level=movement.level_after, unit=item.unit), end=True)

    # Today's visits (patients' data: each screen reads the user's row again) ---------------------------------------

    @staticmethod
    def _visits_text(ctx: Context, user: User) -> str:
        total, attended = visits.today_counts(user.clinic)
        return ctx.t("ussd_staff_visits", total=total, attended=attended)

    def _visits_screen(self, ctx: Context, session: StaffSession, staff: StaffUser) -> Reply:
        user = self.current_user(ctx, staff, lock=None)
        if user is None:
            return self._refused(session, ctx)
        return Reply(self._visits_text(ctx, user))

    @staticmethod
    def _visit_label(appointment: Appointment) -> str:
        at = appointments.local_time(appointment.clinic, appointment.appointment_datetime).strftime("%H:%M")
        return f"{at} ...{appointment.patient.phone[-4:]}"

    def _on_visits(self, ctx: Context, session: StaffSession, staff: StaffUser, typed: str) -> Reply:
        if typed == "0":
            return self._menu(ctx, session, staff)
        user = self.current_user(ctx, staff, lock=None)
        if user is None:
            return self._refused(session, ctx)
        if not (len(typed) == 4 and typed.isdigit()):
            return _again(ctx, self._visits_text(ctx, user), "ussd_staff_four_digits")
        found = visits.today_ending(user.clinic, typed)
        if not found:
            return _prefixed(ctx.t("ussd_staff_no_visit", digits=typed), self._visits_text(ctx, user))
        if len(found) == 1:
            session.go("visit_ok", action="attend", appointment_id=str(found[0].id))
            session.keep_pending()
            return self._visit_confirm(ctx, session, staff)
        session.go("visit_pick", appointment_ids=[str(a.id) for a in found])
        return Reply(self._visit_pick_text(ctx, found))

    def _visit_pick_text(self, ctx: Context, found: list[Appointment]) -> str:
        lines = [f"{n}. {self._visit_label(a)}" for n, a in enumerate(found, start=1)]
        return "\n".join([ctx.t("ussd_staff_which_visit"), *lines, ctx.t("ussd_nav_back")])

    def _on_visit_pick(self, ctx: Context, session: StaffSession, staff: StaffUser, typed: str) -> Reply:
        ids = session.data.get("appointment_ids", [])
        if typed == "0":
            session.go("visits")
            return self._visits_screen(ctx, session, staff)
        if (index := chosen(typed, len(ids))) is not None:
            session.go("visit_ok", action="attend", appointment_id=ids[index])
            session.keep_pending()
            return self._visit_confirm(ctx, session, staff)
        if self.current_user(ctx, staff, lock=None) is None:
            return self._refused(session, ctx)
        found = [a for a in (db.session.get(Appointment, uuid.UUID(i)) for i in ids) if a is not None]
        return _again(ctx, self._visit_pick_text(ctx, found))

    def _visit_confirm(self, ctx: Context, session: StaffSession, staff: StaffUser) -> Reply:
        if self.current_user(ctx, staff, lock=None) is None:
            return self._refused(session, ctx)
        appointment = db.session.get(Appointment, uuid.UUID(session.data["appointment_id"]))
        if appointment is None or appointment.clinic_id != staff.clinic_id:
            session.drop_pending()
            return self._menu(ctx, session, staff)
        return Reply(ctx.t("ussd_staff_confirm_attend", visit=self._visit_label(appointment)))

    def _on_visit_ok(self, ctx: Context, session: StaffSession, staff: StaffUser, typed: str) -> Reply:
        if typed == "2":
            session.drop_pending()
            return self._menu(ctx, session, staff)
        if typed != "1":
            return _again(ctx, self._visit_confirm(ctx, session, staff).text)
        user = self.current_user(ctx, staff)
        if user is None:
            return self._refused(session, ctx)
        try:
            with db.session.begin_nested():
                appointment = visits.mark_attended(stock.actor_for(user), user.clinic,
                                                   uuid.UUID(session.data["appointment_id"]))  # fmt: skip
        except ServiceError:
            session.drop_pending()
            return Reply(ctx.t("ussd_error"), end=True)
        label = self._visit_label(appointment)
        visits.receipt(user, appointment, label)
        session.drop_pending()
        return Reply(ctx.t("ussd_staff_attended", visit=label), end=True)

    # Tracing patients who missed a visit (patients' data: each screen reads the user's row again) ---------------

    def _trace_text(self, ctx: Context, staff: StaffUser) -> str:
        return ctx.t("ussd_staff_trace", count=tracing.open_count(staff.clinic_id))

    def _trace_screen(self, ctx: Context, session: StaffSession, staff: StaffUser) -> Reply:
        if self.current_user(ctx, staff, lock=None) is None:
            return self._refused(session, ctx)
        return Reply(self._trace_text(ctx, staff))

    @staticmethod
    def _trace_label(ctx: Context, appointment: Appointment) -> str:
        day = appointments.local_time(appointment.clinic, appointment.appointment_datetime).strftime("%d/%m")
        return ctx.t("ussd_staff_trace_label", date=day, digits=appointment.patient.phone[-4:])

    def _on_trace(self, ctx: Context, session: StaffSession, staff: StaffUser, typed: str) -> Reply:
        if typed == "0":
            return self._menu(ctx, session, staff)
        if self.current_user(ctx, staff, lock=None) is None:
            return self._refused(session, ctx)
        if not (len(typed) == 4 and typed.isdigit()):
            return _again(ctx, self._trace_text(ctx, staff), "ussd_staff_four_digits")
        found = tracing.open_ending(staff.clinic_id, typed)
        if not found:
            return _prefixed(ctx.t("ussd_staff_no_trace", digits=typed), self._trace_text(ctx, staff))
        if len(found) == 1:
            session.go("trace_ok", appointment_id=str(found[0].id))
            return self._trace_confirm(ctx, session, staff)
        session.go("trace_pick", appointment_ids=[str(a.id) for a in found])
        return Reply(self._trace_pick_text(ctx, found))

    def _trace_pick_text(self, ctx: Context, found: list[Appointment]) -> str:
        lines = [f"{n}. {self._trace_label(ctx, a)}" for n, a in enumerate(found, start=1)]
        return "\n".join([ctx.t("ussd_staff_which_visit"), *lines, ctx.t("ussd_nav_back")])

    def _on_trace_pick(self, ctx: Context, session: StaffSession, staff: StaffUser, typed: str) -> Reply:
        ids = session.data.get("appointment_ids", [])
        if typed == "0":
            session.go("trace")
            return self._trace_screen(ctx, session, staff)
        if (index := chosen(typed, len(ids))) is not None:
            session.go("trace_ok", appointment_id=ids[index])
            return self._trace_confirm(ctx, session, staff)
        if self.current_user(ctx, staff, lock=None) is None:
            return self._refused(session, ctx)
        found = [a for a in (db.session.get(Appointment, uuid.UUID(i)) for i in ids) if a is not None]
        return _again(ctx, self._trace_pick_text(ctx, found))

    def _traced(self, staff: StaffUser, session: StaffSession) -> Appointment | None:
        appointment = db.session.get(Appointment, uuid.UUID(session.data["appointment_id"]))
        return appointment if appointment is not None and appointment.clinic_id == staff.clinic_id else None

    def _trace_confirm(self, ctx: Context, session: StaffSession, staff: StaffUser) -> Reply:
        if self.current_user(ctx, staff, lock=None) is None:
            return self._refused(session, ctx)
        appointment = self._traced(staff, session)
        if appointment is None:
            return self._menu(ctx, session, staff)
        return Reply(ctx.t("ussd_staff_trace_outcome", visit=self._trace_label(ctx, appointment)))

    def _on_trace_ok(self, ctx: Context, session: StaffSession, staff: StaffUser, typed: str) -> Reply:
        if typed == "0":
            session.go("trace")
            return self._trace_screen(ctx, session, staff)
        user = self.current_user(ctx, staff)
        if user is None:
            return self._refused(session, ctx)
        appointment = self._traced(staff, session)
        index = chosen(typed, len(TRACING_OUTCOMES))
        if appointment is None:
            return self._menu(ctx, session, staff)
        if index is None:
            return _again(ctx, self._trace_confirm(ctx, session, staff).text)
        try:
            with db.session.begin_nested():
                tracing.add_outcome(stock.actor_for(user), appointment, TRACING_OUTCOMES[index])
        except ServiceError:
            return Reply(ctx.t("ussd_error"), end=True)
        return Reply(ctx.t("ussd_staff_traced", visit=self._trace_label(ctx, appointment)), end=True)

    # Language ----------------------------------------------------------------------------------------------------

    def _language_screen(self, ctx: Context, session: StaffSession, staff: StaffUser) -> Reply:
        return Reply(ctx.t("ussd_staff_language"))

    def _on_lang(self, ctx: Context, session: StaffSession, staff: StaffUser, typed: str) -> Reply:
        choice = {"1": "en", "2": "tn"}.get(typed)
        if typed == "0":
            return self._menu(ctx, session, staff)
        if choice is None:
            return _again(ctx, ctx.t("ussd_staff_language"))
        user = self.current_user(ctx, staff, lock="update")
        if user is None:
            return self._refused(session, ctx)
        user.language = choice
        ctx.contact.language = choice
        ctx.default_language = choice
        staff = dataclasses.replace(staff, language=choice)
        session.sign_in(staff)
        return self._menu(ctx, session, staff)


def _memo_key(session_id: str) -> str:
    return f"ussd-staff:{session_id}"


def _prefixed(line: str, screen: str) -> Reply:
    """``line`` above ``screen``; the line alone, or the screen alone, when both would not fit."""
    return Reply(first_fitting(f"{line}\n{screen}", line, screen))


def _minutes(delta) -> int:
    return int(delta.total_seconds() // 60)


def staff_user(phone: str) -> User | None:
    """The active staff user whose proven phone this is, if any (an unproven number may be anyone's)."""
    # No autoflush: nothing pending in the session changes who a phone belongs to, and the hop's own changes
    # (its conversation) then go to the database in one UPDATE at commit.
    return db.session.scalar(select(User).where(User.phone == phone, User.role == ROLE_STAFF, User.active.is_(True),
                                                User.phone_verified_at.is_not(None))
                             .execution_options(autoflush=False))  # fmt: skip


STAFF_MENU = StaffMenu()
