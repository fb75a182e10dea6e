"""The USSD entry point: who dialled decides the menu, and the patient menu about their next appointment.

:func:`menu_for` is the one routing decision: a number that is an active staff user's phone gets
:data:`STAFF_MENU` (the staff menu behind a PIN, :mod:`bots.flows.ussd_staff`), every other number the
:class:`PatientMenu`. The entry flow remembers which menu a session is in and hands it every later hop.

Africa's Talking sends the whole session history on every hop (``1*2*1``), and an input may itself contain ``*``:
a menu reads the new input relative to the history it stored at the previous hop (:func:`new_input`). Every
screen stays within 160 characters after ``CON``/``END`` (:mod:`bots.flows.ussd_menu`, shared with the staff
menu).

Patient menu (what reads the input on each screen is the table ``PatientMenu.choices``)::

    menu    1 confirm → END confirmed · 2 change → slots · 3 cannot come → check · other → menu again
    slots   1..3 → END moved (a slot taken meanwhile → fresh slots) · 0 → menu · other → slots again
    check   1 → END cancelled by the patient · 2 → menu · other → check again
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import select

from app.extensions import db
from app.i18n import t
from app.models import Appointment, Patient
from app.models.channel import USSD
from app.services import appointments
from bots.flows import Context, Flow, Reply, register
from bots.flows.appointments import link, normalise, still_active
from bots.flows.ussd_menu import chosen, fits, typed_after
from bots.flows.ussd_staff import STAFF_MENU, staff_user


def new_input(ctx: Context) -> str:
    """What the person typed at this hop, and remember the history for the next one.

    Without a history from the provider, the message text (the best-effort last input) is all there is.
    """
    history = ctx.extra.get("ussd_history")
    if history is None:
        return ctx.text
    seen = ctx.state.get("history", "")
    typed = typed_after(history, len(seen), seen.__eq__)
    ctx.save(history=history)
    return typed


class PatientMenu(Flow):
    """The patient's next appointment: confirm, change the date, or cannot come."""

    name = "ussd-patient"
    channels = (USSD,)

    def __init__(self) -> None:
        # The step a session is on → what reads the choice made on that step's screen (anything else: the menu).
        self.choices: dict[str, Callable[[Context, Appointment, str], Reply]] = {
            "menu": self._on_menu,
            "slots": self._on_slots,
            "check": self._on_check,
        }

    def start(self, ctx: Context) -> Reply:
        """The first screen: the next appointment with its choices, or ``END`` when there is none."""
        new_input(ctx)  # a code dialled with inputs (*384*2580*1#) only opens the menu
        appointment = appointments.next_for_phone(ctx.contact.address)
        if appointment is None:
            ctx.default_language = _last_clinic_language(ctx.contact.address) or ctx.default_language
            return Reply(ctx.t("ussd_patient_none"), end=True)
        return self._menu(ctx, appointment)

    def resume(self, ctx: Context) -> Reply:
        """A choice on the current screen."""
        choice = normalise(new_input(ctx))
        appointment = still_active(ctx.state.get("appointment_id"))
        if appointment is None:  # cancelled or moved by the clinic during the session: start over
            return self.start(ctx)
        link(ctx, appointment)
        return self.choices.get(ctx.state.get("step"), self._on_menu)(ctx, appointment, choice)

    # --- screens ---------------------------------------------------------------------------------------------------

    def _menu(self, ctx: Context, appointment: Appointment) -> Reply:
        link(ctx, appointment)
        ctx.save(step="menu", appointment_id=str(appointment.id), slots=[])
        return Reply(appointments.text_for(appointment, "ussd_patient_menu"))

    def _slots(self, ctx: Context, appointment: Appointment, slots: list[datetime]) -> Reply:
        if not slots:
            return _end(appointment, "appointment_no_slots")
        language = appointments.language_of(appointment)
        lines = "\n".join(
            f"{number} {appointments.format_when(appointment.clinic, at, language)}"
            for number, at in enumerate(slots[:3], start=1)
        )
        ctx.save(step="slots", slots=[at.isoformat() for at in slots[:3]])
        return Reply(appointments.text_for(appointment, "ussd_slots_menu", slots=lines))

    def _check(self, ctx: Context, appointment: Appointment) -> Reply:
        ctx.save(step="check")
        return Reply(appointments.text_for(appointment, "ussd_cancel_check"))

    # --- choices ---------------------------------------------------------------------------------------------------

    def _on_menu(self, ctx: Context, appointment: Appointment, choice: str) -> Reply:
        if choice == "1":
            appointments.confirm(None, appointment)
            return _end(appointment, "appointment_confirmed")
        if choice == "2":
            return self._slots(ctx, appointment, appointments.request_change(None, appointment))
        if choice == "3":
            return self._check(ctx, appointment)
        return _invalid(appointment, self._menu(ctx, appointment))

    def _on_slots(self, ctx: Context, appointment: Appointment, choice: str) -> Reply:
        slots = [datetime.fromisoformat(at) for at in ctx.state.get("slots", [])]
        if choice == "0":
            return self._menu(ctx, appointment)
        if (index := chosen(choice, len(slots))) is not None:
            at = slots[index]
            if not appointments.slot_is_free(appointment, at):  # taken while the patient was choosing
                return self._slots(ctx, appointment, appointments.free_slots(appointment.clinic,
                                                                             exclude=appointment.id))  # fmt: skip
            appointments.reschedule(None, appointment, at, by_patient=True)
            return _end(appointment, "appointment_rescheduled")
        return _invalid(appointment, self._slots(ctx, appointment, slots))

    def _on_check(self, ctx: Context, appointment: Appointment, choice: str) -> Reply:
        if choice == "1":
            appointments.cancel(None, appointment, by_patient=True)
            return _end(appointment, "appointment_cancelled_by_patient")
        if choice == "2":
            return self._menu(ctx, appointment)
        return _invalid(appointment, self._check(ctx, appointment))


