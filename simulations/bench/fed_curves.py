"""Federated learning curves of several run configurations, side by side, over seeds.

    python -m simulations.bench.fed_curves --quick --seeds 0,1,2 --out runs/curves \\
        --variant fedavg: --variant fedadam:server-optimizer=fedadam,server-learning-rate=0.01

Each variant is ``NAME:KEY=VALUE,...`` (run-config keys over the base run: HAPT,
SecAgg+, ``--quick`` = 4 rounds x 1 local epoch as in ``fedssl benchmark --quick``).
Every variant runs once per seed as a real ``fedssl simulate`` (the benchmark's
federated arm); the linear probe on the unseen users (``fedssl evaluate``'s protocol)
scores the checkpoint of every round. Writes ``OUT/curves.json`` (per variant, seed and
round: probe accuracy and the run's wall seconds so far; the final encoder also kNN and
1 % labels) and ``OUT/curves.md`` (final accuracies and the round at which each target
is first reached: mean ± s.e. over seeds),
and ``OUT/curves.png`` (mean probe per round), and prints the table. ``--table DIR...``
prints the table of earlier runs together (seeds run apart, say), and with ``--out``
draws their curves.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from simulations.benchmark.seeds import first_reaching, mean_se

TARGETS = (0.93, 0.95)
FEW_LABELS = 0.01  # the fraction of labels of the final encoder's few-label figure


def parse_variant(text: str) -> tuple[str, dict[str, str]]:
    from common.config_values import ConfigError, parse_set_items

    name, _, body = text.partition(":")
    if not name:
        raise SystemExit(f"--variant {text!r}: expected NAME:KEY=VALUE,...")
    try:
        return name, parse_set_items([item for item in body.split(",") if item])
    except ConfigError as exc:
        raise SystemExit(f"--variant {text!r}: {exc}") from None


def run_one(
    base: dict[str, Any], overrides: dict[str, str], seed: int, out: Path
) -> list[dict[str, Any]]:
    """One simulate run; per round: the probe accuracy and the wall seconds so far; the
    last round also the final encoder's kNN and 1 % labels figures."""
    from common.config import RunConfig
    from simulations.benchmark.arms import federated_curve
    from simulations.benchmark.federated import simulate_federated

    cfg = RunConfig.from_flat({**base, **overrides, "seed": seed})
    simulate_federated(cfg, out)
    curve = federated_curve(cfg, out)
    curve[-1].update(final_figures(cfg, out / "encoder.pt"))
    return curve


def final_figures(cfg: Any, encoder_path: Path) -> dict[str, float]:
    """kNN and few-label (1 % of the labels, label seeds 0-2) of the final encoder."""
    from common.client_data import load_with_split
    from common.eval.suite import evaluate_encoder
    from common.serialize import load_encoder

    ds, split = load_with_split(cfg.dataset, cfg.seed)
    res = evaluate_encoder(load_encoder(encoder_path), ds, split, protocols=("knn", "few-label"),
                           fractions=(FEW_LABELS,), seeds=(0, 1, 2))["results"]  # fmt: skip
    few = res["few-label"][f"{FEW_LABELS:g}"]["accuracy_mean"]
    return {"knn": float(res["knn"]["accuracy"]), "few_label": float(few)}


def _mean_se(values: list[float]) -> str:
    if not values:
        return "-"
    m, se = mean_se(values)
    return f"{100 * m:.1f}" if se is None else f"{100 * m:.1f} ± {100 * se:.1f}"


def _first_round(curve: list[dict[str, Any]], target: float) -> int | None:  # type: ignore[type-arg]
    """The first round after round 0 whose linear probe reaches ``target``."""
    hit = first_reaching([[c["round"], c["linear"]] for c in curve], target)
    return None if hit is None else int(hit)


def table(results: dict[str, dict[str, list[dict[str, Any]]]]) -> str:
    head = "| variant | final linear (mean ± s.e.) | kNN | 1 % labels | " + " | ".join(
        f"round reaching {100 * t:.0f} %" for t in TARGETS
    )
    lines = [head + " |", "|---|---|---|---|" + "---|" * len(TARGETS)]
    for name, by_seed in results.items():
        finals = [c[-1]["linear"] for c in by_seed.values()]
        extra = [
            _mean_se([c[-1][key] for c in by_seed.values() if key in c[-1]])
            for key in ("knn", "few_label")
        ]
        cells = []
        for t in TARGETS:
            reached = [_first_round(c, t) for c in by_seed.values()]
            cells.append(", ".join("-" if r is None else str(r) for r in reached))
        lines.append(
            f"| {name} | {_mean_se(finals)} (n={len(finals)}) | " + " | ".join(extra + cells) + " |"
        )
    return "\n".join(lines) + "\n"


def plot(results: dict[str, dict[str, list[dict[str, Any]]]], path: Path) -> None:
    """Mean linear probe per round (over the seeds) of every variant."""
    from common.plots import plot_series

    means = {}
    for name, by_seed in results.items():
        n = min(len(c) for c in by_seed.values())
        means[name] = [100 * float(np.mean([c[i]["linear"] for c in by_seed.values()]))
                       for i in range(n)]  # fmt: skip
    plot_series(means, path, "round (0: random init)", "linear probe %", "mean over seeds")


def merge(paths: list[Path]) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """The curves of several runs by variant and seed (a later file's seed wins)."""
    out: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for path in paths:
        for name, by_seed in json.loads(path.read_text()).items():
            out.setdefault(name, {}).update(by_seed)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--variant", action="append", default=[], help="NAME:KEY=VALUE,...")
    p.add_argument(
        "--table", nargs="+", metavar="DIR", help="only print the table of earlier runs' curves"
    )
    p.add_argument("--seeds", default="0", help="comma-separated (default: 0)")
    p.add_argument("--quick", action="store_true", help="4 rounds x 1 local epoch")
    p.add_argument("--set", action="append", default=[], help="KEY=VALUE for every variant")
    p.add_argument("--out", default="")
    args = p.parse_args(argv)
    if args.table:
        merged = merge([Path(d) / "curves.json" for d in args.table])
        print(table(merged))
        if args.out:
            plot(merged, Path(args.out) / "curves.png")
        return 0
    if not args.variant or not args.out:
        p.error("--variant and --out are needed (or --table DIR...)")
    base: dict[str, Any] = {"dataset": "hapt"}
    if args.quick:
        base.update({"num-server-rounds": 4, "local-epochs": 1})
    from common.config_values import parse_set_items

    base.update(parse_set_items(args.set))
    seeds = [int(s) for s in args.seeds.split(",")]
    out = Path(args.out)
    results: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for text in args.variant:
        name, overrides = parse_variant(text)
        for seed in seeds:
            curve = run_one(base, overrides, seed, out / name / f"seed-{seed}")
            results.setdefault(name, {})[str(seed)] = curve
            print(f"{name} seed {seed}: " + ", ".join(f"{100 * c['linear']:.1f}" for c in curve),
                  flush=True)  # fmt: skip
            (out / "curves.json").write_text(json.dumps(results, indent=2) + "\n")
    md = table(results)
    (out / "curves.md").write_text(md)
    plot(results, out / "curves.png")
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
