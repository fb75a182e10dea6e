"""Users and authentication payloads."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from app.models.user import ROLES, SITE_TYPES
from app.schemas import examples as ex
from app.schemas.common import PaginationQuery, PhoneNumber, language_field, page_of, trimmed
from app.services import reviews
from app.services.passwords import MAX_LENGTH, MIN_LENGTH


def Password(**kwargs) -> ma.fields.String:  # noqa: N802 (reads like the other field classes)
    """A write-only password; the policy itself is checked by the service, which knows the email too."""
    return ma.fields.String(
        load_only=True,
        validate=validate.Length(min=MIN_LENGTH, max=MAX_LENGTH),
        metadata={"description": f"{MIN_LENGTH} to {MAX_LENGTH} characters, not a common password"},
        **kwargs,
    )


def _site_type(**kwargs) -> ma.fields.String:
    return ma.fields.String(
        validate=validate.OneOf(SITE_TYPES),
        allow_none=True,
        metadata={
            "description": "pharmacists only: pharmacy (classes B and C) or otc_seller (an OTC medicine "
            "seller: class C only); a pharmacist without one is a pharmacy"
        },
        **kwargs,
    )


class UserSchema(ma.Schema):
    class Meta:
        example = ex.STAFF_ACCOUNT

    id = ma.fields.UUID(dump_only=True)
    email = ma.fields.Email(required=True)
    name = ma.fields.String()
    phone = ma.fields.String(allow_none=True)
    role = ma.fields.String(validate=validate.OneOf(ROLES))
    clinic_id = ma.fields.UUID(allow_none=True)
    pharmacy_name = ma.fields.String(allow_none=True)
    site_type = ma.fields.String(allow_none=True, metadata={"description": "pharmacist: pharmacy or otc_seller"})
    language = ma.fields.String()
    active = ma.fields.Boolean()
    phone_verified = ma.fields.Function(
        lambda user: bool(user.phone) and user.phone_verified_at is not None, dump_only=True,
        metadata={"description": "the phone is proven (a code sent to it was entered, or an admin set it)"},
    )  # fmt: skip
    phone_verified_at = ma.fields.AwareDateTime(dump_only=True, allow_none=True)
    created_at = ma.fields.AwareDateTime(dump_only=True)
    updated_at = ma.fields.AwareDateTime(dump_only=True)
    last_login_at = ma.fields.AwareDateTime(dump_only=True, allow_none=True)
    all_pharmacies = ma.fields.Boolean(dump_only=True, metadata={"description": "clinician: covers every pharmacy"})
    pharmacist_ids = ma.fields.Function(
        lambda user: reviews.pharmacies_of(user),
        dump_only=True,
        metadata={"description": "clinician: the pharmacist accounts covered"},
    )


class UserCreateSchema(ma.Schema):
    class Meta:
        example = {
            "email": "kagiso.seretse@thusa.example",
            "password": "Mogwebo-wa-2026-Gaborone",
            "role": "staff",
            "name": "Kagiso Seretse",
            "phone": "+26771234567",
            "clinic_id": ex.GABORONE_CLINIC,
            "language": "tn",
        }

    email = ma.fields.Email(required=True, validate=validate.Length(max=254))
    password = Password(required=True)
    role = ma.fields.String(required=True, validate=validate.OneOf(ROLES))
    name = trimmed(200, min_length=0, load_default="")
    phone = PhoneNumber(allow_none=True, load_default=None)
    clinic_id = ma.fields.UUID(
        allow_none=True, load_default=None, metadata={"description": "required for staff, viewer"}
    )
    pharmacy_name = trimmed(
        200, allow_none=True, load_default=None, metadata={"description": "required for pharmacist"}
    )
    site_type = _site_type(load_default=None)
    language = language_field(load_default="en")
    all_pharmacies = ma.fields.Boolean(load_default=False, metadata={"description": "clinician: covers every pharmacy"})
    pharmacist_ids = ma.fields.List(
        ma.fields.UUID(),
        load_default=None,
        validate=validate.Length(max=500),
        metadata={"description": "clinician: the pharmacist accounts (pharmacies) whose consultations they review"},
    )


class UserUpdateSchema(ma.Schema):
    """Every field optional; only those sent change."""

    class Meta:
        example = {"name": "Kagiso Seretse", "phone": "+26771234568", "language": "en"}

    email = ma.fields.Email(validate=validate.Length(max=254))
    password = Password()
    role = ma.fields.String(validate=validate.OneOf(ROLES))
    name = trimmed(200, min_length=0)
    phone = PhoneNumber(allow_none=True)
    clinic_id = ma.fields.UUID(allow_none=True)
    pharmacy_name = trimmed(200, allow_none=True)
    site_type = _site_type()
    language = language_field()
    active = ma.fields.Boolean()
    all_pharmacies = ma.fields.Boolean(metadata={"description": "clinician: covers every pharmacy"})
    pharmacist_ids = ma.fields.List(
        ma.fields.UUID(),
        validate=validate.Length(max=500),
        metadata={"description": "clinician: replaces the pharmacies covered"},
    )


class UserQuerySchema(PaginationQuery):
    role = ma.fields.String(validate=validate.OneOf(ROLES))
    clinic_id = ma.fields.UUID()
    active = ma.fields.Boolean()
    email = ma.fields.String(validate=validate.Length(max=254), metadata={"description": "exact email"})


UserPageSchema = page_of(UserSchema, "UserPage")


class RegisterSchema(ma.Schema):
    """Self-registration, for pharmacists only."""

    class Meta:
        example = {
            "name": "Ama Mensah",
            "email": "ama.mensah@makola-pharmacy.example",
            "phone": ex.GH_PATIENT_PHONE,
            "password": "Kente-Sunrise-Makola-2026",
            "pharmacy_name": "Makola Pharmacy",
            "site_type": "pharmacy",
            "language": "en",
        }

    name = trimmed(200, required=True)
    email = ma.fields.Email(required=True, validate=validate.Length(max=254))
    phone = PhoneNumber(required=True)
    password = Password(required=True)
    pharmacy_name = trimmed(200, required=True)
    site_type = _site_type(load_default="pharmacy")
    language = language_field(load_default="en")


class LoginSchema(ma.Schema):
    class Meta:
        example = {"email": "staff@thusa.example", "password": "thusa-staff-demo"}

    email = ma.fields.String(required=True, validate=validate.Length(min=1, max=254))
    password = ma.fields.String(required=True, load_only=True, validate=validate.Length(min=1, max=MAX_LENGTH))


class TokenPairSchema(ma.Schema):
    class Meta:
        example = {
            "access_token": ex.ACCESS_TOKEN,
            "refresh_token": ex.REFRESH_TOKEN,
            "token_type": "Bearer",
            "expires_in": 900,
            "user": ex.STAFF_ACCOUNT,
        }

    access_token = ma.fields.String(required=True)
    refresh_token = ma.fields.String(required=True)
    token_type = ma.fields.String(required=True, metadata={"example": "Bearer"})
    expires_in = ma.fields.Integer(required=True, metadata={"description": "access token lifetime, seconds"})
    user = ma.fields.Nested(UserSchema, required=True)


class PasswordResetSchema(ma.Schema):
    class Meta:
        example = {"email": "staff@thusa.example"}

    email = ma.fields.String(required=True, validate=validate.Length(min=1, max=254))


class PasswordResetConfirmSchema(ma.Schema):
    class Meta:
        example = {"email": "staff@thusa.example", "code": "482913", "password": "Pula-Gaborone-Letsatsi-77"}

    email = ma.fields.String(required=True, validate=validate.Length(min=1, max=254))
    code = ma.fields.String(required=True, validate=validate.Regexp(r"^[0-9]{6}$", error="Six digits."))
    password = Password(required=True)


class AcceptedSchema(ma.Schema):
    class Meta:
        example = {"message": "If the account exists and has a proven phone, a reset code is on its way by SMS."}

    message = ma.fields.String(required=True)
