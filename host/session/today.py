"""`hiplevel today`: the next session of a patient's programme, run on one sensor stream.

In: the patient's stored programme (host.session.programme), a Transport, and `TodayOptions`.
The stream is one `StreamRunner` (calibrate once, then every step of the programme with exercise
switches in the pipeline) rather than one runner per item: a reconnect between items would ask the
patient to calibrate again, and a belt that stays on between items keeps its calibration.
Out: spoken and printed instructions (`say(spoken, printed=None, kind="instruction")`, kind one of
instruction | count | question | quiet), the rep count, rest timers, the cue (muted while
resting), one recorded block per step (host.sinks.recorder, settings name the programme version,
item, side and set), the run's progress and pain ratings in the store, and a summary at the end.

All timers (rest, hold) run on the sensor's clock, so a simulator running faster than real time
runs the whole programme faster. A run that stops early (the sensor went away, Ctrl-C) keeps its
finished steps in the store; the next `hiplevel today` resumes at the first unfinished step.

Pain (0-10) is asked after each item's last set, while the patient rests; the answers come from
`pain_answers` (a queue filled from the keyboard, the window's buttons or `--pain-from`), and an
unanswered question is recorded as nothing (`NO_MORE_ANSWERS` in the queue: its source ended, so
no question waits).
"""
from __future__ import annotations

import dataclasses
import logging
import queue
import threading
from dataclasses import dataclass, field

from host import store
from host.processing.exercise import Exercise
from host.processing.pipeline import PipelineConfig
from host.session import programme as pg
from host.session.runner import StreamRunner

log = logging.getLogger(__name__)

PAIN_WAIT_AFTER_LAST_S = 15.0   # sensor seconds the last item's pain question waits for an answer
NO_MORE_ANSWERS = "no more answers"  # put in the pain queue when its source has ended (EOF)

EXERCISE_WORDS = {"hip-dip": ("hip dip", "hip dips"), "single-leg-squat": ("single leg squat", "single leg squats"),
                  "keep-level": ("keep level", "keep level")}

# Calibration failures said in patient words: what to do, no degrees to judge.
CALIBRATION_WORDS = {
    "moved_during_still": "You moved a little. Stand still and we start again.",
    "bend_too_small": "Bend forward a bit further. Stand still and we start again.",
    "bend_too_long": "Come back up a little sooner. Stand still and we start again.",
    "not_back_to_start": "Come back up to standing straight. Stand still and we start again.",
    "backward_bend": "Bend forward, not backward. Stand still and we start again.",
    "bends_inconsistent": "Bend straight forward both times. Stand still and we start again.",
    "timeout": "Let's try again. Stand still.",
    "signal_gap": "The sensor lost contact. Stand still and we start again.",
}

NUMBERS = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
           "sixteen seventeen eighteen nineteen twenty").split()


def in_words(n: int) -> str:
    return NUMBERS[n] if 0 <= n < len(NUMBERS) else str(n)


def exercise_words(exercise: str, n: int) -> str:
    one, many = EXERCISE_WORDS.get(exercise, (exercise.replace("-", " "),) * 2)
    return one if n == 1 else many


def step_instruction(step: pg.Step) -> str:
    """'Left leg: ten hip dips.' / 'Right leg: keep level for thirty seconds.'"""
    side = step.stance.capitalize()
    if step.hold_s:
        what = f"{exercise_words(step.cfg.exercise, 1)} for {in_words(int(round(step.hold_s)))} seconds"
    else:
        what = f"{in_words(step.reps)} {exercise_words(step.cfg.exercise, step.reps)}"
    sets = f" Set {in_words(step.set_number)} of {in_words(step.sets)}." if step.sets > 1 else ""
    return f"{side} leg: {what}.{sets}"


class Resting:
    """Stands in for the Exercise between steps: no reps, no cue (nothing recorded that did not
    happen), the same attributes the pipeline reads."""
    cue_kind, cue_on, cue_audible, cue_excess_deg, set_in_progress, reps = "fault", False, False, 0.0, False, 0
    needs_motion, cue_tone_played = False, False   # no rep to count, so no motion wanted; no cue, no tone

    def __init__(self, cfg):
        self.cfg = cfg
        self.cue_side = cfg.free_side

    def update(self, t_s, obliquity_deg, forward_tilt_deg, motion=None):
        return []

    def end_set(self, t_s):
        return []


