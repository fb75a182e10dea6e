"""Skin consultations: chat linking, consultations, photo analysis, the formulary, triage guidelines.

Pharmacists see and change their own consultations, admins every one; the formulary and the guidelines are open
to every signed-in role. Photo uploads are multipart (file part ``image``), ``UPLOAD_RATE_LIMIT`` per user across
both upload endpoints: type, byte, pixel and pixels-a-byte caps, read from the header, give a 4xx here; the photo
is decoded by the analysis job, never in the request, and a photo of poor quality gets a ``retake`` request there.
"""

from __future__ import annotations

from uuid import UUID

from flask import current_app
from flask.views import MethodView
from werkzeug.datastructures import MultiDict

from app.api.common import Blueprint, StrictParser, documents, requires
from app.extensions import limiter, rate_limit_key
from app.schemas.common import page_body
from app.schemas.consultations import (
    AnalysisAcceptedSchema,
    AnalysisSchema,
    AnalysisUploadSchema,
    ChatLinkSchema,
    ConsultationDetailSchema,
    ConsultationPageSchema,
    ConsultationQuerySchema,
    ConsultationUpdateSchema,
    ConsultationUploadSchema,
    GuidelineListSchema,
    GuidelineQuerySchema,
    MedicationPageSchema,
    MedicationQuerySchema,
    MedicationSchema,
    MedicationSearchSchema,
    QuestionListSchema,
)
from app.security import current_actor
from app.services import consultations, formulary, skin_questions

CONSULTING = ("pharmacist", "admin")
EVERYONE = ("admin", "staff", "viewer", "pharmacist", "clinician")


class MultipartParser(StrictParser):
    """The ``files`` location also carries the text parts of the multipart form, so one schema (one documented
    request body) holds the photo and the answers."""

    def load_files(self, req, schema):
        merged = MultiDict(req.form)
        merged.update(req.files)
        return self._makeproxy(merged, schema)


class SkinBlueprint(Blueprint):
    ARGUMENTS_PARSER = MultipartParser()


def _answers(data: dict) -> dict:
    return {name: value for name, value in data.items() if name != "image"}


def _upload_limit() -> str:
    return current_app.config["UPLOAD_RATE_LIMIT"]


# One budget per user (the access token's subject) for both photo endpoints, checked before the body is parsed.
per_user_uploads = limiter.shared_limit(_upload_limit, scope="photo-uploads", key_func=rate_limit_key)


chat_link_blp = SkinBlueprint("chat_link", __name__, url_prefix="/api/v1/auth",
                              description="Linking a pharmacist's Telegram or WhatsApp chat.")  # fmt: skip


@chat_link_blp.post("/chat-link")
@requires(chat_link_blp, *CONSULTING)
@chat_link_blp.response(201, ChatLinkSchema)
def chat_link():
    """A one-time chat link code.

    6 digits, valid 15 minutes: send ``/start CODE`` or ``/link CODE`` to the Telegram bot, ``LINK CODE`` on
    WhatsApp (5 wrong codes an hour per chat, then none). A WhatsApp number equal to your proven phone links without
    a code (``POST /api/v1/auth/phone/verify``), unless a patient with appointments has that number.
    """
    return consultations.create_chat_link(current_actor())


blp = SkinBlueprint("consultations", __name__, url_prefix="/api/v1/consultations",
                    description="Skin consultations (pharmacists: their own; admins: all).")  # fmt: skip


@blp.route("")
class Consultations(MethodView):
    @requires(blp, *CONSULTING)
    @blp.arguments(ConsultationQuerySchema, location="query")
    @blp.response(200, ConsultationPageSchema)
    def get(self, query):
        """List consultations, newest first (pharmacists: their own)."""
        return page_body(consultations.list_consultations(current_actor(), **query))

    @per_user_uploads
    @requires(blp, *CONSULTING)
    @blp.arguments(ConsultationUploadSchema, location="files")
    @blp.response(201, ConsultationDetailSchema)
    @documents(blp, 413, 415)
    def post(self, data):
        """Start a consultation with a photo.

        Multipart: file part ``image`` (JPEG, PNG, HEIC/HEIF, WebP) and any answers as text parts. Checked from its
        header only: 415 for another type; 413 above the byte or pixel cap, or with more pixels a byte than a photo
        has (``too_compressed``: a decompression bomb); 422 for an unreadable header. Nothing is stored then. Its
        metadata (EXIF with GPS, XMP, ICC, comments) is removed before it is stored; the photo is ``pending`` until
        the analysis job decodes it. GET the consultation for the result: the photo ``stored`` (a photo too small,
        dark, bright or blurred gets a ``retake`` request) or ``rejected`` with its ``error_code`` (e.g.
        ``too_large_to_decode``, ``unreadable``), the analyses and the recommendation. ``UPLOAD_RATE_LIMIT`` uploads
        a user (default 10 a minute, with ``POST /analysis/skin``), then 429.
        """
        actor = current_actor()
        consultation, _, _ = consultations.create_from_upload(actor, data["image"].read(), _answers(data))
        return consultations.detail(consultation, actor)


