"""Placeholder: the africastalking adapter is being written (issue 3)."""
