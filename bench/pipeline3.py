"""Benchmark 2: a 3-step pipeline (fit 300x300, sharpen, WebP q85) through the service, thumbor
and bare Pillow, at concurrency 1, 8 and 32 (bench.thumbnail's machinery, one job).

    python -m bench.pipeline3 [--quick]     # writes results/pipeline3.json
"""

from __future__ import annotations

from bench.thumbnail import main

if __name__ == "__main__":
    main(["pipeline3"])
