"""Peak memory of `hiplevel export` and `hiplevel report` on a long recorded session.

A hip-dip set of `--minutes` of sensor data (the simulator's encoder, 200 Hz, 4 samples per frame,
with host receive times spaced as a real link delivers them: host.bench.replay.make_frames) is
recorded into a fresh session database by the real Recorder. Then `hiplevel export` and
`hiplevel report` run on it, each in its own child Python (host.cli.main), which reports its peak
resident memory (VmHWM from /proc/self/status, what the kernel counted). For scale, the peak of
a bare interpreter (Python doing nothing) and of `hiplevel sessions` on the same database (starting
the app at all). Each is run `--repeats` times, medians; `--against DIR` runs the same commands with
another checkout's code too (a worktree of an earlier commit), interleaved with this one's on the
same database, for a before/after in one invocation. Printed, and with --write-docs written as its
own section of a Markdown file.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from host.bench.docs import replace_section
from host.errors import UserError

HEADING = "Export and report memory"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--minutes", type=float, default=60.0, help="sensor time in the recorded session (default 60)")
    p.add_argument("--repeats", type=int, default=3, help="runs of each command; medians (default 3)")
    p.add_argument("--commands", nargs="+", choices=COMMANDS, default=list(COMMANDS),
                   help="which long commands to measure (default both)")
    p.add_argument("--against", metavar="DIR", help="also run the commands with the code of this checkout "
                   "(e.g. a git worktree of the commit before a change), interleaved with this one's")
    p.add_argument("--write-docs", metavar="PATH", help="also write the results into this Markdown file's "
                   f"'{HEADING}' section (e.g. docs/performance.md)")


COMMANDS = ("export", "report")
SHORT_S = 60.0   # the report is also run on a session this long: its cost with little to replay


def record_session(db: Path, seconds: float) -> int:
    """Record a hip-dip set of `seconds` into `db`; the number of frames."""
    from host.bench.replay import make_frames, record_frames
    frames, period_s = make_frames(seconds)
    record_frames(db, frames, period_s)
    return len(frames)


# The child reports its own high-water mark: VmHWM belongs to the process's memory map, which exec
# starts afresh (ru_maxrss would still hold the benchmark's own size from before the fork).
_CHILD = """
import sys
rc = 0
try:
    if sys.argv[1:]:
        from host.cli import main
        rc = main(sys.argv[1:])
finally:
    hwm = next(l for l in open('/proc/self/status') if l.startswith('VmHWM:'))
    print('HWM_KB', hwm.split()[1], file=sys.stderr)
sys.exit(rc)
"""


def code_root() -> Path:
    """The checkout this benchmark's own `host` package comes from."""
    import host
    return Path(host.__file__).resolve().parents[1]


def peak_of(argv: list[str], cwd: Path, code: Path | None = None) -> tuple[float, float]:
    """Run `hiplevel ARGV` (no ARGV: the bare interpreter) in a child Python with the `host` of
    the checkout `code` (default: this one); (its peak resident memory in MB, wall seconds).
    Raises UserError when it fails."""
    env = {**os.environ, "PYTHONPATH": str(code or code_root())}
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-c", _CHILD, *argv], cwd=cwd, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, text=True, env=env)
    wall = time.perf_counter() - t0
    hwm = [line.split()[1] for line in p.stderr.splitlines() if line.startswith("HWM_KB ")]
    if p.returncode != 0 or not hwm:
        raise UserError(f"`hiplevel {' '.join(argv)}` failed ({p.returncode}): {p.stderr.strip()}")
    return int(hwm[0]) / 1024.0, wall


def measure(minutes: float, workdir: Path, repeats: int = 1, commands=COMMANDS, against: Path | None = None) -> dict:
    """Record a session of `minutes` in `workdir` and measure the commands on it, `repeats` times
    each, the checkouts taking turns: {"this"|"against": {name: ([MB], [s])}} and the session's size."""
    db = workdir / "bench.sqlite"
    frames = record_session(db, minutes * 60.0)
    out = {"frames": frames, "db_mb": db.stat().st_size / 1e6}
    record_session(db, SHORT_S)   # session 2: what the report costs whatever the length
    argv = {"python": [], "sessions": ["sessions", "--db", str(db)],
            "export": ["export", "1", "--csv", str(workdir / "csv"), "--db", str(db)],
            "report": ["report", "1", "-o", str(workdir / "r.html"), "--db", str(db)],
            "report_short": ["report", "2", "-o", str(workdir / "r2.html"), "--db", str(db)]}
    names = ["python", "sessions"] + [c for c in COMMANDS if c in commands]
    if "report" in names:
        names.append("report_short")
    codes = {"this": None, **({"against": against} if against else {})}
    for which in codes:
        out[which] = {n: ([], []) for n in names}
    for _ in range(repeats):
        for name in names:
            for which, code in codes.items():
                mb, s = peak_of(argv[name], workdir, code)
                out[which][name][0].append(mb)
                out[which][name][1].append(s)
    if "export" in names:
        out["samples_mb"] = (workdir / "csv" / "session-1-samples.csv").stat().st_size / 1e6
    return out


