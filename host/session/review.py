"""The one place that turns a stored block into angles, reps and a comparison with what happened live.

In: a block of the session store (host.store.BlockInfo) and an open connection. The block's raw
frames go through host.links.replay.ReplayTransport into host.session.runner.StreamRunner, so the
same decoder, estimator, calibration and exercise logic run as live (`replay_block`). The block's
stored settings are used (`config_for`), with overrides where a caller asks for a re-analysis.
Out: data, not sentences: a `Replay` (the run's summary, events and per-sample angles),
`BlockAngles` (angles on the block's own clock, the recorded events, reps, cue periods and the
`RepComparison` of replayed and recorded reps). `hiplevel replay`, `export`, `report` and the history
window all use `review_block` / `replay_block`; they decide how to say it. The per-sample angles come
either as arrays (the history window, tests) or one sample at a time to a callable, so a caller can
stream them: the export writes each as a row, the report thins them into its plots' envelopes
(host.report.svg.RowEnvelopes), and neither holds a block's samples.
"""
from __future__ import annotations

import asyncio
import dataclasses
import math
import time
from dataclasses import dataclass, field

import numpy as np

from host import store
from host.errors import UserError
from host.processing.estimators import ESTIMATORS
from host.processing.exercise import ExerciseConfig
from host.processing.pipeline import PipelineConfig



def as_rep(event: dict) -> dict:
    """A rep event as it is; a walking step (host.processing.gait) as a rep, so every list of reps,
    table and comparison covers walking: its swing side is the low side, its drop the rep's maximum
    drop (as host.store indexes it)."""
    if event.get("event") == "step":
        return {**event, "low_side": event.get("swing_side"), "max_drop_deg": event.get("drop_deg")}
    return event


def reps_of(events: list[dict]) -> list[dict]:
    return [as_rep(e) for e in events if e.get("event") in ("rep", "step")]


def config_for(s: store.BlockInfo, overrides=None) -> PipelineConfig:
    """The block's recorded pipeline settings, with any overrides from the command line."""
    stored = dict(s.settings or {})
    ex_stored = dict(stored.get("exercise") or {})
    ex_stored.setdefault("exercise", s.exercise)
    ex_stored.setdefault("stance", s.stance)
    ex_stored.setdefault("threshold_left_deg", s.threshold_left_deg)
    ex_stored.setdefault("threshold_right_deg", s.threshold_right_deg)
    o = overrides
    if o is not None:
        for name in ("exercise", "stance"):
            if getattr(o, name, None) is not None:
                ex_stored[name] = getattr(o, name)
        base = getattr(o, "threshold", None)
        for side in ("left", "right"):
            v = getattr(o, f"threshold_{side}", None) or base
            if v is not None:
                ex_stored[f"threshold_{side}_deg"] = v
    # keep only fields this version knows, so a block recorded by another version still replays
    ex_fields = {f.name for f in dataclasses.fields(ExerciseConfig)}
    try:
        ex = ExerciseConfig(**{k: v for k, v in ex_stored.items() if k in ex_fields})
    except ValueError as e:
        raise UserError(f"the settings of session {s.session_id} block {s.number} cannot be used: {e}") from None
    pipe_fields = {f.name for f in dataclasses.fields(PipelineConfig)} - {"exercise"}
    kw = {k: v for k, v in stored.items() if k in pipe_fields}
    kw.setdefault("estimator", s.estimator)
    if o is not None and getattr(o, "estimator", None):
        kw["estimator"] = o.estimator
    if o is not None and getattr(o, "calibration", None):
        kw["calibration"] = o.calibration
    if kw.get("estimator") not in ESTIMATORS:
        raise UserError(f"session {s.session_id} was recorded with the estimator {kw.get('estimator')!r}, "
                        f"which this version does not have; choose one with --estimator "
                        f"({', '.join(sorted(ESTIMATORS))})")
    if getattr(ESTIMATORS[kw["estimator"]], "live", True) is False:
        raise UserError(f"the {kw['estimator']} estimator needs the whole recording; replay runs the live pipeline")
    return PipelineConfig(exercise=ex, **kw)


def threshold_steps(block: store.BlockInfo, events: list[dict], end_t_s: float) -> dict:
    """Each side's limit over time: the block's setting, then every `threshold_changed` from the
    window, as step lines (x, y) in degrees of drop (the report, the review window)."""
    out = {}
    for side in ("left", "right"):
        xs, ys = [0.0], [float(getattr(block, f"threshold_{side}_deg"))]
        for e in events:
            if e.get("event") == "threshold_changed" and e.get("side") == side:
                t = float(e.get("t", 0.0))
                xs += [t, t]
                ys += [ys[-1], float(e["threshold_deg"])]
        xs.append(max(end_t_s, xs[-1]))
        ys.append(ys[-1])
        out[side] = (np.array(xs), np.array(ys))
    return out


