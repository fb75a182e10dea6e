"""Marshmallow schemas: every request is validated and every response shaped here, never on the models."""
