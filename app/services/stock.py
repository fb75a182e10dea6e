"""Clinic stock: items, the movement ledger, days of stock left, and low-stock alerts.

Every change of a level goes through one function per kind (:func:`receive`, :func:`dispense`, :func:`count`,
:func:`adjust`, :func:`expire`), whichever channel it comes from (REST or the staff USSD menu). Each locks the
item's row (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` already serialises writers),
writes the movement and the new level together, refuses a negative level, and queues the low-stock alert when
the movement takes the item from above its reorder level to at or below it. These functions work in the
caller's transaction and never commit; the REST helpers further down commit.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import date, timedelta
from typing import NamedTuple

from sqlalchemy import case, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import lazyload

from app.errors import Conflict, Forbidden, NotFound, ValidationFailed
from app.extensions import db
from app.i18n import t
from app.i18n.gsm7 import fold
from app.messaging.outbox import OptedOut, SendCapReached, queue_outbound
from app.models import Clinic, StockItem, StockMovement, User, utcnow
from app.models.channel import SMS
from app.models.message_log import KIND_SYSTEM
from app.models.stock import (
    CHANNEL_API,
    KIND_ADJUSTED,
    KIND_COUNTED,
    KIND_DISPENSED,
    KIND_EXPIRED,
    KIND_RECEIVED,
)
from app.models.user import ROLE_STAFF
from app.services import audit, clinics

log = logging.getLogger(__name__)

DISPENSING_DAYS = 30  # days_of_stock_left: the average daily dispensing over this many days
NAME_IN_TEXTS = 24  # an item's name as SMS and USSD texts show it (so a stock line and an alert always fit)
UNIT_IN_TEXTS = 12
MAX_QUANTITY = 1_000_000


class InsufficientStock(Conflict):
    """The movement would take the level below zero: nothing is written."""

    code = "insufficient_stock"


@dataclass(frozen=True)
class StaffActor:
    """A staff member acting from the USSD menu (no HTTP request): the same fields services read of an Actor."""

    user_id: uuid.UUID
    role: str
    clinic_id: uuid.UUID | None
    remote_addr: str | None = None

    @property
    def is_admin(self) -> bool:
        return False


def actor_for(user: User) -> StaffActor:
    """The actor a USSD session acts as."""
    return StaffActor(user_id=user.id, role=user.role, clinic_id=user.clinic_id)


class StockLine(NamedTuple):
    """An item as the USSD menu shows it: its id, name and unit as texts show them (already folded and cut), and
    its level. Small enough to keep in a USSD session's state."""

    id: uuid.UUID
    name: str
    unit: str
    level: int


def display_name(item: StockItem | StockLine) -> str:
    """The item's name as texts show it: GSM-7, at most :data:`NAME_IN_TEXTS` characters."""
    return fold(item.name)[:NAME_IN_TEXTS].strip()


def display_unit(item: StockItem | StockLine) -> str:
    """The item's unit as texts show it: GSM-7, at most :data:`UNIT_IN_TEXTS` characters."""
    return fold(item.unit)[:UNIT_IN_TEXTS].strip()


def _line(row) -> StockLine:
    return StockLine(row.id, display_name(row), display_unit(row), row.level)


# --- The ledger -------------------------------------------------------------------------------------------------


def _locked(actor, item_id: uuid.UUID) -> StockItem:
    item = db.session.scalar(
        select(StockItem)
        .where(StockItem.id == item_id)
        .with_for_update(of=StockItem)
        .options(lazyload(StockItem.clinic))  # read only for an alert (its name): not joined into every write
        .execution_options(populate_existing=True)
    )
    if item is None:
        raise NotFound("No stock item with this id.")
    if not actor.is_admin and item.clinic_id != actor.clinic_id:
        raise Forbidden("You can only change your own clinic's stock.")
    return item


