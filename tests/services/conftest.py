"""Fixtures of the service tests: a skin model trained once per test process on a generated dataset."""

from __future__ import annotations

import time

import pytest

from app.services import skin_training
from app.services.skin_model import DEFAULT_MODEL_DIR
from tests.photos import texture_dataset

TRAINED_VERSION = "test-1"


@pytest.fixture(scope="session")
def trained_skin_model(tmp_path_factory) -> dict:
    """``skin_training.train`` on three synthetic textures (20 patients each; tests/photos.py ``texture_dataset``)
    with the real backbone: about 1.5 s, once per process (tests/services/test_skin_training.py checks it, the
    gate's tests sign it off or refuse it)."""
    folder = tmp_path_factory.mktemp("skin-training")
    patient_of = texture_dataset(folder / "data")
    started = time.perf_counter()
    messages: list[str] = []
    manifest = skin_training.train(folder / "data", folder / "model", DEFAULT_MODEL_DIR, version=TRAINED_VERSION,
                                   progress=messages.append)  # fmt: skip
    seconds = time.perf_counter() - started
    print(f"skin-model train on {len(patient_of)} photos: {seconds:.1f} s")
    return {"folder": folder, "data": folder / "data", "model": folder / "model", "manifest": manifest,
            "patient_of": patient_of, "seconds": seconds, "messages": messages}  # fmt: skip
