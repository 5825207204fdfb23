"""``fedssl evaluate`` as a user runs it: a subprocess on a saved encoder file."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import torch
from cli_run import run_cli, run_main

from common.models.registry import build_encoder
from common.serialize import save_encoder


def _evaluate(*args: str) -> subprocess.CompletedProcess:
    return run_cli("evaluate", *args, env={"OMP_NUM_THREADS": "1"}, timeout=120)


@pytest.fixture(scope="module")
def digits_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    hparams = {"in_channels": 1, "widths": [8, 16, 16]}
    path = tmp_path_factory.mktemp("enc") / "encoder.pt"
    save_encoder(path, build_encoder("resnet2d", **hparams), "resnet2d", hparams)
    return path


def test_evaluate_writes_json_and_table(digits_encoder: Path, tmp_path: Path) -> None:
    out = tmp_path / "res.json"
    proc = _evaluate(
        "--encoder", str(digits_encoder), "--dataset", "digits",
        "--fractions", "0.05,0.2", "--seeds", "0,1", "--out", str(out),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert result["encoder"] == str(digits_encoder.resolve())
    assert set(result["results"]) == {"linear", "knn", "few-label"}
    assert list(result["results"]["few-label"]) == ["0.05", "0.2"]
    assert 0.0 <= result["results"]["knn"]["accuracy"] <= 1.0
    for label in ("linear probe", "kNN (k=20, T=0.07)", "few-label 5 %", "few-label 20 %"):
        assert label in proc.stdout


def test_corrupt_encoder_file_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"not a torch file at all")
    proc = _evaluate("--encoder", str(bad), "--dataset", "digits")
    assert proc.returncode == 2
    assert str(bad) in proc.stderr and "Traceback" not in proc.stderr


def test_encoder_for_other_data_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "sensor.pt"
    save_encoder(path, build_encoder("cnn1d", in_channels=6), "cnn1d", {"in_channels": 6})
    proc = _evaluate("--encoder", str(path), "--dataset", "digits", "--protocols", "knn")
    assert proc.returncode == 2
    assert "6 input channels" in proc.stderr and "(1, 8, 8)" in proc.stderr


@pytest.mark.parametrize(
    ("option", "value", "named"),
    [
        ("--protocols", "linear,svm", "svm"),
        ("--fractions", "0.1,1.5", "--fractions"),
        ("--seeds", "0,x", "--seeds"),
        ("--dataset", "npz:/nonexistent/x.npz", "/nonexistent/x.npz"),
        ("--dataset", "mnist", "unknown data set 'mnist'"),
    ],
)
def test_bad_options_exit_2(
    digits_encoder: Path,
    option: str,
    value: str,
    named: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    argv = ["evaluate", "--encoder", str(digits_encoder), "--dataset", "digits", option, value]
    code, err = run_main(argv, capsys, monkeypatch)
    assert code == 2 and named in err, err
