"""``fedssl export``: turn a saved encoder into a file a device runs without Python model code.

    fedssl export --encoder runs/hapt-simclr-…/encoder.pt --format onnx --out encoder.onnx
    fedssl export --encoder enc.pt --out enc.ts --check hapt     # parity on real windows

Two formats, both checked after writing by loading the file through the runtime a
device uses (``client.runtime.encoders``) and comparing embeddings with PyTorch:

- ``torchscript`` (``.ts``): ``torch.jit.freeze(torch.jit.script(encoder))`` (a trace
  if scripting fails); weights become constants and the graph is fused. For devices
  with libtorch. torch 2.13 marks ``torch.jit`` deprecated (its warnings are silenced
  here); it still works, but ONNX is the format to prefer.
- ``onnx`` (``.onnx``): opset 17 with a dynamic batch axis, through the TorchScript-based
  exporter (``dynamo=False``): the dynamo exporter needs ``onnxscript``, which fedssl
  does not depend on, and these conv nets export exactly either way.

Next to the model goes ``FILE.json`` (``client.runtime.manifest``): per-sample input
shape, embedding width, input/output names, source checksum and the measured parity.
Encoder files do not store the input shape; it comes from ``--input-shape``, the
encoder's metadata, the ``--check`` data or, last, the data set the encoder was trained
on (loaded once). Exit codes: 0 done; 2 bad input (not an encoder file, unknown format,
bad shape or data); 1 the export disagrees with PyTorch beyond ``--tolerance``.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import tempfile
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from client.runtime.manifest import ExportManifest, manifest_path, write_manifest
from common.atomic import atomic_write_bytes
from common.errors import EXIT_ERROR, EXIT_OK, BadInputError

FORMATS = {"torchscript": ".ts", "onnx": ".onnx"}
OPSET = 17
DEFAULT_TOLERANCE = 1e-4
PARITY_SAMPLES = 256


class ExportError(BadInputError):
    """The encoder cannot be exported as asked (not an encoder file, unknown format, shape)."""


class ParityError(ExportError):
    """The written export gives other embeddings than PyTorch (beyond the tolerance)."""

    exit_code = EXIT_ERROR  # the input was fine; the export is what failed


def resolve_format(fmt: str | None, out: Path) -> str:
    """``fmt`` if given, else the one ``out``'s suffix names; ExportError if neither works."""
    if fmt is None:
        by_suffix = {suffix: name for name, suffix in FORMATS.items()}
        if out.suffix not in by_suffix:
            raise ExportError(
                f"cannot tell the format from {out.name!r}; give --format "
                f"{' or '.join(FORMATS)} or an --out ending in {' or '.join(by_suffix)}"
            )
        return by_suffix[out.suffix]
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return fmt


def to_torchscript(encoder: Any, example: Any) -> bytes:
    """Frozen TorchScript bytes: scripted (keeps any Python control flow), else traced."""
    import torch

    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # see the module docstring
        try:
            scripted = torch.jit.script(encoder)
        except Exception:  # an encoder TorchScript cannot compile: tracing fixes its branches
            scripted = torch.jit.trace(encoder, example)
        frozen = torch.jit.freeze(scripted.eval())
        torch.jit.save(frozen, buf)
    return buf.getvalue()


def to_onnx(encoder: Any, example: Any, opset: int = OPSET) -> bytes:
    """ONNX bytes with input ``x`` (B, *shape) and output ``z`` (B, D), batch axis dynamic."""
    import torch

    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        # The legacy exporter warns that dynamo is the default now (see the module
        # docstring), and its tracer that GroupNorm's shape check becomes a constant,
        # which is right: the channel count is fixed, only the batch axis varies.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        path = Path(tmp) / "model.onnx"
        torch.onnx.export(
            encoder,
            (example,),
            str(path),
            input_names=["x"],
            output_names=["z"],
            dynamic_axes={"x": {0: "batch"}, "z": {0: "batch"}},
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )
        return path.read_bytes()


def check_parity(encoder: Any, exported_file: str | Path, inputs: np.ndarray) -> float:
    """Max absolute difference of embeddings: PyTorch ``encoder`` against the export.

    The export is loaded as a device loads it (``load_embedder``: TorchScript through
    ``torch.jit.load``, ONNX through an onnxruntime session), with one intra-op thread.
    """
    import torch

    from client.runtime.encoders import load_embedder
    from common.threads import set_torch_threads

    x = np.ascontiguousarray(inputs, dtype=np.float32)
    threads = set_torch_threads(None)  # the caller's count, restored below
    try:
        embedder = load_embedder(exported_file, input_shape=tuple(x.shape[1:]), threads=1)
        got = embedder.embed(x)
        with torch.inference_mode():
            want = encoder(torch.from_numpy(x)).numpy()
    finally:
        set_torch_threads(threads)
    if got.shape != want.shape:
        raise ParityError(f"{exported_file}: embeddings {got.shape}, PyTorch gives {want.shape}")
    return float(np.abs(got.astype(np.float64) - want).max())