def step_within(xs: np.ndarray, ys: np.ndarray, a: float, b: float) -> tuple[list, list]:
    """The part of a step line (from threshold_steps) between times a and b."""
    keep_x, keep_y = [a], [float(ys[np.searchsorted(xs, a, side="right") - 1]) if xs[0] <= a else float(ys[0])]
    for x, y in zip(xs, ys):
        if a < x < b:
            keep_x.append(float(x))
            keep_y.append(float(y))
    keep_x.append(b)
    keep_y.append(keep_y[-1])
    return keep_x, keep_y


def _no_display():
    from host.sinks.live import LiveBuffer

    class NoDisplay(LiveBuffer):
        """No one watches a replay without its console view: skip the display's per-sample copy."""

        def append(self, *args) -> None:
            pass

        def update_status(self, **fields) -> None:
            pass
    return NoDisplay(capacity=1)


class _Collect:
    """An EventLog stand-in that keeps the events (and passes them on to a real log, if any)."""

    def __init__(self, log=None):
        self.events: list[dict] = []
        self.log = log

    def write(self, event: dict) -> None:
        self.events.append(event)
        if self.log is not None:
            self.log.write(event)


@dataclass
class Replay:
    summary: object
    events: list
    pipeline: object
    transport: object
    wall_s: float
    data_s: float              # device seconds replayed
    samples: dict = field(default_factory=dict)  # trace=True: TraceColumns.NAMES -> arrays

    @property
    def reps(self) -> list[dict]:
        return reps_of(self.events)

    @property
    def ok(self) -> bool:
        return self.summary.ok or self.transport.finished


def steering_of(events: list[dict]) -> list[dict]:
    """What the user changed live, from a block's recorded events: every threshold change, and every
    set the user ended ("End this set"), to be applied again at their times."""
    return [e for e in events if e.get("event") == "threshold_changed"
            or (e.get("event") in ("set_summary", "walk_summary") and e.get("ended_by") == "user")]


class TraceColumns:
    """The per-sample trace of a replay (seq, t_device_us, obliquity, forward tilt, t_s) in numpy
    chunks: a Python number per sample and column would cost about 32 bytes where the array holds 8
    (a 60-minute block is 720,000 samples: 29 MB, twice that while `arrays` joins the chunks). For
    callers that need every sample at once (`review_block` without `trace`: the history window);
    the export and the report take the samples one at a time instead."""
    CHUNK = 65536
    NAMES = ("seq", "t_device_us", "obliquity_deg", "forward_tilt_deg", "t_s")
    _TYPES = (np.int64, np.int64, float, float, float)

    def __init__(self):
        self._done: list[tuple] = []
        self._new()

    def _new(self) -> None:
        self._cols = tuple(np.empty(self.CHUNK, dtype=t) for t in self._TYPES)
        self._n = 0

    def append(self, seq: int, t_us: int, obl: float, fwd: float, t_s: float) -> None:
        i = self._n
        c = self._cols
        c[0][i], c[1][i], c[2][i], c[3][i], c[4][i] = seq, t_us, obl, fwd, t_s
        self._n = i + 1
        if self._n == self.CHUNK:
            self._done.append(self._cols)
            self._new()

    def __len__(self) -> int:
        return len(self._done) * self.CHUNK + self._n

    def arrays(self) -> dict[str, np.ndarray]:
        parts = self._done + [tuple(c[:self._n] for c in self._cols)]
        return {name: np.concatenate([p[k] for p in parts]) for k, name in enumerate(self.NAMES)}


def replay_block(conn, s: store.BlockInfo, cfg: PipelineConfig, speed: float | None = None, log=None,
                 trace=False, console=None, steer: bool = True, lsl=None) -> Replay:
    """Run one stored block through runner.StreamRunner. trace=True also returns the per-sample angles
    (`Replay.samples`, arrays); a callable trace(seq, t_device_us, obliquity_deg, forward_tilt_deg,
    t_s) is called per sample instead, so a caller can stream them (export).
    steer: apply what the user changed live (thresholds, sets ended) at the moments it happened, so a
    replay with the stored settings is the live run; False for a re-analysis with other thresholds.
    lsl: host.sinks.lsl.LslSettings to stream the replay's angles and events to LSL as it runs."""
    from host.sinks.live import LiveBuffer
    from host.session.runner import StreamRunner
    from host.links.replay import ReplayTransport

    cols = TraceColumns() if trace is True else None
    trace_to = cols.append if cols is not None else trace

    def tracer(seq, t_us, obl, fwd):
        trace_to(seq, t_us, obl, fwd, (t_us - session.pipeline.t0_us) * 1e-6)  # the session's time axis, across restarts
    transport = ReplayTransport(conn, s, speed=speed)
    live = LiveBuffer() if console is not None else _no_display()
    collect = _Collect(log)
    # a recording cannot fall silent, so the no-data timeout is off
    steering = steering_of([e for _, e in store.events(conn, s.id)]) if steer else None
    session = StreamRunner(transport, cfg, events=collect, live=live, trace=tracer if trace else None,
                           no_data_timeout_s=math.inf, steering=steering)
    from host.sinks.lsl import open_sink as open_lsl
    sink = open_lsl(lsl, replay=True)
    if sink is not None:
        sink.attach(session)
    t0 = time.perf_counter()
    try:
        if console is not None:
            from host.sinks.console import run_with_console
            summary = asyncio.run(run_with_console(session, live, console))
        else:
            summary = asyncio.run(session.run())
    finally:
        if sink is not None:
            sink.close()
    wall = time.perf_counter() - t0
    if summary.open_failed:
        raise UserError(summary.reason)
    if transport.read_error is not None:
        raise transport.read_error  # the commands' plain_db_errors says it in words
    return Replay(summary, collect.events, session.pipeline, transport, wall, session.pipeline.t_s,
                  cols.arrays() if cols is not None else {})