@blp.route("/<uuid:consultation_id>")
class ConsultationById(MethodView):
    @requires(blp, *CONSULTING)
    @blp.response(200, ConsultationDetailSchema)
    @documents(blp, 404)
    def get(self, consultation_id: UUID):
        """One consultation, with its photos' facts, analyses and recommendation."""
        return consultations.read(current_actor(), consultation_id)

    @requires(blp, *CONSULTING)
    @blp.arguments(ConsultationUpdateSchema)
    @blp.response(200, ConsultationDetailSchema)
    @documents(blp, 404)
    def put(self, data, consultation_id: UUID):
        """Change answers.

        Only the fields sent; an analysed consultation is triaged again (its recommendation is replaced).
        """
        return consultations.update_consultation(current_actor(), consultation_id, data)


analysis_blp = SkinBlueprint("analysis", __name__, url_prefix="/api/v1/analysis",
                             description="Photo analysis (pharmacists: their own; admins: all).")  # fmt: skip


@analysis_blp.post("/skin")
@per_user_uploads
@requires(analysis_blp, *CONSULTING)
@analysis_blp.arguments(AnalysisUploadSchema, location="files")
@analysis_blp.response(202, AnalysisAcceptedSchema)
@documents(analysis_blp, 413, 415)
def analyse(data):
    """Analyse a photo.

    Multipart file part ``image``; answers 202 with the analysis id at once: the photo is decoded and the model runs
    in the background (poll ``GET /analysis/{id}``: ``queued``, then ``completed``, or ``failed`` with the photo's
    ``error_code``). Same header checks, metadata removal and upload limit as ``POST /consultations``.
    """
    actor = current_actor()
    consultation, image, analysis = consultations.create_from_upload(actor, data["image"].read(), {},
                                                                     with_analysis=True)  # fmt: skip
    return {"id": analysis.id, "consultation_id": consultation.id, "status": analysis.status,
            "retake": consultations.retake_request([image])}  # fmt: skip


@analysis_blp.get("/<uuid:analysis_id>")
@requires(analysis_blp, *CONSULTING)
@analysis_blp.response(200, AnalysisSchema)
@documents(analysis_blp, 404)
def analysis(analysis_id: UUID):
    """One analysis: model, version, quality, timings; labels only once the model is validated (admins: always)."""
    return consultations.read_analysis(current_actor(), analysis_id)


medications_blp = SkinBlueprint("medications", __name__, url_prefix="/api/v1/medications",
                                description="The dermatology formulary.")  # fmt: skip


@medications_blp.get("")
@requires(medications_blp, *EVERYONE)
@medications_blp.arguments(MedicationQuerySchema, location="query")
@medications_blp.response(200, MedicationPageSchema)
def medications(query):
    """List the formulary by name (``availability``: otc, pharmacist or prescription)."""
    formulary.ensure_seeded()
    return page_body(formulary.list_medications(**query))


@medications_blp.get("/search")
@requires(medications_blp, *EVERYONE)
@medications_blp.arguments(MedicationSearchSchema, location="query")
@medications_blp.response(200, MedicationPageSchema)
def search(query):
    """Search by name, generic name or indication (case-insensitive)."""
    formulary.ensure_seeded()
    return page_body(formulary.search(**query))


@medications_blp.get("/<uuid:medication_id>")
@requires(medications_blp, *EVERYONE)
@medications_blp.response(200, MedicationSchema)
@documents(medications_blp, 404)
def medication(medication_id: UUID):
    """One medication."""
    return formulary.read(medication_id)


triage_blp = SkinBlueprint("triage", __name__, url_prefix="/api/v1/triage",
                           description="The triage rules (app/clinical/triage_rules.toml).")  # fmt: skip


@triage_blp.get("/guidelines")
@requires(triage_blp, *EVERYONE)
@triage_blp.arguments(GuidelineQuerySchema, location="query")
@triage_blp.response(200, GuidelineListSchema)
def guidelines(query):
    """The triage guidelines: each condition's base level and every rule, with sources, evidence and effects.

    Levels: self_care < pharmacy < clinic (within 3 days) < clinic_today (a clinician today) < urgent (hospital
    now). ``evidence`` U means unverified (docs/clinical.md lists what a Ghanaian pharmacist must confirm).
    """
    return {"items": consultations.guidelines(**query)}


@triage_blp.get("/questions")
@requires(triage_blp, *EVERYONE)
@triage_blp.response(200, QuestionListSchema)
def questions():
    """The triage questions in the order the chat asks them, with their options and texts in English and Setswana.

    A partner builds its form from this: each ``id`` is a consultation's answer field. ``multi`` (the red-flag
    screen, ``red_flags``) takes a list of values; ``[]`` means none of these, leaving it out means not asked.
    """
    return {"items": skin_questions.catalogue()}


BLUEPRINTS = (chat_link_blp, blp, analysis_blp, medications_blp, triage_blp)
