"""``fedssl evaluate``: linear probe, kNN and few-label evaluation of a saved encoder.

Works for any encoder file (``common.serialize``) and any labeled data set the other
commands take; the split is the evaluation protocol of ``common.eval.protocol`` (HAPT:
leave-users-out). Bad options, data or encoder files are reported with exit code 2
before any work is done.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from common.errors import EXIT_OK, BadInputError

_T = TypeVar("_T")


class UsageError(BadInputError):
    """An option value that cannot be used; the message names the option."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--encoder",
        required=True,
        metavar="PATH",
        help="encoder file (encoder.pt or a round checkpoint)",
    )
    p.add_argument(
        "--dataset", default="hapt", help="hapt | digits | fmnist | npz:PATH (default: %(default)s)"
    )
    p.add_argument(
        "--protocols",
        default="linear,knn,few-label",
        help="comma-separated: linear, knn, few-label (default: %(default)s)",
    )
    p.add_argument(
        "--fractions",
        default="0.01,0.05,0.1",
        help="few-label fractions of the probe-train labels, each in (0, 1] (default: %(default)s)",
    )
    p.add_argument(
        "--seeds", default="0,1,2", help="few-label sampling seeds, averaged (default: %(default)s)"
    )
    p.add_argument("--knn-k", type=int, default=20, help="kNN neighbours (default: %(default)s)")
    p.add_argument(
        "--knn-temperature",
        type=float,
        default=0.07,
        help="kNN vote weight exp(sim/T); 0 = plain majority vote (default: %(default)s)",
    )
    p.add_argument(
        "--split-seed",
        type=int,
        default=0,
        help="seed of the held-out split for data sets without a fixed protocol (not HAPT or "
        "fmnist); use the --seed the encoder was pretrained with (default: %(default)s)",
    )
    p.add_argument(
        "--device", default="cpu", help="cpu | cuda | cuda:N | auto (default: %(default)s)"
    )
    p.add_argument("--out", default="", metavar="FILE.json", help="also write the results as JSON")


def _parse_list(text: str, option: str, convert: Callable[[str], _T]) -> list[_T]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise UsageError(f"{option} is empty")
    try:
        return list(dict.fromkeys(convert(t) for t in items))
    except ValueError:
        raise UsageError(f"{option} {text!r}: not a comma-separated list of numbers") from None


def parse_options(args: argparse.Namespace) -> dict[str, Any]:
    """Protocols, fractions, seeds and kNN settings, checked; UsageError names the option."""
    from common.config import DEVICE_PATTERN

    protocols = _parse_list(args.protocols, "--protocols", str)
    fractions = _parse_list(args.fractions, "--fractions", float)
    bad = [f for f in fractions if not (math.isfinite(f) and 0.0 < f <= 1.0)]
    if bad:
        raise UsageError(f"--fractions: {bad} not in (0, 1]; e.g. 0.01 for 1 % of the labels")
    seeds = _parse_list(args.seeds, "--seeds", int)
    if any(s < 0 for s in seeds):
        raise UsageError(f"--seeds must be non-negative integers, got {seeds}")
    if args.knn_k < 1:
        raise UsageError(f"--knn-k must be at least 1, got {args.knn_k}")
    if not (math.isfinite(args.knn_temperature) and args.knn_temperature >= 0):
        raise UsageError(f"--knn-temperature must be >= 0, got {args.knn_temperature}")
    if args.split_seed < 0:
        raise UsageError(f"--split-seed must be non-negative, got {args.split_seed}")
    if not DEVICE_PATTERN.fullmatch(args.device):
        raise UsageError(f"--device must be cpu, cuda, cuda:N or auto, got {args.device!r}")
    out = Path(args.out) if args.out else None
    if out is not None and out.is_dir():
        raise UsageError(f"--out {out} is a folder; give a file name such as results.json")
    return {
        "protocols": protocols,
        "fractions": fractions,
        "seeds": seeds,
        "knn_k": int(args.knn_k),
        "knn_temperature": args.knn_temperature or None,
        "out": out,
    }


