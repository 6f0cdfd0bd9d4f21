"""Recording cost on the live path and `hiplevel replay --fast` speed.

A hip-dip set from the simulator's encoder (200 Hz, 4 samples per frame, generated up front, with
host receive times spaced as a real link delivers them) is recorded into a fresh session database
by the real Recorder, then replayed from it through ReplayTransport + runner.StreamRunner, the code
`hiplevel replay --fast` runs. Printed (and with --write-docs, written as its own section of a
Markdown file): the cost of `Recorder.frame` on the pipeline's thread, the writer thread's commit
time per COMMIT_INTERVAL_S of data, the database size per minute, and replay speed as a multiple of
real time (medians over repeats; the machines are shared, so repeats and medians matter).
`--db postgresql://...` records into (and replays from) that PostgreSQL database instead of a
temporary SQLite file (a new session; nothing else in the database is touched).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from host.bench.docs import replace_section
from host.errors import UserError

HEADING = "Session recording and replay"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seconds", type=float, default=300.0, help="sensor time in the recorded set (default 300)")
    p.add_argument("--repeats", type=int, default=5, help="replays to time (default 5)")
    p.add_argument("--db", metavar="URL", help="record into this PostgreSQL database (postgresql://...) "
                   "instead of a temporary SQLite file")
    p.add_argument("--write-docs", metavar="PATH", help="also write the results into this Markdown file's "
                   f"'{HEADING}' section (e.g. docs/performance.md)")


def make_frames(seconds: float):
    """[(t_host_s, frame_bytes)]: info, data frames at their real arrival times, stop."""
    from firmware_sim.device import SimDevice
    from firmware_sim.motion import Scenario
    sc = Scenario(drops_deg=[3.0])
    reps = max(1, int((seconds - (sc.duration_s - sc.rep_s)) / sc.rep_s))
    sc = Scenario(drops_deg=[[3.0, 8.0, 4.0, 9.0][i % 4] for i in range(reps)])
    dev = SimDevice(sc, seed=1)
    dev.streaming = True
    data = dev.frames_due(sc.duration_s + 1.0)
    period_s = dev.samples_per_frame / dev.rate_hz
    t0 = 1000.0
    frames = [(t0, dev.info_frame())] + [(t0 + (i + 1) * period_s, f) for i, f in enumerate(data)]
    frames.append((frames[-1][0] + period_s, dev.stop_frame()))
    return frames, period_s


def pipeline_only_cpu_s(frames) -> float:
    """CPU seconds for decoder + pipeline on the same frames without runner.StreamRunner (no asyncio, no
    clock map): what replay would cost if the session loop were free."""
    from host.processing.pipeline import Pipeline, PipelineConfig
    from host.protocol.frames import SampleDecoder
    dec, pipe = SampleDecoder(), Pipeline(PipelineConfig())
    c0 = time.process_time()
    for t_host, frame in frames:
        pipe.feed_frame(dec, frame, t_host)
    return time.process_time() - c0


def record_frames(db, frames: list, period_s: float) -> tuple[float, list[float], int]:
    """Record `frames` with the real Recorder; (pipeline-thread seconds in Recorder.frame(), commit
    times, the session's id).
    The writer thread is not started on a timer here: the benchmark drains the queue itself every
    COMMIT_INTERVAL_S of data, so each commit holds what a live commit holds."""
    from host.processing.pipeline import PipelineConfig
    from host.sinks.recorder import COMMIT_INTERVAL_S, Recorder, settings_of
    rec = Recorder(db, "bench", source="bench", commit_interval_s=3600.0, report=lambda m: print(m))
    if rec.failed:
        raise UserError(rec.failed)
    rec.start_block(settings_of(PipelineConfig()))
    per_commit = max(1, round(COMMIT_INTERVAL_S / period_s))
    call_s = 0.0
    for k in range(0, len(frames), per_commit):
        chunk = frames[k:k + per_commit]
        t0 = time.perf_counter()
        for t_host, f in chunk:
            rec.frame(t_host, f)
        call_s += time.perf_counter() - t0
        rec._flush()
    rec.event({"event": "end", "t": frames[-1][0] - frames[0][0], "reason": "the sensor finished the set"})
    commits = list(rec.commit_s)
    rec.close()
    return call_s, commits, rec.session_id


def run(args) -> int:
    from host import store
    from host.processing.pipeline import PipelineConfig
    from host.session.review import replay_block
    from host.sinks.recorder import COMMIT_INTERVAL_S

    frames, period_s = make_frames(args.seconds)
    data_s = frames[-1][0] - frames[0][0]
    with tempfile.TemporaryDirectory() as tmp:
        db = args.db or Path(tmp) / "bench.sqlite"
        call_s, commits, session_id = record_frames(db, frames, period_s)
        size_mb = None if args.db else db.stat().st_size / 1e6
        try:
            conn = store.connect(db)
        except store.StoreError as e:
            raise UserError(str(e)) from None
        block = store.get_session(conn, session_id).blocks[0]
        walls, cpus, direct, samples = [], [], [], 0
        for _ in range(args.repeats):
            direct.append(pipeline_only_cpu_s(frames))
            c0 = time.process_time()
            r = replay_block(conn, block, PipelineConfig(), speed=None)
            cpus.append(time.process_time() - c0)
            walls.append(r.wall_s)
            samples = r.summary.samples
        conn.close()

    wall, cpu, pipe_cpu = statistics.median(walls), statistics.median(cpus), statistics.median(direct)
    lines = [
        f"recorded set: {data_s:.0f} s of sensor data at 200 Hz, {len(frames)} frames; "
        f"{args.repeats} replays, medians; database: "
        + (f"PostgreSQL ({store.shown(args.db)})" if args.db else "SQLite file"),
        "",
        "| what | result |",
        "| --- | --- |",
        f"| `Recorder.frame()` on the pipeline thread | {call_s / len(frames) * 1e6:.2f} µs per frame |",
        f"| writer thread, one commit ({COMMIT_INTERVAL_S:g} s of data) | median "
        f"{statistics.median(commits) * 1e3:.2f} ms, max {max(commits) * 1e3:.1f} ms |",
        f"| writer thread load | {sum(commits) / data_s:.2%} of one core |",
        f"| database size | {size_mb / (data_s / 60):.2f} MB per minute recorded |" if size_mb is not None else
        "| database size | (not measured on a server) |",
        f"| `hiplevel replay --fast` | {samples / wall:,.0f} samples/s = **{data_s / wall:,.0f}x real time** "
        f"(min {data_s / max(walls):,.0f}x, max {data_s / min(walls):,.0f}x) |",
        f"| same, per second of CPU time (less sensitive to other load) | {data_s / cpu:,.0f}x real time, "
        f"{cpu / samples * 1e6:.1f} µs per sample |",
        f"| for comparison: decoder + pipeline alone, without `runner.StreamRunner` (CPU time) | "
        f"{data_s / pipe_cpu:,.0f}x real time; the session loop adds "
        f"{(cpu - pipe_cpu) / len(frames) * 1e6:.0f} µs per frame |",
        f"| machine load (1-min average, {os.cpu_count()} cores) | {os.getloadavg()[0]:.1f} |",
    ]
    text = "\n".join(lines)
    print(text)
    verdict = (f"Target (issue: `--fast` at least 100x real time): "
               f"{'met' if data_s / wall >= 100 else 'not met'} in this run ({data_s / wall:,.0f}x wall, "
               f"{data_s / cpu:,.0f}x per CPU second).")
    print(verdict)
    if args.write_docs:
        cmd = "hiplevel bench replay " + " ".join(sys.argv[3:])
        replace_section(args.write_docs, HEADING,
                        f"Command: `{cmd.strip()}`.\n\n{text}\n\n{verdict}\n\nReplay runs the live "
                        "session loop (`runner.StreamRunner`) and pipeline (decoder, estimator, calibration, "
                        "exercise logic) on the stored frames; the replay transport itself only adds one "
                        "database read per 4,096 frames. The difference between the last two speeds is "
                        "the session loop's cost per frame: an asyncio task and an `asyncio.wait` for "
                        "every frame read, plus the clock map (about 5 µs).")
    return 0
