"""The `hiplevel` command: one subcommand per module, each with `add_arguments(parser)` and
`run(args) -> int`. Only the chosen subcommand's module is imported.

A `UserError` anywhere below becomes one plain sentence on stderr and exit status 2: no traceback
for things the user can fix (a wrong port, a bad value, a missing folder).
"""
from __future__ import annotations

import argparse
import importlib
import inspect
import logging
import sys

from host.errors import UserError

# name -> (module, one-line help). Add a line here for a new subcommand.
COMMANDS = {
    "demo": ("host.commands.demo", "the app against the built-in simulated sensor doing hip dips"),
    "run": ("host.commands.run", "connect to a sensor and give live feedback"),
    "scan": ("host.commands.scan", "list the hiplevel sensors in Bluetooth reach"),
    "sim": ("firmware_sim.cli", "run the simulated belt sensor"),
    "bench": ("host.bench", "benchmarks that print numbers"),
    "sessions": ("host.commands.sessions", "list recorded sessions"),
    "replay": ("host.commands.replay", "replay a recorded session through the pipeline"),
    "export": ("host.commands.export", "export a recorded session as CSV files"),
    "report": ("host.commands.report", "an HTML report of a session, or of a patient's progress"),
    "history": ("host.commands.history", "a window with a patient's sessions, progress and session review"),
    "programme": ("host.commands.programme", "a patient's programme: show, edit, import, export"),
    "today": ("host.commands.today", "run the next session of the patient's programme"),
    "serve": ("host.commands.serve", "the therapists' web dashboard (patients, sessions, live view)"),
    "pair": ("host.commands.pair", "pair this home installation with the clinic (a code from its dashboard)"),
    "upload": ("host.commands.upload", "upload finished sessions to the clinic this installation is paired with"),
    "clinic": ("host.commands.clinic", "clinics, therapist accounts and their patients, for the dashboard"),
}


def _chosen(argv: list[str], names) -> tuple[str | None, list[str]]:
    """The subcommand named in argv (first word that is one) and the words after it."""
    for i, word in enumerate(argv):
        if word in names:
            return word, argv[i + 1:]
    return None, []


def add_subcommands(parser, table: dict, argv: list[str], dest: str, metavar: str) -> None:
    """One subparser per table entry; only the chosen one's module is imported (fast start-up,
    and Qt/bleak/bumble load only for the commands that use them)."""
    sub = parser.add_subparsers(dest=dest, metavar=metavar, required=True)
    chosen, rest = _chosen(argv, table)
    for name, (module_name, help_text) in table.items():
        p = sub.add_parser(name, help=help_text)
        if name != chosen:
            continue
        module = importlib.import_module(module_name)
        p.description = (module.__doc__ or "").split("\n\n")[0]
        if len(inspect.signature(module.add_arguments).parameters) > 1:
            module.add_arguments(p, rest)  # it has subcommands of its own
        else:
            module.add_arguments(p)
        p.set_defaults(**{f"_run_{dest}": module.run})


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hiplevel", description="Real-time pelvic-level feedback from a belt-worn IMU.")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    add_subcommands(parser, COMMANDS, argv, "command", "COMMAND")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv).parse_args(argv)
    level = logging.WARNING - 10 * args.verbose
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args._run_command(args) or 0)
    except UserError as e:
        print(f"hiplevel {args.command}: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # a second Ctrl-C on `run` (the first ends the session cleanly)
        print(f"hiplevel {args.command}: aborted.", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly
        import os
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":  # `python -m host.cli`, as the tests and the demo start it
    sys.exit(main())
