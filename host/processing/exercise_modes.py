"""Rep detection of the exercises added to the original three (issue 13), one class each, plugged
into host.processing.exercise.Exercise through `MODES`.

In: once per sample, from Exercise.update: the device time, the free side's drop and the forward
tilt (degrees, docs/conventions.md) and, for the modes that ask for it (`needs_motion`), a `Motion`:
the vertical specific force minus gravity in g (earth frame, up positive) and the rate of turn about
the vertical in deg/s (positive = the front of the pelvis turns to the patient's left). Out: the rep
events the sample finished (built by Exercise._finish_rep, so every rep carries the common fields of
docs/events.md), plus what the cue watches (`cue_value`, `cue_threshold`, `cue_allowed`).

The modes (../shared/docs/domain.md for the exercises):
- captain-morgan: the hip dip's logic under its own name (sink the free hip, lift it back).
- fire-hydrant, hip-swings: the free leg moves while the pelvis should stay level. Reps come from
  the pelvis turning with the leg (a leaky integral of the rate of turn: the turn of a lift or swing
  rises well above the slow sway of standing), the fault cue from the free side's drop.
- lateral-step-down: reps from the vertical motion (a leaky double integral of the vertical
  acceleration: the pelvis goes down 10-20 cm and back; each step measured from the highest the
  pelvis was since the last one, as the filter's rest level wanders), per-rep drop of the free side ("the
  pelvis loses the horizontal" as a number), fault cue.
- pelvic-tilt: sagittal; the threshold is the therapist's target forward tilt (`target_deg`): a
  target chime when reached, reps from the forward tilt going out and back, with the time held near
  the target and how far it tilted back afterwards.
- timed-hold: single-leg stance for `hold_s`, then `rest_s` on both feet, repeated; the app sets the
  clock (the first hold begins `HOLD_LEAD_S` after the exercise starts, when the patient is told to
  lift the foot). Each hold is a rep with the time kept within the band and the drops past it.
"""
from __future__ import annotations

import math
from typing import NamedTuple

HOLD_LEAD_S = 1.0      # timed hold: from the start of the exercise to the first "lift your foot"


class Motion(NamedTuple):
    vertical_acc_g: float   # specific force along earth up, minus 1 g
    yaw_rate_dps: float     # rate of turn about earth up


class Mode:
    """Defaults: a fault cue on the free side's drop, no motion signals, a rep in progress at the
    end of a set is not a rep (Exercise reports it as rep_incomplete)."""
    cue_kind = "fault"
    needs_motion = False

    def __init__(self, cfg):
        self.cfg = cfg

    def cue_value(self, drop: float, fwd: float) -> float:
        return drop

    def cue_threshold(self) -> float:
        return self.cfg.threshold_deg

    def cue_allowed(self, t_s: float) -> bool:
        return True

    def update(self, ex, t_s: float, drop: float, fwd: float, motion: Motion | None) -> list[dict]:
        return []

    def _follow(self, ex, t_s: float, drop: float, step: str | None, value: float, field: str,
                digits: int) -> list[dict]:
        """A rep that starts and ends with `step` ('start'/'end' of a movement): it keeps the free
        side's worst drop and the movement's peak `value`, reported as `field`."""
        if step == "start":
            ex._new_rep(t_s, drop)
            self._peak = value
        elif ex._rep is not None:
            ex._rep["max"] = max(ex._rep["max"], drop)
            self._peak = max(self._peak, value)
            if step == "end":
                return [ex._finish_rep(t_s, **{field: round(self._peak, digits)})]
        return []

    def end_set(self, ex, t_s: float) -> list[dict]:
        """Events for the end of a set; a movement still under way stays in ex._rep, and Exercise
        reports it as `rep_incomplete` (never a rep)."""
        return []


