"""`python -m bench`: run the benchmarks, write bench/results/<name>.json and bench/results/README.md.

Exit 0 when every benchmark ran (targets missed are reported, not fatal: the numbers are the
deliverable), 1 when a benchmark crashed, 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

from bench.common import CACHE_DIR, ORDER, RESULTS_DIR, RUN_ORDER, RunContext, Sizes, render_summary, write_result

log = logging.getLogger("bench")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--only", action="append", choices=ORDER, help="run only this benchmark (repeatable)")
    p.add_argument("--quick", action="store_true", help="small sizes, for a smoke run (minutes, not tens)")
    p.add_argument("--out", type=Path, default=RESULTS_DIR, help="results directory (default bench/results)")
    p.add_argument("--cache-dir", type=Path, default=CACHE_DIR,
                   help="where index-corpus embeddings are kept between runs (default build/bench-cache)")
    p.add_argument("--no-cache", action="store_true", help="encode the index corpus again even if cached")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s bench %(message)s", stream=sys.stderr)

    ctx = RunContext(Sizes.quick() if args.quick else Sizes.full(), args.quick,
                     cache_dir=None if args.no_cache else args.cache_dir)
    failed = []
    for name in [n for n in RUN_ORDER if n in (args.only or RUN_ORDER)]:
        module = importlib.import_module(f"bench.{name}")
        log.info("=== %s ===", name)
        start = time.perf_counter()
        try:
            result = module.run(ctx)
        except Exception:  # noqa: BLE001 - one broken benchmark must not hide the others' numbers
            log.error("benchmark %s failed:\n%s", name, traceback.format_exc())
            failed.append(name)
            continue
        path = write_result(result, args.quick, time.perf_counter() - start, args.out)
        log.info("%s -> %s", name, path)
    summary = render_summary(args.out)
    log.info("summary -> %s", summary)
    if failed:
        log.error("failed benchmarks: %s", ", ".join(failed))
        return 1
    return 0
