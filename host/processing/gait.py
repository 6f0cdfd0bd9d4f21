"""Walking: live step detection, per-step swing-side pelvic drop, bouts and the walk summary.

In, once per sample (`StepDetector.update`): device time (s), the bias-corrected gyroscope (deg/s)
and the accelerometer (g), both in the sensor frame, the earth's up seen from the sensor (from the
orientation estimator's quaternion, see `up_from_quat`) and the pelvic obliquity (deg, positive =
left side high, docs/conventions.md). The pelvis's forward axis in sensor coordinates comes from the
walking calibration (host.processing.walk_calibration). Out: the list of events the sample caused
(`step`, and `walk_summary` from `summary()`), and `contacts`, every initial contact detected with
its foot, for the benchmark. Everything is causal: a contact is known ~0.1 s after it happened, its
foot ~0.15 s after it, and a step (contact to the next contact) when the next contact is known.

How (docs/gait.md has the measurements on real walking):
- Initial contact: the vertical acceleration (earth frame), low-passed (2nd-order Butterworth,
  4 Hz), peaks just after each heel strike (the trunk is decelerated downward as the leading leg
  takes the weight; Zijlstra & Hof 2003). The first local maximum above `peak_g`, at least
  `min_step_s` after the previous contact, is a contact; its time is the peak's minus `lag_s` (the
  filter's group delay, 0.056 s, plus the peak coming ~0.025 s after the contact).
- Which foot: while the leading foot takes the weight, the pelvis drops on the other (swing) side, so
  the pelvis rolls about its forward axis toward the swing side (after a left contact: + about
  forward, the right side goes down). The mean roll rate over `foot_window_s` after the contact is
  the evidence; steps alternate, so the evidence of the whole bout is summed with alternating signs
  and every contact gets the foot that agrees with the bout's sum (one misread step does not flip it).
- Drop: the step's swing side is opposite the contact foot; its drop is the largest drop of that side
  (relative to the calibrated level) within single support, taken as the last 80 % of the step
  (the other foot leaves the ground at about 20 % of the step, i.e. ~10 % of the gait cycle).
- Bouts: a contact more than `max_step_s` after the previous one starts a new bout (a pause, then
  walking again). A missed contact (a gap of about two steps) keeps the bout but makes no step.
- Turns: the heading change over a step (integrated vertical rotation rate) beyond `turn_deg` marks
  a turning step: not a step (no drop, no cue), counted in the summary as `turn_steps`.
"""
from __future__ import annotations

import collections
import math
import statistics
from dataclasses import dataclass


SIDES = ("left", "right")
# Default threshold for the swing-side drop: normal gait keeps the swing side's drop within about
# 4-5 degrees at self-selected speed (Perry & Burnfield, Gait Analysis, 2nd ed. 2010, pelvis in the
# frontal plane; Trendelenburg gait: 8 degrees and more), so 6.5 leaves 1.5 degrees either side.
DEFAULT_WALK_THRESHOLD_DEG = 6.5


def other(side: str) -> str:
    return "right" if side == "left" else "left"


def up_from_quat(q) -> tuple[float, float, float]:
    """The earth's up (z) in sensor coordinates, from a w-x-y-z sensor->earth quaternion."""
    w, x, y, z = (float(v) for v in q)
    return 2.0 * (x * z - w * y), 2.0 * (y * z + w * x), w * w - x * x - y * y + z * z


class Biquads:
    """A causal IIR filter (second-order sections from scipy.signal.butter), one sample at a time,
    in plain floats (direct form II transposed): cheaper per sample than a scipy call."""

    def __init__(self, sos):
        self.sos = [tuple(float(c) for c in s) for s in sos]
        self.z = [[0.0, 0.0] for _ in self.sos]
        self.primed = False

    def step(self, x: float) -> float:
        if not self.primed:
            # start from steady state at the first value, so a constant offset causes no transient
            self.primed = True
            for s, z in zip(self.sos, self.z):
                b0, b1, b2, _, a1, a2 = s
                gain = (b0 + b1 + b2) / (1.0 + a1 + a2)
                z[1] = (b2 - a2 * gain) * x
                z[0] = (b1 - a1 * gain) * x + z[1]
                x = gain * x
            return x
        for (b0, b1, b2, _, a1, a2), z in zip(self.sos, self.z):
            y = b0 * x + z[0]
            z[0] = b1 * x - a1 * y + z[1]
            z[1] = b2 * x - a2 * y
            x = y
        return x


