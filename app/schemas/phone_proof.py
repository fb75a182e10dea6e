"""Proving the account's phone number: the code sent, the code entered."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import validate


class PhoneCodeSentSchema(ma.Schema):
    class Meta:
        example = {
            "message": "A 6-digit code is on its way by SMS to +26771000001.",
            "expires_at": "2026-12-06T07:52:10+00:00",
        }

    message = ma.fields.String(required=True)
    expires_at = ma.fields.AwareDateTime(required=True)


class PhoneConfirmSchema(ma.Schema):
    class Meta:
        example = {"code": "482913"}

    code = ma.fields.String(required=True, validate=validate.Regexp(r"^[0-9]{6}$", error="Six digits."))
