"""Exercise logic: pelvic angles in; cue decisions, reps, per-rep numbers and set summaries out.

In: `update(t_s, obliquity_deg, forward_tilt_deg, motion=None)` once per sample (device seconds; obliquity positive
= left side high, docs/conventions.md). Out: the list of events that sample caused (dicts with
"event" and "t"), and the current cue state (`cue_kind`, `cue_on`, `cue_audible`, `cue_excess_deg`)
for the audio sink and the live view. `end_set(t_s)` closes a set and returns its events (a
`rep_incomplete` for a rep the end of the set cut short, then the `set_summary`).

Modes (the threshold always watches the free side, opposite the stance leg):
- hip-dip (also Captain Morgan): the drop is intended. The threshold is the target depth: a "target"
  cue (a pleasant chime) when the free side gets there. A rep counts on the return to level; it
  reports its depth, whether it came back to level and how far the free side rose above level.
- single-leg-squat (also step-downs): the pelvis should stay level. The threshold is a fault limit:
  a "fault" tone while the free side is past it. Reps come from the squat itself (the pelvis tips
  forward and back), so a perfect rep with no drop still counts; each reports its maximum
  contralateral drop and the time spent past the threshold.
- keep-level (single-leg RDL, step-ups, bridges, bird-dogs): fault tone, no reps.
- captain-morgan: the hip dip's logic under its own name. fire-hydrant, hip-swings,
  lateral-step-down, pelvic-tilt and timed-hold have their rep detection in
  host.processing.exercise_modes (one class each, registered in MODES); Exercise hands them each
  sample (and, when they ask, the vertical acceleration and rate of turn) and keeps the cue, the
  rep bookkeeping and the sets common to all.

Cue design: hysteresis (the cue goes off only once the drop is back by `hysteresis_deg`) and a
minimum on-time stop chatter; "bandwidth" feedback is silent inside ±`bandwidth_deg` of level and
sounds outside it, either way; "fading" gives the audible cue on a decreasing share of reps across a
set (a fixed, even schedule, so the share is exact), because feedback that fades is what makes the
learning last. When fading silences a rep the cue events still happen, marked `audible: false`.
Whether a tone really sounded is not this module's to know: the pipeline tells it (`cue_sounded`)
when the sound output played one, and only then does a rep say `feedback_given`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from host.processing.exercise_modes import MODES

# hip-dip, single-leg-squat and keep-level are handled here; captain-morgan is the hip dip under its
# own name; the others are classes in host.processing.exercise_modes, registered in MODES.
HIP_DIP_LIKE = ("hip-dip", "captain-morgan")
# walk is not a rep exercise: host.processing.gait.WalkExercise (steps, per-step cues) replaces
# Exercise for it in the pipeline.
EXERCISES = ("hip-dip", "single-leg-squat", "keep-level", "captain-morgan", *MODES, "walk")
TARGET_EXERCISES = (*HIP_DIP_LIKE, "pelvic-tilt")   # the threshold is a target to reach (a chime)
FEEDBACK = ("threshold", "bandwidth")
SWINGS = ("front-back", "side", "circles")

# The one source of the cue threshold's default and range (../shared/docs/domain.md, "Default cue
# threshold (design)": 5 deg of drop below the calibrated level, adjustable 2-15 deg per side). The
# command line, the window's spin boxes, ExerciseConfig and Pipeline.set_threshold all use these.
THRESHOLD_DEFAULT_DEG = 5.0
THRESHOLD_MIN_DEG, THRESHOLD_MAX_DEG = 2.0, 15.0
# The cue design's other ranges (ExerciseConfig and the command line): beyond them the cue would
# never stop (hysteresis), never start again (minimum on-time), or sets would be meaningless.
HYSTERESIS_MAX_DEG = 5.0
MIN_ON_MAX_S = 5.0
SET_REPS_MAX = 500


def threshold_in_range(deg: float) -> bool:
    return THRESHOLD_MIN_DEG <= deg <= THRESHOLD_MAX_DEG  # False for NaN too


def free_side_of(stance: str) -> str:
    """The side opposite the stance leg: the one whose drop the cue watches."""
    return "right" if stance == "left" else "left"


def free_threshold_of(settings) -> float:
    """The threshold of the free side, for anything with stance and threshold_{left,right}_deg."""
    return getattr(settings, f"threshold_{free_side_of(settings.stance)}_deg")


@dataclass
class ExerciseConfig:
    exercise: str = "hip-dip"
    stance: str = "left"
    threshold_left_deg: float = THRESHOLD_DEFAULT_DEG
    threshold_right_deg: float = THRESHOLD_DEFAULT_DEG
    hysteresis_deg: float = 1.0
    min_on_s: float = 0.25           # a cue, once on, stays on at least this long
    feedback: str = "threshold"      # threshold | bandwidth
    bandwidth_deg: float = 2.0       # bandwidth feedback: silent within ± this of level
    fade_start: float = 1.0          # share of reps with an audible cue, first rep of a set...
    fade_end: float = 1.0            # ...and last rep of the set
    set_reps: int = 0                # planned reps per set; 0 = the set runs until the stream ends
    rep_end_deg: float = 1.0         # hip dip: back within this of level = returned
    squat_start_deg: float = 8.0     # single-leg squat: forward tilt that starts a rep...
    squat_end_deg: float = 4.0       # ...and that ends it
    swing: str = "front-back"        # hip swings: front-back | side | circles (as prescribed)
    target_deg: float = 10.0         # pelvic tilt: the forward tilt to reach and hold (therapist's)
    hold_s: float = 20.0             # timed hold: one hold on the stance leg...
    rest_s: float = 10.0             # ...and the rest on both feet before the next

    def __post_init__(self):
        if self.exercise not in EXERCISES:
            raise ValueError(f"unknown exercise {self.exercise!r}; choose from {', '.join(EXERCISES)}")
        if self.stance not in ("left", "right"):
            raise ValueError("stance must be left or right")
        for side in ("left", "right"):
            v = getattr(self, f"threshold_{side}_deg")
            if not threshold_in_range(v):
                raise ValueError(f"the {side} threshold must be within {THRESHOLD_MIN_DEG:g}..{THRESHOLD_MAX_DEG:g} "
                                 f"degrees, not {v}")
        if not 0.0 <= self.hysteresis_deg <= HYSTERESIS_MAX_DEG:  # False for NaN too
            raise ValueError(f"the hysteresis must be within 0..{HYSTERESIS_MAX_DEG:g} degrees, not {self.hysteresis_deg}")
        if not 0.0 <= self.min_on_s <= MIN_ON_MAX_S:
            raise ValueError(f"the shortest cue must be within 0..{MIN_ON_MAX_S:g} seconds, not {self.min_on_s}")
        if not (isinstance(self.set_reps, int) and 0 <= self.set_reps <= SET_REPS_MAX):
            raise ValueError(f"the reps per set must be a whole number from 0 to {SET_REPS_MAX}, not {self.set_reps}")
        if not 0.0 <= self.bandwidth_deg <= THRESHOLD_MAX_DEG:
            raise ValueError(f"the bandwidth must be within 0..{THRESHOLD_MAX_DEG:g} degrees, not {self.bandwidth_deg}")
        if self.feedback not in FEEDBACK:
            raise ValueError(f"feedback must be one of {', '.join(FEEDBACK)}")
        if self.feedback == "bandwidth" and self.exercise in TARGET_EXERCISES:
            raise ValueError("bandwidth feedback is for exercises that keep the pelvis level "
                             f"(single-leg-squat, keep-level, ...), not for the {self.exercise}")
        if self.swing not in SWINGS:
            raise ValueError(f"unknown swing {self.swing!r}; choose from {', '.join(SWINGS)}")
        if not 3.0 <= self.target_deg <= 30.0:
            raise ValueError(f"the target tilt must be within 3..30 degrees, not {self.target_deg}")
        if not (3.0 <= self.hold_s <= 300.0 and 0.0 <= self.rest_s <= 300.0):
            raise ValueError("a hold lasts 3-300 s and the rest after it 0-300 s")
        if not (0.0 <= self.fade_start <= 1.0 and 0.0 <= self.fade_end <= 1.0):
            raise ValueError("fading shares go from 0 to 1 (0% to 100% of reps)")
        if (self.fade_start, self.fade_end) != (1.0, 1.0) and self.set_reps < 2:
            raise ValueError("fading needs the planned reps per set (--set-reps of 2 or more)")

    @property
    def free_side(self) -> str:
        return free_side_of(self.stance)

    @property
    def threshold_deg(self) -> float:
        return free_threshold_of(self)

    @property
    def rep_start_deg(self) -> float:
        """Hip dip: drop that starts a rep; below the target so shallow reps count too."""
        return min(2.0, 0.4 * self.threshold_deg)


def drop_deg(obliquity_deg: float, side: str) -> float:
    """How far `side` is below level (docs/conventions.md: positive obliquity = left side high)."""
    return obliquity_deg if side == "right" else -obliquity_deg


def fade_audible(rep_number: int, cfg: ExerciseConfig) -> bool:
    """Whether rep `rep_number` (1-based within the set) gets an audible cue under fading.
    The share falls linearly from fade_start to fade_end across the set; a rep is audible when the
    rounded running sum of shares steps up, which spreads the audible reps evenly."""
    if (cfg.fade_start, cfg.fade_end) == (1.0, 1.0):
        return True
    n = max(2, cfg.set_reps)
    share = lambda k: cfg.fade_start + (cfg.fade_end - cfg.fade_start) * (min(k, n) - 1) / (n - 1)
    before = sum(share(k) for k in range(1, rep_number))
    # rounding (not truncating) the running sum makes a share near 1 audible from the first reps
    return math.floor(before + share(rep_number) + 0.5 + 1e-9) > math.floor(before + 0.5 + 1e-9)


class Exercise:
    def __init__(self, cfg: ExerciseConfig):
        self.cfg = cfg
        self.mode = MODES[cfg.exercise](cfg) if cfg.exercise in MODES else None
        self.cue_kind = self.mode.cue_kind if self.mode else ("target" if cfg.exercise in HIP_DIP_LIKE else "fault")
        self.cue_on = False
        self.cue_audible = True         # the feedback schedule wants this cue heard (fading)
        self.cue_tone_played = False    # a tone actually sounded for this cue (cue_sounded)
        self.cue_excess_deg = 0.0
        self.cue_side = cfg.free_side
        self.free_drop_deg = 0.0
        self.reps = 0               # in the session
        self.set_number = 1
        self.set_reps_done = 0      # in the current set
        self._set_reps: list[dict] = []
        self._cue_since = 0.0
        self._rep = None            # the rep in progress: dict of running numbers
        self._past_since = None     # single-leg squat: when the drop went past the threshold
        self._set_past_s = 0.0      # time past the threshold in the set
        self._set_worst = -math.inf
        self._set_cues = 0
        # After a set ended mid-rep, the rest of that movement is not a new rep: wait for level
        # (hip dip) or upright (squat) before a rep may start again.
        self._wait_for_start = False

    # ---- cue ----
    def _cue_update(self, t_s: float, drop: float, obliquity_deg: float, fwd_deg: float = 0.0) -> list[dict]:
        cfg = self.cfg
        if cfg.feedback == "bandwidth":
            # either side low counts; the excess is how far outside the silent zone
            side = "right" if obliquity_deg > 0 else "left"
            level_err = abs(obliquity_deg)
            past_on, back = level_err > cfg.bandwidth_deg, level_err < cfg.bandwidth_deg - cfg.hysteresis_deg
            excess = level_err - cfg.bandwidth_deg
        else:
            side = cfg.free_side
            value, thr = (self.mode.cue_value(drop, fwd_deg), self.mode.cue_threshold()) if self.mode else (drop, cfg.threshold_deg)
            past_on, back = value > thr, value < thr - cfg.hysteresis_deg
            excess = value - thr
            drop = value  # what the cue events report as angle_deg
        if self.mode is not None and not self.mode.cue_allowed(t_s):
            past_on, back = False, True
        self.cue_excess_deg = max(0.0, excess)
        events = []
        if not self.cue_on and past_on:
            self.cue_on, self._cue_since, self.cue_side = True, t_s, side
            self.cue_audible = fade_audible(self.set_reps_done + 1, cfg)
            self.cue_tone_played = False
            self._set_cues += 1
            if self._rep is not None:
                self._rep["cued"] = True
                self._rep["feedback_scheduled"] |= self.cue_audible
            events.append({"event": "cue_on", "t": t_s, "kind": self.cue_kind, "low_side": side,
                           "angle_deg": round(drop if cfg.feedback == "threshold" else level_err, 2),
                           "audible": self.cue_audible})
        elif self.cue_on and back and t_s - self._cue_since >= cfg.min_on_s:
            self.cue_on = False
            events.append({"event": "cue_off", "t": t_s, "kind": self.cue_kind, "low_side": self.cue_side,
                           "angle_deg": round(drop if cfg.feedback == "threshold" else level_err, 2),
                           "on_s": round(t_s - self._cue_since, 3)})
        return events

    def cue_sounded(self) -> None:
        """The sound output played a tone for the current cue (the pipeline hears it from its cue
        sink): only then does the rep say `feedback_given`."""
        self.cue_tone_played = True
        if self._rep is not None:
            self._rep["feedback_given"] = True

    # ---- per sample ----
    @property
    def needs_motion(self) -> bool:
        """Whether update() wants the `motion` argument (vertical acceleration, rate of turn)."""
        return self.mode is not None and self.mode.needs_motion

    def update(self, t_s: float, obliquity_deg: float, forward_tilt_deg: float, motion=None) -> list[dict]:
        cfg = self.cfg
        drop = drop_deg(obliquity_deg, cfg.free_side)
        self.free_drop_deg = drop
        self._set_worst = max(self._set_worst, drop)
        events = []
        if cfg.exercise in HIP_DIP_LIKE:
            events += self._hip_dip(t_s, drop)
            events += self._cue_update(t_s, drop, obliquity_deg)
        elif cfg.exercise == "single-leg-squat":
            events += self._cue_update(t_s, drop, obliquity_deg)
            events += self._squat(t_s, drop, forward_tilt_deg)
        elif self.mode is not None:
            events += self.mode.update(self, t_s, drop, forward_tilt_deg, motion)
            events += self._cue_update(t_s, drop, obliquity_deg, forward_tilt_deg)
        else:
            events += self._cue_update(t_s, drop, obliquity_deg)
        self._track_time_past(t_s, drop)
        if cfg.set_reps and self.set_reps_done >= cfg.set_reps and self._rep is None:
            events += self.end_set(t_s)
        return events

    def _track_time_past(self, t_s: float, drop: float) -> None:
        past = drop > self.cfg.threshold_deg
        if past and self._past_since is None:
            self._past_since = t_s
        elif not past and self._past_since is not None:
            dt = t_s - self._past_since
            self._set_past_s += dt
            if self._rep is not None:
                self._rep["past_s"] += dt
            self._past_since = None

    def _new_rep(self, t_s: float, drop: float) -> None:
        self._rep = {"start": t_s, "max": drop, "min_after": math.inf, "returned_at": None,
                     "cued": self.cue_on, "feedback_scheduled": self.cue_on and self.cue_audible,
                     "feedback_given": self.cue_on and self.cue_tone_played,
                     "past_s": 0.0, "max_fwd": -math.inf}

    def _finish_rep(self, t_s: float, **fields) -> dict:
        rep, cfg = self._rep, self.cfg
        self._rep = None
        self.reps += 1
        self.set_reps_done += 1
        past = rep["past_s"] + (t_s - self._past_since if self._past_since is not None else 0.0)
        event = {"event": "rep", "t": t_s, "index": self.reps, "set": self.set_number,
                 "exercise": cfg.exercise, "low_side": cfg.free_side,
                 "max_drop_deg": round(rep["max"], 2), "duration_s": round(t_s - rep["start"], 2),
                 "cued": rep["cued"], "feedback_scheduled": rep["feedback_scheduled"],
                 "feedback_given": rep["feedback_given"], "time_past_threshold_s": round(past, 2), **fields}
        self._set_reps.append(event)
        return event

    def _hip_dip(self, t_s: float, drop: float) -> list[dict]:
        cfg = self.cfg
        rep = self._rep
        if rep is None:
            if self._wait_for_start:
                self._wait_for_start = drop >= cfg.rep_end_deg
            elif drop > cfg.rep_start_deg:
                self._new_rep(t_s, drop)
            return []
        if rep["returned_at"] is None:
            if drop < cfg.rep_end_deg:
                rep["returned_at"] = t_s
                rep["min_after"] = drop
                return []
            if drop < 0.5 * rep["max"]:
                rep["min_after"] = min(rep["min_after"], drop)
            if drop > rep["min_after"] + 1.5:
                # came half way back, then dipped again: that rep never reached level
                event = self._finish_rep(t_s, depth_deg=round(rep["max"], 2),
                                         reached_target=rep["max"] >= cfg.threshold_deg,
                                         returned_to_level=False, above_level_deg=0.0)
                self._new_rep(t_s, drop)
                return [event]
            rep["max"] = max(rep["max"], drop)
            return []
        # back at level: follow the raise above level until it turns, then count the rep
        rep["min_after"] = min(rep["min_after"], drop)
        if drop > rep["min_after"] + 0.5 or t_s - rep["returned_at"] > 1.0 or drop > cfg.rep_start_deg:
            event = self._finish_rep(t_s, depth_deg=round(rep["max"], 2),
                                     reached_target=rep["max"] >= cfg.threshold_deg,
                                     returned_to_level=True,
                                     above_level_deg=round(max(0.0, -rep["min_after"]), 2))
            if drop > cfg.rep_start_deg:
                self._new_rep(t_s, drop)
            return [event]
        return []

    def _squat(self, t_s: float, drop: float, fwd: float) -> list[dict]:
        cfg = self.cfg
        if self._rep is None:
            if self._wait_for_start:
                self._wait_for_start = fwd >= cfg.squat_end_deg
            elif fwd > cfg.squat_start_deg:
                self._new_rep(t_s, drop)
                self._rep["max_fwd"] = fwd
            return []
        self._rep["max"] = max(self._rep["max"], drop)
        self._rep["max_fwd"] = max(self._rep["max_fwd"], fwd)
        if fwd < cfg.squat_end_deg:
            return [self._finish_rep(t_s, max_forward_tilt_deg=round(self._rep["max_fwd"], 1))]
        return []

    # ---- sets ----
    def end_set(self, t_s: float) -> list[dict]:
        """Close the current set and summarise it. A rep in progress (the set was ended mid-rep, or
        the stream ended) is not counted: half a movement is not a rep, and its rest must not
        become one either. It is reported as `rep_incomplete` and left out of every count.
        Returns the events."""
        out = []
        events_reps = self._set_reps
        if self.mode is not None:   # a mode may finish a whole rep here (pelvic tilt on its way back)
            out += self.mode.end_set(self, t_s)
        if self._rep is not None:
            rep = self._rep
            out.append({"event": "rep_incomplete", "t": t_s, "set": self.set_number,
                        "exercise": self.cfg.exercise, "low_side": self.cfg.free_side,
                        "started_t": round(rep["start"], 4), "max_drop_deg": round(rep["max"], 2),
                        "cued": rep["cued"], "feedback_scheduled": rep["feedback_scheduled"],
                        "feedback_given": rep["feedback_given"]})
            self._wait_for_start = True
        self._rep = None
        self._track_time_past(t_s, -math.inf)  # close a running past-threshold period
        drops = [r["max_drop_deg"] for r in events_reps]
        summary = {"event": "set_summary", "t": t_s, "set": self.set_number,
                   "exercise": self.cfg.exercise, "low_side": self.cfg.free_side,
                   "threshold_deg": self.cfg.threshold_deg, "reps": len(events_reps),
                   "cued_reps": sum(1 for r in events_reps if r["cued"]),
                   "worst_drop_deg": round(max(drops), 2) if drops else (
                       round(self._set_worst, 2) if self._set_worst > -math.inf else None),
                   "average_drop_deg": round(sum(drops) / len(drops), 2) if drops else None,
                   "cues": self._set_cues, "time_past_threshold_s": round(self._set_past_s, 2)}
        self.set_number += 1
        self.set_reps_done = 0
        self._set_reps = []
        self._set_past_s = 0.0
        self._set_worst = -math.inf
        self._set_cues = 0
        out.append(summary)
        return out

    @property
    def set_in_progress(self) -> bool:
        return bool(self._set_reps) or self._rep is not None or self._set_cues > 0


def summary_text(summary: dict) -> str:
    """A set summary (or a walk summary) in plain words, for the console and the window."""
    if summary["event"] == "walk_summary":
        from host.processing.gait import walk_summary_text
        return walk_summary_text(summary)
    side = summary["low_side"]
    if summary["exercise"] == "keep-level":
        worst = summary["worst_drop_deg"]
        return (f"Set {summary['set']}: {summary['cues']} cues, {summary['time_past_threshold_s']:.1f} s past "
                f"the limit" + (f"; worst: {side} hip {worst:.1f}° low." if worst is not None else "."))
    if not summary["reps"]:
        return f"Set {summary['set']}: no reps."
    verb = "reached the target" if summary["exercise"] in TARGET_EXERCISES else "with the cue"
    return (f"Set {summary['set']}: {summary['reps']} reps, {summary['cued_reps']} {verb}; "
            f"{side} hip drop worst {summary['worst_drop_deg']:.1f}°, average {summary['average_drop_deg']:.1f}°.")
