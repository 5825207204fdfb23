"""One ``Embedder`` interface over the three ways a device can run the global encoder.

``load_embedder(path)`` picks the runtime from the file:

- ``*.onnx``: ONNX Runtime (needs numpy and onnxruntime only, no torch);
- ``*.ts``, or any file whose export manifest (``client.runtime.manifest``) says
  ``torchscript``: a frozen TorchScript module;
- anything else: a fedssl encoder file (``encoder.pt``, a round checkpoint), run eagerly.

Every embedder maps float32 windows ``(B, C, L)`` or one window ``(C, L)`` (images:
``(B, C, H, W)`` / ``(C, H, W)``) to float32 embeddings ``(B, D)``, and refuses a
wrong shape or a NaN/Inf with ``EmbedError`` instead of returning garbage. They run on
one thread by default: a decision loop owns one core and must not spin up a pool per
window (on a busy 2-core machine multi-threaded small forwards are slower, not faster).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from client.runtime.manifest import (
    ExportManifest,
    ManifestError,
    check_model,
    manifest_path,
    read_manifest,
)
from common.errors import BadInputError
from common.threads import set_torch_threads

if TYPE_CHECKING:
    import torch

# Larger inputs are embedded in chunks so that a whole data set does not hold every
# intermediate activation at once.
CHUNK = 512


class EmbedError(BadInputError):
    """An input the encoder cannot embed (wrong shape, NaN/Inf), or a file it cannot load."""


class Embedder(Protocol):
    """What a device loop needs from an encoder, whatever runs it.

    ``input_shape`` is the per-sample shape; -1 marks an axis of any size (an eager
    1D CNN pools globally, so it takes any window length).
    """

    kind: str
    input_shape: tuple[int, ...]
    out_dim: int

    def embed(self, x: np.ndarray) -> np.ndarray: ...


def sample_shape_matches(got: tuple[int, ...], want: tuple[int, ...]) -> bool:
    """``got`` fits ``want``, where a -1 in ``want`` accepts any length."""
    return len(got) == len(want) and all(w in (-1, g) for g, w in zip(got, want, strict=True))


def as_batch(x: np.ndarray, input_shape: tuple[int, ...]) -> np.ndarray:
    """``x`` as a C-contiguous float32 batch of ``input_shape`` samples; EmbedError if not."""
    arr = np.asarray(x, dtype=np.float32)
    if arr.ndim == len(input_shape):
        arr = arr[None]
    if arr.ndim != len(input_shape) + 1:
        raise EmbedError(
            f"expected one sample of shape {input_shape} or a batch (B, *{input_shape}), "
            f"got shape {np.shape(x)}"
        )
    if not sample_shape_matches(arr.shape[1:], input_shape):
        raise EmbedError(
            f"expected samples of shape {input_shape}, got {tuple(arr.shape[1:])} "
            f"(batch shape {np.shape(x)})"
        )
    if arr.shape[0] == 0:
        raise EmbedError("empty batch: nothing to embed")
    if not np.isfinite(arr).all():
        raise EmbedError("input holds NaN or Inf values")
    return np.ascontiguousarray(arr)


class TorchEmbedder:
    """An eager ``nn.Module`` or a TorchScript module, run under ``torch.inference_mode``."""

    def __init__(
        self, module: Any, input_shape: tuple[int, ...], out_dim: int, kind: str = "eager"
    ) -> None:
        import torch

        self._torch = torch
        self.module = module
        self.kind = kind
        self.input_shape = tuple(int(s) for s in input_shape)
        self.out_dim = int(out_dim)

    def embed(self, x: np.ndarray) -> np.ndarray:
        batch = as_batch(x, self.input_shape)
        torch = self._torch
        with torch.inference_mode():
            if len(batch) <= CHUNK:
                return self._forward(torch.from_numpy(batch))
            parts = [
                self._forward(torch.from_numpy(batch[i : i + CHUNK]))
                for i in range(0, len(batch), CHUNK)
            ]
        return np.concatenate(parts)

    def _forward(self, t: torch.Tensor) -> np.ndarray:
        out = self.module(t)
        return out.numpy()


class OnnxEmbedder:
    """An ONNX Runtime session with a single-threaded, fully optimized, sequential plan."""

    def __init__(self, path: str | Path, threads: int = 1) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
        # No spinning: a decision loop waits for the next window between calls, and a
        # spinning worker would burn the core the rest of the device needs.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise EmbedError(f"{path}: not a loadable ONNX model ({exc})") from None
        inp, out = self.session.get_inputs()[0], self.session.get_outputs()[0]
        self.kind = "onnx"
        self.path = Path(path)
        self.input_name, self.output_name = inp.name, out.name
        # Symbolic dims (the batch axis, any dynamic axis) come back as strings.
        self.input_shape = tuple(d if isinstance(d, int) else -1 for d in inp.shape[1:])
        last = out.shape[-1]
        self.out_dim = int(last) if isinstance(last, int) else -1
        self._outputs = [self.output_name]

    def embed(self, x: np.ndarray) -> np.ndarray:
        batch = as_batch(x, self.input_shape)
        run = self.session.run
        if len(batch) <= CHUNK:
            out = run(self._outputs, {self.input_name: batch})[0]
            return np.asarray(out)
        parts = [
            run(self._outputs, {self.input_name: batch[i : i + CHUNK]})[0]
            for i in range(0, len(batch), CHUNK)
        ]
        return np.concatenate(parts)


def _torchscript(
    path: Path,
    manifest: ExportManifest | None,
    input_shape: tuple[int, ...] | None,
    threads: int | None,
) -> Any:
    import torch

    set_torch_threads(threads)
    if manifest is None and input_shape is None:
        raise EmbedError(
            f"{path}: a TorchScript export needs its manifest {manifest_path(path).name} "
            "(written by fedssl export) or an explicit input_shape"
        )
    module: Any
    try:
        with warnings.catch_warnings():  # torch.jit is deprecated in torch 2.13 (still works)
            warnings.simplefilter("ignore", DeprecationWarning)
            module = torch.jit.load(str(path), map_location="cpu").eval()
    except Exception as exc:  # torch raises RuntimeError or ValueError variants
        raise EmbedError(f"{path}: not a loadable TorchScript file ({exc})") from None
    if manifest is not None:
        return TorchEmbedder(module, manifest.input_shape, manifest.out_dim, kind="torchscript")
    assert input_shape is not None
    with torch.inference_mode():  # one zero sample tells the embedding width
        out_dim = int(module(torch.zeros(1, *input_shape)).shape[-1])
    return TorchEmbedder(module, input_shape, out_dim, kind="torchscript")


def _eager(path: Path, input_shape: tuple[int, ...] | None, threads: int | None) -> Any:
    from common.serialize import CheckpointError, load_encoder, read_encoder_file

    set_torch_threads(threads)
    try:
        encoder = load_encoder(path)
        payload = read_encoder_file(path)
    except CheckpointError as exc:
        raise EmbedError(str(exc)) from None
    if input_shape is None:
        stored = payload.get("meta", {}).get("input_shape")
        if stored:
            input_shape = tuple(int(s) for s in stored)
        else:  # the encoders pool globally: fix the channels, leave the extent free
            channels = int(payload["hparams"].get("in_channels", -1))
            ndim = 3 if payload["arch"] == "resnet2d" else 2
            input_shape = (channels,) + (-1,) * (ndim - 1)
    out_dim: Any = encoder.out_dim  # every fedssl encoder exposes its feature width
    return TorchEmbedder(encoder, input_shape, int(out_dim), kind="eager")


def load_embedder(
    path: str | Path, *, input_shape: tuple[int, ...] | None = None, threads: int | None = 1
) -> Embedder:
    """Load an encoder file as an Embedder (see the module docstring for the formats).

    ``threads`` sets the intra-op threads (torch's are process-wide); None leaves them.
    ``input_shape`` gives the per-sample shape where the file does not carry it (an
    eager encoder file, a TorchScript file without its manifest); exports ignore it.
    """
    path = Path(path)
    if not path.is_file():
        raise EmbedError(f"{path}: no such encoder file")
    manifest: ExportManifest | None = None
    if manifest_path(path).is_file():
        try:
            manifest = read_manifest(path)
            check_model(path, manifest)
        except ManifestError as exc:
            raise EmbedError(str(exc)) from None
    runtime = manifest.runtime if manifest else None
    if runtime == "onnx" or (runtime is None and path.suffix == ".onnx"):
        emb = OnnxEmbedder(path, threads=threads or 1)
        if manifest is not None and emb.input_shape != manifest.input_shape:
            raise EmbedError(f"{path}: graph input {emb.input_shape} disagrees with its manifest")
        return emb
    if runtime == "torchscript" or path.suffix == ".ts":
        return _torchscript(path, manifest, input_shape, threads)
    return _eager(path, input_shape, threads)
