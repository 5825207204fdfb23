"""The device's SuperNode: Flower's ``flower-supernode``, polling more often.

``fedssl client`` starts ``python -m client.supernode --poll-interval S -- ARGS``: the
SuperNode's two fixed sleeps (3 s between idle pulls, 0.5 s while it waits for the
ClientApp's reply) are shortened (``client.flower_internals``), then Flower's own entry
point runs with ``ARGS``. Everything else (TLS, node authentication, isolation) is
Flower's, unchanged.
"""

from __future__ import annotations

import argparse
import sys

from client.flower_internals import shorten_supernode_polls

REPLY_POLL_S = 0.05  # a local check of the ClientApp's reply, no network


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m client.supernode", add_help=False)
    p.add_argument("--poll-interval", type=float, required=True)
    ours, rest = p.parse_known_args(sys.argv[1:] if argv is None else argv)
    if rest[:1] == ["--"]:
        rest = rest[1:]
    shorten_supernode_polls(ours.poll_interval, min(ours.poll_interval, REPLY_POLL_S))
    from flwr.supernode.cli import flower_supernode

    sys.argv = ["flower-supernode", *rest]
    flower_supernode()


if __name__ == "__main__":
    main()
