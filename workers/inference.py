"""The analysis job: a consultation id in, the pipeline of :mod:`app.services.skin_analysis` run on it.

The job hands the pipeline the channel adapters' download (``bots.channels.fetch_media``), which the service
layer cannot import; a download that can never succeed becomes :class:`~app.services.skin_analysis.PhotoUnavailable`.
"""

from __future__ import annotations

from flask import current_app

from app.models import ConsultationImage
from app.services import skin_analysis
from bots.channels import MediaError, fetch_media


def analyse_consultation(consultation_id: str) -> str:
    """Analyse one consultation and queue its reply; ``done``, ``already done`` or ``not found``.

    Raises:
        bots.channels.MediaError: a retryable download failure (RQ retries the job; stored photos are kept).
    """
    return skin_analysis.analyse_consultation(consultation_id, fetch=_fetch)


def _fetch(image: ConsultationImage) -> bytes:
    try:
        data, _content_type = fetch_media(image.provider or "", image.media or {}, current_app.config)
    except MediaError as exc:
        if exc.retryable:
            raise
        raise skin_analysis.PhotoUnavailable(exc.__class__.__name__) from exc
    return data


def sweep() -> int:
    """Enqueue again the consultations whose analysis was lost; returns how many."""
    return skin_analysis.requeue_stale()