def _move(actor, item_id: uuid.UUID, kind: str, quantity: int, *, channel: str, batch: str | None = None,
          expiry_date: date | None = None, note: str | None = None) -> StockMovement:  # fmt: skip
    item = _locked(actor, item_id)
    before = item.level
    delta = {
        KIND_RECEIVED: quantity,
        KIND_DISPENSED: -quantity,
        KIND_EXPIRED: -quantity,
        KIND_COUNTED: quantity - before,
        KIND_ADJUSTED: quantity,
    }[kind]
    after = before + delta
    if after < 0:
        raise InsufficientStock(
            f"Only {before} {item.unit} of {item.name} in stock; the level cannot go below zero.",
            {"json": {"quantity": [f"At most {before} (the level now)."]}},
        )
    if after > MAX_QUANTITY:
        raise ValidationFailed("The level would be implausibly high.",
                               {"json": {"quantity": [f"The level can be at most {MAX_QUANTITY}."]}})  # fmt: skip
    movement = StockMovement(item_id=item.id, kind=kind, quantity=quantity, delta=delta, level_after=after,
                             batch=batch, expiry_date=expiry_date, user_id=getattr(actor, "user_id", None),
                             channel=channel, at=utcnow(), note=note)  # fmt: skip
    db.session.add(movement)
    item.level = after
    item.updated_at = utcnow()
    db.session.flush()
    _alert_on_crossing(item, before, movement)
    audit.record(actor, f"stock.{kind}", "stock_item", item.id,
                 {"movement_id": str(movement.id), "quantity": quantity, "delta": delta, "channel": channel})  # fmt: skip
    return movement


def _positive(quantity: int) -> None:
    if quantity < 1:
        raise ValidationFailed("The quantity must be at least 1.", {"json": {"quantity": ["Must be at least 1."]}})


def receive(actor, item_id: uuid.UUID, quantity: int, *, channel: str = CHANNEL_API, batch: str | None = None,
            expiry_date: date | None = None, note: str | None = None) -> StockMovement:  # fmt: skip
    """Record a delivery of ``quantity`` units (in the caller's transaction).

    Raises:
        ValidationFailed: quantity below 1. NotFound, Forbidden: no such item, or another clinic's.
    """
    _positive(quantity)
    return _move(actor, item_id, KIND_RECEIVED, quantity, channel=channel, batch=batch, expiry_date=expiry_date,
                 note=note)  # fmt: skip


def dispense(actor, item_id: uuid.UUID, quantity: int, *, channel: str = CHANNEL_API,
             note: str | None = None) -> StockMovement:  # fmt: skip
    """Record ``quantity`` units given out to patients.

    Raises:
        InsufficientStock: more than the level. ValidationFailed, NotFound, Forbidden: as :func:`receive`.
    """
    _positive(quantity)
    return _move(actor, item_id, KIND_DISPENSED, quantity, channel=channel, note=note)


def expire(actor, item_id: uuid.UUID, quantity: int, *, channel: str = CHANNEL_API, batch: str | None = None,
           note: str | None = None) -> StockMovement:  # fmt: skip
    """Record ``quantity`` units thrown away past their expiry date. Raises as :func:`dispense`."""
    _positive(quantity)
    return _move(actor, item_id, KIND_EXPIRED, quantity, channel=channel, batch=batch, note=note)


def count(actor, item_id: uuid.UUID, counted: int, *, channel: str = CHANNEL_API,
          note: str | None = None) -> StockMovement:  # fmt: skip
    """Record a physical count: the movement is the correction from the old level to ``counted``."""
    if counted < 0:
        raise ValidationFailed("A count cannot be negative.", {"json": {"level": ["Must be 0 or more."]}})
    return _move(actor, item_id, KIND_COUNTED, counted, channel=channel, note=note)


def adjust(
    actor, item_id: uuid.UUID, delta: int, *, channel: str = CHANNEL_API, note: str | None = None
) -> StockMovement:
    """Record any other correction (breakage, a transfer), signed. Raises InsufficientStock below zero."""
    if delta == 0:
        raise ValidationFailed("An adjustment must change the level.", {"json": {"quantity": ["Must not be 0."]}})
    return _move(actor, item_id, KIND_ADJUSTED, delta, channel=channel, note=note)


WRITERS = {KIND_RECEIVED: receive, KIND_DISPENSED: dispense, KIND_EXPIRED: expire, KIND_COUNTED: count,
           KIND_ADJUSTED: adjust}  # fmt: skip


# --- Low-stock alerts -------------------------------------------------------------------------------------------


