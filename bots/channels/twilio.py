"""Placeholder: the twilio adapter is being written (issue 3)."""
