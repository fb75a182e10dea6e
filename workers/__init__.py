"""Background jobs: thin functions that RQ runs by dotted name inside the app context (``workers.runner``).

Each job takes ids, opens what it needs and calls a service or the sender; the logic lives in ``app/`` and
``bots/``. Queue names and the way to enqueue are in :mod:`app.jobs`, below every layer that enqueues.
"""