class _Excursion:
    """A signal going past `on` and back below `off` for `settle_s`: start and end of one movement."""

    def __init__(self, on: float, off: float, settle_s: float):
        self.on, self.off, self.settle_s = on, off, settle_s
        self.active = False
        self._below_since = None

    def update(self, t_s: float, value: float) -> str | None:
        """'start', 'end' or None."""
        if not self.active:
            if value > self.on:
                self.active, self._below_since = True, None
                return "start"
            return None
        if value < self.off:
            if self._below_since is None:
                self._below_since = t_s
            elif t_s - self._below_since >= self.settle_s:
                self.active = False
                return "end"
        else:
            self._below_since = None
        return None


class LeakyIntegral:
    """y' = x - y / tau: an integral that forgets over tau seconds (a first-order high-pass of the
    integral), so a slow drift or bias does not build up."""

    def __init__(self, tau_s: float):
        self.tau_s = tau_s
        self.y = 0.0
        self._t = None

    def update(self, t_s: float, x: float) -> float:
        if self._t is not None:
            dt = min(0.05, max(0.0, t_s - self._t))  # a gap is not integrated across
            self.y += (x - self.y / self.tau_s) * dt
        self._t = t_s
        return self.y


class FreeLegSwing(Mode):
    """Fire hydrant and hip swings: a rep is one turn of the pelvis toward the free side with the
    free leg (a lift out to the side, a forward swing). The turn is the integral of the rate of turn
    measured from a baseline that follows the slow sway while no rep is under way and holds still
    during one (a leaky integral would undershoot after each slow rep and shrink the next)."""
    needs_motion = True
    TURN_ON_DEG, TURN_OFF_DEG, SETTLE_S, BASELINE_TAU_S = 3.0, 1.2, 0.15, 1.0

    def __init__(self, cfg):
        super().__init__(cfg)
        self.moving = _Excursion(self.TURN_ON_DEG, self.TURN_OFF_DEG, self.SETTLE_S)
        self._yaw = self._baseline = 0.0
        self._t = None
        self._peak = 0.0
        self._toward_free = 1.0 if cfg.free_side == "left" else -1.0  # +yaw: the front turns left
        self._two_way = cfg.exercise == "hip-swings" and cfg.swing == "front-back"
        self._went_back = False
        self._min_turn = 0.0

    def update(self, ex, t_s, drop, fwd, motion):
        dt = 0.0 if self._t is None else min(0.05, max(0.0, t_s - self._t))  # no integral across a gap
        self._t = t_s
        self._yaw += motion.yaw_rate_dps * dt
        if not self.moving.active:
            self._baseline += (self._yaw - self._baseline) * min(1.0, dt / self.BASELINE_TAU_S)
        # toward the free side positive (a lift out, a forward swing)
        turn = self._toward_free * (self._yaw - self._baseline)
        # back when well down from this turn's peak: what is left of the sway may hold it off zero
        self.moving.off = max(self.TURN_OFF_DEG, 0.4 * self._peak) if self.moving.active else self.TURN_OFF_DEG
        step = self._swing_back(t_s, turn) if self._two_way else self.moving.update(t_s, turn)
        return self._follow(ex, t_s, drop, step, abs(turn) if self._two_way else turn, "max_turn_deg", 1)

    def _swing_back(self, t_s: float, turn: float) -> str | None:
        """Front-back swings: the pelvis turns toward the free side as the leg swings forward, then
        away as it swings back; one rep is both, and ends when the turn comes back from behind."""
        if not self.moving.active:
            return self.moving.update(t_s, turn)
        if not self._went_back:
            self._went_back = turn < -self.TURN_ON_DEG
            self._min_turn = turn
            return None
        self._min_turn = min(self._min_turn, turn)
        if turn > min(-self.TURN_OFF_DEG, 0.4 * self._min_turn):  # well back up from behind
            self.moving.active, self._went_back = False, False
            return "end"
        return None


