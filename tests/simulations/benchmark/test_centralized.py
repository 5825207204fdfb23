"""The centralized arm's script: probes on schedule, few-label figures at the end,
run-config keys through --set, bad keys refused by name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simulations.benchmark.centralized import main


def test_probes_every_few_epochs_and_adds_few_labels_at_the_end(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "central.json"
    argv = ["--dataset", "digits", "--epochs", "3", "--eval-every", "2", "--batch-size", "128"]
    rc = main(
        [*argv, "--set", "temperature=0.2", "--set", "augment-strength=0.5", "--json", str(out)]
    )
    assert rc == 0
    saved = json.loads(out.read_text())
    assert saved["config"]["temperature"] == 0.2 and saved["config"]["augment-strength"] == 0.5
    rows = saved["rows"]
    assert [r["epoch"] for r in rows] == [2, 3]  # every 2 epochs, and the last
    assert "labels-0.01" not in rows[0]
    for key in ("linear", "knn", "labels-0.01", "labels-0.1"):
        assert 1 / 10 < rows[-1][key] <= 1.0  # digits: 10 classes; above chance
    printed = [
        json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")
    ]
    assert printed == rows


def test_an_unknown_or_bad_key_or_data_set_is_refused_by_name(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--dataset", "digits", "--set", "temprature=0.2"]) == 2
    assert "temprature" in capsys.readouterr().err
    assert main(["--dataset", "digits", "--set", "temperature=-1"]) == 2
    assert "temperature" in capsys.readouterr().err
    assert main(["--dataset", "nosuchdata"]) == 2
    assert "nosuchdata" in capsys.readouterr().err
