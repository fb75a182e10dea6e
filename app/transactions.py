"""Run side effects (enqueueing jobs) only after the database transaction that justifies them has committed.

A job enqueued before commit could run before its row exists, or for a row that is then rolled back; so callers
register callbacks here and they run on commit, and are dropped on rollback.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import event
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)
_KEY = "thusa_after_commit"


def after_commit(session: Session, callback: Callable[[], None]) -> None:
    """Call ``callback`` once ``session``'s current transaction commits; forget it if it rolls back."""
    session.info.setdefault(_KEY, []).append(callback)


@event.listens_for(Session, "after_commit")
def _run_callbacks(session: Session) -> None:
    if session.in_nested_transaction():  # a SAVEPOINT was released; the real commit is still to come
        return
    callbacks = session.info.pop(_KEY, [])
    for callback in callbacks:
        try:
            callback()
        except Exception:
            # The row is committed; the periodic sweeper will enqueue it again, so nothing is lost.
            log.warning("post-commit callback failed; the sweeper will retry", exc_info=True)


@event.listens_for(Session, "after_soft_rollback")
def _drop_callbacks(session: Session, previous_transaction) -> None:
    if not previous_transaction.nested:  # the outermost transaction, not a savepoint
        session.info.pop(_KEY, None)