def _code_name(path: Path) -> str:
    """Which code a checkout holds, for the table: its commit, or its path when it is no git checkout."""
    git = ["git", "-C", str(path)]
    head = subprocess.run([*git, "log", "-1", "--format=%h"], capture_output=True, text=True).stdout.strip()
    if not head:
        return str(path)
    dirty = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                           text=True).stdout.strip()
    return head + (" with uncommitted changes" if dirty else "")


def run(args) -> int:
    if not args.minutes > 0:
        raise UserError("--minutes must be above 0")
    if args.repeats < 1:
        raise UserError("--repeats must be 1 or more")
    against = Path(args.against).resolve() if args.against else None
    if against is not None and not (against / "host" / "cli.py").is_file():
        raise UserError(f"{args.against} is not a hiplevel checkout (it has no host/cli.py)")
    if args.write_docs and set(args.commands) != set(COMMANDS):
        raise UserError("--write-docs writes the whole table: measure both commands (leave out --commands)")
    with tempfile.TemporaryDirectory() as tmp:
        m = measure(args.minutes, Path(tmp), args.repeats, args.commands, against)
    med = {w: {n: (statistics.median(v[0]), statistics.median(v[1])) for n, v in m[w].items()}
           for w in ("this", "against") if w in m}
    bare = med["this"]["python"][0]
    label = {"python": "bare interpreter (Python doing nothing)",
             "sessions": "`hiplevel sessions` (starting the app, for scale)",
             "export": f"`hiplevel export 1 --csv DIR` (samples CSV {m.get('samples_mb', 0):.0f} MB)",
             "report": "`hiplevel report 1`",
             "report_short": f"`hiplevel report 2` (a session of {SHORT_S / 60:g} min, for scale)"}
    head = "| command | peak resident memory | above the bare interpreter | wall time |"
    rule = "| --- | --- | --- | --- |"
    if against is not None:
        head += f" peak with the code of {_code_name(against)} | wall time |"
        rule += " --- | --- |"
    rows = []
    for name, (mb, s) in med["this"].items():
        row = (f"| {label[name]} | {mb:.0f} MB (runs {', '.join(f'{x:.0f}' for x in m['this'][name][0])}) | "
               f"{mb - bare:+.0f} MB | {s:.0f} s |" if name != "python" else
               f"| {label[name]} | {mb:.0f} MB | | |")
        if against is not None:
            amb, a_s = med["against"][name]
            row += (f" {amb:.0f} MB (runs {', '.join(f'{x:.0f}' for x in m['against'][name][0])}) | {a_s:.0f} s |")
        rows.append(row)
    lines = [f"recorded session: {args.minutes:g} min of sensor data at 200 Hz (hip dip), {m['frames']:,} frames, "
             f"database {m['db_mb']:.0f} MB; each command run {args.repeats} time(s), medians"
             + (f"; this code is {_code_name(code_root())}" if against is not None else ""),
             "", head, rule, *rows]
    text = "\n".join(lines)
    print(text)
    if args.write_docs:
        cmd = f"hiplevel bench memory --minutes {args.minutes:g} --repeats {args.repeats}" + (
            f" --against {args.against}" if args.against else "") + f" --write-docs {args.write_docs}"
        replace_section(args.write_docs, HEADING, (
            f"Command: `{cmd}`.\n\n"
            f"{text}\n\nEach command runs as its own process; the peak is the kernel's count of its "
            "resident memory (`VmHWM`), imports included. Export and report stream: the stored frames are "
            "read 4,096 at a time and replayed through the live pipeline; the export writes each "
            "sample's row as the replay reaches it, the report keeps of each plot row (120 s) the "
            "minimum and maximum angle of each of its 800 buckets (`host.report.svg.RowEnvelopes`), "
            "so what they hold does not grow with the session's length; most of each peak is the "
            "imports (numpy, the pipeline), as the report of a short session shows."))
    return 0
