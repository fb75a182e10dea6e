"""Schemas of skin consultations, analyses, the formulary and the triage guidelines."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import validate
from werkzeug.datastructures import FileStorage

from app.models.consultation import AVAILABILITIES, LEVELS, OUTCOMES, STATUSES
from app.models.review import CONFIDENCES, REVIEW_OPEN, REVIEW_STATUSES
from app.schemas import examples as ex
from app.schemas.common import PaginationQuery, TrimmedString, page_of
from app.services import triage

_AGE_GROUPS = tuple(triage.rules().age_groups)


class ImageFile(ma.fields.Field):
    """A multipart file part (not a text field)."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, FileStorage):
            raise ma.ValidationError("Must be a file (multipart file part).")
        return value


def _choice(values, description: str) -> ma.fields.String:
    return ma.fields.String(validate=validate.OneOf(values), allow_none=True, metadata={"description": description})


def _yes_no(description: str) -> ma.fields.Boolean:
    return ma.fields.Boolean(allow_none=True, metadata={"description": description})


class RedFlags(ma.fields.List):
    """The red-flag screen: a list of ids; ``[]`` means "none of these", absent (or ``null``) means "not asked".

    In a multipart form, repeat the part (``red_flags=numb_patch`` twice ...) or send one part with the ids separated
    by commas or spaces; one empty part means ``[]``.
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(ma.fields.String(validate=validate.OneOf(triage.RED_FLAGS)), allow_none=True, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list | tuple) and all(isinstance(item, str) for item in value):
            value = [word for item in value for word in item.replace(",", " ").split()]
        result = super()._deserialize(value, attr, data, **kwargs)
        if len(set(result)) != len(result):
            raise ma.ValidationError("Each red flag at most once.")
        return result


class AnswersSchema(ma.Schema):
    """The triage answers; each optional (unanswered questions never count as "no")."""

    class Meta:
        unknown = ma.RAISE

    condition = _choice(triage.CONDITIONS, "the pharmacist's working impression")
    age_group = _choice(_AGE_GROUPS, "age group (under_2m, m2_to_3, ... y60_plus)")
    sex = _choice(("female", "male"), "female or male")
    pregnant = _yes_no("pregnant or could be")
    body_site = _choice(triage.BODY_SITES, "where it is (the most serious place)")
    duration = _choice(triage.DURATIONS, "how long it has been there")
    itch = _yes_no("itches")
    pain = _yes_no("painful")
    spreading = _yes_no("redness or swelling spreading fast")
    fever = _yes_no("fever")
    blisters = _choice(triage.BLISTERS, "blisters or peeling")
    mole_change = _yes_no("a changing, bleeding or oozing mole")
    open_sore = _choice(triage.OPEN_SORE, "an open sore and for how long")
    treatment_failed = _yes_no("treated for 2 weeks or more without getting better")
    red_flags = RedFlags(metadata={"description": "the red-flag screen: ids ticked (" + ", ".join(triage.RED_FLAGS)
                                   + "); [] none of these; absent or null: not asked"})  # fmt: skip


_CONSENT = (
    "the patient agreed that the photos may be used to improve the service (default false); only "
    "consented photos with a clinician-confirmed diagnosis are ever exported"
)


class ConsultationUploadSchema(AnswersSchema):
    """Multipart form: the photo (file part ``image``) and any answers as text parts."""

    photo_consent = ma.fields.Boolean(allow_none=True, metadata={"description": _CONSENT})

    class Meta:
        example = {**ex.ANSWERS, "image": "(the photo: a JPEG, PNG, HEIC/HEIF or WebP file part)"}

    image = ImageFile(required=True, metadata={"type": "string", "format": "binary",
                                               "description": "JPEG, PNG, HEIC/HEIF or WebP photo"})  # fmt: skip


class AnalysisUploadSchema(ma.Schema):
    class Meta:
        example = {"image": "(the photo: a JPEG, PNG, HEIC/HEIF or WebP file part)"}
        unknown = ma.RAISE

    image = ImageFile(required=True, metadata={"type": "string", "format": "binary",
                                               "description": "JPEG, PNG, HEIC/HEIF or WebP photo"})  # fmt: skip


class ConsultationUpdateSchema(AnswersSchema):
    photo_consent = ma.fields.Boolean(allow_none=True, metadata={"description": _CONSENT})

    class Meta:
        example = {"itch": True, "duration": "w2_to_6", "red_flags": []}


class ConsultationQuerySchema(PaginationQuery):
    status = ma.fields.String(validate=validate.OneOf(STATUSES))


class ImageSchema(ma.Schema):
    id = ma.fields.UUID(required=True)
    position = ma.fields.Integer(required=True)
    status = ma.fields.String(required=True, metadata={"description": "pending (not processed yet: an upload is "
                                                                     "decoded by the analysis job), stored or "
                                                                     "rejected (see error_code)"})  # fmt: skip
    content_type = ma.fields.String(allow_none=True)
    width = ma.fields.Integer(allow_none=True)
    height = ma.fields.Integer(allow_none=True)
    source_format = ma.fields.String(allow_none=True)
    source_bytes = ma.fields.Integer(allow_none=True)
    stored_bytes = ma.fields.Integer(allow_none=True)
    ssim = ma.fields.Float(allow_none=True)
    quality_ok = ma.fields.Boolean(allow_none=True)
    quality_problems = ma.fields.List(ma.fields.String())
    error_code = ma.fields.String(allow_none=True, metadata={"description": "why a rejected photo was refused by "
                                                                            "the job, e.g. too_large_to_decode, "
                                                                            "unreadable"})  # fmt: skip


class AnalysisSchema(ma.Schema):
    class Meta:
        example = ex.ANALYSIS_ANSWER

    id = ma.fields.UUID(required=True)
    consultation_id = ma.fields.UUID(required=True)
    image_id = ma.fields.UUID(required=True)
    status = ma.fields.String(required=True)
    model_name = ma.fields.String(allow_none=True)
    model_version = ma.fields.String(allow_none=True)
    model_validated = ma.fields.Boolean(allow_none=True, metadata={"description": "a clinical sign-off was "
                                                                    "recorded for this model file"})  # fmt: skip
    model_sha256 = ma.fields.String(allow_none=True, metadata={"description": "checksum of the model file"})
    top = ma.fields.List(ma.fields.Tuple((ma.fields.String(), ma.fields.Float())),
                         metadata={"description": "top-3 labels; empty for non-admins while the model is not "
                                                  "validated for clinical use, and for a feature extractor"})  # fmt: skip
    output = ma.fields.Dict(allow_none=True, metadata={"description": "a feature extractor's summary of its "
                                                       "features (kind, size, mean, max, l2, nonzero)"})  # fmt: skip
    quality = ma.fields.Dict()
    timings_ms = ma.fields.Dict()
    error_code = ma.fields.String(allow_none=True, metadata={"description": "a failed analysis: model_error, or "
                                                                            "the code its photo was refused with "
                                                                            "(too_large_to_decode, unreadable ...)"})  # fmt: skip
    created_at = ma.fields.DateTime()
    updated_at = ma.fields.DateTime()


class RecommendationSchema(ma.Schema):
    id = ma.fields.UUID(required=True)
    level = ma.fields.String(required=True, validate=validate.OneOf(LEVELS),
                             metadata={"description": "self_care < pharmacy < clinic (within 3 days) < clinic_today "
                                                      "(a clinician today) < urgent (hospital now)"})  # fmt: skip
    rule_ids = ma.fields.List(ma.fields.String())
    reasons = ma.fields.List(ma.fields.String(), metadata={"description": "catalog keys"})
    medication_ids = ma.fields.List(ma.fields.String())
    advice = ma.fields.String(metadata={"description": "the reply text as sent"})
    created_at = ma.fields.DateTime()


class RetakeSchema(ma.Schema):
    problems = ma.fields.List(ma.fields.String(), required=True)
    message = ma.fields.String(required=True)


class ConsultationSchema(ma.Schema):
    class Meta:
        example = ex.CONSULTATION_ANSWER

    id = ma.fields.UUID(required=True)
    user_id = ma.fields.UUID(required=True)
    channel = ma.fields.String(required=True)
    status = ma.fields.String(required=True)
    condition = ma.fields.String(allow_none=True)
    age_group = ma.fields.String(allow_none=True)
    sex = ma.fields.String(allow_none=True)
    pregnant = ma.fields.Boolean(allow_none=True)
    body_site = ma.fields.String(allow_none=True)
    duration = ma.fields.String(allow_none=True)
    itch = ma.fields.Boolean(allow_none=True)
    pain = ma.fields.Boolean(allow_none=True)
    spreading = ma.fields.Boolean(allow_none=True)
    fever = ma.fields.Boolean(allow_none=True)
    blisters = ma.fields.String(allow_none=True)
    mole_change = ma.fields.Boolean(allow_none=True)
    open_sore = ma.fields.String(allow_none=True)
    treatment_failed = ma.fields.Boolean(allow_none=True)
    red_flags = ma.fields.List(ma.fields.String(), allow_none=True,
                               metadata={"description": "ids ticked; [] none of these; null: not asked"})  # fmt: skip
    created_at = ma.fields.DateTime()
    updated_at = ma.fields.DateTime()
    completed_at = ma.fields.DateTime(allow_none=True)


class ConsultationDetailSchema(ConsultationSchema):
    class Meta:
        example = ex.CONSULTATION_DETAIL

    images = ma.fields.List(ma.fields.Nested(ImageSchema))
    analyses = ma.fields.List(ma.fields.Nested(AnalysisSchema))
    recommendation = ma.fields.Nested(RecommendationSchema, allow_none=True)
    retake = ma.fields.Nested(RetakeSchema, allow_none=True,
                              metadata={"description": "set when the photo should be taken again"})  # fmt: skip
    photo_consent = ma.fields.Boolean(metadata={"description": _CONSENT})
    follow_up_at = ma.fields.DateTime(allow_none=True, metadata={"description": "when the check-in is due (chat)"})
    follow_up_sent_at = ma.fields.DateTime(allow_none=True)
    outcome = ma.fields.String(
        allow_none=True,
        validate=validate.OneOf(OUTCOMES),
        metadata={"description": "the check-in's answer: better, same, worse or clinic"},
    )
    outcome_at = ma.fields.DateTime(allow_none=True)
    reopened_at = ma.fields.DateTime(allow_none=True, metadata={"description": "the check-in said worse"})
    reviews = ma.fields.List(ma.fields.Nested("ReviewSchema"), metadata={"description": "second opinions"})


class ReviewRequestSchema(ma.Schema):
    class Meta:
        example = {"note": ex.REVIEW_NOTE}
        unknown = ma.RAISE

    note = ma.fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.Length(max=500),
        metadata={"description": "a note for the clinician (appended to an open request)"},
    )


class ReviewSchema(ma.Schema):
    class Meta:
        example = ex.REVIEW_ANSWER

    id = ma.fields.UUID(required=True)
    consultation_id = ma.fields.UUID(required=True)
    status = ma.fields.String(required=True, validate=validate.OneOf(REVIEW_STATUSES))
    reason = ma.fields.String(
        required=True, metadata={"description": "requested, level (clinic_today or urgent: queued on its own) or worse"}
    )
    rules_level = ma.fields.String(required=True, metadata={"description": "the triage rules' level"})
    level = ma.fields.String(allow_none=True, metadata={"description": "the clinician's level, once answered"})
    level_change = ma.fields.String(allow_none=True, metadata={"description": "raised, lowered or same"})
    condition = ma.fields.String(allow_none=True, metadata={"description": "the pharmacist's impression"})
    note = ma.fields.String(allow_none=True)
    pharmacy_name = ma.fields.String(allow_none=True)
    requested_at = ma.fields.DateTime(required=True)
    due_at = ma.fields.DateTime(required=True)
    waiting_minutes = ma.fields.Integer(required=True, metadata={"description": "until now, or until answered"})
    target_minutes = ma.fields.Integer(required=True)
    overdue = ma.fields.Boolean(required=True)
    answered_at = ma.fields.DateTime(allow_none=True)
    answered_by = ma.fields.UUID(allow_none=True)
    diagnosis = ma.fields.String(allow_none=True)
    icd10 = ma.fields.String(allow_none=True)
    advice = ma.fields.String(allow_none=True)
    confidence = ma.fields.String(allow_none=True)


class ReviewAnsweredSchema(ReviewSchema):
    class Meta:
        example = ex.REVIEW_ANSWERED

    sent = ma.fields.Boolean(
        required=True,
        metadata={"description": "queued to the pharmacist's chat (false: no linked chat; read through the API)"},
    )


class ReviewPhotoSchema(ma.Schema):
    image_id = ma.fields.UUID(required=True)
    position = ma.fields.Integer(required=True)
    url = ma.fields.String(required=True, metadata={"description": "a signed link, readable without a token"})
    expires_in = ma.fields.Integer(required=True, metadata={"description": "seconds the link is valid"})


class ReviewDetailSchema(ReviewSchema):
    class Meta:
        example = ex.REVIEW_DETAIL

    consultation = ma.fields.Nested(ConsultationDetailSchema, required=True)
    photos = ma.fields.List(ma.fields.Nested(ReviewPhotoSchema), required=True)
    history = ma.fields.List(
        ma.fields.Nested(ReviewSchema), required=True, metadata={"description": "the consultation's other reviews"}
    )


class ReviewQuerySchema(PaginationQuery):
    status = ma.fields.String(load_default=REVIEW_OPEN, validate=validate.OneOf(REVIEW_STATUSES))
    level = ma.fields.String(validate=validate.OneOf(LEVELS), metadata={"description": "the rules' level"})


ReviewPageSchema = page_of(ReviewSchema, "ReviewPage")

ICD10 = r"^[A-Z][0-9]{2}(\.[0-9A-Z]{1,4})?$"
# The answer message stays within a chat message body (1,024 characters) in both languages at these lengths.
DIAGNOSIS_MAX, ADVICE_MAX = 160, 600


class ReviewAnswerSchema(ma.Schema):
    class Meta:
        example = ex.REVIEW_ANSWER_REQUEST
        unknown = ma.RAISE

    # trimmed before the length check: white space alone is no diagnosis or advice to send to the pharmacist
    diagnosis = TrimmedString(
        required=True,
        validate=validate.Length(min=1, max=DIAGNOSIS_MAX),
        metadata={"description": "a condition id (GET /triage/guidelines: fungal, eczema ...; not_skin) or free text"},
    )
    icd10 = ma.fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.Regexp(ICD10, error="An ICD-10 code such as L30.9."),
        metadata={"example": "L30.9"},
    )
    level = ma.fields.String(
        required=True,
        validate=validate.OneOf(LEVELS),
        metadata={"description": "the clinician's level (may raise or lower the rules' level)"},
    )
    advice = TrimmedString(
        required=True,
        validate=validate.Length(min=1, max=ADVICE_MAX),
        metadata={"description": "sent to the pharmacist's chat as written"},
    )
    confidence = ma.fields.String(required=True, validate=validate.OneOf(CONFIDENCES))


class OutcomeRowSchema(ma.Schema):
    level = ma.fields.String(
        required=True, metadata={"description": "the clinician's level if answered, else the rules'"}
    )
    condition = ma.fields.String(required=True)
    consultations = ma.fields.Integer(required=True, metadata={"description": "with a check-in sent"})
    answered = ma.fields.Integer(required=True)
    better = ma.fields.Integer(required=True)
    same = ma.fields.Integer(required=True)
    worse = ma.fields.Integer(required=True)
    clinic = ma.fields.Integer(required=True)
    worse_rate = ma.fields.Float(allow_none=True, metadata={"description": "worse / answered"})


class OutcomeReportSchema(ma.Schema):
    class Meta:
        example = ex.OUTCOME_REPORT

    items = ma.fields.List(ma.fields.Nested(OutcomeRowSchema), required=True)


ConsultationPageSchema = page_of(ConsultationSchema, "ConsultationPage")


class AnalysisAcceptedSchema(ma.Schema):
    class Meta:
        example = {"id": ex.ANALYSIS, "consultation_id": ex.CONSULTATION, "status": "queued", "retake": None}

    id = ma.fields.UUID(required=True, metadata={"description": "the analysis id (GET /api/v1/analysis/{id})"})
    consultation_id = ma.fields.UUID(required=True)
    status = ma.fields.String(required=True)
    retake = ma.fields.Nested(RetakeSchema, allow_none=True,
                              metadata={"description": "always null here: the photo is decoded by the analysis job; "
                                                       "GET the consultation for its retake request"})  # fmt: skip


class MedicationSchema(ma.Schema):
    class Meta:
        example = ex.MEDICATION_ANSWER

    id = ma.fields.UUID(required=True)
    code = ma.fields.String(required=True)
    name = ma.fields.String(required=True)
    generic_name = ma.fields.String(required=True)
    form = ma.fields.String(required=True)
    strength = ma.fields.String(required=True)
    availability = ma.fields.String(required=True, metadata={"description": "otc, pharmacist or prescription"})
    ghana_class = ma.fields.String(required=True, metadata={"description": "Pharmacy Council class; unknown until "
                                                                           "confirmed"})  # fmt: skip
    eml_level = ma.fields.String(allow_none=True)
    indications = ma.fields.List(ma.fields.String())
    indication_text = ma.fields.String()
    contraindications = ma.fields.Dict()
    pregnancy_ok = ma.fields.Boolean()
    min_age_months = ma.fields.Integer(allow_none=True)
    dose_guidance = ma.fields.String()
    sources = ma.fields.List(ma.fields.String())
    verified = ma.fields.Boolean()


MedicationPageSchema = page_of(MedicationSchema, "MedicationPage")


class MedicationQuerySchema(PaginationQuery):
    availability = ma.fields.String(validate=validate.OneOf(AVAILABILITIES))


class MedicationSearchSchema(PaginationQuery):
    q = ma.fields.String(required=True, validate=validate.Length(min=1, max=100),
                         metadata={"description": "name, generic name or indication (case-insensitive)", "example": "clotrimazole"})  # fmt: skip


class GuidelineSchema(ma.Schema):
    code = ma.fields.String(required=True)
    kind = ma.fields.String(required=True, metadata={"description": "red_flag or condition"})
    title = ma.fields.String(required=True)
    conditions = ma.fields.List(ma.fields.String())
    when = ma.fields.Dict()
    level = ma.fields.String(required=True)
    reasons = ma.fields.List(ma.fields.String())
    sources = ma.fields.List(ma.fields.String())
    evidence = ma.fields.String(metadata={"description": "P, S or U as docs/clinical-facts.md labels it"})
    verified = ma.fields.Boolean()
    effects = ma.fields.Dict(metadata={"description": "withhold: medicine groups never offered when it fires; "
                                                      "advice: catalog keys of lines the reply carries"})  # fmt: skip


class GuidelineQuerySchema(ma.Schema):
    kind = ma.fields.String(validate=validate.OneOf(("red_flag", "condition")))
    level = ma.fields.String(validate=validate.OneOf(LEVELS))


class GuidelineListSchema(ma.Schema):
    class Meta:
        example = ex.GUIDELINES

    items = ma.fields.List(ma.fields.Nested(GuidelineSchema), required=True)


class LanguageTextSchema(ma.Schema):
    en = ma.fields.String(required=True)
    tn = ma.fields.String(required=True, metadata={"description": "Setswana, not yet reviewed by a native speaker"})


class QuestionOptionSchema(ma.Schema):
    value = ma.fields.Raw(required=True, metadata={"description": "what to send: a string, or true / false"})
    label = ma.fields.Nested(LanguageTextSchema, required=True)
    description = ma.fields.Nested(LanguageTextSchema, metadata={"description": "multi: the sign in full"})


class QuestionSchema(ma.Schema):
    id = ma.fields.String(required=True, metadata={"description": "the answer field of a consultation"})
    number = ma.fields.Integer(required=True)
    kind = ma.fields.String(required=True, metadata={"description": "choice, yes_no or multi (a list of values)"})
    text = ma.fields.Nested(LanguageTextSchema, required=True)
    options = ma.fields.List(ma.fields.Nested(QuestionOptionSchema), required=True)
    asked_when = ma.fields.Dict(allow_none=True, metadata={"description": "age limits in months, when only some "
                                                                          "patients are asked"})  # fmt: skip
    none_value = ma.fields.List(ma.fields.String(), metadata={"description": "multi: the answer 'none of these'"})


class QuestionListSchema(ma.Schema):
    class Meta:
        example = ex.QUESTIONS

    items = ma.fields.List(ma.fields.Nested(QuestionSchema), required=True)


class ChatLinkSchema(ma.Schema):
    class Meta:
        example = {"code": "305817", "expires_at": "2026-12-06T10:27:00+00:00"}

    code = ma.fields.String(required=True, metadata={"description": "6 digits; send /link CODE (Telegram) or "
                                                                     "LINK CODE (WhatsApp)"})  # fmt: skip
    expires_at = ma.fields.DateTime(required=True)
