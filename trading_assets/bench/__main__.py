"""The bench's end-to-end child: python -m trading_assets.bench e2e-worker N OUT."""

from __future__ import annotations

import sys
from pathlib import Path

from trading_assets.bench.e2e import e2e_worker

if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "e2e-worker":
        sys.exit(e2e_worker(int(sys.argv[2]), Path(sys.argv[3])))
    sys.exit("usage: trading-signals bench --help")
