"""Skin photo models: ``default/`` is the shipped EfficientNet-Lite0 feature extractor (``build_backbone.py``, built
with torch at build time only); ``placeholder/`` is the 1.4 kB untrained classifier the test suite runs
(``build_placeholder.py``). A partner's trained head is made by ``flask skin-model train`` (docs/skin-model.md)."""
