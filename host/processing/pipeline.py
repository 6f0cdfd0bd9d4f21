"""The per-sample processing chain, identical whatever the sensor link.

In: raw frames via `feed_frame(decoder, frame_bytes, t_host_s)`, which decodes them with a
host.protocol.frames.SampleDecoder (an INFO frame sets the rate; DATA frames give `SampleBatch`es in
physical units with device timestamps and lost-sample counts) and runs each batch through
`process(batch)`. Each sample goes
  orientation estimator -> mounting calibration (host.processing.calibration) -> pelvic angles -> exercise logic
and out come: events (dicts, passed to `emit`), one row per sample in the live buffer (for the plot
or console view), cue decisions to the `cue` sink (audio), and optionally a per-sample angle trace.
Walking (`--exercise walk`): the exercise logic is host.processing.gait.WalkExercise, which also gets
the raw sample (`feed`); its calibration (host.processing.walk_calibration) finds the axes from the
first steps, so the samples from the still phase on are kept and run through the step detector
once it has finished (`_walk_catch_up`: those steps are recorded, marked `during_calibration`, never
sounded).

Lost samples (sequence gaps) are bridged for the estimator by interpolating the last sample and the
next one over as many sample periods as the device's timestamps say passed, so fusion never
integrates across a gap as if no time had passed, and a `gap` event says how many were lost. The
calibration's still phase measures the gyro bias; from then on the estimator runs on corrected data.
A device clock that jumps (back, or far ahead of what the sequence numbers allow) gives a
`clock_jump` event, and the time axis follows the sample count across it.
The pipeline never blocks: sinks must return at once.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Protocol


from host.processing.angles import pelvis_angles_deg, vertical_motion
from host.processing.exercise_modes import Motion
from host.processing.calibration import CALIBRATED, DEFAULT_METHOD, FAILED, make_calibration
from host.processing.estimators import DEFAULT_ESTIMATOR, make_estimator
from host.processing.exercise import Exercise, ExerciseConfig, threshold_in_range
from host.processing.gait import WalkExercise
from host.sinks.live import LiveBuffer
from host.protocol.frames import InfoFrame, SampleBatch, SampleDecoder

# Once the still phase has measured the gyro bias (and the pipeline subtracts it), VQF's own rest
# bias estimation only needs to follow slow drift. Left at its default clip (2 deg/s) it learns
# standing sway (~0.4 deg/s, which its rest detector counts as rest) as bias: 0.5 deg RMSE standing
# in the simulator. Clipped to 0.5 deg/s: 0.02-0.03 deg, squats and hip dips unchanged.
AFTER_BIAS_PARAMS = {"vqf": {"biasClip": 0.5}}
MAX_BRIDGE_S = 10.0  # longer gaps are not bridged sample by sample; the estimator re-converges


class CueSink(Protocol):
    def update(self, kind: str, on: bool, audible: bool, excess_deg: float, low_side: str) -> bool:
        """kind: "target" (hip dip reached its depth) or "fault" (past a limit); called every
        sample with the current state, so the sink decides what is worth a sound call. Returns
        True when a tone for this cue is sounding (or was just started): the record says so."""


@dataclass
class PipelineConfig:
    exercise: ExerciseConfig = field(default_factory=ExerciseConfig)
    estimator: str = DEFAULT_ESTIMATOR
    calibration_still_s: float = 2.0
    calibration: str = DEFAULT_METHOD  # "bends" (guided forward bends) or "standing" (still only)


class Pipeline:
    def __init__(self, cfg: PipelineConfig, emit: Callable[[dict], None] = lambda e: None,
                 live: LiveBuffer | None = None, cue: CueSink | None = None,
                 trace: Callable[[int, int, float, float], None] | None = None):
        self.cfg = cfg
        self.emit = emit
        self.live = live
        self.cue = cue
        self.trace = trace
        self.rate_hz = None
        self.estimator = None
        self.calibration = None
        self.walking = cfg.exercise.exercise == "walk"
        self.exercise = WalkExercise(cfg.exercise) if self.walking else Exercise(cfg.exercise)
        self._walk_backlog = []  # walk: samples between the still phase and the calibration's end
        self._walk_levelled = 0
        self.t0_us = None
        self.t_s = 0.0
        self.samples = 0
        self.lost_samples = 0
        self.obliquity_deg = float("nan")
        self.forward_tilt_deg = float("nan")
        self._last = None  # (gyr_dps, acc_g) of the last sample, for bridging gaps
        self._rebase = False
        if live is not None:
            ex = cfg.exercise
            live.update_status(stance=ex.stance, exercise=ex.exercise, calibrating=True,
                               threshold_left_deg=ex.threshold_left_deg,
                               threshold_right_deg=ex.threshold_right_deg,
                               message="Stand still and level to calibrate…")

    # ---- control (call on the pipeline's thread) ----
    def on_info(self, info: InfoFrame) -> None:
        if info.rate_hz != self.rate_hz:
            self.rate_hz = info.rate_hz
            # A new estimator re-initialises from the next accelerometer sample; keep calibration.
            self.estimator = make_estimator(self.cfg.estimator, info.rate_hz)
            if self.calibration is None or self.calibration.result is None:
                self.calibration = make_calibration(self.cfg.calibration, info.rate_hz,
                                                    self.cfg.calibration_still_s)
                self._levelled = 0

    def recalibrate(self) -> None:
        if self.calibration is not None:
            self.calibration.reset()
        if self.live is not None:
            self.live.update_status(calibrated=False, calibrating=True,
                                    message="Stand still and level to calibrate…")

    def set_threshold(self, side: str, deg: float) -> None:
        if side not in ("left", "right") or not threshold_in_range(deg):
            raise ValueError(f"threshold {deg} for side {side!r} is out of range")
        before = getattr(self.exercise.cfg, f"threshold_{side}_deg")
        setattr(self.exercise.cfg, f"threshold_{side}_deg", float(deg))
        # recorded, so a replay applies it at the same moment (host.session.review)
        self.emit({"event": "threshold_changed", "t": self.t_s, "side": side, "threshold_deg": float(deg)})
        if self.live is not None:
            changes = self.live.status.threshold_changes[-31:] + ((self.t_s, side, before, float(deg)),)
            self.live.update_status(threshold_changes=changes, **{f"threshold_{side}_deg": float(deg)})

    def end_set(self, by_user: bool = False) -> None:
        """Close the exercise set now (stream ended, or the user ended it: `by_user`, recorded as
        the summary's `ended_by: "user"` so a replay ends it at the same moment): emits its summary."""
        if self.exercise.set_in_progress:
            for event in self.exercise.end_set(self.t_s):
                if by_user and event["event"] in ("set_summary", "walk_summary"):
                    event["ended_by"] = "user"
                self.emit(event)
        if self.cue is not None and self.exercise.cue_on:
            self.cue.update(self.exercise.cue_kind, False, False, 0.0, self.exercise.cue_side)

    # ---- data ----
    def restart_segment(self) -> None:
        """The sensor restarted (its clock and numbering began again): continue the session's time
        axis from where it was instead of jumping back."""
        self._rebase = True

    def feed_frame(self, decoder: SampleDecoder, frame_bytes: bytes, t_host_s: float = 0.0,
                   on_time: bool = True) -> SampleBatch | None:
        """Decode one frame with `decoder` and run its samples through (an info frame sets the
        rate). Returns the batch, if the frame carried samples."""
        info = decoder.info
        batch = decoder.feed(frame_bytes, t_host_s)
        if decoder.info is not info:
            self.on_info(decoder.info)
        if batch is not None:
            r = batch.restarted
            if r is not None:  # found by the decoder, so replays see it the same way
                if r.get("got_seq") == r.get("expected_seq"):
                    # the numbering went on, only the clock jumped: a clock jump, not a reboot
                    self.emit({"event": "clock_jump", "t": round(self.t_s, 4),
                               "jump_s": round(float(r.get("clock_jump_s", 0.0)), 4),
                               "expected_seq": r.get("expected_seq")})
                else:
                    self.emit({"event": "sensor_restarted", "t": self.t_s, **r})
                self.restart_segment()
            self.process(batch, on_time=on_time)
        return batch

    def process(self, batch: SampleBatch, on_time: bool = True) -> None:
        """Run the batch through the chain. `on_time=False` for samples that arrived late (re-sent
        after a dropout): they go into the estimator, the history, the trace and the rep count,
        but never to the cue sink — a tone for a movement seconds ago would mislead. Events they
        cause carry `late: true`."""
        if self.estimator is None:
            raise RuntimeError("process() before on_info(): the decoder only yields samples after info")
        if self.t0_us is None:
            self.t0_us = int(batch.t_device_us[0])
        elif self._rebase:
            self._rebase = False
            self._last = None  # no bridging across a restart
            self.t0_us = int(batch.t_device_us[0]) - int(round((self.t_s + 1.0 / self.rate_hz) * 1e6))
        else:
            self._check_clock(batch)
        if batch.lost_before:
            self._bridge_gap(batch)
        est, cal, ex = self.estimator, self.calibration, self.exercise
        for i in range(len(batch.t_device_us)):
            gyr, acc = batch.gyr_dps[i], batch.acc_g[i]
            est.update(gyr - cal.gyr_bias_dps, acc)
            t_s = (int(batch.t_device_us[i]) - self.t0_us) * 1e-6
            if cal.result is None:
                outcome = cal.update(t_s, gyr, acc)
                if cal.levelled != self._levelled:
                    # A still phase just measured the gyro bias while the user stood at rest: restart
                    # the estimator from here on corrected data, so no bias transient (VQF cannot
                    # learn more than 2 deg/s) is left in the angles.
                    self._levelled = cal.levelled
                    est = self.estimator = make_estimator(self.cfg.estimator, self.rate_hz,
                                                          **AFTER_BIAS_PARAMS.get(self.cfg.estimator, {}))
                    est.update(gyr - cal.gyr_bias_dps, acc)
                if self.walking:
                    if outcome == FAILED or cal.levelled != self._walk_levelled:
                        self._walk_backlog, self._walk_levelled = [], cal.levelled  # from this still phase on
                    if cal.levelled and outcome != CALIBRATED:
                        self._walk_backlog.append((t_s, (gyr - cal.gyr_bias_dps).tolist(), acc.tolist(),
                                                   est.quat_wxyz.copy()))
                if outcome == CALIBRATED:
                    self._calibrated(t_s)
                    if self.walking:
                        self._walk_catch_up()
                else:
                    if outcome == FAILED:
                        f = cal.failure
                        self.emit({"event": "calibration_failed", "t": t_s, "reason": f.reason,
                                   "message": f.message})
                    # The step the user is asked for; also put back after a link message replaced it.
                    if self.live is not None and self.live.status.message != cal.prompt:
                        self.live.update_status(message=cal.prompt)
                    continue
            obl, fwd = pelvis_angles_deg(cal.result, est.quat_wxyz)
            if self.walking:
                ex.feed((gyr - cal.gyr_bias_dps).tolist(), acc.tolist(), est.quat_wxyz)
            motion = Motion(*vertical_motion(est.quat_wxyz, acc, gyr - cal.gyr_bias_dps)) if ex.needs_motion else None
            events = ex.update(t_s, obl, fwd, motion)
            played = False  # the sound output says whether a tone is sounding (none: no output)
            if on_time and self.cue is not None:
                played = bool(self.cue.update(ex.cue_kind, ex.cue_on, ex.cue_audible, ex.cue_excess_deg,
                                              ex.cue_side))
                if played and ex.cue_on and not ex.cue_tone_played:
                    ex.cue_sounded()
            for event in events:
                if not on_time:  # reps still count; a cue for the past is recorded but never sounded
                    event["late"] = True
                    if event["event"] == "cue_on":
                        event["audible"] = False
                if event["event"] == "cue_on":
                    event["tone_played"] = played
                self.emit(event)
            if self.live is not None:
                self.live.append(t_s, obl, fwd, ex.cue_on)
            if self.trace is not None:
                self.trace((batch.seq + i), int(batch.t_device_us[i]), obl, fwd)
            self.obliquity_deg, self.forward_tilt_deg = obl, fwd
        self._last = (batch.gyr_dps[-1].copy(), batch.acc_g[-1].copy())
        self.t_s = (int(batch.t_device_us[-1]) - self.t0_us) * 1e-6
        self.samples += len(batch.t_device_us)
        if self.live is not None:
            self.live.update_status(obliquity_deg=self.obliquity_deg,
                                    forward_tilt_deg=self.forward_tilt_deg, cue_on=ex.cue_on,
                                    reps=ex.reps, samples=self.samples, lost_samples=self.lost_samples)

    def _check_clock(self, batch: SampleBatch) -> None:
        """The sequence numbers say how much time passed since the last batch; a device clock that
        went back, or ahead by far more than that, jumped (a clock reset, a faulty RTC). Then the
        session's time axis follows the sample count across the jump (a `clock_jump` event says so),
        so no duration goes negative and no time is invented."""
        period_s = 1.0 / self.rate_hz
        expected_s = self.t_s + (batch.lost_before + 1) * period_s
        got_s = (int(batch.t_device_us[0]) - self.t0_us) * 1e-6
        if self.samples == 0 or (self.t_s < got_s <= expected_s + max(1.0, expected_s - self.t_s)):
            return
        self.t0_us += int(round((got_s - expected_s) * 1e6))
        self.emit({"event": "clock_jump", "t": round(self.t_s, 4), "jump_s": round(got_s - expected_s, 4)})

    def _bridge_gap(self, batch: SampleBatch) -> None:
        lost = batch.lost_before
        self.lost_samples += lost
        t_s = (int(batch.t_device_us[0]) - self.t0_us) * 1e-6
        self.emit({"event": "gap", "t": round(t_s, 4), "lost_samples": int(lost)})
        if self._last is None:
            return
        # How long the gap was comes from the device's timestamps (fusion's dt is one sample period
        # of the device clock); the sequence count is the fallback if the clock jumped (a reboot).
        periods = round((t_s - self.t_s) * self.rate_hz) - 1
        missing = periods if 0 <= periods <= 2 * lost + 1 else lost
        n = min(missing, int(MAX_BRIDGE_S * self.rate_hz))
        g0, a0 = self._last
        g1, a1 = batch.gyr_dps[0], batch.acc_g[0]
        bias = self.calibration.gyr_bias_dps
        for k in range(1, n + 1):
            w = k / (missing + 1)
            self.estimator.update((1 - w) * g0 + w * g1 - bias, (1 - w) * a0 + w * a1)

    def _walk_catch_up(self) -> None:
        """The walking calibration needs the first steps to find the axes: run those steps (kept
        since the still phase) through the step detector now, silently (their cues are past)."""
        ex, cal = self.exercise, self.calibration
        ex.start(self.rate_hz, cal.result.forward_s)
        ex.detector.known_not_before_s = self._walk_backlog[-1][0] if self._walk_backlog else -math.inf
        ex.quiet = True
        for t_s, gyr, acc, quat in self._walk_backlog:
            obl, fwd = pelvis_angles_deg(cal.result, quat)
            ex.feed(gyr, acc, quat)
            for event in ex.update(t_s, obl, fwd):
                event["during_calibration"] = True
                if event["event"] == "cue_on":
                    event["tone_played"] = False
                self.emit(event)
        ex.quiet = False
        self._walk_backlog = []

    def _calibrated(self, t_s: float) -> None:
        res = self.calibration.result
        self.emit({"event": "calibrated", "t": round(t_s, 4), **res.as_event()})
        if self.live is not None:
            self.live.update_status(calibrated=True, calibrating=False, message=res.summary())
