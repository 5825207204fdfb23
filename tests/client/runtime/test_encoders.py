"""Every runtime embeds the same windows to the same vectors and refuses bad input clearly."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import client.runtime.encoders as encoders
from client.export import export_encoder
from client.runtime.encoders import EmbedError, load_embedder
from client.runtime.manifest import manifest_path
from common.models.registry import build_encoder, default_arch_for
from common.serialize import save_encoder

SHAPE = (6, 128)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One encoder file and its two exports."""
    root = tmp_path_factory.mktemp("embedders")
    torch.manual_seed(0)
    arch, hparams = default_arch_for(SHAPE)
    pt = root / "encoder.pt"
    save_encoder(pt, build_encoder(arch, **hparams), arch, hparams)
    threads = torch.get_num_threads()
    for suffix in (".ts", ".onnx"):
        export_encoder(pt, None, root / f"encoder{suffix}", input_shape=SHAPE)
    torch.set_num_threads(threads)
    return {"eager": pt, "torchscript": root / "encoder.ts", "onnx": root / "encoder.onnx"}


@pytest.fixture(autouse=True)
def _keep_torch_threads() -> object:
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def windows() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((5, *SHAPE)).astype(np.float32)


def test_all_runtimes_agree(files: dict[str, Path], windows: np.ndarray) -> None:
    out = {}
    for kind, path in files.items():
        emb = load_embedder(path)
        assert emb.kind == kind and emb.out_dim == 256
        z = emb.embed(windows)
        assert z.shape == (5, 256) and z.dtype == np.float32
        out[kind] = z
    np.testing.assert_allclose(out["torchscript"], out["eager"], atol=1e-5, rtol=0)
    np.testing.assert_allclose(out["onnx"], out["eager"], atol=1e-5, rtol=0)
    assert np.abs(out["eager"]).max() > 1e-3  # not trivially all zero


@pytest.mark.parametrize("kind", ["eager", "torchscript", "onnx"])
def test_one_window_and_float64_are_accepted(
    kind: str, files: dict[str, Path], windows: np.ndarray
) -> None:
    emb = load_embedder(files[kind])
    one = emb.embed(windows[2])
    assert one.shape == (1, 256)
    np.testing.assert_allclose(one, emb.embed(windows.astype(np.float64))[2:3], atol=1e-5)


@pytest.mark.parametrize("kind", ["eager", "torchscript", "onnx"])
def test_bad_input_is_refused(kind: str, files: dict[str, Path], windows: np.ndarray) -> None:
    emb = load_embedder(files[kind])
    with pytest.raises(EmbedError, match="expected samples of shape"):
        emb.embed(windows[:, :3])  # 3 channels for a 6-channel encoder
    with pytest.raises(EmbedError, match="expected one sample"):
        emb.embed(windows[None])  # one axis too many
    with pytest.raises(EmbedError, match="expected one sample"):
        emb.embed(windows[0, 0])
    bad = windows.copy()
    bad[1, 2, 3] = np.nan
    with pytest.raises(EmbedError, match="NaN or Inf"):
        emb.embed(bad)
    with pytest.raises(EmbedError, match="empty batch"):
        emb.embed(windows[:0])


def test_exports_check_the_window_length_eager_does_not(
    files: dict[str, Path], windows: np.ndarray
) -> None:
    short = windows[:, :, :64]
    assert load_embedder(files["eager"]).input_shape == (6, -1)
    assert load_embedder(files["eager"]).embed(short).shape == (5, 256)  # pools globally
    for kind in ("torchscript", "onnx"):
        with pytest.raises(EmbedError, match=r"\(6, 128\)"):
            load_embedder(files[kind]).embed(short)
    fixed = load_embedder(files["eager"], input_shape=SHAPE)
    with pytest.raises(EmbedError, match="expected samples"):
        fixed.embed(short)


def test_large_batches_are_chunked_to_the_same_result(
    files: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    x = np.random.default_rng(1).standard_normal((11, *SHAPE)).astype(np.float32)
    for kind in ("eager", "onnx"):
        emb = load_embedder(files[kind])
        whole = emb.embed(x)
        monkeypatch.setattr(encoders, "CHUNK", 4)
        np.testing.assert_allclose(emb.embed(x), whole, atol=1e-6)
        monkeypatch.undo()


def test_single_thread_by_default(files: dict[str, Path]) -> None:
    torch.set_num_threads(2)
    load_embedder(files["torchscript"])
    assert torch.get_num_threads() == 1
    torch.set_num_threads(2)
    load_embedder(files["eager"], threads=None)
    assert torch.get_num_threads() == 2


def test_files_that_cannot_load_are_named(files: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(EmbedError, match="no such encoder file"):
        load_embedder(tmp_path / "missing.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(EmbedError, match="not a loadable ONNX model"):
        load_embedder(junk)
    junk_pt = tmp_path / "junk.pt"
    junk_pt.write_bytes(b"not a model")
    with pytest.raises(EmbedError, match="not a readable encoder file"):
        load_embedder(junk_pt)
    # TorchScript needs its manifest (or an explicit shape); ONNX reads the shape from the graph.
    for kind in ("torchscript", "onnx"):
        copy = tmp_path / files[kind].name
        copy.write_bytes(files[kind].read_bytes())
    with pytest.raises(EmbedError, match="needs its manifest"):
        load_embedder(tmp_path / "encoder.ts")
    assert load_embedder(tmp_path / "encoder.ts", input_shape=SHAPE).out_dim == 256
    assert load_embedder(tmp_path / "encoder.onnx").input_shape == SHAPE
    manifest_path(tmp_path / "encoder.onnx").write_text(json.dumps({"format": "other"}))
    with pytest.raises(EmbedError, match="not a fedssl-export/1 manifest"):
        load_embedder(tmp_path / "encoder.onnx")


def test_onnx_runtime_needs_no_torch(files: dict[str, Path]) -> None:
    code = (
        "import sys, numpy as np\n"
        "from client.runtime.encoders import load_embedder\n"
        f"e = load_embedder({str(files['onnx'])!r})\n"
        "z = e.embed(np.zeros((6, 128), np.float32))\n"
        "print(z.shape, 'torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "(1, 256) False"


def test_a_sidecar_of_another_model_is_refused(files: dict[str, Path], tmp_path: Path) -> None:
    onnx = tmp_path / "encoder.onnx"
    onnx.write_bytes(files["onnx"].read_bytes())
    manifest_path(onnx).write_text(manifest_path(files["onnx"]).read_text())
    assert load_embedder(onnx).kind == "onnx"
    onnx.write_bytes(files["onnx"].read_bytes() + b"\0")  # replaced, sidecar left stale
    with pytest.raises(EmbedError, match="checksum mismatch"):
        load_embedder(onnx)
