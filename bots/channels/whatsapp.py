"""Placeholder: the whatsapp adapter is being written (issue 3)."""
