"""The worker process: RQ's SimpleWorker running each job inside a fresh Flask app context.

SimpleWorker runs jobs in the worker process itself (no fork per job): database pools, the onnxruntime session
and the Telegram client's event loop live once per process, as the channels and the model need.
"""

from __future__ import annotations

import importlib
import threading

from flask import Flask
from rq import SimpleWorker
from rq.serializers import JSONSerializer

from app.extensions import db, redis_client
from app.jobs import QUEUES, get_queue
from workers import schedule as periodic

# What the web process leaves to first use (the senders' SDKs, the photo stack): a worker loads it at start, so a
# broken install stops the worker there instead of failing jobs, and no job pays for the import.
PRELOADED = ("requests", "twilio.rest", "africastalking.SMS", "telegram.request", "numpy", "PIL.Image", "pillow_heif")


class AppWorker(SimpleWorker):
    """A SimpleWorker whose jobs each run in their own app context, with their own database session."""

    flask_app: Flask | None = None

    def execute_job(self, job, queue):
        with self.flask_app.app_context():
            try:
                return super().execute_job(job, queue)
            finally:
                db.session.remove()


def preload() -> None:
    """Import :data:`PRELOADED` (ImportError: the install is broken)."""
    for name in PRELOADED:
        importlib.import_module(name)


def _run_periodic(app: Flask, connection, stop: threading.Event) -> None:
    with app.app_context():  # enqueueing reads the app's Redis and queue settings
        periodic.run(connection, stop)


def run_worker(app: Flask, queue_names: tuple[str, ...] = QUEUES, *, burst: bool = False,
               with_scheduler: bool = True) -> bool:  # fmt: skip
    """Work the queues until stopped (SIGINT/SIGTERM: finish the current job, then exit).

    Args:
        app: the Flask app whose config and database the jobs use.
        queue_names: queues to serve, in priority order.
        burst: stop when the queues are empty (tests, one-off runs).
        with_scheduler: also run RQ's scheduler (delayed jobs and retries) and Thusa's periodic schedule.

    Returns:
        RQ's answer: whether any job was performed.
    """
    preload()
    with app.app_context():
        connection = redis_client.client
        queues = [get_queue(name) for name in queue_names]
    worker = AppWorker(queues, connection=connection, serializer=JSONSerializer)
    worker.flask_app = app
    stop = threading.Event()
    if with_scheduler and not burst:
        thread = threading.Thread(target=_run_periodic, args=(app, connection, stop), name="periodic", daemon=True)
        thread.start()
    try:
        return worker.work(burst=burst, with_scheduler=with_scheduler, logging_level=app.config["LOG_LEVEL"])
    finally:
        stop.set()
