"""`hiplevel bench KIND`: benchmarks that print numbers (and can write them into docs/).

Each KIND is a module host.bench.<kind> with `add_arguments(parser)` and `run(args) -> int`.
"""
from __future__ import annotations


BENCHES = {
    "pipeline": ("host.bench.pipeline", "host cost per sample and replay throughput"),
    "accuracy": ("host.bench.accuracy", "orientation accuracy on recordings with ground truth (BROAD)"),
    "replay": ("host.bench.replay", "recording cost and replay speed (hiplevel replay --fast)"),
    "latency": ("host.bench.latency", "cue latency through the real audio path"),
    "reps": ("host.bench.reps", "rep detection and cue accuracy over simulated scenarios"),
    "gait": ("host.bench.gait", "live step detection against reference contacts on real walking (IPOL format)"),
    "calibration": ("host.bench.calibration", "mounting calibration, lost frames and clock drift against simulator truth"),
    "memory": ("host.bench.memory", "peak memory of export and report on a long session"),
    "clinic": ("host.bench.clinic", "stations recording into one database, watched live through hiplevel serve"),
}


def add_arguments(parser, argv: list[str]) -> None:
    from host.cli import add_subcommands
    add_subcommands(parser, BENCHES, argv, "bench", "KIND")


def run(args) -> int:
    return args._run_bench(args)