def alert_recipients(clinic: Clinic) -> list[User]:
    """Who gets the clinic's stock alerts: its ``alert_recipient_ids``, else every active staff member; only
    active accounts with a phone."""
    stmt = select(User).where(User.active.is_(True), User.phone.is_not(None)).order_by(User.created_at, User.id)
    if clinic.alert_recipient_ids is None:
        stmt = stmt.where(User.clinic_id == clinic.id, User.role == ROLE_STAFF)
    else:
        ids = [uuid.UUID(value) for value in clinic.alert_recipient_ids]
        if not ids:
            return []
        stmt = stmt.where(User.id.in_(ids))
    return list(db.session.scalars(stmt))


def _send_alert(item: StockItem, key: str, dedupe: str, **params) -> list[uuid.UUID]:
    queued = []
    for user in alert_recipients(item.clinic):
        text = t(key, user.language, item=display_name(item), level=item.level, unit=display_unit(item),
                 reorder=item.reorder_level, clinic=item.clinic.sms_name, **params)  # fmt: skip
        try:
            message = queue_outbound(channel=SMS, address=user.phone, text=text, language=user.language,
                                     kind=KIND_SYSTEM, user_id=user.id, clinic_id=item.clinic_id,
                                     dedupe_key=f"{dedupe}:{user.id}")  # fmt: skip
        except (OptedOut, SendCapReached) as exc:
            log.warning("stock alert for item %s not sent to user %s: %s", item.id, user.id, exc.code)
            continue
        queued.append(message.id)
    return queued


def _alert_on_crossing(item: StockItem, before: int, movement: StockMovement) -> None:
    if item.level > item.reorder_level:
        item.low_alert_at = None  # back above: the next crossing alerts again
        return
    if before > item.reorder_level and item.low_alert_at is None:
        item.low_alert_at = utcnow()
        _send_alert(item, "stock_low_alert", f"stock-low:{item.id}:{movement.id}")


def manual_alert(actor, item_id: uuid.UUID, note: str) -> dict:
    """Send the clinic's alert recipients an SMS about an item, with ``note`` (REST ``POST /stock/alert``)."""
    item = _readable(actor, item_id, write=True)
    queued = _send_alert(item, "stock_manual_alert", f"stock-alert:{item.id}:{uuid.uuid4()}", note=fold(note))
    audit.record(actor, "stock.alert", "stock_item", item.id, {"recipients": len(queued)})
    db.session.commit()
    return {"item_id": item.id, "recipients": len(queued), "message_ids": queued}


def receipt(user: User, movement: StockMovement, item: StockItem | StockLine) -> None:
    """The SMS receipt of a write made from the USSD menu, to the staff member, in their language.

    Args:
        user: the staff member who made it (their clinic's item).
        movement: the write; its ``level_after`` is the level the receipt shows.
        item: the item written, for its name and unit (a :class:`StockLine` will do).
    """
    key = {KIND_RECEIVED: "stock_receipt_received", KIND_DISPENSED: "stock_receipt_dispensed",
           KIND_COUNTED: "stock_receipt_counted"}.get(movement.kind, "stock_receipt_counted")  # fmt: skip
    text = t(key, user.language, item=display_name(item), quantity=movement.quantity, level=movement.level_after,
             unit=display_unit(item))  # fmt: skip
    # No dedupe key: the movement is new in this transaction, so no receipt of it can exist yet, and a key would cost
    # a look-up and a savepoint while the item's row is locked.
    try:
        queue_outbound(channel=SMS, address=user.phone, text=text, language=user.language, kind=KIND_SYSTEM,
                       user_id=user.id, clinic_id=user.clinic_id)  # fmt: skip
    except (OptedOut, SendCapReached) as exc:
        log.warning("stock receipt for movement %s not sent: %s", movement.id, exc.code)


# --- Reading ----------------------------------------------------------------------------------------------------


def _dispensed_since(now=None):
    """Units dispensed per item over the last :data:`DISPENSING_DAYS` days (a subquery)."""
    since = (now or utcnow()) - timedelta(days=DISPENSING_DAYS)
    return (
        select(StockMovement.item_id, func.sum(StockMovement.quantity).label("dispensed"))
        .where(StockMovement.kind == KIND_DISPENSED, StockMovement.at >= since)
        .group_by(StockMovement.item_id)
        .subquery()
    )


def _with_days(stmt, dispensed):
    used = func.coalesce(dispensed.c.dispensed, 0)
    days = case((StockItem.level == 0, 0.0), (used > 0, StockItem.level * float(DISPENSING_DAYS) / used),
                else_=None)  # fmt: skip
    return stmt.outerjoin(dispensed, dispensed.c.item_id == StockItem.id).add_columns(days.label("days")), days


