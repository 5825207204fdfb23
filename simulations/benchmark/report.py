"""``fedssl benchmark`` outputs: results.json, a markdown table and three PNG plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from simulations.benchmark.seeds import first_reaching

SSL_ARMS = ("federated", "centralized", "random_init")
GAPS = (0.02, 0.01)  # time-to-accuracy targets: these below centralized's final probe
LABELS = {
    "federated": "federated SSL (SecAgg+)",
    "centralized": "centralized SSL (pooled)",
    "random_init": "random-init encoder",
    "local_only": "local-only SSL (mean / worst client)",
    "supervised": "supervised from scratch",
    "raw": "raw inputs",
}


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.1f}"


def _fig(results: dict[str, Any], *path: str) -> str:
    """The figure at ``arms/path`` in %, with its standard error over seeds if known."""
    value, se = results["arms"], results.get("arms_se")
    for key in path:
        value = value[key]
        se = se.get(key) if isinstance(se, dict) else None
    return _pct(value) + (f" ± {100 * se:.1f}" if isinstance(se, float) else "")


def table(results: dict[str, Any]) -> str:
    fr = results["plan"]["fractions"]
    arms = results["arms"]
    head = ["arm", "linear", "kNN", *[f"{f:g} labels" for f in fr]]
    rows = [head, ["---"] * len(head)]
    for name in SSL_ARMS:
        rows.append(
            [
                LABELS[name],
                _fig(results, name, "linear", "accuracy"),
                _fig(results, name, "knn", "accuracy"),
                *[_fig(results, name, "few-label", f"{f:g}", "accuracy_mean") for f in fr],
            ]
        )
    lo = arms["local_only"]
    rows.append(
        [
            LABELS["local_only"],
            f"{_fig(results, 'local_only', 'linear', 'accuracy')} / {_pct(lo['linear']['worst'])}",
            _fig(results, "local_only", "knn", "accuracy"),
            *["–" for _ in fr],
        ]
    )
    sup = arms["supervised"]
    rows.append(
        [
            LABELS["supervised"] + " (linear column: all labels)",
            _pct(sup["1"]["accuracy_mean"]),
            "–",
            *[_pct(sup[f"{f:g}"]["accuracy_mean"]) for f in fr],
        ]
    )
    raw = arms["raw"]
    rows.append(
        [
            LABELS["raw"],
            _pct(raw["linear"]["accuracy"]),
            "–",
            *[_pct(raw[f"few-label {f:g}"]["accuracy_mean"]) for f in fr],
        ]
    )
    lines = ["| " + " | ".join(r) + " |" for r in rows]
    title = (
        f"{results['dataset']}: {results['method']}, {results['clients']} clients, "
        f"{results['rounds']} rounds x {results['local_epochs']} local epochs"
        f"{_sampled(results)} "
        f"(each SSL arm sees every sample {results['ssl_epochs_per_sample']} times). "
        f"Accuracy in %, SSL arms: mean ± s.e. over pretraining seeds "
        f"{results['plan']['pretrain_seeds']}; few-label columns: mean over label seeds "
        f"{results['plan']['seeds']}."
    )
    body = f"{title}\n\nProtocol: {results['protocol']}\n\n" + "\n".join(lines) + "\n"
    return body + "\n" + time_to_accuracy(results)


def time_to_accuracy(results: dict[str, Any]) -> str:
    """Per seed: the round (centralized: epochs / local-epochs) and the training seconds
    at which each SSL arm's linear probe first comes within 2 and 1 points of the
    centralized arm's final probe (mean over seeds)."""
    central = results["arms"]["centralized"]["linear"]["accuracy"]
    lines = [
        "Time to accuracy (linear probe; per pretraining seed; – = not reached):",
        "",
        "| target | federated rounds | centralized round-equivalents "
        "| federated seconds | centralized seconds |",
        "|---|---|---|---|---|",
    ]
    runs = results["by_seed"].values()
    for target in (central - gap for gap in GAPS):
        cells = []
        for key in ("curves", "curves_seconds"):
            for arm in ("federated", "centralized"):
                hits = [first_reaching(r[key][arm], target) for r in runs]
                cells.append(", ".join("–" if h is None else f"{h:.3g}" for h in hits))
        lines.append(f"| {100 * target:.1f} % | " + " | ".join(cells) + " |")
    probed, rounds = len(results["curves"]["federated"]) - 1, results.get("rounds", 0)
    if probed < rounds:
        lines += ["", f"Federated: the first probed round ({probed} of {rounds} rounds "
                      "probed, `--curve-points`)."]  # fmt: skip
    return "\n".join(lines) + "\n"


