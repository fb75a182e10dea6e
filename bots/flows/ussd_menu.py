"""What both USSD menus need of a screen and of an input: the patients' (:mod:`bots.flows.ussd`) and staff's
(:mod:`bots.flows.ussd_staff`).

A screen is the text after ``CON`` (wait for input) or ``END`` (the session closes; ``Reply(end=True)``), which the
Africa's Talking adapter adds. Every network shows at most :data:`SCREEN_LIMIT` characters of it, so a screen that
grows (a hint above the menu, a list of items) is built from candidates, longest first (:func:`first_fitting`), or
cut into pages (:func:`paginate`).

Africa's Talking sends the whole session history on every hop (``1*2*1``), and an input may itself contain ``*``:
each menu reads the new input relative to the history it saw at the previous hop (:func:`typed_after`); how it
remembers that history is its own business (the patient menu keeps it in the conversation, the staff menu only
its length and an HMAC, because it holds the PIN).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

SCREEN_LIMIT = 160  # characters after CON/END that every network shows

T = TypeVar("T")


def fits(text: str) -> bool:
    """Whether ``text`` fits on one screen."""
    return len(text) <= SCREEN_LIMIT


def first_fitting(*candidates: str) -> str:
    """The first candidate that fits on one screen; the last one when none does."""
    for candidate in candidates:
        if fits(candidate):
            return candidate
    return candidates[-1]


def typed_after(history: str, seen: int, is_seen: Callable[[str], bool]) -> str:
    """What was typed at this hop: the part of ``history`` after the ``seen`` characters of the previous hop.

    Args:
        history: every input of the session so far, joined with ``*``.
        seen: how long the history was at the previous hop (0 at the first).
        is_seen: whether a prefix of ``seen`` characters is the history the menu saw (called only when the
            history is long enough and has a ``*`` right after that prefix).

    Returns:
        The new input, stripped. Out of step with what was seen (should not happen): the last field, the best
        guess.
    """
    if not seen:
        typed = history
    elif len(history) > seen and history[seen] == "*" and is_seen(history[:seen]):
        typed = history[seen + 1 :]
    else:
        typed = history.rsplit("*", 1)[-1]
    return typed.strip()


def chosen(typed: str, count: int) -> int | None:
    """The index (from 0) of the choice ``1`` .. ``count`` typed, or None when the input is no such number."""
    return int(typed) - 1 if typed.isdigit() and 1 <= int(typed) <= count else None


def paginate(items: list[T], render: Callable[[list[T]], str], most: int) -> list[list[T]]:
    """``items`` cut into pages of at most ``most`` that each fit on a screen as ``render(page)`` shows them (a
    single item too long for a screen gets a page of its own)."""
    pages: list[list[T]] = []
    current: list[T] = []
    for item in items:
        trial = [*current, item]
        if current and (len(trial) > most or not fits(render(trial))):
            pages.append(current)
            current = [item]
        else:
            current = trial
    if current:
        pages.append(current)
    return pages
