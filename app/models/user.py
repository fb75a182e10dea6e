"""People who sign in: admins, clinic staff, viewers, pharmacists and clinicians."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Integer, String, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import Base, Timestamps, UUIDPrimaryKey, utcnow
from app.models.clinic import LANGUAGES, Clinic

ROLE_ADMIN = "admin"  # everything, every clinic
ROLE_STAFF = "staff"  # reads and writes their own clinic's data
ROLE_VIEWER = "viewer"  # reads their own clinic's data
ROLE_PHARMACIST = "pharmacist"  # their own consultations and the medication catalogue
# Second opinions on skin consultations: the review queue and the consultations of the pharmacies they cover (the
# pharmacist accounts listed in clinician_pharmacies, or every one with all_pharmacies). Admin-created only.
ROLE_CLINICIAN = "clinician"
ROLES = (ROLE_ADMIN, ROLE_STAFF, ROLE_VIEWER, ROLE_PHARMACIST, ROLE_CLINICIAN)
CLINIC_ROLES = (ROLE_STAFF, ROLE_VIEWER)
# Where a pharmacist account works (Pharmacy Council of Ghana): a pharmacy supplies classes B and C; an OTC medicine
# seller (formerly licensed chemical seller) class C only. Only pharmacist accounts have one.
SITE_PHARMACY = "pharmacy"
SITE_OTC_SELLER = "otc_seller"
SITE_TYPES = (SITE_PHARMACY, SITE_OTC_SELLER)


class User(UUIDPrimaryKey, Timestamps, Base):
    """An account. Never deleted: deactivated, so the audit log keeps its actor."""

    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint(f"role IN {ROLES}", name="role"),
        CheckConstraint(f"language IN {LANGUAGES}", name="language"),
        CheckConstraint(f"role NOT IN {CLINIC_ROLES} OR clinic_id IS NOT NULL", name="clinic_for_clinic_roles"),
        CheckConstraint(f"role != '{ROLE_PHARMACIST}' OR pharmacy_name IS NOT NULL", name="pharmacy_for_pharmacist"),
        CheckConstraint(f"site_type IS NULL OR site_type IN {SITE_TYPES}", name="site_type"),
    )

    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    phone: Mapped[str | None] = mapped_column(String(16), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    clinic_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("clinics.id", ondelete="RESTRICT"), index=True)
    pharmacy_name: Mapped[str | None] = mapped_column(String(200))
    # A pharmacist's site (SITE_TYPES); None for other roles (and treated as a pharmacy for an older account).
    site_type: Mapped[str | None] = mapped_column(String(16))
    language: Mapped[str] = mapped_column(String(2), default="en")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Tokens issued before this instant are refused (set when the password changes).
    password_changed_at: Mapped[datetime | None] = mapped_column()
    last_login_at: Mapped[datetime | None] = mapped_column()
    # Staff USSD menu: the 4-digit PIN's argon2 hash; wrong tries in a row, and the lock they cause.
    pin_hash: Mapped[str | None] = mapped_column(String(255))
    pin_failed_attempts: Mapped[int] = mapped_column(Integer, default=0)
    pin_locked_until: Mapped[datetime | None] = mapped_column()
    # The phone is proven since this instant (a code sent to it was entered, or an admin set it), and by whom (the
    # user themself, or the admin; None: the command line or the migration). Only a proven phone links chats by
    # itself, gets password reset codes and opens the staff USSD menu. Changing the phone clears it. No foreign key
    # on phone_verified_by: adding one on SQLite rebuilds the users table, which every other table points to.
    phone_verified_at: Mapped[datetime | None] = mapped_column()
    phone_verified_by: Mapped[uuid.UUID | None] = mapped_column()
    # A clinician who covers every pharmacy (else only those in clinician_pharmacies). False for other roles.
    all_pharmacies: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    clinic: Mapped[Clinic | None] = relationship(lazy="joined")


class PasswordResetCode(UUIDPrimaryKey, Base):
    """A 6-digit code sent by SMS; only its HMAC is stored. Spent on use, expiry or too many wrong tries."""

    __tablename__ = "password_reset_codes"

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column()
    expires_at: Mapped[datetime] = mapped_column()
    used_at: Mapped[datetime | None] = mapped_column()


class TokenFamily(UUIDPrimaryKey, Base):
    """A live sign-in: every access and refresh token descended from one login by refresh carries its id (the
    ``fam`` claim), and a token whose family has no row here is refused. Signing out (or a refresh token used
    twice) deletes the row: revocation is in the database, so no Redis wipe or restart can bring a token back.

    ``generation`` counts the refresh tokens spent so far; the one refresh token still valid carries it (the ``gen``
    claim). Spending one moves it on in one conditional UPDATE, so a refresh token used twice finds it moved.
    A row may also go once ``expires_at`` (its last refresh token's expiry) is past.
    """

    __tablename__ = "token_families"

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    generation: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()


class ClinicianPharmacy(UUIDPrimaryKey, Base):
    """A pharmacy (a pharmacist account) whose consultations a clinician reviews."""

    __tablename__ = "clinician_pharmacies"
    __table_args__ = (UniqueConstraint("clinician_id", "pharmacist_id"),)

    clinician_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    pharmacist_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