@dataclass
class TodayStatus:
    """What the patient view shows (a copy under the controller's lock)."""
    phase: str = "calibrating"       # calibrating | exercise | rest | pain | done | stopped
    instruction: str = "Stand still."
    exercise: str = ""
    stance: str = "left"
    rep: int = 0
    reps: int = 0                    # planned (0: held)
    hold_s: float = 0.0
    seconds_left: float = 0.0        # rest or hold timer
    item: int = 0
    items: int = 0
    step: int = 0
    steps: int = 0
    calibration_failed: str = ""     # the last failure, in patient words
    cue_kind: str = "target"


@dataclass
class StepResult:
    step: pg.Step
    reps: list = field(default_factory=list)
    block_number: int | None = None


@dataclass
class TodayResult:
    completed: bool
    resumed: bool
    version: int
    run_number: int
    results: list = field(default_factory=list)
    pain: dict = field(default_factory=dict)
    stream_reason: str = ""
    open_failed: bool = False

    def text(self) -> str:
        head = ("Today's session is complete." if self.completed else
                "Today's session stopped before the end; `hiplevel today` carries on from there next time.")
        lines = [head, f"Programme version {self.version}, session {self.run_number}"
                 + (" (resumed)." if self.resumed else ".")]
        by_item: dict = {}
        for r in self.results:
            by_item.setdefault(r.step.item, []).append(r)
        for item, rs in by_item.items():
            ex = rs[0].step.cfg.exercise
            parts = []
            for side in ("left", "right"):
                side_rs = [r for r in rs if r.step.stance == side]
                if not side_rs:
                    continue
                if side_rs[0].step.hold_s:
                    parts.append(f"{side} leg {sum(r.step.hold_s for r in side_rs):g} s held")
                    continue
                reps = [x for r in side_rs for x in r.reps]
                cued = sum(1 for x in reps if x.get("cued"))
                worst = max((float(x.get("max_drop_deg", 0.0)) for x in reps), default=0.0)
                past = "outside the band" if side_rs[0].step.cfg.feedback == "bandwidth" else "past the threshold"
                parts.append(f"{side} leg {len(reps)} reps ({cued} {past}, deepest drop {worst:.1f} deg)")
            pain = self.pain.get(item)
            lines.append(f"{item}. {ex}: {'; '.join(parts)}" + (f"; pain {pain}/10." if pain is not None else "."))
        if self.stream_reason:
            lines.append(f"Sensor: {self.stream_reason}.")
        return "\n".join(lines)