def run(args: argparse.Namespace) -> int:
    """Check the options, load the encoder and the data, evaluate, print and save; bad
    input rises as a BadInputError naming it (exit 2)."""
    from common.data.registry import load_dataset
    from common.eval.protocol import evaluation_split
    from common.eval.suite import EvaluationError, check_protocols, evaluate_encoder
    from common.logs import setup_logging

    setup_logging()
    opts = parse_options(args)
    check_protocols(opts["protocols"], opts["fractions"])
    device = _device(args.device)
    path = Path(args.encoder).expanduser()
    encoder = _load_encoder(path, device)
    ds = load_dataset(args.dataset)
    split = evaluation_split(ds, args.split_seed)
    logging.getLogger("fedssl").info(
        "evaluate: %s on %s (%d probe-train, %d probe-test samples)",
        path,
        args.dataset,
        len(split.probe_train),
        len(split.probe_test),
    )
    try:
        result = evaluate_encoder(
            encoder, ds, split, opts["protocols"], opts["fractions"], opts["seeds"], device,
            opts["knn_k"], opts["knn_temperature"],
        )  # fmt: skip
    except EvaluationError as exc:
        raise EvaluationError(f"{path} on {args.dataset}: {exc}") from None
    result = {
        "encoder": str(path.resolve()),
        "encoder_class": type(encoder).__name__,
        "dataset_spec": args.dataset,
        "split_seed": int(args.split_seed),
        **result,
    }
    print_table(result)
    if opts["out"] is not None:
        _save(opts["out"], result)
    return EXIT_OK


def _device(name: str) -> Any:
    from common.local_round import resolve_device

    try:
        return resolve_device(name)
    except RuntimeError as exc:  # CUDA asked for but missing
        raise UsageError(f"--device {name!r}: {exc}") from None


def _load_encoder(path: Path, device: Any) -> Any:
    from common.serialize import CheckpointError, load_encoder

    try:
        return load_encoder(path, device)
    except CheckpointError:
        raise
    except (ValueError, RuntimeError, TypeError, KeyError) as exc:
        raise UsageError(
            f"{path}: cannot rebuild the encoder ({exc.__class__.__name__}: {exc})"
        ) from None


def _save(out: Path, result: dict[str, Any]) -> None:
    from common.atomic import atomic_write_bytes

    try:
        atomic_write_bytes(out, (json.dumps(result, indent=2) + "\n").encode())
    except OSError as exc:
        raise UsageError(f"--out {out}: cannot write ({exc.strerror or exc})") from None
    print(f"  results: {out}", flush=True)


def _pct(mean: float, std: float | None = None) -> str:
    return f"{mean:.1%}" if std is None else f"{mean:.1%} ± {std:.1%}"


def _f1(mean: float, std: float | None = None) -> str:
    return f"{mean:.3f}" if std is None else f"{mean:.3f} ± {std:.3f}"


def print_table(result: dict[str, Any]) -> None:
    """One line per protocol (per fraction for few-label): accuracy, macro-F1, labels used."""
    rows: list[tuple[str, str, str, str]] = []
    res = result["results"]
    if "linear" in res:
        r = res["linear"]
        rows.append(
            ("linear probe", _pct(r["accuracy"]), _f1(r["macro_f1"]), str(r["train_samples"]))
        )
    if "knn" in res:
        r = res["knn"]
        vote = "majority" if r["temperature"] is None else f"T={r['temperature']:g}"
        rows.append(
            (
                f"kNN (k={r['k']}, {vote})",
                _pct(r["accuracy"]),
                _f1(r["macro_f1"]),
                str(r["train_samples"]),
            )
        )
    for r in res.get("few-label", {}).values():
        n = len(r["runs"])
        rows.append(
            (
                f"few-label {r['fraction'] * 100:g} %",
                _pct(r["accuracy_mean"], r["accuracy_std"] if n > 1 else None),
                _f1(r["macro_f1_mean"], r["macro_f1_std"] if n > 1 else None),
                str(r["labels_used"]),
            )
        )
    header = ("protocol", "accuracy", "macro-F1", "labels")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(4)]
    lines = [
        "",
        f"fedssl evaluate: {result['encoder']} ({result['encoder_class']}, "
        f"{result['feature_dim']}-d features) on {result['dataset_spec']}",
        f"  {result['protocol']}",
        f"  probe-train {result['probe_train_samples']} labeled samples, "
        f"probe-test {result['probe_test_samples']}, {result['classes']} classes",
        "",
    ]
    for row in [header, *rows]:
        cells = (cell.ljust(w) for cell, w in zip(row, widths, strict=True))
        lines.append(("  " + "   ".join(cells)).rstrip())
    if "few-label" in res:
        seeds = next(iter(res["few-label"].values()))["runs"]
        lines.append(f"  few-label: mean ± std over seeds {[s['seed'] for s in seeds]}")
    print("\n".join(lines), flush=True)
