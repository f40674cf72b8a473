"""Run the benchmark modules of this package with their default settings and print their
tables: ``python -m benchmarks`` (all of them) or ``python -m benchmarks inbox`` (some).

A benchmark module is any module here with a ``main(argv) -> int`` that prints its results;
run one directly for its options, e.g. ``python -m benchmarks.inbox --help``.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time

import benchmarks


def benchmark_modules() -> list[str]:
    """The modules here with a ``main`` (helpers such as ``bare_app``, the intake baseline, have none)."""
    names = sorted(m.name for m in pkgutil.iter_modules(benchmarks.__path__) if not m.name.startswith("_"))
    return [name for name in names if callable(getattr(importlib.import_module(f"benchmarks.{name}"), "main", None))]


def main(names: list[str]) -> int:
    available = benchmark_modules()
    unknown = sorted(set(names) - set(available))
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; available: {', '.join(available)}", file=sys.stderr)
        return 2
    status = 0
    for name in names or available:
        module = importlib.import_module(f"benchmarks.{name}")
        print(f"== {name}", flush=True)
        started = time.perf_counter()
        status |= module.main([]) or 0
        print(f"({time.perf_counter() - started:.0f} s)\n", flush=True)
    return status


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
