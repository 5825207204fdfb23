"""``fedssl benchmark``: federated SSL with SecAgg+ against what a user could do otherwise.

Arms, side by side on one data set and one evaluation protocol: federated SSL
(a real ``fedssl simulate`` run), centralized SSL on the pooled data (upper bound),
local-only SSL (each client alone; mean and worst), a random-init encoder,
supervised training from scratch on the same label budgets, and a linear probe on
raw inputs. Writes ``results.json``, ``results.md`` and PNG plots.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any

from common.config import ConfigError
from common.config_checks import check_names
from common.errors import EXIT_OK


def add_arguments(p: argparse.ArgumentParser) -> None:
    from common.run_options import add_run_options

    # The federated arm's options; the other arms follow its data, method and budget.
    add_run_options(p, exclude=("evaluate", "evaluate-every"))
    g = p.add_argument_group("benchmark")
    g.add_argument(
        "--ray-address",
        default="",
        metavar="HOST:PORT",
        help="run the federated arm's clients on this existing Ray cluster (see fedssl simulate)",
    )
    g.add_argument(
        "--quick",
        action="store_true",
        help="a small budget that finishes in minutes: 4 rounds of 1 local epoch unless given, "
        "4 local-only clients, label fractions 1 %% and 10 %%, one seed of each kind",
    )
    g.add_argument(
        "--fractions", default=None, help="label fractions, default 0.01,0.05,0.1 (quick 0.01,0.1)"
    )
    g.add_argument(
        "--seeds", default=None, help="few-label and supervised seeds, default 0,1,2 (quick 0)"
    )
    g.add_argument(
        "--pretrain-seeds",
        default=None,
        help="seeds of the SSL arms (federated, centralized, local-only), each a whole run; "
        "the table gives mean ± s.e. (default: --seed and the next two; quick: --seed)",
    )
    g.add_argument(
        "--local-clients",
        type=int,
        default=None,
        help="local-only arm on the first N clients (default all, quick 4)",
    )
    g.add_argument("--supervised-steps", type=int, default=None, help="default 1500, quick 200")
    g.add_argument(
        "--curve-points",
        type=int,
        default=20,
        metavar="N",
        help="probe at most N of the federated round checkpoints for the curve (evenly "
        "spaced, always the last round; each probe embeds the whole data set); 0 = every "
        "round (default: %(default)s)",
    )
    g.add_argument("--out", default="", help="output folder (default: runs/benchmark-DATASET-TIME)")
    g.add_argument(
        "--resume",
        action="store_true",
        help="continue the stopped benchmark in --out: arms it finished are read back, "
        "the rest are run (the same options are required)",
    )


def _ints(text: str, flag: str) -> list[int]:
    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise ConfigError(f"{flag} must be comma-separated integers, got {text!r}") from None


def _floats(text: str, flag: str) -> list[float]:
    try:
        return [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise ConfigError(f"{flag} must be comma-separated numbers, got {text!r}") from None


def run(args: argparse.Namespace) -> int:
    from common.logs import setup_logging
    from common.run_options import config_from_args
    from simulations.benchmark.arms import run_arms
    from simulations.benchmark.parts import Parts
    from simulations.benchmark.report import write_report

    setup_logging()
    q = args.quick
    quick = {"num-server-rounds": 4, "local-epochs": 1} if q else {}
    cfg = config_from_args(args, quick, set_items=args.set)
    check_names(cfg)
    plan = _plan(args, cfg.seed)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    if args.resume and not args.out:
        raise ConfigError("--resume needs --out: the folder of the stopped benchmark")
    out = Path(args.out or f"runs/benchmark-{cfg.dataset.split(':')[0]}-{stamp}").resolve()
    parts = Parts(out, cfg, plan, resume=args.resume)
    try:
        results = run_arms(cfg, plan, out, parts, ray_address=args.ray_address)
    except KeyboardInterrupt:
        logging.getLogger("fedssl.benchmark").warning(
            "stopped: the finished arms are kept in %s; `fedssl benchmark --resume --out %s` "
            "with the same options runs the rest",
            out / "parts",
            out,
        )
        raise
    print(write_report(results, out))
    print(f"\nfedssl benchmark: results in {out}")
    return EXIT_OK


def _plan(args: argparse.Namespace, seed: int) -> dict[str, Any]:
    """The budget: pretraining seeds, label fractions and seeds, local-only clients,
    supervised steps, federated curve points."""
    q = args.quick
    fractions = (
        _floats(args.fractions, "--fractions")
        if args.fractions
        else ([0.01, 0.1] if q else [0.01, 0.05, 0.1])
    )
    if any(not 0 < f < 1 for f in fractions):
        raise ConfigError("--fractions must lie in (0, 1)")
    local_clients = args.local_clients if args.local_clients is not None else (4 if q else 0)
    pretrain = (
        _ints(args.pretrain_seeds, "--pretrain-seeds")
        if args.pretrain_seeds
        else ([seed] if q else [seed, seed + 1, seed + 2])
    )
    if not pretrain or len(set(pretrain)) != len(pretrain):
        raise ConfigError("--pretrain-seeds must list distinct seeds")
    if args.curve_points < 0:
        raise ConfigError(
            f"--curve-points must be 0 (every round) or more, got {args.curve_points}"
        )
    return {
        "pretrain_seeds": pretrain,
        "fractions": fractions,
        "seeds": _ints(args.seeds, "--seeds") if args.seeds else ([0] if q else [0, 1, 2]),
        "local_clients": local_clients,
        "supervised_steps": args.supervised_steps or (200 if q else 1500),
        "curve_points": args.curve_points,
    }


__all__ = ["add_arguments", "run"]
