"""The encoders ``fedssl device`` compares on one stream: the given encoder (through its
ONNX export by default, or eager), and with ``--baselines`` a random-init encoder of the
same architecture and raw per-channel statistics."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.errors import BadInputError

log = logging.getLogger("fedssl")


class DeviceCliError(BadInputError):
    """An option or file the device replay cannot use."""


@dataclass
class Arm:
    """One way of embedding the stream: a name and a runtime factory."""

    name: str
    make: Callable[[int, Any], Any]  # (n_actions, RuntimeConfig) -> DeviceRuntime
    description: str


def _encoder_info(path: Path) -> tuple[str, dict[str, Any]]:
    """Architecture and hyper-parameters from an encoder file or an export's manifest."""
    from client.runtime.manifest import ManifestError, manifest_path, read_manifest
    from common.serialize import CheckpointError, read_encoder_file

    if manifest_path(path).is_file():
        try:
            m = read_manifest(path)
        except ManifestError as exc:
            raise DeviceCliError(str(exc)) from None
        return m.arch, dict(m.hparams)
    try:
        payload = read_encoder_file(path)
    except CheckpointError as exc:
        raise DeviceCliError(f"--encoder: {exc}") from None
    return str(payload["arch"]), dict(payload["hparams"])


def _is_export(path: Path) -> bool:
    from client.runtime.manifest import manifest_path

    return path.suffix in (".onnx", ".ts") or manifest_path(path).is_file()


def _encoder_arm(
    name: str, pt: Path, shape: tuple[int, ...], runtime: str, models: Path, desc: str
) -> Arm:
    """An arm for an encoder file: through its ONNX export (written once) or eager."""
    from client.runtime.device_loop import DeviceRuntime

    if runtime == "eager":
        # the file tells its input shape (or its channels): the stream is checked against it
        return Arm(name, lambda n, cfg: DeviceRuntime.load(pt, n, cfg), desc)
    from client.export import ExportError, export_encoder

    onnx = models / f"{name}.onnx"
    try:
        manifest = export_encoder(pt, "onnx", onnx, input_shape=shape)
    except ExportError as exc:
        raise DeviceCliError(str(exc)) from None
    log.info("%s: exported %s -> %s (max |Δ| %.2g)", name, pt, onnx, manifest.parity_max_abs)
    return Arm(
        name,
        lambda n, cfg: DeviceRuntime.load(onnx, n, cfg, torch_encoder_path=pt),
        desc + " (ONNX)",
    )


def build_arms(args: argparse.Namespace, shape: tuple[int, ...], models: Path) -> list[Arm]:
    from client.runtime.device_loop import DeviceRuntime
    from client.runtime.raw import RawFeatures

    path = Path(args.encoder).expanduser()
    if not path.is_file():
        raise DeviceCliError(f"--encoder {path}: no such file")
    torch_pt = Path(args.torch_encoder).expanduser() if args.torch_encoder else None
    if torch_pt is not None and not torch_pt.is_file():
        raise DeviceCliError(f"--torch-encoder {torch_pt}: no such file")
    arch, hparams = _encoder_info(path)
    channels = hparams.get("in_channels")
    if channels is not None and int(channels) != shape[0]:
        raise DeviceCliError(
            f"the stream's windows have shape {shape}, but {path.name} takes {channels} channels"
        )
    models.mkdir(parents=True, exist_ok=True)
    if _is_export(path):
        arms = [
            Arm(
                "federated",
                lambda n, cfg: DeviceRuntime.load(path, n, cfg, torch_encoder_path=torch_pt),
                f"{path}",
            )
        ]
    else:
        arms = [_encoder_arm("federated", path, shape, args.runtime, models, str(path))]
    if not args.baselines:
        return arms
    import torch

    from common.models.registry import build_encoder
    from common.serialize import save_encoder

    torch.manual_seed(args.seed)
    rnd = models / "random-init.pt"
    save_encoder(rnd, build_encoder(arch, **hparams), arch, hparams, {"input_shape": list(shape)})
    runtime = "onnx" if _is_export(path) and path.suffix == ".onnx" else args.runtime
    if _is_export(path) and path.suffix == ".ts":
        runtime = "eager"
    arms.append(
        _encoder_arm(
            "random-init", rnd, shape, runtime, models, f"{arch} at random init, seed {args.seed}"
        )
    )
    arms.append(
        Arm(
            "raw",
            lambda n, cfg: DeviceRuntime(RawFeatures(shape), n, cfg),
            "per-channel statistics",
        )
    )
    return arms
