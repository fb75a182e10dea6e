"""Proving the account's phone number: the code sent, the code entered."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import validate


class PhoneCodeSentSchema(ma.Schema):
    message = ma.fields.String(required=True)
    expires_at = ma.fields.AwareDateTime(required=True)


class PhoneConfirmSchema(ma.Schema):
    code = ma.fields.String(required=True, validate=validate.Regexp(r"^[0-9]{6}$", error="Six digits."))
