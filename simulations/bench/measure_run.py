"""Run a command and report its wall time and the peak memory of its process tree.

    python -m simulations.bench.measure_run -- fedssl simulate

Ray's workers are descendants of the command, so their memory counts too (unlike
``/usr/bin/time``, which sees only the command's own process).
"""

from __future__ import annotations

import subprocess
import sys
import time

from simulations.bench.proc_tree import PeakMemory


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--"]:
        args = args[1:]
    if not args:
        print(__doc__, file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    proc = subprocess.Popen(args)
    with PeakMemory(proc.pid) as mem:
        rc = proc.wait()
    wall = time.perf_counter() - t0
    print(
        f"measure_run: exit {rc}, wall {wall:.1f} s, peak RSS of the process tree {mem.peak / 2**30:.2f} GiB",
        file=sys.stderr,
    )
    return rc


if __name__ == "__main__":
    sys.exit(main())
