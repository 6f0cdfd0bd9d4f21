"""`hiplevel bench KIND`: benchmarks that print numbers (and can write them into docs/).

Each KIND is a module host.bench.<kind> with `add_arguments(parser)` and `run(args) -> int`.
"""
from __future__ import annotations

import importlib

BENCHES = {
    "pipeline": ("host.bench.pipeline", "host cost per sample and replay throughput"),
    "accuracy": ("host.bench.accuracy", "orientation accuracy on recordings with ground truth (BROAD)"),
}


def add_arguments(parser) -> None:
    sub = parser.add_subparsers(dest="bench", metavar="KIND", required=True)
    for name, (module_name, help_text) in BENCHES.items():
        module = importlib.import_module(module_name)
        p = sub.add_parser(name, help=help_text, description=(module.__doc__ or "").split("\n\n")[0])
        module.add_arguments(p)
        p.set_defaults(_bench_run=module.run)


def run(args) -> int:
    return args._bench_run(args)
