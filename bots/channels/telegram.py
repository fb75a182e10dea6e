"""Placeholder: the telegram adapter is being written (issue 3)."""
