"""Skin consultations: chat linking, consultations, photo analysis, the formulary, triage guidelines.

Pharmacists see and change their own consultations, admins every one; the formulary and the guidelines are open
to every signed-in role. Photo uploads are multipart (file part ``image``): type, byte and pixel caps give a 4xx
here; a photo of poor quality is stored and the answer carries a ``retake`` request instead.
"""

from __future__ import annotations

from uuid import UUID

from flask.views import MethodView
from werkzeug.datastructures import MultiDict

from app.api.common import Blueprint, StrictParser, documents, requires
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
EVERYONE = ("admin", "staff", "viewer", "pharmacist")


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


chat_link_blp = SkinBlueprint("chat_link", __name__, url_prefix="/api/v1/auth",
                              description="Linking a pharmacist's Telegram or WhatsApp chat.")  # fmt: skip


@chat_link_blp.post("/chat-link")
@requires(chat_link_blp, *CONSULTING)
@chat_link_blp.response(201, ChatLinkSchema)
def chat_link():
    """A one-time chat link code.

    6 digits, valid 15 minutes: send ``/start CODE`` or ``/link CODE`` to the Telegram bot, ``LINK CODE`` on
    WhatsApp. A WhatsApp number equal to your phone links without a code.
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

    @requires(blp, *CONSULTING)
    @blp.arguments(ConsultationUploadSchema, location="files")
    @blp.response(201, ConsultationDetailSchema)
    @documents(blp, 413, 415)
    def post(self, data):
        """Start a consultation with a photo.

        Multipart: file part ``image`` (JPEG, PNG, HEIC/HEIF, WebP) and any answers as text parts. 415 for
        another type, 413 above the byte or pixel cap, 422 for an unreadable file; nothing is stored then. A
        photo that is too small, dark, bright or blurred is kept and ``retake`` asks for a better one. The
        analysis runs in the background; GET the consultation for the recommendation.
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
@requires(analysis_blp, *CONSULTING)
@analysis_blp.arguments(AnalysisUploadSchema, location="files")
@analysis_blp.response(202, AnalysisAcceptedSchema)
@documents(analysis_blp, 413, 415)
def analyse(data):
    """Analyse a photo.

    Multipart file part ``image``; answers 202 with the analysis id at once, the model runs in the background.
    Same caps and retake rules as ``POST /consultations``.
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
