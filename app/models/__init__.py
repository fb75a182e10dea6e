"""SQLAlchemy 2.0 typed models, one module per domain area. Importing this package registers them all."""

from app.models.appointment import Appointment, AppointmentSeries, Patient, PatientRecord, TracingOutcome
from app.models.audit import AuditLog
from app.models.base import Base, new_id, utcnow
from app.models.clinic import Clinic

# Skin consultations.
from app.models.consultation import (
    Analysis,
    ChatLinkCode,
    Consultation,
    ConsultationImage,
    Medication,
    Recommendation,
    SkinModelValidation,
    TriageGuideline,
)
from app.models.contact import Contact, Conversation
from app.models.message_log import Message, MessageEvent
from app.models.notice import ClinicNotice
from app.models.phone_proof import PhoneProofCode
from app.models.review import ReviewRequest

# Clinic stock.
from app.models.stock import StockItem, StockMovement
from app.models.user import ClinicianPharmacy, PasswordResetCode, TokenFamily, User

__all__ = [
    "Appointment", "AuditLog", "Base", "Clinic", "Contact", "Conversation", "Message", "MessageEvent",
    "PasswordResetCode", "Patient", "PatientRecord", "TokenFamily", "User", "new_id", "utcnow",
    # Skin consultations.
    "Analysis", "ChatLinkCode", "Consultation", "ConsultationImage", "Medication", "Recommendation", "TriageGuideline",
    "SkinModelValidation",  # the skin model's clinical sign-off
    "StockItem", "StockMovement",  # clinic stock
    "PhoneProofCode",  # proven phone numbers
    "AppointmentSeries", "ClinicNotice", "TracingOutcome",  # missed visits, series, notices
    "ClinicianPharmacy", "ReviewRequest",  # second opinions
]  # fmt: skip