def _rep_key(r: dict) -> tuple:
    return (r.get("index"), r.get("low_side"), r.get("max_drop_deg"), bool(r.get("cued")))


@dataclass(frozen=True)
class RepComparison:
    """Are the replay's reps those recorded live? (counts of reps and of reps with the cue)"""
    same: bool
    live_reps: int
    live_cued: int
    replay_reps: int
    replay_cued: int

    def sentence(self) -> str:
        if self.same:
            return f"Same reps as recorded live ({self.live_reps} reps, {self.live_cued} with the cue)."
        return (f"Differs from the live recording: replay {self.replay_reps} reps, {self.replay_cued} with "
                f"the cue; live {self.live_reps} reps, {self.live_cued} with the cue.")


def compare_reps(live_reps: list[dict], replay_reps: list[dict]) -> RepComparison:
    live_reps, replay_reps = [as_rep(r) for r in live_reps], [as_rep(r) for r in replay_reps]

    def cued(reps):
        return sum(1 for r in reps if r.get("cued"))
    return RepComparison(same=[_rep_key(r) for r in live_reps] == [_rep_key(r) for r in replay_reps],
                         live_reps=len(live_reps), live_cued=cued(live_reps),
                         replay_reps=len(replay_reps), replay_cued=cued(replay_reps))


def cue_list(events: list[dict], end_t: float) -> list[tuple[float, float, bool]]:
    """(start, end, audible) per cue, from the recorded cue_on / cue_off events. audible: a tone was
    played (`tone_played`; older recordings only say whether the feedback schedule wanted one)."""
    audible = [e.get("tone_played", e.get("audible", True)) for e in events if e.get("event") == "cue_on"]
    periods = store.cue_periods(events, end_t)
    return [(a, b, bool(audible[i]) if i < len(audible) else True) for i, (a, b) in enumerate(periods)]


@dataclass
class BlockAngles:
    """A stored block re-analysed: per-sample angles on the block's device clock (seconds since its
    first sample; calibration on), what was recorded live, and how the replay compares."""
    block: store.BlockInfo
    events: list[dict]                   # as recorded live
    reps: list[dict]                     # the rep events recorded live
    seq: np.ndarray
    t_device_us: np.ndarray
    t_s: np.ndarray
    obliquity_deg: np.ndarray
    forward_tilt_deg: np.ndarray
    comparison: RepComparison | None     # None: no frames to replay
    replay_wall_s: float = 0.0
    end_t_s: float = 0.0                 # the end of the block on the same clock

    @property
    def cues(self) -> list[tuple[float, float, bool]]:
        return cue_list(self.events, self.end_t_s)


def review_block(conn, block: store.BlockInfo, trace=None) -> BlockAngles:
    """Replay `block` with its stored settings at full speed and line it up with its recording.
    trace: a callable (seq, t_device_us, obliquity_deg, forward_tilt_deg, t_s) given each replayed
    sample instead of keeping them, so memory does not grow with the block (the report); the
    returned arrays are then empty, and `end_t_s` counts the last sample all the same.
    Raises UserError when the stored settings cannot be used by this version."""
    recorded = [e for _, e in store.events(conn, block.id)]
    reps = reps_of(recorded)
    empty_i, empty_f = np.zeros(0, dtype=np.int64), np.zeros(0)
    seq, t_us, obl, fwd, comparison, wall = empty_i, empty_i, empty_f, empty_f, None, 0.0
    t_s = empty_f
    last_t_s = []   # the last sample's time (seconds), however the samples came

    def streamed(*sample):
        last_t_s[:] = sample[4:]
        trace(*sample)
    if block.frame_count:
        r = replay_block(conn, block, config_for(block), speed=None, trace=True if trace is None else streamed)
        wall = r.wall_s
        if len(r.samples.get("seq", ())):
            seq, t_us, t_s = r.samples["seq"], r.samples["t_device_us"], r.samples["t_s"]
            obl, fwd = r.samples["obliquity_deg"], r.samples["forward_tilt_deg"]
            last_t_s = [float(t_s[-1])]
        comparison = compare_reps(reps, r.reps)
    # no angle (ended before calibration): the host clock's length of the block stands in
    times = [float(last_t_s[0])] if last_t_s else [block.duration_s]
    times += [float(e["t"]) for e in recorded if isinstance(e.get("t"), (int, float))]
    return BlockAngles(block=block, events=recorded, reps=reps, seq=seq, t_device_us=t_us, t_s=t_s,
                       obliquity_deg=obl, forward_tilt_deg=fwd, comparison=comparison, replay_wall_s=wall,
                       end_t_s=max(times, default=0.0))
