"""Second opinions: pharmacists ask, clinicians answer from the review queue; photo links; the outcome report.

``POST /consultations/{id}/review-request``: a pharmacist for their own consultation (admins: any). ``/reviews``:
clinicians for the pharmacies they cover (admins: all); anyone else's review is a 404. ``/review-photos/{token}``:
a photo by the signed link ``GET /reviews/{id}`` gives, readable without a token until it expires. Every read and
write is audited (:mod:`app.services.reviews`).
"""

from __future__ import annotations

from uuid import UUID

from flask import Response, request
from flask.views import MethodView

from app.api.common import Blueprint, documents, requires
from app.schemas import examples as ex
from app.schemas.consultations import (
    OutcomeReportSchema,
    ReviewAnsweredSchema,
    ReviewAnswerSchema,
    ReviewDetailSchema,
    ReviewPageSchema,
    ReviewQuerySchema,
    ReviewRequestSchema,
    ReviewSchema,
)
from app.security import current_actor
from app.services import follow_ups, reviews

CONSULTING = ("pharmacist", "admin")
REVIEWING = ("clinician", "admin")

request_blp = Blueprint("review_requests", __name__, url_prefix="/api/v1/consultations",
                        description="Asking a clinician for a second opinion (pharmacists: their own).")  # fmt: skip


@request_blp.post("/<uuid:consultation_id>/review-request")
@requires(request_blp, *CONSULTING)
@request_blp.arguments(ReviewRequestSchema)
@request_blp.response(201, ReviewSchema)
@documents(request_blp, 404, 409)
def review_request(data, consultation_id: UUID):
    """Ask a clinician for a second opinion.

    The consultation must be triaged (409 ``not_triaged`` before). Asking again while a request is open adds the
    note to it (the same request answers, 201). Urgent requests have a 1-hour target, others 24 hours
    (``REVIEW_TARGET_MINUTES_URGENT``, ``REVIEW_TARGET_MINUTES``). The answer comes to the pharmacist's chat.
    """
    return reviews.request_review(current_actor(), consultation_id, data.get("note"))


blp = Blueprint("reviews", __name__, url_prefix="/api/v1/reviews",
                description="The clinicians' review queue (clinicians: the pharmacies they cover; admins: all).")  # fmt: skip


@blp.route("")
class Reviews(MethodView):
    @requires(blp, *REVIEWING)
    @blp.arguments(ReviewQuerySchema, location="query")
    @blp.response(200, ReviewPageSchema)
    def get(self, query):
        """The review queue.

        ``status`` open (default) or answered; ``level`` the rules' level. The most serious level first (urgent
        first), then the longest waiting; each with its waiting time against its target and ``overdue``.
        """
        return reviews.list_queue(current_actor(), **query)


@blp.route("/<uuid:review_id>")
class ReviewById(MethodView):
    @requires(blp, *REVIEWING)
    @blp.response(200, ReviewDetailSchema)
    @documents(blp, 404)
    def get(self, review_id: UUID):
        """One review: the consultation (answers, triage, analyses), earlier reviews, and the photos as signed links
        that expire (``REVIEW_PHOTO_URL_SECONDS``)."""
        return reviews.read(current_actor(), review_id)


@blp.post("/<uuid:review_id>/answer")
@requires(blp, *REVIEWING)
@blp.arguments(ReviewAnswerSchema)
@blp.response(200, ReviewAnsweredSchema)
@documents(blp, 404, 409)
def answer(data, review_id: UUID):
    """Answer a review.

    The answer (diagnosis, confidence, the level beside the rules' level, advice) goes to the pharmacist's chat once,
    in its language; answering again is a 409 ``already_answered`` and sends nothing.
    """
    return reviews.answer(current_actor(), review_id, data)


photos_blp = Blueprint("review_photos", __name__, url_prefix="/api/v1/review-photos",
                       description="Consultation photos by the signed links the review queue gives.")  # fmt: skip

_JPEG = {"image/jpeg": {"schema": {"type": "string", "format": "binary"}, "example": ex.REVIEW_PHOTO}}


@photos_blp.get("/<string:token>")
@photos_blp.doc(responses={"200": {"description": "The photo (a clean JPEG, no metadata).", "content": _JPEG}})
@documents(photos_blp, 404, 429)
def photo(token: str):
    """A consultation photo by its signed link (no token needed; the link expires).

    Any bad, expired or no longer authorised link is a 404.
    """
    data, content_type = reviews.read_photo(token, request.remote_addr)
    response = Response(data, mimetype=content_type)
    response.headers["Cache-Control"] = "private, no-store"
    return response


report_blp = Blueprint("outcome_reports", __name__, url_prefix="/api/v1/reports",
                       description="What became of the skin consultations.")  # fmt: skip


@report_blp.get("/outcomes")
@requires(report_blp, "admin", "clinician", "pharmacist")
@report_blp.response(200, OutcomeReportSchema)
def outcomes():
    """Follow-up outcomes by level and condition (clinicians: the pharmacies they cover; pharmacists: their own).

    How often advice at each level was followed by "worse": ``worse_rate``.
    """
    return follow_ups.outcomes_report(current_actor())


BLUEPRINTS = (request_blp, blp, photos_blp, report_blp)
