"""Peak memory of `hiplevel export` and `hiplevel report` on a long recorded session.

A hip-dip set of `--minutes` of sensor data (the simulator's encoder, 200 Hz, 4 samples per frame,
with host receive times spaced as a real link delivers them: host.bench.replay.make_frames) is
recorded into a fresh session database by the real Recorder. Then `hiplevel export` and
`hiplevel report` run on it, each in its own child Python (host.cli.main), which reports its peak
resident memory (VmHWM from /proc/self/status, what the kernel counted). For scale,
the peak of `hiplevel sessions` on the same database is the cost of starting the app at all.
Printed, and with --write-docs written as its own section of a Markdown file.
"""
from __future__ import annotations

import argparse
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
    p.add_argument("--write-docs", metavar="PATH", help="also write the results into this Markdown file's "
                   f"'{HEADING}' section (e.g. docs/performance.md)")


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
from host.cli import main
try:
    rc = main(sys.argv[1:])
finally:
    hwm = next(l for l in open('/proc/self/status') if l.startswith('VmHWM:'))
    print('HWM_KB', hwm.split()[1], file=sys.stderr)
sys.exit(rc)
"""


def peak_of(argv: list[str], cwd: Path) -> tuple[float, float]:
    """Run `hiplevel ARGV` in a child Python; (its peak resident memory in MB, wall seconds).
    Raises UserError when it fails."""
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-c", _CHILD, *argv], cwd=cwd, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t0
    hwm = [line.split()[1] for line in p.stderr.splitlines() if line.startswith("HWM_KB ")]
    if p.returncode != 0 or not hwm:
        raise UserError(f"`hiplevel {' '.join(argv)}` failed ({p.returncode}): {p.stderr.strip()}")
    return int(hwm[0]) / 1024.0, wall


def measure(minutes: float, workdir: Path) -> dict:
    """Record a session of `minutes` in `workdir` and measure the commands on it (MB, seconds)."""
    db = workdir / "bench.sqlite"
    frames = record_session(db, minutes * 60.0)
    out = {"frames": frames, "db_mb": db.stat().st_size / 1e6}
    out["sessions_mb"], _ = peak_of(["sessions", "--db", str(db)], workdir)
    out["export_mb"], out["export_s"] = peak_of(["export", "1", "--csv", str(workdir / "csv"), "--db", str(db)],
                                                workdir)
    out["samples_mb"] = (workdir / "csv" / "session-1-samples.csv").stat().st_size / 1e6
    out["report_mb"], out["report_s"] = peak_of(["report", "1", "-o", str(workdir / "r.html"), "--db", str(db)],
                                                workdir)
    return out


def run(args) -> int:
    if not args.minutes > 0:
        raise UserError("--minutes must be above 0")
    with tempfile.TemporaryDirectory() as tmp:
        m = measure(args.minutes, Path(tmp))
    lines = [
        f"recorded session: {args.minutes:g} min of sensor data at 200 Hz (hip dip), {m['frames']:,} frames, "
        f"database {m['db_mb']:.0f} MB",
        "",
        "| command | peak resident memory | wall time |",
        "| --- | --- | --- |",
        f"| `hiplevel sessions` (starting the app, for scale) | {m['sessions_mb']:.0f} MB | |",
        f"| `hiplevel export 1 --csv DIR` (samples CSV {m['samples_mb']:.0f} MB) | {m['export_mb']:.0f} MB | "
        f"{m['export_s']:.0f} s |",
        f"| `hiplevel report 1` | {m['report_mb']:.0f} MB | {m['report_s']:.0f} s |",
    ]
    text = "\n".join(lines)
    print(text)
    if args.write_docs:
        replace_section(args.write_docs, HEADING, (
            f"Command: `hiplevel bench memory --minutes {args.minutes:g} --write-docs {args.write_docs}`.\n\n"
            f"{text}\n\nEach command runs as its own process; the peak is the kernel's count of its "
            "resident memory (`VmHWM`), imports included. Export streams: the stored frames are read "
            "4,096 at a time, replayed through the live pipeline, and each sample's row is written as "
            "the replay reaches it, so its peak does not grow with the session's length. The report "
            "keeps one block's replayed trace (five numbers per sample, in arrays: "
            "`host.session.review.TraceColumns`) to draw its plots."))
    return 0