def lowpass(fc_hz: float, rate_hz: float) -> Biquads:
    # imported here: scipy.signal takes seconds to import on a loaded machine, and every session
    # imports this module through the pipeline, walking or not
    from scipy.signal import butter
    return Biquads(butter(2, fc_hz, fs=rate_hz, output="sos"))


@dataclass
class Contact:
    t_s: float          # estimated time of the initial contact (device s)
    foot: str           # left | right: the foot that touched down
    t_known_s: float    # when the detector said so (device s): the detection delay is t_known - t
    bout: int
    turning: bool = False


class ContactDetector:
    """Initial contacts from the vertical acceleration (see the module docstring), per sample.
    `update` returns the contact time when a sample completes the detection of one, else None."""

    def __init__(self, rate_hz: float, fc_hz: float = 4.0, peak_g: float = 0.1, min_step_s: float = 0.3,
                 lag_s: float = 0.08):
        self.lp = lowpass(fc_hz, rate_hz)
        self.peak_g, self.min_step_s, self.lag_s = peak_g, min_step_s, lag_s
        self._y1 = self._y2 = None   # the previous two filtered values, and their time
        self._t1 = None
        self.last_peak_t = -math.inf

    def update(self, t_s: float, vertical_g: float) -> float | None:
        y = self.lp.step(vertical_g)
        found = None
        if (self._y2 is not None and self._y1 > self._y2 and self._y1 >= y and self._y1 > self.peak_g
                and self._t1 - self.last_peak_t >= self.min_step_s):
            self.last_peak_t = self._t1
            found = self._t1 - self.lag_s
        self._y2, self._y1, self._t1 = self._y1, y, t_s
        return found


@dataclass
class GaitConfig:
    threshold_left_deg: float = DEFAULT_WALK_THRESHOLD_DEG   # cue when the left side drops past this
    threshold_right_deg: float = DEFAULT_WALK_THRESHOLD_DEG
    feedback: str = "threshold"   # threshold | bandwidth (cue when a step's drop or rise passes ± bandwidth)
    bandwidth_deg: float = 2.0
    fade_start: float = 1.0       # share of steps with an audible cue at the start of the walk...
    fade_end: float = 1.0         # ...and at step `set_reps`
    set_reps: int = 0             # planned steps (for fading)
    cue_s: float = 0.25           # how long a step's cue sounds