def _attach(rows) -> list[StockItem]:
    items = []
    for item, days in rows:
        item.days_of_stock_left = None if days is None else round(float(days), 1)
        items.append(item)
    return items


def _scope(actor, stmt, clinic_id: uuid.UUID | None):
    clinic = clinics.clinic_for(actor, clinic_id, location="query")
    if clinic is not None:
        stmt = stmt.where(StockItem.clinic_id == clinic.id)
    return stmt


class _Page:
    """What ``page_body`` reads, for a page built from a row query."""

    def __init__(self, items: list, page: int, per_page: int, total: int) -> None:
        self.items, self.page, self.per_page, self.total = items, page, per_page, total
        self.pages = max(1, -(-total // per_page)) if total else 0


def _page(stmt, count_stmt, *, page: int, per_page: int) -> _Page:
    total = db.session.scalar(select(func.count()).select_from(count_stmt.subquery()))
    rows = db.session.execute(stmt.limit(per_page).offset((page - 1) * per_page)).all()
    return _Page(_attach(rows), page, per_page, total)


def list_items(actor, *, page: int, per_page: int, clinic_id: uuid.UUID | None = None, q: str | None = None,
               low: bool | None = None, code: str | None = None) -> _Page:  # fmt: skip
    """A page of stock items (name order) with ``days_of_stock_left``; staff and viewers see their clinic's."""
    base = _scope(actor, select(StockItem), clinic_id)
    if q:
        base = base.where(func.lower(StockItem.name).contains(q.strip().lower(), autoescape=True))
    if code:
        base = base.where(StockItem.code == code)
    if low is not None:
        base = base.where((StockItem.level <= StockItem.reorder_level) == low)
    stmt, _ = _with_days(base, _dispensed_since())
    return _page(stmt.order_by(StockItem.name, StockItem.id), base, page=page, per_page=per_page)


def low_items(actor, *, page: int, per_page: int, clinic_id: uuid.UUID | None = None) -> _Page:
    """Items at or below their reorder level, fewest days of stock left first (unknown days last)."""
    base = _scope(actor, select(StockItem), clinic_id).where(StockItem.level <= StockItem.reorder_level)
    stmt, days = _with_days(base, _dispensed_since())
    stmt = stmt.order_by(days.is_(None), days, StockItem.level, StockItem.name, StockItem.id)
    return _page(stmt, base, page=page, per_page=per_page)


def clinic_items(clinic_id: uuid.UUID, *, low: bool = False) -> list[StockLine]:
    """Every item of one clinic for the USSD menu, as :class:`StockLine` rows: name order, or (``low``) as
    :func:`low_items` orders them.

    Only the columns a screen shows are read (no ORM objects, no joined clinic): the menu keeps the lines in its
    session state. No screen shows days left, so only the ``low`` list, whose order needs them, joins the 30-day
    dispensing scan.
    """
    base = select(StockItem.id, StockItem.name, StockItem.unit, StockItem.level).where(StockItem.clinic_id == clinic_id)
    if not low:
        return [_line(row) for row in db.session.execute(base.order_by(StockItem.name, StockItem.id))]
    base = base.where(StockItem.level <= StockItem.reorder_level)
    stmt, days = _with_days(base, _dispensed_since())
    order = (days.is_(None), days, StockItem.level, StockItem.name)
    return [_line(row) for row in db.session.execute(stmt.order_by(*order, StockItem.id))]


def clinic_item(clinic_id: uuid.UUID, item_id: uuid.UUID) -> StockLine | None:
    """One item of one clinic as a :class:`StockLine`; None when there is none with this id in that clinic."""
    row = db.session.execute(
        select(StockItem.id, StockItem.name, StockItem.unit, StockItem.level).where(
            StockItem.id == item_id, StockItem.clinic_id == clinic_id
        )
    ).first()
    return _line(row) if row is not None else None


def _readable(actor, item_id: uuid.UUID, *, write: bool = False) -> StockItem:
    item = db.session.get(StockItem, item_id)
    if item is None:
        raise NotFound("No stock item with this id.")
    if not actor.is_admin and item.clinic_id != actor.clinic_id:
        raise Forbidden("You can only see your own clinic's stock." if not write
                        else "You can only change your own clinic's stock.")  # fmt: skip
    return item


def get_item(actor, item_id: uuid.UUID) -> StockItem:
    """One item with its ``days_of_stock_left``."""
    _readable(actor, item_id)
    stmt, _ = _with_days(select(StockItem).where(StockItem.id == item_id), _dispensed_since())
    return _attach(db.session.execute(stmt).all())[0]


def movements(actor, item_id: uuid.UUID, *, page: int, per_page: int, kind: str | None = None):
    """A page of an item's movements, newest first. They name who made them, so the read is audited."""
    item = _readable(actor, item_id)
    stmt = (
        select(StockMovement, User.name)
        .outerjoin(User, User.id == StockMovement.user_id)
        .where(StockMovement.item_id == item.id)
        .order_by(StockMovement.at.desc(), StockMovement.id)
    )
    if kind:
        stmt = stmt.where(StockMovement.kind == kind)
    total = db.session.scalar(select(func.count()).select_from(stmt.subquery()))
    rows = db.session.execute(stmt.limit(per_page).offset((page - 1) * per_page)).all()
    found = []
    for movement, user_name in rows:
        movement.user_name = user_name
        found.append(movement)
    audit.record(actor, "stock.movements.read", "stock_item", item.id, {"count": len(found)})
    db.session.commit()
    return _Page(found, page, per_page, total)


# --- REST writes (these commit) ---------------------------------------------------------------------------------


def create_item(actor, data: dict) -> StockItem:
    """Create an item for the actor's clinic (admins name it); an initial ``level`` is recorded as a count.

    Raises:
        Conflict: the clinic already has an item with this name or code.
    """
    data = dict(data)
    clinic = clinics.clinic_for(actor, data.pop("clinic_id", None), required=True)
    level = data.pop("level", 0)
    _unique(clinic.id, data.get("name"), data.get("code"))
    item = StockItem(clinic_id=clinic.id, level=0, **data)
    db.session.add(item)
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        raise Conflict("The clinic already has an item with this name or code.") from None
    audit.record(actor, "stock.create", "stock_item", item.id, {"fields": sorted(data)})
    if level:
        count(actor, item.id, level, note="level when the item was created")
    db.session.commit()
    return get_item(actor, item.id)


def _unique(clinic_id: uuid.UUID, name: str | None, code: str | None, *, exclude: uuid.UUID | None = None) -> None:
    for field, value in (("name", name), ("code", code)):
        if value is None:
            continue
        stmt = select(StockItem.id).where(StockItem.clinic_id == clinic_id, getattr(StockItem, field) == value)
        if exclude is not None:
            stmt = stmt.where(StockItem.id != exclude)
        if db.session.scalar(stmt) is not None:
            raise Conflict(f"The clinic already has an item with this {field}.", {"json": {field: ["Already in use."]}})


def update_item(actor, item_id: uuid.UUID, data: dict) -> StockItem:
    """Set a counted level (a ``counted`` movement) and/or change the reorder level or the item's details."""
    data = dict(data)
    item = _locked(actor, item_id)
    level = data.pop("level", None)
    note = data.pop("note", None)
    _unique(item.clinic_id, data.get("name"), data.get("code"), exclude=item.id)
    for field, value in data.items():
        setattr(item, field, value)
    if "reorder_level" in data and item.level > item.reorder_level:
        item.low_alert_at = None
    if data:
        item.updated_at = utcnow()
        audit.record(actor, "stock.update", "stock_item", item.id, {"fields": sorted(data)})
    if level is not None:
        count(actor, item.id, level, note=note)
    db.session.commit()
    return get_item(actor, item.id)


def record_movement(actor, item_id: uuid.UUID, data: dict) -> StockMovement:
    """``POST /stock/{id}/movements``: one movement of any kind, through that kind's function."""
    kind = data["kind"]
    options = {"note": data.get("note")}
    if kind in (KIND_RECEIVED, KIND_EXPIRED):
        options["batch"] = data.get("batch")
    if kind == KIND_RECEIVED:
        options["expiry_date"] = data.get("expiry_date")
    movement = WRITERS[kind](actor, item_id, data["quantity"], **options)
    db.session.commit()
    movement.user_name = db.session.scalar(select(User.name).where(User.id == movement.user_id))
    return movement