class LateralStepDown(Mode):
    """A rep is the pelvis going down and back up, seen in its depth from the vertical acceleration.
    The depth is a leaky double integral (the slow offset taken off first), so it is a relative
    measure: after each step it swings past its rest level the other way (the leak's undershoot)
    and creeps back with the leak, and a slow error in the acceleration (an accelerometer bias seen
    at another angle as the pelvis leans, a tilt error) shifts it by centimetres. Counting against a
    fixed zero lost steps under noise; so a step starts when the depth rises RISE_ON_M above its
    least since the last step (`trough`, which relaxes toward zero with the same leak, so the
    creep back from an undershoot is not a step) and ends when the depth has come back by half of
    that rise. `depth_m` is the step's rise above that trough."""
    needs_motion = True
    TAU_S, BIAS_TAU_S = 1.5, 4.0
    RISE_ON_M = 0.02          # down this far from the trough: a step has started
    FALL_SHARE = 0.5          # back up by this share of the step's depth (and FALL_MIN_M): it ended
    FALL_MIN_M = 0.02
    SETTLE_S = 0.1            # ... for this long
    TROUGH_DRIFT_M_S = 0.01   # the trough follows a drift up this fast (a step goes down 4x faster)

    def __init__(self, cfg):
        super().__init__(cfg)
        self.acc_offset_m_s2 = 0.0    # the slow offset (accelerometer bias, a little gravity from tilt error)
        self._mean_since = None
        self.velocity = LeakyIntegral(self.TAU_S)
        self.height = LeakyIntegral(self.TAU_S)
        self._trough = 0.0
        self._t = None
        self._stepping = False
        self._start_trough = self._peak_depth = 0.0
        self._back_since = None
        self._peak = 0.0

    def update(self, ex, t_s, drop, fwd, motion):
        a = motion.vertical_acc_g * 9.80665
        dt = 0.0 if self._t is None else min(0.05, max(0.0, t_s - self._t))
        self._t = t_s
        # The offset is an exponential mean over BIAS_TAU_S, but a plain mean of everything seen
        # until that much has been seen: started from the first reading alone, that reading's noise
        # (0.01-0.03 g) stayed in the offset for seconds and, double integrated, swung the depth
        # by 10-30 cm, so the first slow step of a noisy sensor went uncounted.
        if self._mean_since is None:
            self._mean_since, self.acc_offset_m_s2 = t_s, a
        elif dt > 0.0:
            window_s = max(dt, min(self.BIAS_TAU_S, t_s - self._mean_since))
            self.acc_offset_m_s2 += (a - self.acc_offset_m_s2) * dt / window_s
        a -= self.acc_offset_m_s2
        v = self.velocity.update(t_s, a)
        depth = -self.height.update(t_s, v)
        return self._follow(ex, t_s, drop, self._step(t_s, depth, dt), depth - self._start_trough, "depth_m", 3)

    def _step(self, t_s: float, depth: float, dt: float) -> str | None:
        """'start', 'end' or None, from the depth's rise above its trough and its way back."""
        if not self._stepping:
            # the filter's rest level comes back up from an undershoot with its own leak: so does the trough
            self._trough = min(depth, self._trough * (1.0 - dt / self.TAU_S) + self.TROUGH_DRIFT_M_S * dt)
            if depth - self._trough > self.RISE_ON_M:
                self._stepping, self._start_trough, self._peak_depth = True, self._trough, depth
                self._back_since = None
                return "start"
            return None
        self._peak_depth = max(self._peak_depth, depth)
        fall = max(self.FALL_MIN_M, self.FALL_SHARE * (self._peak_depth - self._start_trough))
        if depth < self._peak_depth - fall:
            if self._back_since is None:
                self._back_since = t_s
            elif t_s - self._back_since >= self.SETTLE_S:
                self._stepping, self._trough = False, depth
                return "end"
        else:
            self._back_since = None
        return None