class StepDetector:
    """Contacts, feet, steps, bouts and per-step drops (see the module docstring). Plain parameters;
    `update` once per sample; outputs: returned events, `contacts`, `steps`, `summary()`."""

    def __init__(self, rate_hz: float, forward_s, cfg: GaitConfig | None = None, *, fc_hz: float = 4.0,
                 peak_g: float = 0.1, min_step_s: float = 0.3, max_step_s: float = 1.3,
                 lag_s: float = 0.08, foot_window_s: float = 0.15, single_support_from: float = 0.2,
                 turn_deg: float = 25.0, foot_memory: float = 0.6):
        self.rate_hz = rate_hz
        self.forward_s = tuple(float(v) for v in forward_s)
        self.cfg = cfg or GaitConfig()
        self.detector = ContactDetector(rate_hz, fc_hz, peak_g, min_step_s, lag_s)
        self.max_step_s, self.foot_window_s = max_step_s, foot_window_s
        self.single_support_from, self.turn_deg = single_support_from, turn_deg
        self.foot_memory = foot_memory
        self.contacts: list[Contact] = []
        self.steps: list[dict] = []
        self.turn_steps = 0
        self.bouts = 0
        # samples replayed after the walking calibration were only seen then (host.processing.pipeline)
        self.known_not_before_s = -math.inf
        self._pending = None          # contact waiting for its foot evidence: [t, roll sum, n, heading]
        self._bout_score = 0.0        # (-1)^k * left evidence of the bout's contacts, older ones fading
        self._bout_k = 0              # parity index of the last contact in the bout
        self._prev = None             # the last contact with its foot decided
        self._prev_heading = 0.0      # heading (deg, integrated) at that contact
        self._samples = collections.deque()  # (t, obliquity) since the previous contact
        self._heading_deg = 0.0
        self._t_prev = None

    # ---- per sample ----
    def update(self, t_s: float, gyr_dps, acc_g, up_s, obliquity_deg: float) -> list[dict]:
        ux, uy, uz = up_s
        vertical_g = acc_g[0] * ux + acc_g[1] * uy + acc_g[2] * uz - 1.0
        yaw_dps = gyr_dps[0] * ux + gyr_dps[1] * uy + gyr_dps[2] * uz
        fx, fy, fz = self.forward_s
        roll_dps = gyr_dps[0] * fx + gyr_dps[1] * fy + gyr_dps[2] * fz
        if self._t_prev is not None:
            self._heading_deg += yaw_dps * (t_s - self._t_prev)
        self._t_prev = t_s
        self._samples.append((t_s, obliquity_deg))
        while self._samples[0][0] < t_s - 3.0 * self.max_step_s:  # standing: nothing to keep
            self._samples.popleft()
        events = []
        t_contact = self.detector.update(t_s, vertical_g)
        if t_contact is not None:
            if self._pending is not None:  # a contact before the last one's foot window closed
                events += self._decide(t_s)
            self._pending = [t_contact, 0.0, 0, self._heading_deg]
        p = self._pending
        if p is not None and t_s >= p[0]:
            p[1] += roll_dps
            p[2] += 1
            if t_s >= p[0] + self.foot_window_s:
                events += self._decide(t_s)
        return events

    def _decide(self, t_now: float) -> list[dict]:
        t_c, roll_sum, n, heading = self._pending
        self._pending = None
        # > 0: the right side dropped, so the left foot took the weight. Clipped at 20 deg/s (a typical
        # roll rate at loading), so one jolt, e.g. setting off, cannot outvote the steps after it.
        evidence = max(-1.0, min(1.0, roll_sum / max(1, n) / 20.0))
        prev = self._prev
        events = []
        if prev is None or t_c - prev.t_s > self.max_step_s:
            self.bouts += 1
            self._bout_score, self._bout_k = 0.0, 0
        else:
            step_s = t_c - prev.t_s
            typical = statistics.median([s["duration_s"] for s in self.steps[-4:]]) if self.steps else None
            self._bout_k += 2 if typical and step_s > 1.6 * typical else 1
        sign = 1.0 if self._bout_k % 2 == 0 else -1.0
        self._bout_score = self.foot_memory * self._bout_score + sign * evidence
        foot = "left" if sign * self._bout_score >= 0 else "right"
        contact = Contact(t_c, foot, max(t_now, self.known_not_before_s), self.bouts)
        self.contacts.append(contact)
        if prev is not None and prev.bout == contact.bout:
            events += self._step(prev, contact, heading)
        self._prev = contact
        self._prev_heading = heading
        # keep the samples from this contact on, for the next step's drop
        while self._samples and self._samples[0][0] < t_c:
            self._samples.popleft()
        return events

    def _step(self, start: Contact, end: Contact, heading_end: float) -> list[dict]:
        duration = end.t_s - start.t_s
        turn = abs(heading_end - self._prev_heading)
        if duration > 1.6 * (statistics.median([s["duration_s"] for s in self.steps[-4:]]) if self.steps
                             else self.max_step_s) or start.foot == end.foot:
            return []  # a contact was missed in between: no step
        if turn > self.turn_deg:
            start.turning = True
            self.turn_steps += 1
            return []
        swing = other(start.foot)
        t_ss = start.t_s + self.single_support_from * duration
        window = [o for t, o in self._samples if t_ss <= t <= end.t_s]
        if not window:
            return []
        drops = [o if swing == "right" else -o for o in window]
        drop = max(drops)
        step = {"event": "step", "t": round(end.t_known_s, 4), "index": len(self.steps) + 1,
                "bout": start.bout, "foot": start.foot, "swing_side": swing,
                "contact_t": round(start.t_s, 4), "end_t": round(end.t_s, 4),
                "duration_s": round(duration, 3), "drop_deg": round(drop, 2),
                "heading_change_deg": round(turn, 1),
                "threshold_deg": self.threshold_deg(swing)}
        step["past_threshold"] = drop > step["threshold_deg"]
        self.steps.append(step)
        return [step]

    def threshold_deg(self, side: str) -> float:
        return self.cfg.threshold_left_deg if side == "left" else self.cfg.threshold_right_deg

    # ---- summary ----
    def summary(self, t_s: float, since: tuple[int, int, int] = (0, 0, 0)) -> dict:
        """The walk summary of the steps after `since` = (steps, bouts, turn_steps) counted at the
        previous summary (a walk ended in the window, then walking on, is a new walk)."""
        n0, bouts0, turns0 = since
        steps = self.steps[n0:]
        out = {"event": "walk_summary", "t": round(t_s, 4), "steps": len(steps),
               "bouts": len({s["bout"] for s in steps}) if n0 else self.bouts - bouts0,
               "turn_steps": self.turn_steps - turns0,
               "walking_s": round(sum(s["duration_s"] for s in steps), 2)}
        out["cadence_spm"] = round(60.0 * len(steps) / out["walking_s"], 1) if out["walking_s"] else None
        for side in SIDES:
            d = [s["drop_deg"] for s in steps if s["swing_side"] == side]
            out[f"{side}_steps"] = len(d)
            out[f"{side}_drop_median_deg"] = round(statistics.median(d), 2) if d else None
            out[f"{side}_drop_worst_deg"] = round(max(d), 2) if d else None
        ml, mr = out["left_drop_median_deg"], out["right_drop_median_deg"]
        # positive: the left side drops more than the right
        out["asymmetry_deg"] = round(ml - mr, 2) if ml is not None and mr is not None else None
        past = sum(1 for s in steps if s["past_threshold"])
        out["past_threshold_steps"] = past
        out["past_threshold_share"] = round(past / len(steps), 3) if steps else None
        out["threshold_left_deg"] = self.cfg.threshold_left_deg
        out["threshold_right_deg"] = self.cfg.threshold_right_deg
        return out


