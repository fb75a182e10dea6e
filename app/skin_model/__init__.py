"""Skin photo models: ``default/`` is the small model the repository ships (see ``build_default.py``)."""
