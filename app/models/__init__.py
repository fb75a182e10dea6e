"""SQLAlchemy 2.0 typed models, one module per domain area. Importing this package registers them all."""

from app.models.audit import AuditLog
from app.models.base import Base, utcnow
from app.models.clinic import Clinic
from app.models.message import Message
from app.models.user import PasswordResetCode, User

__all__ = ["AuditLog", "Base", "Clinic", "Message", "PasswordResetCode", "User", "utcnow"]
