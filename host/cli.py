"""The `hiplevel` command: one subcommand per module, each with `add_arguments(parser)` and
`run(args) -> int`. Modules are imported when the parser is built, so they keep heavy imports
(Qt, bleak, bumble) inside `run`.

A `UserError` anywhere below becomes one plain sentence on stderr and exit status 2: no traceback
for things the user can fix (a wrong port, a bad value, a missing folder).
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

# name -> (module, one-line help). Add a line here for a new subcommand.
COMMANDS = {
    "demo": ("host.cmd_demo", "the app against the built-in simulated sensor doing hip dips"),
    "run": ("host.cmd_run", "connect to a sensor and give live feedback"),
    "sim": ("firmware_sim.cli", "run the simulated belt sensor"),
    "bench": ("host.bench", "benchmarks that print numbers"),
}


class UserError(Exception):
    """A problem the user can fix, said in words they understand."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hiplevel", description="Real-time pelvic-level feedback from a belt-worn IMU.")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(module_name)
        p = sub.add_parser(name, help=help_text, description=(module.__doc__ or "").split("\n\n")[0])
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = logging.WARNING - 10 * args.verbose
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args._run(args) or 0)
    except UserError as e:
        print(f"hiplevel {args.command}: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    # `python -m host.cli`: use the importable module's classes, so `except UserError` matches
    from host.cli import main as _main
    sys.exit(_main())