class ProgrammeRunner(StreamRunner):
    """A StreamRunner that steps through a programme: it watches the events (calibration, reps) and
    the sensor clock (after every frame), switches the pipeline's exercise, gates the cue, and
    writes progress. Everything here runs on the pipeline's thread."""

    def __init__(self, transport, steps: list[pg.Step], run: pg.Run, stored: pg.StoredProgramme, *,
                 say, db_path=None, recorder=None, pain_answers: queue.Queue | None = None,
                 estimator: str | None = None, calibration: str = "bends", **kw):
        first = next((s for s in steps if s.number not in run.done_steps), steps[-1])
        cfg = PipelineConfig(exercise=dataclasses.replace(first.cfg), calibration=calibration)
        if estimator:
            cfg.estimator = estimator
        self.cue_gate = CueGate(kw.pop("cue", None))
        super().__init__(transport, cfg, cue=self.cue_gate, recorder=recorder, **kw)
        self.base_cfg = cfg
        self.todo = [s for s in steps if s.number not in run.done_steps]
        self.all_steps = steps
        self.run_info, self.stored = run, stored
        self.say = say
        self.db_path = db_path
        self.pain_answers = pain_answers if pain_answers is not None else queue.Queue()
        self.status = TodayStatus(items=len(stored.programme.items), steps=len(steps))
        self._lock = threading.Lock()
        self.results: list[StepResult] = []
        self.pain: dict = dict(run.pain)
        self._current: StepResult | None = None
        self._phase = "calibrating"
        self._phase_end_s = 0.0
        self._step_start_s = 0.0
        self._pain_item: int | None = None
        self._pain_until_s = 0.0
        self._blocks = 0
        self._last_prompt = ""
        self.completed = False
        self.pipeline.exercise = Resting(first.cfg)
        self._set_status(phase="calibrating", instruction="Stand still.", stance=first.stance,
                         exercise=first.cfg.exercise)

    # ---- status for the views ----
    def _set_status(self, **kw) -> None:
        with self._lock:
            for k, v in kw.items():
                setattr(self.status, k, v)

    def status_copy(self) -> TodayStatus:
        with self._lock:
            return dataclasses.replace(self.status)

    # ---- hooks into the stream ----
    def _emit(self, event: dict) -> None:
        super()._emit(event)
        kind = event["event"]
        if kind == "calibrated" and self._phase == "calibrating":
            self.say("Well done.")
            self._start_next(self.pipeline.t_s)
        elif kind == "calibration_failed":
            words = CALIBRATION_WORDS.get(event.get("reason"), "Let's try again. Stand still.")
            self._set_status(calibration_failed=words, instruction=words)
            self.say(words)
        elif kind == "rep" and self._phase == "exercise" and self._current is not None:
            self._current.reps.append(event)
            n = len(self._current.reps)
            self._set_status(rep=n)
            self.say(in_words(n), f"Rep {n} of {self._current.step.reps}", kind="count")

    def _handle(self, item):
        # The batch goes back to StreamRunner.run: it is how the runner knows samples still come
        # (its bound on frames without samples); dropping it ended every programme after 15 s.
        batch = super()._handle(item)
        self._tick(self.pipeline.t_s)
        return batch

    def _tick(self, t_s: float) -> None:
        if self._phase == "calibrating":
            prompt = self.live.status.message
            if prompt != self._last_prompt:
                self._last_prompt = prompt
                low = prompt.lower()
                if "bend" in low and "forward" in low:
                    self._set_status(instruction="Bend forward slowly, then come back up.")
                    self.say("Bend forward slowly.")
                elif "stand still" in low and "again" not in low:
                    self._set_status(instruction="Stand still.")
                    self.say("Stand still.")
            cal = self.pipeline.calibration
            still = getattr(cal, "_still", None)  # the countdown of the still phase, for the view
            if still is not None and getattr(cal, "_phase", "") == "still":
                self._set_status(seconds_left=max(0.0, still.need_s - still.held_s(t_s)))
            else:
                self._set_status(seconds_left=0.0)
            return
        if self._pain_item is not None:
            self._poll_pain(t_s)
        if self._phase == "exercise":
            step = self._current.step
            if step.hold_s:
                left = step.hold_s - (t_s - self._step_start_s)
                self._set_status(seconds_left=max(0.0, left))
                if left <= 0:
                    self._finish_step(t_s)
            elif len(self._current.reps) >= step.reps:
                self._finish_step(t_s)
        elif self._phase == "rest":
            left = self._phase_end_s - t_s
            self._set_status(seconds_left=max(0.0, left))
            if left <= 0:
                self._start_next(t_s)
        elif self._phase == "last-pain" and (self._pain_item is None or t_s >= self._pain_until_s):
            self._finish_run()

    # ---- the steps ----
    def _start_next(self, t_s: float) -> None:
        if not self.todo:
            if self._pain_item is not None:
                self._phase = "last-pain"
                self._pain_until_s = t_s + PAIN_WAIT_AFTER_LAST_S
                return
            self._finish_run()
            return
        step = self.todo.pop(0)
        prev = self._current.step if self._current else None
        self._current = StepResult(step)
        if self.recorder is not None:
            if self._blocks:  # the first block was opened before the stream, with this step's settings
                self.recorder.start_block(self.block_settings(step))
            self._blocks += 1
            self._current.block_number = self._blocks
        ex = Exercise(dataclasses.replace(step.cfg))
        self.pipeline.exercise = ex
        self.pipeline.cfg.exercise = ex.cfg
        self.cue_gate.open = True
        self.live.update_status(exercise=step.cfg.exercise, stance=step.stance,
                                threshold_left_deg=step.cfg.threshold_left_deg,
                                threshold_right_deg=step.cfg.threshold_right_deg, reps=0)
        if prev is not None and prev.stance != step.stance and prev.item == step.item:
            self.say("Switch legs.")
        if step.first_of_item and step.notes:
            self.say(step.notes)
        text = step_instruction(step)
        self._emit({"event": "programme_step", "t": t_s, "step": step.number, "item": step.item,
                    "stance": step.stance, "set": step.set_number, "exercise": step.cfg.exercise,
                    "reps": step.reps, "hold_s": step.hold_s, "cue_share": step.cue_share,
                    "version": self.stored.version, "run": self.run_info.number})
        self._phase = "exercise"
        self._step_start_s = t_s
        self._set_status(phase="exercise", instruction=text, exercise=step.cfg.exercise, stance=step.stance,
                         rep=0, reps=step.reps, hold_s=step.hold_s, seconds_left=step.hold_s, item=step.item,
                         step=step.number + 1, cue_kind=ex.cue_kind, calibration_failed="")
        self.say(text)

    def block_settings(self, step: pg.Step) -> dict:
        settings = dataclasses.asdict(self.base_cfg)
        settings["exercise"] = dataclasses.asdict(step.cfg)
        settings["programme"] = {"patient": self.stored.patient, "version": self.stored.version,
                                 "run": self.run_info.number, "step": step.number, "item": step.item,
                                 "stance": step.stance, "set": step.set_number, "cue_share": step.cue_share}
        return settings

    def _finish_step(self, t_s: float) -> None:
        self.pipeline.end_set()
        self.cue_gate.open = False
        self.pipeline.exercise = Resting(self._current.step.cfg)
        step = self._current.step
        self.results.append(self._current)
        cued = sum(1 for r in self._current.reps if r.get("cued"))
        self._write(lambda c: pg.record_step(c, self.run_info.id, step, self._session_id(),
                                             self._current.block_number, len(self._current.reps), cued))
        if step.last_of_item:
            self._pain_item = step.item
            self.say("Well done. How is your pain, from zero to ten?",
                     "Well done. How is your pain, from 0 to 10? (a number, or Enter to skip)", kind="question")
            self._set_status(phase="pain", instruction="Pain 0-10?")
        if not self.todo:
            self._start_next(t_s)
            return
        self._phase = "rest"
        self._phase_end_s = t_s + step.rest_s
        if step.rest_s > 0:
            self._emit({"event": "programme_rest", "t": t_s, "rest_s": step.rest_s})
            if not step.last_of_item:
                self._set_status(phase="rest", instruction="Rest.", seconds_left=step.rest_s)
            self.say(f"Rest, {in_words(int(round(step.rest_s)))} seconds.")

    def _poll_pain(self, t_s: float) -> None:
        try:
            answer = self.pain_answers.get_nowait()
        except queue.Empty:
            return
        item, self._pain_item = self._pain_item, None
        if answer == NO_MORE_ANSWERS:
            self.pain_answers.put(answer)  # every later question gets no answer either
            answer = None
        if answer is None:
            self.say("", "Pain: no rating.", kind="quiet")
        else:
            self.pain[item] = answer
            self._write(lambda c: pg.record_pain(c, self.run_info.id, item, answer))
            self._emit({"event": "pain", "t": t_s, "item": item, "rating": answer})
            self.say(f"Pain {in_words(answer)}, noted.", f"Pain {answer}/10, noted.", kind="quiet")
        if self._phase == "rest":
            self._set_status(phase="rest", instruction="Rest.")

    def _finish_run(self) -> None:
        self._phase = "done"
        self.completed = True
        self._write(lambda c: pg.complete_run(c, self.run_info.id))
        self._set_status(phase="done", instruction="Well done! That's all for today.", seconds_left=0.0)
        self.say("Well done! That's all for today.")
        self.stop_soon()

    def stop_soon(self) -> None:
        if self._stop is not None:
            self._stop.set()

    def _session_id(self):
        return getattr(self.recorder, "session_id", None)

    def _write(self, fn) -> None:
        """A progress write on its own short connection. It happens only at a step's end, with the
        cue off, so waiting a moment for the recorder's commit delays no feedback."""
        if self.db_path is None:
            return
        try:
            conn = store.connect(self.db_path, create=True)
            try:
                fn(conn)
                conn.commit()
            finally:
                conn.close()
        except (store.StoreError, Exception) as e:  # noqa: BLE001 - progress must not stop the session
            log.warning("programme progress not saved: %s", e)
            self.say("", f"Progress could not be saved ({e}).", kind="quiet")


class CueGate:
    """The cue sink, passed through while exercising and held silent while resting."""

    def __init__(self, inner):
        self.inner = inner
        self.open = False

    def update(self, kind, on, audible, excess_deg, low_side):
        if self.inner is not None:
            self.inner.update(kind, on and self.open, audible, excess_deg, low_side)