class PelvicTilt(Mode):
    """Forward tilt out to the target and back: a rep; the target chime when the tilt reaches it."""
    cue_kind = "target"
    BACK_WAIT_S = 1.5      # after the forward tilt, how long a backward tilt may take to start

    def __init__(self, cfg):
        super().__init__(cfg)
        target = cfg.target_deg
        self.out = _Excursion(0.4 * target, 0.25 * target, 0.0)
        self._phase = None     # None | "forward" | "back"
        self._since = 0.0
        self._t = None
        self._held = self._max_fwd = self._min_fwd = 0.0

    def cue_value(self, drop, fwd):
        return fwd

    def cue_threshold(self):
        return self.cfg.target_deg

    def update(self, ex, t_s, drop, fwd, motion):
        dt = 0.0 if self._t is None else min(0.05, max(0.0, t_s - self._t))
        self._t = t_s
        target = self.cfg.target_deg
        step = self.out.update(t_s, fwd)
        events = []
        if self._phase == "back":
            self._min_fwd = min(self._min_fwd, fwd)
            came_back = self._min_fwd < -0.1 * target and fwd > -0.05 * target
            if came_back or step == "start" or t_s - self._since > self.BACK_WAIT_S and self._min_fwd > -0.1 * target:
                events.append(self._finish(ex, t_s))
        if step == "start" and ex._rep is None:
            ex._new_rep(t_s, drop)
            self._phase, self._held, self._max_fwd, self._min_fwd = "forward", 0.0, fwd, 0.0
        elif self._phase == "forward":
            ex._rep["max"] = max(ex._rep["max"], drop)
            self._max_fwd = max(self._max_fwd, fwd)
            if fwd >= target:       # held: the time at or past the target
                self._held += dt
            if step == "end" or fwd < 0.25 * target:
                self._phase, self._since = "back", t_s
        return events

    def _finish(self, ex, t_s):
        self._phase = None
        return ex._finish_rep(t_s, max_forward_tilt_deg=round(self._max_fwd, 1), hold_s=round(self._held, 2),
                              reached_target=self._max_fwd >= self.cfg.target_deg,
                              max_backward_tilt_deg=round(max(0.0, -self._min_fwd), 1))

    def end_set(self, ex, t_s):
        if self._phase == "back":  # the forward tilt and its return happened: a whole rep
            return [self._finish(ex, t_s)]
        self._phase = None
        return []


class TimedHold(Mode):
    """Holds of `hold_s` on one leg with `rest_s` between them, clocked from the exercise's start.
    The fault cue sounds only during a hold."""

    def __init__(self, cfg):
        super().__init__(cfg)
        self._t0 = None

    def _hold_at(self, t_s: float) -> tuple[int, bool]:
        """(hold number from 0, whether t_s is inside that hold rather than the rest after it)."""
        period = self.cfg.hold_s + self.cfg.rest_s
        k = math.floor((t_s - self._t0) / period)
        return k, t_s - self._t0 >= 0 and (t_s - self._t0) - k * period < self.cfg.hold_s

    def cue_allowed(self, t_s):
        return self._t0 is not None and self._hold_at(t_s)[1]

    def update(self, ex, t_s, drop, fwd, motion):
        if self._t0 is None:
            self._t0 = t_s + HOLD_LEAD_S
        _, holding = self._hold_at(t_s)
        if holding and ex._rep is None:
            ex._new_rep(t_s, drop)
            ex._rep["cues"] = ex._set_cues
        elif ex._rep is not None:
            ex._rep["max"] = max(ex._rep["max"], drop)
            if not holding:
                rep = ex._rep
                past = rep["past_s"] + (t_s - ex._past_since if ex._past_since is not None else 0.0)
                held = t_s - rep["start"]
                return [ex._finish_rep(t_s, hold_s=round(held, 2), time_within_band_s=round(held - past, 2),
                                       drops_past=ex._set_cues - rep["cues"])]
        return []


MODES = {
    "fire-hydrant": FreeLegSwing,
    "hip-swings": FreeLegSwing,
    "lateral-step-down": LateralStepDown,
    "pelvic-tilt": PelvicTilt,
    "timed-hold": TimedHold,
}