PATIENT_MENU: Flow = PatientMenu()
MENUS = {menu.name: menu for menu in (STAFF_MENU, PATIENT_MENU)}


def menu_for(ctx: Context) -> Flow:
    """The menu for whoever dialled: an active staff user's phone → :data:`STAFF_MENU`, anyone else → patients'."""
    user = staff_user(ctx.contact.address)
    if user is not None:
        ctx.extra["user"] = user
        return STAFF_MENU
    return PATIENT_MENU


@register
class UssdEntry(Flow):
    """Every USSD session starts here and stays in the menu chosen on its first hop."""

    name = USSD
    channels = (USSD,)

    def can_start(self, ctx: Context) -> bool:
        """Every session."""
        return True

    def start(self, ctx: Context) -> Reply | None:
        """Route the first hop to the caller's menu."""
        menu = menu_for(ctx)
        ctx.save(menu=menu.name)
        return menu.start(ctx)

    def resume(self, ctx: Context) -> Reply | None:
        """Hand a later hop to the session's menu."""
        menu = MENUS.get(ctx.state.get("menu", ""))
        if menu is None:
            ctx.conversation.state = {}
            return self.start(ctx)
        return menu.resume(ctx)

    def close(self, ctx: Context) -> None:
        """Let the session's menu close."""
        menu = MENUS.get(ctx.state.get("menu", ""))
        if menu is not None:
            menu.close(ctx)

    def secret_input(self, address: str, session_id: str | None) -> bool:
        """A staff phone's hop may carry its PIN (:meth:`~bots.flows.ussd_staff.StaffMenu.secret_input`); a
        patient's never does."""
        return STAFF_MENU.secret_input(address, session_id)


def _end(appointment: Appointment, key: str) -> Reply:
    return Reply(appointments.text_for(appointment, key), end=True, language=appointments.language_of(appointment))


def _invalid(appointment: Appointment, screen: Reply) -> Reply:
    """The same screen again under "choose one of the numbers shown"; just its choices when all would not fit."""
    language = appointments.language_of(appointment)
    text = t("ussd_invalid_choice", language, menu=screen.text)
    if not fits(text):
        text = t("ussd_invalid_choice", language, menu=screen.text.split("\n", 1)[-1])
    return Reply(text, language=language)


def _last_clinic_language(phone: str) -> str | None:
    """The default language of the clinic of the patient's latest appointment, if they ever had one."""
    appointment = db.session.scalar(
        select(Appointment)
        .join(Patient, Appointment.patient_id == Patient.id)
        .where(Patient.phone == phone)
        .order_by(Appointment.appointment_datetime.desc())
        .limit(1)
    )
    return appointment.clinic.default_language if appointment is not None else None
