"""The JSON sidecar of an exported encoder: what a runtime needs without torch model code.

``fedssl export`` writes ``encoder.onnx`` and ``encoder.onnx.json`` side by side. The
sidecar names the runtime, the per-sample input shape, the embedding width and the
graph's input and output names, plus where the export came from (architecture,
hyper-parameters, the source file's checksum) and the parity measured at export time.
``model_sha256`` ties it to its model file: ``check_model`` refuses a sidecar that
describes another file (a model replaced without its sidecar).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from common.atomic import atomic_write_bytes
from common.errors import BadInputError

FORMAT = "fedssl-export/1"
RUNTIMES = ("torchscript", "onnx")


class ManifestError(BadInputError):
    """A sidecar is missing, unreadable or not a fedssl export manifest."""


@dataclass(frozen=True)
class ExportManifest:
    """Describes one exported encoder file; ``input_shape`` excludes the batch axis."""

    runtime: str
    input_shape: tuple[int, ...]
    out_dim: int
    input_name: str = "x"
    output_name: str = "z"
    arch: str = ""
    hparams: dict[str, Any] = field(default_factory=dict)
    source_sha256: str = ""
    model_sha256: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    parity_max_abs: float | None = None
    parity_inputs: str = ""
    versions: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps({"format": FORMAT, **asdict(self)}, indent=2) + "\n"


def manifest_path(model_path: str | Path) -> Path:
    """``encoder.onnx`` -> ``encoder.onnx.json``."""
    p = Path(model_path)
    return p.with_name(p.name + ".json")


def write_manifest(model_path: str | Path, manifest: ExportManifest) -> Path:
    path = manifest_path(model_path)
    atomic_write_bytes(path, manifest.to_json().encode())
    return path


def check_model(model_path: str | Path, manifest: ExportManifest) -> None:
    """ManifestError unless the model file is the one ``manifest`` was written for."""
    if not manifest.model_sha256:
        return
    digest = hashlib.sha256(Path(model_path).read_bytes()).hexdigest()
    if digest != manifest.model_sha256:
        raise ManifestError(
            f"{manifest_path(model_path)} describes another file than {Path(model_path).name} "
            "(checksum mismatch): re-export, or delete the stale sidecar"
        )


def read_manifest(model_path: str | Path) -> ExportManifest:
    """Read the sidecar of ``model_path``; ManifestError names the file and the problem."""
    path = manifest_path(model_path)
    if not path.is_file():
        raise ManifestError(f"{path}: no export manifest next to {Path(model_path).name}")
    try:
        raw = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(f"{path}: unreadable export manifest ({exc})") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise ManifestError(f"{path}: not a {FORMAT} manifest")
    try:
        shape = tuple(int(s) for s in raw["input_shape"])
        manifest = ExportManifest(
            runtime=str(raw["runtime"]),
            input_shape=shape,
            out_dim=int(raw["out_dim"]),
            input_name=str(raw.get("input_name", "x")),
            output_name=str(raw.get("output_name", "z")),
            arch=str(raw.get("arch", "")),
            hparams=dict(raw.get("hparams", {})),
            source_sha256=str(raw.get("source_sha256", "")),
            model_sha256=str(raw.get("model_sha256", "")),
            meta=dict(raw.get("meta", {})),
            parity_max_abs=raw.get("parity_max_abs"),
            parity_inputs=str(raw.get("parity_inputs", "")),
            versions=dict(raw.get("versions", {})),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ManifestError(f"{path}: malformed export manifest ({exc!r})") from None
    if manifest.runtime not in RUNTIMES or not shape or min(shape) < 1 or manifest.out_dim < 1:
        raise ManifestError(f"{path}: invalid runtime, input shape or output width")
    return manifest