def _versions(fmt: str) -> dict[str, str]:
    import torch

    versions = {"torch": str(torch.__version__)}
    if fmt == "onnx":
        import onnxruntime

        versions.update(onnxruntime=onnxruntime.__version__, opset=str(OPSET))
    return versions


def export_encoder(
    encoder_path: str | Path,
    fmt: str | None,
    out: str | Path,
    *,
    input_shape: tuple[int, ...] | None = None,
    check_inputs: np.ndarray | None = None,
    check_label: str = "",
    tolerance: float = DEFAULT_TOLERANCE,
) -> ExportManifest:
    """Export ``encoder_path`` to ``out`` (+ ``out.json``) and check parity; return the manifest.

    Parity is measured on ``check_inputs`` (real windows) or else 64 seeded standard
    normal samples; above ``tolerance`` ParityError is raised and ``out`` is left as it was.
    """
    out = Path(out)
    fmt = resolve_format(fmt, out)
    payload, encoder = _load(encoder_path)
    shape = _input_shape(payload, input_shape, check_inputs)
    if check_inputs is None:
        rng = np.random.default_rng(0)
        check_inputs = rng.standard_normal((64, *shape)).astype(np.float32)
        check_label = check_label or "64 standard normal samples (seed 0)"
    elif tuple(check_inputs.shape[1:]) != shape:
        raise ExportError(f"check inputs have samples {check_inputs.shape[1:]}, expected {shape}")
    data, out_dim = _convert(encoder, fmt, check_inputs, f"{encoder_path}", shape)
    manifest = ExportManifest(
        runtime=fmt,
        input_shape=shape,
        out_dim=out_dim,
        arch=str(payload["arch"]),
        hparams=dict(payload["hparams"]),
        source_sha256=str(payload.get("sha256", "")),
        model_sha256=hashlib.sha256(data).hexdigest(),
        meta=dict(payload.get("meta", {})),
        versions=_versions(fmt),
    )
    return _checked_write(encoder, data, manifest, out, check_inputs, check_label, tolerance)


def _load(encoder_path: str | Path) -> tuple[dict[str, Any], Any]:
    from common.serialize import CheckpointError, load_encoder, read_encoder_file

    try:
        return read_encoder_file(encoder_path), load_encoder(encoder_path)
    except CheckpointError as exc:
        raise ExportError(f"not an encoder file: {exc}") from None
    except (ValueError, RuntimeError, TypeError, KeyError) as exc:
        raise ExportError(f"{encoder_path}: cannot rebuild the encoder ({exc})") from None


def _convert(
    encoder: Any, fmt: str, inputs: np.ndarray, name: str, shape: tuple[int, ...]
) -> tuple[bytes, int]:
    """The exported model's bytes and the embedding width."""
    import torch

    example = torch.from_numpy(np.ascontiguousarray(inputs[:1], dtype=np.float32))
    try:
        with torch.inference_mode():
            out_dim = int(encoder(example).shape[-1])
        data = (
            to_torchscript(encoder, example) if fmt == "torchscript" else to_onnx(encoder, example)
        )
    except RuntimeError as exc:  # e.g. channels of the shape disagree with the weights
        raise ExportError(f"{name}: cannot run on samples of shape {shape} ({exc})") from None
    return data, out_dim


def _checked_write(
    encoder: Any,
    data: bytes,
    manifest: ExportManifest,
    out: Path,
    inputs: np.ndarray,
    label: str,
    tolerance: float,
) -> ExportManifest:
    """Write under a temporary name, check parity through the real runtime, then put it in
    place: a failed export never replaces a good one."""
    partial = out.with_name(f".{out.stem}.partial{out.suffix}")
    try:
        atomic_write_bytes(partial, data)
        write_manifest(partial, manifest)  # the runtime reads it while checking parity
        diff = check_parity(encoder, partial, inputs)
        if not diff <= tolerance:  # also catches NaN
            raise ParityError(
                f"{out}: {manifest.runtime} embeddings differ from PyTorch by {diff:.3g} > "
                f"{tolerance:g} on {label}; nothing was written"
            )
        manifest = replace(manifest, parity_max_abs=diff, parity_inputs=label)
        os.replace(partial, out)
        write_manifest(out, manifest)
    finally:
        partial.unlink(missing_ok=True)
        manifest_path(partial).unlink(missing_ok=True)
    return manifest


