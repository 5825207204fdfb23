"""The export sidecar round-trips and a broken one is named, not half-read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from client.runtime.manifest import (
    ExportManifest,
    ManifestError,
    manifest_path,
    read_manifest,
    write_manifest,
)


def test_round_trip(tmp_path: Path) -> None:
    model = tmp_path / "enc.onnx"
    m = ExportManifest("onnx", (6, 128), 256, arch="cnn1d", hparams={"in_channels": 6})
    assert write_manifest(model, m) == tmp_path / "enc.onnx.json"
    assert read_manifest(model) == m


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "unreadable"),
        (json.dumps({"format": "x"}), "not a fedssl-export/1"),
        (json.dumps({"format": "fedssl-export/1", "runtime": "onnx"}), "malformed"),
        (
            json.dumps(
                {"format": "fedssl-export/1", "runtime": "tflite", "input_shape": [6], "out_dim": 3}
            ),
            "invalid runtime",
        ),
        (
            json.dumps(
                {"format": "fedssl-export/1", "runtime": "onnx", "input_shape": [0], "out_dim": 3}
            ),
            "invalid",
        ),
    ],
)
def test_broken_manifest_is_named(tmp_path: Path, content: str, message: str) -> None:
    model = tmp_path / "enc.onnx"
    manifest_path(model).write_text(content)
    with pytest.raises(ManifestError, match=message):
        read_manifest(model)


def test_missing_manifest(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="no export manifest"):
        read_manifest(tmp_path / "enc.ts")