def plots(results: dict[str, Any], out: Path) -> list[Path]:
    arms, curves, fr = results["arms"], results["curves"], results["plan"]["fractions"]
    paths = []
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    timed = results.get("curves_seconds", {})
    panels = [(axes[0], curves, "round (centralized: epochs / local-epochs)"),
              (axes[1], timed, "training wall seconds (probes excluded)")]  # fmt: skip
    for ax, series, xlabel in panels:
        for name in ("federated", "centralized"):
            if name in series:
                xs, ys = zip(*series[name], strict=True)
                ax.plot(xs, [100 * y for y in ys], marker="o", label=LABELS[name])
        ax.axhline(100 * arms["random_init"]["linear"]["accuracy"], color="gray", ls="--",
                   label=LABELS["random_init"])  # fmt: skip
        ax.axhline(100 * arms["raw"]["linear"]["accuracy"], color="black", ls=":",
                   label=LABELS["raw"])  # fmt: skip
        ax.set_xlabel(xlabel)
        ax.set_ylabel("linear probe accuracy %")
        ax.legend(fontsize=8)
    paths.append(_save(fig, out / "probe_per_round.png"))

    fig, ax = plt.subplots(figsize=(7, 4))
    names = ["federated", "centralized", "local_only", "random_init"]
    for i, proto in enumerate(("linear", "knn")):
        vals = [100 * arms[n][proto]["accuracy"] for n in names]
        ax.bar([j + 0.4 * i for j in range(len(names))], vals, width=0.4, label=proto)
    ax.set_xticks(
        [j + 0.2 for j in range(len(names))], [LABELS[n].split(" (")[0] for n in names], fontsize=8
    )
    ax.set_ylabel("accuracy %")
    ax.set_ylim(bottom=max(0, min(100 * arms["raw"]["linear"]["accuracy"], 50) - 10))
    ax.legend()
    paths.append(_save(fig, out / "protocols.png"))

    fig, ax = plt.subplots(figsize=(6, 4))
    for name in SSL_ARMS:
        ax.plot(
            fr,
            [100 * arms[name]["few-label"][f"{f:g}"]["accuracy_mean"] for f in fr],
            marker="o",
            label=LABELS[name],
        )
    ax.plot(
        fr,
        [100 * arms["supervised"][f"{f:g}"]["accuracy_mean"] for f in fr],
        marker="s",
        label=LABELS["supervised"],
    )
    ax.plot(
        fr,
        [100 * arms["raw"][f"few-label {f:g}"]["accuracy_mean"] for f in fr],
        marker="x",
        label=LABELS["raw"],
    )
    ax.set_xscale("log")
    ax.set_xlabel("fraction of labels")
    ax.set_ylabel("accuracy %")
    ax.legend(fontsize=8)
    paths.append(_save(fig, out / "label_fraction.png"))
    return paths


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(results: dict[str, Any], out: Path) -> str:
    text = table(results)
    (out / "results.md").write_text(text)
    results["plots"] = [str(p) for p in plots(results, out)]
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    return text


def _sampled(results: dict[str, Any]) -> str:
    fraction = float(results.get("fraction_train", 1.0))
    return f", {fraction:.0%} of the clients per round" if fraction < 1 else ""
