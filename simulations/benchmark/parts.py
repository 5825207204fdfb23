"""Finished parts of a ``fedssl benchmark`` kept on disk, so that a stopped one resumes.

A full benchmark runs for an hour or more (three pretraining seeds of three SSL arms,
then the supervised arm). Each arm's figures are written to ``OUT/parts/NAME.json``
as soon as the arm ends, and ``OUT/benchmark.json`` records what was asked for (the run
config and the plan). ``--resume`` reads the parts back instead of recomputing them, but
only for the same benchmark: a different config or plan is refused, naming the keys.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

from common.atomic import atomic_write_bytes
from common.config import ConfigError, RunConfig
from common.config_values import config_key

log = logging.getLogger("fedssl.benchmark")

PLAN_FILE = "benchmark.json"
# Where the benchmark's own arms write (out-dir) is not part of what it measures.
UNMEASURED_KEYS = ("out-dir",)

Part = dict[str, Any]


def fingerprint(cfg: RunConfig, plan: dict[str, Any]) -> dict[str, Any]:
    """What a benchmark measures: its run config and its plan, as JSON would hold them."""
    config = {k: v for k, v in cfg.to_flat().items() if k not in UNMEASURED_KEYS}
    return json.loads(json.dumps({"config": config, "plan": plan}))


class Parts:
    """The finished arms of one benchmark in ``out``; see the module docstring."""

    def __init__(self, out: Path, cfg: RunConfig, plan: dict[str, Any], resume: bool) -> None:
        self.out = out
        self.dir = out / "parts"
        self.resume = resume
        self.asked = fingerprint(cfg, plan)
        self._open()

    def _open(self) -> None:
        """Refuse a folder that would mix two benchmarks, before any work."""
        if (self.out / "results.json").exists():
            raise ConfigError(f"--out {self.out} already holds a finished benchmark")
        plan_path = self.out / PLAN_FILE
        if not self.resume:
            if self.out.exists() and any(self.out.iterdir()):
                raise ConfigError(
                    f"--out {self.out} is not empty; --resume continues a stopped benchmark "
                    "there, or choose a new folder"
                )
        elif plan_path.exists():
            saved = _read_json(plan_path)
            if saved is None:
                raise ConfigError(f"--resume: {plan_path} is not readable JSON")
            _check_same(saved, self.asked)
        self.out.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(plan_path, (json.dumps(self.asked, indent=2) + "\n").encode())

    def run(self, name: str, produce: Callable[[], Part]) -> Part:
        """The part ``name``: read back when resuming and it was finished, else produced
        and saved (with the seconds it took under ``seconds``)."""
        path = self.dir / f"{name}.json"
        if self.resume and path.exists():
            saved = _read_json(path)
            if saved is not None:
                log.info("reusing the finished %s from %s", name, path)
                return saved
            log.warning("%s is torn or not JSON; computing %s again", path, name)
        t0 = time.perf_counter()
        part = produce()
        part.setdefault("seconds", {}).setdefault(name.split("/")[-1], time.perf_counter() - t0)
        atomic_write_bytes(path, (json.dumps(part, indent=1) + "\n").encode())
        return part


def merge(into: dict[str, Any], part: Part) -> None:
    """Add a part's figures to a run's tree (one level of dicts deep)."""
    for key, value in part.items():
        into.setdefault(key, {}).update(value)


def _check_same(saved: dict[str, Any], new: dict[str, Any]) -> None:
    diffs = [
        f"{prefix}{k}: {saved.get(section, {}).get(k)!r} -> {v!r}"
        for section, prefix in (("config", ""), ("plan", "plan "))
        for k, v in new[section].items()
        if saved.get(section, {}).get(k) != v
    ]
    if diffs:
        raise ConfigError(
            "--resume: this benchmark differs from the stopped one (" + "; ".join(diffs) + ")"
        )


def finished_run_seconds(run_dir: Path, config: Path, run_cfg: RunConfig) -> float | None:
    """The seconds of the finished simulation in ``run_dir`` if it was started from the
    config file ``config`` and that equals ``run_cfg``; None otherwise."""
    summary = _read_json(run_dir / "summary.json")
    if not summary or summary.get("status") != "completed":
        return None
    if not (run_dir / "encoder.pt").is_file() or not _started_as(config, run_cfg):
        return None
    return float(summary["seconds"])


def stopped_run(run_dir: Path, config: Path, run_cfg: RunConfig) -> bool:
    """Whether ``run_dir`` holds a simulation of ``run_cfg`` that was stopped before it
    finished but after it recorded its config (``fedssl simulate --resume`` continues it)."""
    started = (run_dir / "config.json").is_file() and (run_dir / "metrics.jsonl").is_file()
    return started and not (run_dir / "summary.json").exists() and _started_as(config, run_cfg)


def _started_as(config: Path, run_cfg: RunConfig) -> bool:
    """Whether the config file ``config`` equals ``run_cfg`` but for where the run lives
    (a benchmark folder may have moved); keys the file lacks, being newer than it, are
    taken at their defaults."""
    saved = _read_json(config)
    if not isinstance(saved, dict):
        return False
    known = {config_key(f.name) for f in fields(RunConfig)}
    try:
        old = RunConfig.from_flat({k: v for k, v in saved.items() if k in known})
    except ConfigError:
        return False
    return old.replace(out_dir=run_cfg.out_dir) == run_cfg


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
