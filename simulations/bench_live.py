"""``python -m simulations.bench_live``: the live-device benchmark under the name its
issue gives it; the code is ``simulations.bench.live``, beside the other benches."""

import sys

from simulations.bench.live import main

if __name__ == "__main__":
    sys.exit(main())