class WalkExercise:
    """`--exercise walk` for the pipeline: the same interface as host.processing.exercise.Exercise
    (`update(t_s, obliquity_deg, forward_tilt_deg)` -> events, `cue_*`, `reps`, `end_set`,
    `set_in_progress`), plus `start(rate_hz, forward_s)` once the walking calibration has found the
    axes and `feed(gyr_dps, acc_g, quat_wxyz)` with the raw sample before each `update`.

    Cue: when a step's swing-side drop passes that side's threshold, a "fault" cue for `cue_s` panned
    to the dropping side, on the share of steps that faded feedback allows (fade_audible over the
    step count). Bandwidth feedback: a cue when the step's drop or rise passes ± bandwidth (a rise,
    e.g. the compensated gait, pans to the stance side, which is then the low one). `quiet = True`
    (steps from samples that were processed late) records cues as not audible and never sounds them.
    """

    def __init__(self, cfg):
        self.cfg = cfg  # host.processing.exercise.ExerciseConfig with exercise "walk"
        self.gait_cfg = GaitConfig(threshold_left_deg=cfg.threshold_left_deg,
                                   threshold_right_deg=cfg.threshold_right_deg, feedback=cfg.feedback,
                                   bandwidth_deg=cfg.bandwidth_deg, fade_start=cfg.fade_start,
                                   fade_end=cfg.fade_end, set_reps=cfg.set_reps, cue_s=cfg.min_on_s)
        self.cue_kind = "fault"
        self.cue_on = False
        self.cue_audible = True
        self.cue_tone_played = False   # a tone sounded for the current cue (the pipeline's cue sink)
        self.cue_excess_deg = 0.0
        self.cue_side = "left"
        self.reps = 0          # steps, for the live view's counter
        self.quiet = False
        self.detector: StepDetector | None = None
        self.last_step: dict | None = None
        self._cued_step: dict | None = None   # the step whose cue is sounding
        self._raw = None
        self._cue_since = 0.0
        self._since = None     # (steps, bouts, turn_steps) at the last walk summary

    def start(self, rate_hz: float, forward_s) -> None:
        """(Re)start detection with the calibrated forward axis. After a recalibration the walk's
        steps, turns and bouts carry on (the next contact starts a new bout)."""
        old, self.detector = self.detector, StepDetector(rate_hz, forward_s, self.gait_cfg)
        if old is not None:
            d = self.detector
            d.steps, d.contacts, d.turn_steps, d.bouts = old.steps, old.contacts, old.turn_steps, old.bouts

    def feed(self, gyr_dps, acc_g, quat_wxyz) -> None:
        self._raw = (gyr_dps, acc_g, up_from_quat(quat_wxyz))

    needs_motion = False  # the step detector takes the raw sample through feed()

    def cue_sounded(self) -> None:
        """The sound output played a tone for the current cue (called by the pipeline)."""
        self.cue_tone_played = True
        if self._cued_step is not None:
            self._cued_step["feedback_given"] = True

    def update(self, t_s: float, obliquity_deg: float, forward_tilt_deg: float, motion=None) -> list[dict]:
        from host.processing.exercise import fade_audible
        events = []
        if self.cue_on and t_s - self._cue_since >= self.gait_cfg.cue_s:
            self.cue_on, self._cued_step = False, None
            events.append({"event": "cue_off", "t": t_s, "kind": self.cue_kind, "low_side": self.cue_side,
                           "angle_deg": round(self.last_step["drop_deg"], 2),
                           "on_s": round(t_s - self._cue_since, 3)})
        if self.detector is None or self._raw is None:
            return events
        gyr, acc, up = self._raw
        self._raw = None
        # thresholds changed live (the window) are set on the exercise's config
        self.gait_cfg.threshold_left_deg = self.cfg.threshold_left_deg
        self.gait_cfg.threshold_right_deg = self.cfg.threshold_right_deg
        for step in self.detector.update(t_s, gyr, acc, up, obliquity_deg):
            self.reps = step["index"]
            self.last_step = step
            g = self.gait_cfg
            if g.feedback == "bandwidth":
                excess = abs(step["drop_deg"]) - g.bandwidth_deg
                side = step["swing_side"] if step["drop_deg"] >= 0 else step["foot"]
            else:
                excess = step["drop_deg"] - step["threshold_deg"]
                side = step["swing_side"]
            step["cued"] = excess > 0
            audible = step["cued"] and not self.quiet and fade_audible(step["index"], self._fade_cfg())
            # scheduled: the fading schedule wanted it heard; given: a tone sounded (cue_sounded)
            step["feedback_scheduled"] = audible
            step["feedback_given"] = False
            events.append(step)
            if step["cued"]:
                if not self.quiet:
                    self.cue_on, self._cue_since, self.cue_side = True, t_s, side
                    self.cue_tone_played = False
                    self._cued_step = step
                    self.cue_audible = audible
                    self.cue_excess_deg = excess
                events.append({"event": "cue_on", "t": t_s, "kind": self.cue_kind, "low_side": side,
                               "angle_deg": step["drop_deg"], "audible": audible, "step": step["index"]})
        return events

    def _fade_cfg(self):
        return self.cfg

    def end_set(self, t_s: float) -> list[dict]:
        """The walk ended (end of the stream, or the user ended it): its summary."""
        if self.detector is None:
            return []
        d = self.detector
        summary = d.summary(t_s, self._since or (0, 0, 0))
        self._since = (len(d.steps), d.bouts, d.turn_steps)
        return [summary]

    @property
    def set_in_progress(self) -> bool:
        """Whether there is something new to summarise (the first summary even with no steps)."""
        d = self.detector
        return d is not None and (self._since is None or self._since != (len(d.steps), d.bouts, d.turn_steps))


def step_text(step: dict) -> str:
    """One step in plain words, for the console."""
    cue = "  past the threshold" if step.get("cued") else ""
    return (f"step {step['index']:3d}  {step['foot']:>5} foot  {step['swing_side']} side drop "
            f"{step['drop_deg']:+5.1f}°{cue}")


def walk_summary_text(s: dict) -> str:
    """A walk summary in plain words, for the console and the window."""
    if not s["steps"]:
        return "Walk: no steps."
    side = lambda k: ("–" if s[f"{k}_drop_median_deg"] is None else
                      f"median {s[f'{k}_drop_median_deg']:.1f}°, worst {s[f'{k}_drop_worst_deg']:.1f}°")
    return (f"Walk: {s['steps']} steps in {s['walking_s']:.0f} s ({s['cadence_spm']:.0f} steps/min, "
            f"{s['bouts']} bout{'s' if s['bouts'] != 1 else ''}); left side drop {side('left')}; right side "
            f"drop {side('right')}; {s['past_threshold_share']:.0%} of steps past the threshold.")
