"""Exports give the embeddings PyTorch gives, through the runtime a device uses, or are refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import client.export as export
from client.export import ExportError, ParityError, check_parity, export_encoder, resolve_format
from client.runtime.encoders import load_embedder
from client.runtime.manifest import manifest_path, read_manifest
from common.cli import main
from common.data.registry import load_dataset
from common.models.registry import build_encoder, default_arch_for
from common.serialize import load_encoder, save_encoder

SHAPE = (6, 128)


def _save(path: Path, seed: int, meta: dict | None = None) -> Path:
    torch.manual_seed(seed)
    arch, hparams = default_arch_for(SHAPE)
    save_encoder(path, build_encoder(arch, **hparams), arch, hparams, meta)
    return path


@pytest.fixture(scope="module")
def encoder_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _save(tmp_path_factory.mktemp("enc") / "encoder.pt", 0, {"dataset": "hapt"})


@pytest.fixture(scope="module")
def hapt_windows() -> np.ndarray:
    """64 real HAPT windows from several users and activities (seeded)."""
    ds = load_dataset("hapt")
    idx = np.sort(np.random.default_rng(0).choice(len(ds), size=64, replace=False))
    return ds.x[idx]


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_export_matches_pytorch_on_real_windows(
    fmt: str, encoder_file: Path, hapt_windows: np.ndarray, tmp_path: Path
) -> None:
    out = tmp_path / f"enc{export.FORMATS[fmt]}"
    manifest = export_encoder(encoder_file, fmt, out, check_inputs=hapt_windows, check_label="hapt")
    assert manifest.parity_max_abs is not None and manifest.parity_max_abs <= 1e-5
    encoder = load_encoder(encoder_file)
    assert check_parity(encoder, out, hapt_windows) <= 1e-5
    # The batch axis is dynamic: one window, an odd batch and a larger one all agree.
    embedder = load_embedder(out)
    with torch.inference_mode():
        want = encoder(torch.from_numpy(hapt_windows)).numpy()
    for n in (1, 7, 64):
        np.testing.assert_allclose(embedder.embed(hapt_windows[:n]), want[:n], atol=1e-5, rtol=0)
    np.testing.assert_allclose(embedder.embed(hapt_windows[3]), want[3:4], atol=1e-5, rtol=0)


def test_parity_check_can_fail(encoder_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "enc.onnx"
    export_encoder(encoder_file, "onnx", out, input_shape=SHAPE)
    other = load_encoder(_save(tmp_path / "other.pt", seed=1))
    x = np.random.default_rng(0).standard_normal((8, *SHAPE)).astype(np.float32)
    assert check_parity(other, out, x) > 1e-2


def test_manifest_lets_the_runtime_load_without_model_code(
    encoder_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "enc.ts"
    export_encoder(encoder_file, None, out, input_shape=SHAPE)
    raw = json.loads(manifest_path(out).read_text())
    assert raw["runtime"] == "torchscript"
    assert raw["input_shape"] == [6, 128] and raw["out_dim"] == 256
    assert raw["arch"] == "cnn1d" and raw["meta"] == {"dataset": "hapt"}
    assert raw["parity_max_abs"] <= 1e-5 and "standard normal" in raw["parity_inputs"]
    m = read_manifest(out)
    assert m.input_shape == SHAPE and m.out_dim == 256


@pytest.mark.filterwarnings("ignore:'torch.load' received a zip file:UserWarning")
def test_not_an_encoder_is_refused(encoder_file: Path, tmp_path: Path) -> None:
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"definitely not an encoder")
    with pytest.raises(ExportError, match="not an encoder file"):
        export_encoder(junk, "onnx", tmp_path / "x.onnx", input_shape=SHAPE)
    ts = tmp_path / "enc.ts"  # an export is not an encoder file either
    export_encoder(encoder_file, "torchscript", ts, input_shape=SHAPE)
    with pytest.raises(ExportError, match="not an encoder file"):
        export_encoder(ts, "onnx", tmp_path / "y.onnx", input_shape=SHAPE)
    with pytest.raises(ExportError, match="not an encoder file"):
        export_encoder(tmp_path / "missing.pt", "onnx", tmp_path / "z.onnx", input_shape=SHAPE)
    assert not (tmp_path / "x.onnx").exists()


def test_unknown_format_is_refused(encoder_file: Path, tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="unknown export format 'tflite'"):
        export_encoder(encoder_file, "tflite", tmp_path / "e.tflite", input_shape=SHAPE)
    with pytest.raises(ExportError, match="cannot tell the format"):
        resolve_format(None, Path("model.bin"))
    assert resolve_format(None, Path("m.onnx")) == "onnx"
    assert resolve_format(None, Path("m.ts")) == "torchscript"


def test_shape_that_does_not_fit_is_refused(encoder_file: Path, tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="takes 6 channels"):
        export_encoder(encoder_file, "onnx", tmp_path / "e.onnx", input_shape=(3, 128))
    with pytest.raises(ExportError, match="does not fit"):
        export_encoder(encoder_file, "onnx", tmp_path / "e.onnx", input_shape=(6, 8, 8))
    with pytest.raises(ExportError, match="input shape"):
        export_encoder(encoder_file, "onnx", tmp_path / "e.onnx")  # not stored, not given


def test_parity_failure_writes_nothing_and_keeps_an_earlier_export(
    encoder_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "enc.onnx"
    export_encoder(encoder_file, "onnx", out, input_shape=SHAPE)
    before = out.read_bytes(), manifest_path(out).read_text()
    monkeypatch.setattr(export, "check_parity", lambda *a: 0.5)
    with pytest.raises(ParityError, match="differ from PyTorch by 0.5"):
        export_encoder(encoder_file, "onnx", out, input_shape=SHAPE)
    assert (out.read_bytes(), manifest_path(out).read_text()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["enc.onnx", "enc.onnx.json"]
    fresh = tmp_path / "new.ts"
    with pytest.raises(ParityError):
        export_encoder(encoder_file, "torchscript", fresh, input_shape=SHAPE)
    assert not fresh.exists() and not manifest_path(fresh).exists()


def _run(*argv: str) -> int:
    """``fedssl export ...`` through the CLI: its exit code, errors on stderr."""
    return main(["export", *argv])


def test_command_exports_and_checks_on_given_data(
    encoder_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "windows.npz"
    x = np.random.default_rng(2).normal(0.0, 0.5, size=(40, *SHAPE)).astype(np.float32)
    np.savez(data, x=x)
    out = tmp_path / "model.onnx"
    assert _run("--encoder", str(encoder_file), "--out", str(out), "--check", f"npz:{data}") == 0
    assert "max |Δ| vs PyTorch" in capsys.readouterr().out
    m = read_manifest(out)
    assert m.runtime == "onnx" and m.input_shape == SHAPE  # shape taken from the data
    assert m.parity_inputs.startswith("40 windows of npz:")


def test_command_reports_bad_input_with_exit_2(
    encoder_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"x")
    assert _run("--encoder", str(junk), "--format", "onnx") == 2
    assert "not an encoder file" in capsys.readouterr().err
    assert _run("--encoder", str(encoder_file)) == 2  # neither --format nor --out
    assert "give --format" in capsys.readouterr().err
    bare = _save(tmp_path / "bare.pt", 0)  # no meta: the shape must be given
    assert _run("--encoder", str(bare), "--format", "torchscript") == 2
    assert "--input-shape" in capsys.readouterr().err
    assert _run("--encoder", str(bare), "--format", "onnx", "--input-shape", "6,128") == 0
    assert (tmp_path / "bare.onnx").is_file()
