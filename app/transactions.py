"""Run side effects (enqueueing jobs) only after the database transaction that justifies them has committed.

A job enqueued before commit could run before its row exists, or for a row that is then rolled back; so callers
register callbacks here and they run on commit, and are dropped on rollback. :func:`transaction_memo` keeps what
was read under a transaction's locks for later in the same transaction, and forgets it when the transaction ends.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import event
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)
_KEY = "thusa_after_commit"
_MEMO = "thusa_transaction_memo"


def after_commit(session: Session, callback: Callable[[], None]) -> None:
    """Call ``callback`` once ``session``'s current transaction commits; forget it if it rolls back."""
    session.info.setdefault(_KEY, []).append(callback)


def transaction_memo(session: Session) -> dict:
    """A dict for ``session``'s current transaction, emptied when it commits or rolls back: what one step of a
    request read under the transaction's row locks, for a later step of the same request (a USSD hop's contact and
    session state, read before the hop is stored and used when it is handled)."""
    return session.info.setdefault(_MEMO, {})


@event.listens_for(Session, "after_commit")
def _run_callbacks(session: Session) -> None:
    if session.in_nested_transaction():  # a SAVEPOINT was released; the real commit is still to come
        return
    session.info.pop(_MEMO, None)
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
        session.info.pop(_MEMO, None)