def _input_shape(
    payload: dict[str, Any], given: tuple[int, ...] | None, inputs: np.ndarray | None
) -> tuple[int, ...]:
    stored = payload.get("meta", {}).get("input_shape")
    if given is not None:
        shape = tuple(int(s) for s in given)
    elif stored:
        shape = tuple(int(s) for s in stored)
    elif inputs is not None:
        shape = tuple(int(s) for s in inputs.shape[1:])
    else:
        raise ExportError("the encoder file does not store its input shape; give input_shape")
    expected_rank = 3 if payload.get("arch") == "resnet2d" else 2
    if len(shape) != expected_rank or min(shape) < 1:
        raise ExportError(
            f"input shape {shape} does not fit a {payload.get('arch')} encoder "
            f"(expected {expected_rank} positive sizes, e.g. 6,128 for C,L)"
        )
    channels = payload.get("hparams", {}).get("in_channels")
    if channels is not None and shape[0] != int(channels):
        raise ExportError(f"input shape {shape}: the encoder takes {channels} channels")
    return shape


# ---- the sub-command ------------------------------------------------------------------


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--encoder", required=True, metavar="PATH", help="encoder file (encoder.pt)")
    p.add_argument(
        "--format",
        choices=sorted(FORMATS),
        default=None,
        help="torchscript or onnx (default: from the --out suffix, .ts or .onnx)",
    )
    p.add_argument(
        "--out",
        default="",
        metavar="FILE",
        help="exported file; FILE.json is written next to it (default: the encoder path "
        "with the format's suffix)",
    )
    p.add_argument(
        "--input-shape",
        default="",
        metavar="C,L",
        help="per-sample input shape, e.g. 6,128 (default: from the encoder or the data)",
    )
    p.add_argument(
        "--check",
        default="",
        metavar="DATA",
        help="measure parity on windows of this data set: hapt | digits | fmnist | npz:PATH "
        "(default: the encoder's own data set if its shape was needed, else random normal)",
    )
    p.add_argument(
        "--check-samples",
        type=int,
        default=PARITY_SAMPLES,
        help="windows used for the parity check (default: %(default)s)",
    )
    p.add_argument(
        "--tolerance",
        type=float,
        default=DEFAULT_TOLERANCE,
        help="largest accepted absolute embedding difference (default: %(default)s)",
    )


def _parse_shape(text: str) -> tuple[int, ...] | None:
    if not text.strip():
        return None
    try:
        return tuple(int(t) for t in text.replace("x", ",").split(",") if t.strip())
    except ValueError:
        raise ExportError(f"--input-shape {text!r}: expected sizes like 6,128") from None


def _sample_windows(spec: str, n: int) -> tuple[np.ndarray, str]:
    from common.data.registry import load_dataset

    ds = load_dataset(spec)
    idx = np.sort(np.random.default_rng(0).choice(len(ds), size=min(n, len(ds)), replace=False))
    return ds.x[idx], f"{len(idx)} windows of {spec} (seed 0)"


def run(args: argparse.Namespace) -> int:
    from common.serialize import CheckpointError, read_encoder_file

    path = Path(args.encoder).expanduser()
    # Bad input rises to the CLI (exit 2); a parity failure exits 1.
    if args.format is None and not args.out:
        raise ExportError("give --format torchscript or onnx, or an --out ending .ts or .onnx")
    fmt = resolve_format(args.format, Path(args.out))
    out = Path(args.out) if args.out else path.with_suffix(FORMATS[fmt])
    if out.is_dir():
        raise ExportError(f"--out {out} is a folder; give a file name such as encoder.onnx")
    if args.check_samples < 1 or not args.tolerance >= 0:
        raise ExportError("--check-samples must be >= 1 and --tolerance >= 0")
    shape = _parse_shape(args.input_shape)
    try:
        meta = read_encoder_file(path).get("meta", {})
    except CheckpointError as exc:
        raise ExportError(f"not an encoder file: {exc}") from None
    spec = args.check
    if not spec and shape is None and not meta.get("input_shape"):
        spec = str(meta.get("dataset", ""))  # the shape must come from the data
        if not spec:
            raise ExportError(f"{path} does not store its input shape; give --input-shape C,L")
    inputs, label = _sample_windows(spec, args.check_samples) if spec else (None, "")
    manifest = export_encoder(
        path,
        fmt,
        out,
        input_shape=shape,
        check_inputs=inputs,
        check_label=label,
        tolerance=args.tolerance,
    )
    print(
        f"exported {path} -> {out} ({fmt}; input (B, {', '.join(map(str, manifest.input_shape))}) "
        f"-> (B, {manifest.out_dim}); max |Δ| vs PyTorch {manifest.parity_max_abs:.2g} on "
        f"{manifest.parity_inputs})",
        flush=True,
    )
    return EXIT_OK
