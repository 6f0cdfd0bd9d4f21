"""A patient's programme: what the therapist prescribes, as data, and where it is kept.

In: a TOML text (`from_toml`, read with tomllib; a therapist can mail the file), or a dict, or the
session store (`load`). Out: a validated `Programme` (ordered `Item`s: exercise, stance side(s),
sets, reps or hold time, threshold per side, rest between sets, feedback mode, notes), its TOML
(`to_toml`, a small writer for the few value types a programme has), its plain-words description
(`describe`), and the steps of one session (`steps`: item x side x set, each with the
ExerciseConfig it runs with). Every validation error is one sentence naming the item and the key.

Stored per patient (`save`, `load`, `versions`): each save is a new version; a session records the
version and the item it followed through `programme_runs` / `programme_steps` (host/store.py,
migration 4). `hiplevel today` (host.session.today) writes those; the report reads them.

Feedback modes: "every-rep" (the cue on every rep), "bandwidth" (silent inside ±bandwidth_deg of
level, for the exercises that keep the pelvis level), "faded" (the share of reps with an audible
cue falls over sessions: 100 % for `full_sessions` sessions, then linearly down to 0 % over
`fade_sessions` more, after which the patient works without the cue).
"""
from __future__ import annotations

import json
import math
import tomllib
from datetime import date, datetime, timedelta
from dataclasses import asdict, dataclass, field, fields

from host import store
from host.processing.exercise import (EXERCISES, THRESHOLD_DEFAULT_DEG, THRESHOLD_MAX_DEG,
                                      THRESHOLD_MIN_DEG, ExerciseConfig, threshold_in_range)

FEEDBACK_MODES = ("every-rep", "bandwidth", "faded")
STANCES = ("left", "right", "both")
# Exercises that count no reps: an item of one of these is held for `hold_s` seconds. The new
# exercises (issue 13) add theirs here (timed-hold) when they land.
HOLD_EXERCISES = {"keep-level", "timed-hold"}
MAX_SETS, MAX_REPS, MAX_HOLD_S, MAX_REST_S = 10, 50, 600.0, 600.0


class ProgrammeError(ValueError):
    """A programme that cannot be used, said in one sentence naming the item and the key."""


@dataclass
class Item:
    exercise: str = "hip-dip"
    stance: str = "left"           # the leg stood on: left, right or both (left first, then right)
    sets: int = 1
    reps: int = 10                 # reps per set (0 for an exercise that is held)
    hold_s: float = 0.0            # seconds per set for the held exercises (keep-level)
    threshold_left_deg: float = THRESHOLD_DEFAULT_DEG
    threshold_right_deg: float = THRESHOLD_DEFAULT_DEG
    rest_s: float = 30.0           # rest between sets (and before the other side)
    feedback: str = "every-rep"    # every-rep | bandwidth | faded
    bandwidth_deg: float = 2.0     # bandwidth feedback: silent within ± this of level
    full_sessions: int = 4         # faded: 100 % of reps cued in the first N sessions...
    fade_sessions: int = 4         # ...then down to 0 % over this many
    notes: str = ""                # for the patient, said before the item

    @property
    def sides(self) -> tuple[str, ...]:
        return ("left", "right") if self.stance == "both" else (self.stance,)

    @property
    def held(self) -> bool:
        return self.exercise in HOLD_EXERCISES

    def cue_share(self, session_number: int) -> float:
        """Share of reps with an audible cue in the patient's `session_number`-th session (1-based)."""
        if self.feedback != "faded":
            return 1.0
        k = session_number - self.full_sessions
        if k <= 0:
            return 1.0
        if self.fade_sessions <= 0 or k >= self.fade_sessions:
            return 0.0
        return 1.0 - k / self.fade_sessions

    def exercise_config(self, stance: str, session_number: int = 1) -> ExerciseConfig:
        share = self.cue_share(session_number)
        return ExerciseConfig(
            exercise=self.exercise, stance=stance, threshold_left_deg=self.threshold_left_deg,
            threshold_right_deg=self.threshold_right_deg,
            feedback="bandwidth" if self.feedback == "bandwidth" else "threshold",
            bandwidth_deg=self.bandwidth_deg, fade_start=share, fade_end=share,
            set_reps=0 if self.held else self.reps)

    def check(self, where: str) -> None:
        def bad(msg):
            raise ProgrammeError(f"{where}: {msg}")
        if self.exercise not in EXERCISES:
            bad(f"unknown exercise {self.exercise!r}; choose from {', '.join(EXERCISES)}")
        if self.stance not in STANCES:
            bad(f"stance must be left, right or both, not {self.stance!r}")
        if not 1 <= self.sets <= MAX_SETS:
            bad(f"sets must be 1 to {MAX_SETS}, not {self.sets}")
        if self.held:
            if self.reps:
                bad(f"{self.exercise} counts no reps; give hold_s (seconds per set) instead of reps")
            if not 5 <= self.hold_s <= MAX_HOLD_S:
                bad(f"hold_s must be 5 to {MAX_HOLD_S:g} seconds, not {self.hold_s:g}")
        else:
            if self.hold_s:
                bad(f"{self.exercise} counts reps; give reps instead of hold_s")
            if not 2 <= self.reps <= MAX_REPS:
                bad(f"reps must be 2 to {MAX_REPS}, not {self.reps}")
        for side in ("left", "right"):
            v = getattr(self, f"threshold_{side}_deg")
            if not threshold_in_range(v):
                bad(f"threshold_{side}_deg must be {THRESHOLD_MIN_DEG:g} to {THRESHOLD_MAX_DEG:g} "
                    f"degrees, not {v:g}")
        if not 0 <= self.rest_s <= MAX_REST_S:
            bad(f"rest_s must be 0 to {MAX_REST_S:g} seconds, not {self.rest_s:g}")
        if self.feedback not in FEEDBACK_MODES:
            bad(f"feedback must be one of {', '.join(FEEDBACK_MODES)}, not {self.feedback!r}")
        if self.feedback == "bandwidth" and self.exercise == "hip-dip":
            bad("bandwidth feedback is for exercises that keep the pelvis level, not for the hip dip")
        if self.feedback == "faded" and self.held:
            bad(f"faded feedback fades the cue over reps; {self.exercise} counts no reps")
        if not 0.5 <= self.bandwidth_deg <= THRESHOLD_MAX_DEG:
            bad(f"bandwidth_deg must be 0.5 to {THRESHOLD_MAX_DEG:g} degrees, not {self.bandwidth_deg:g}")
        if not (0 <= self.full_sessions <= 100 and 0 <= self.fade_sessions <= 100):
            bad("full_sessions and fade_sessions must be 0 to 100")
        if len(self.notes) > 500:
            bad("notes are at most 500 characters")


@dataclass
class Programme:
    items: list[Item] = field(default_factory=list)
    sessions_per_week: int = 3
    notes: str = ""                # for the patient, said at the start of each session

    def check(self) -> "Programme":
        if not self.items:
            raise ProgrammeError("a programme needs at least one item ([[item]] in the file)")
        if len(self.items) > 30:
            raise ProgrammeError("a programme holds at most 30 items")
        if not 1 <= self.sessions_per_week <= 21:
            raise ProgrammeError(f"sessions_per_week must be 1 to 21, not {self.sessions_per_week}")
        for i, item in enumerate(self.items, 1):
            item.check(f"item {i} ({item.exercise})")
        return self

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Step:
    """One set of one item on one side: what `hiplevel today` runs between two rests."""
    number: int                    # 0, 1, ... in the session's order
    item: int                      # 1-based item number
    stance: str
    set_number: int                # 1-based within the item and side
    sets: int
    cfg: ExerciseConfig
    reps: int                      # planned reps (0: held)
    hold_s: float
    rest_s: float                  # rest after this step (0 after the last one)
    first_of_item: bool
    last_of_item: bool             # the pain question follows
    notes: str
    cue_share: float


def steps(programme: Programme, session_number: int = 1) -> list[Step]:
    out = []
    for i, item in enumerate(programme.items, 1):
        sides = item.sides
        for s_i, side in enumerate(sides):
            for k in range(1, item.sets + 1):
                out.append(dict(item=i, stance=side, set_number=k, sets=item.sets,
                                cfg=item.exercise_config(side, session_number),
                                reps=0 if item.held else item.reps, hold_s=item.hold_s if item.held else 0.0,
                                rest_s=item.rest_s, first_of_item=s_i == 0 and k == 1,
                                last_of_item=s_i == len(sides) - 1 and k == item.sets, notes=item.notes,
                                cue_share=item.cue_share(session_number)))
    last = len(out) - 1
    return [Step(number=n, **{**d, "rest_s": 0.0 if n == last else d["rest_s"]}) for n, d in enumerate(out)]


# ---- TOML / dict ----

_ITEM_FIELDS = {f.name: f for f in fields(Item)}
_TOP_KEYS = {"sessions_per_week", "notes", "item"}


def _coerce(where: str, key: str, value, default):
    """The value as the field's type (ints for counts, floats for degrees and seconds)."""
    if isinstance(default, bool) or isinstance(value, bool):
        raise ProgrammeError(f"{where}: {key} cannot be true/false")
    if isinstance(default, str):
        if not isinstance(value, str):
            raise ProgrammeError(f"{where}: {key} must be text in quotes, not {value!r}")
        return value.strip()
    if isinstance(default, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int):
            raise ProgrammeError(f"{where}: {key} must be a whole number, not {value!r}")
        return value
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ProgrammeError(f"{where}: {key} must be a number, not {value!r}")
    return float(value)


def value_of_text(text: str):
    """A form field's text as the value a TOML file would hold: a whole number, a decimal number, or
    else the text itself (which item_from_dict then refuses where a number belongs). The history
    window's form and the dashboard's editor read their fields with it."""
    t = text.strip()
    if t.isascii():  # int() and float() also take other scripts' digits; a TOML file does not
        for kind in (int, float):
            try:
                return kind(t)
            except ValueError:
                pass
    return t


def item_from_dict(d: dict, where: str) -> Item:
    if not isinstance(d, dict):
        raise ProgrammeError(f"{where} must be a table of keys")
    d = dict(d)
    if "threshold_deg" in d:  # one threshold for both sides, the common case
        v = d.pop("threshold_deg")
        d.setdefault("threshold_left_deg", v)
        d.setdefault("threshold_right_deg", v)
    unknown = sorted(set(d) - set(_ITEM_FIELDS))
    if unknown:
        raise ProgrammeError(f"{where}: unknown key {unknown[0]!r} (known: threshold_deg, "
                             f"{', '.join(_ITEM_FIELDS)})")
    item = Item()
    exercise = d.get("exercise", item.exercise)
    if isinstance(exercise, str) and exercise.strip() in HOLD_EXERCISES:
        item.reps = 0  # a held exercise has no reps unless the file says so (then check() refuses)
    for k, v in d.items():
        setattr(item, k, _coerce(where, k, v, getattr(Item(), k)))
    return item


def _where(i: int, d) -> str:
    ex = d.get("exercise") if isinstance(d, dict) else None
    return f"item {i} ({ex})" if isinstance(ex, str) else f"item {i}"


def from_dict(d: dict) -> Programme:
    unknown = sorted(set(d) - _TOP_KEYS)
    if unknown:
        raise ProgrammeError(f"unknown key {unknown[0]!r} at the top of the programme "
                             "(known: sessions_per_week, notes, and [[item]] tables)")
    items = d.get("item", [])
    if not isinstance(items, list):
        raise ProgrammeError("items are written as [[item]] tables")
    p = Programme(items=[item_from_dict(x, _where(i, x)) for i, x in enumerate(items, 1)])
    for k in ("sessions_per_week", "notes"):
        if k in d:
            setattr(p, k, _coerce("the programme", k, d[k], getattr(Programme(), k)))
    return p.check()


def from_toml(text: str) -> Programme:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ProgrammeError(f"the programme file is not valid TOML ({e})") from None
    return from_dict(data)


def _toml_value(v) -> str:
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)  # a JSON string is a valid TOML basic string
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else "nan"
    return str(v)


def to_toml(p: Programme, header: str = "") -> str:
    """The programme as TOML (every key written, defaults included, so the file says everything)."""
    lines = [f"# {line}" for line in header.splitlines()]
    lines += ["# hiplevel programme: edit the values, keep the keys. stance: left, right or both;",
              f"# feedback: {', '.join(FEEDBACK_MODES)}; thresholds {THRESHOLD_MIN_DEG:g}-{THRESHOLD_MAX_DEG:g} "
              "degrees; times in seconds.",
              f"sessions_per_week = {p.sessions_per_week}", f"notes = {_toml_value(p.notes)}"]
    for item in p.items:
        lines += ["", "[[item]]"]
        for name in _ITEM_FIELDS:
            if name == ("reps" if item.held else "hold_s"):
                continue  # the one that does not apply
            lines.append(f"{name} = {_toml_value(getattr(item, name))}")
    return "\n".join(lines) + "\n"


# ---- in words ----

def describe_item(item: Item, session_number: int | None = None) -> str:
    side = {"both": "each leg (left first)", "left": "the left leg", "right": "the right leg"}[item.stance]
    amount = f"{item.hold_s:g} s hold" if item.held else f"{item.reps} reps"
    sets = f"{item.sets} set{'s' if item.sets > 1 else ''} of {amount}"
    if item.threshold_left_deg == item.threshold_right_deg:
        thr = f"threshold {item.threshold_left_deg:g} deg"
    else:
        thr = f"threshold left {item.threshold_left_deg:g} deg, right {item.threshold_right_deg:g} deg"
    fb = {"every-rep": "cue whenever past the threshold" if item.held else "cue on every rep",
          "bandwidth": f"cue only outside ±{item.bandwidth_deg:g} deg of level",
          "faded": f"faded cue: every rep for {item.full_sessions} sessions, then down to none over "
                   f"{item.fade_sessions} more"}[item.feedback]
    if item.feedback == "faded" and session_number is not None:
        fb += f" (session {session_number}: {100 * item.cue_share(session_number):.0f} % of reps)"
    text = f"{item.exercise}, standing on {side}: {sets}, {thr}, rest {item.rest_s:g} s; {fb}."
    return text + (f" Notes: {item.notes}" if item.notes else "")


def describe(p: Programme, version: int | None = None, session_number: int | None = None) -> str:
    head = "Programme" + (f" version {version}" if version is not None else "")
    lines = [f"{head}: {len(p.items)} item{'s' if len(p.items) > 1 else ''}, "
             f"{p.sessions_per_week} sessions a week."]
    if p.notes:
        lines.append(f"Notes: {p.notes}")
    lines += [f"{i}. {describe_item(item, session_number)}" for i, item in enumerate(p.items, 1)]
    return "\n".join(lines)


# ---- the store (tables from host/store.py's migration 4) ----

@dataclass
class StoredProgramme:
    id: int
    patient: str
    version: int
    created_utc: str
    programme: Programme
    toml: str


def save(conn, patient: str, p: Programme) -> StoredProgramme:
    """Store `p` as the patient's next version (the caller commits). The patient is created if new."""
    p.check()
    pid = store.patient_id(conn, store.check_patient_label(patient))
    version = conn.execute("SELECT coalesce(max(version), 0) + 1 FROM programmes WHERE patient_id = ?",
                           (pid,)).fetchone()[0]
    text = to_toml(p)
    created = store.utc_now()
    rid = conn.execute("INSERT INTO programmes (patient_id, version, created_utc, toml) VALUES (?, ?, ?, ?)",
                       (pid, version, created, text)).lastrowid
    return StoredProgramme(rid, patient, version, created, p, text)


def load(conn, patient: str, version: int | None = None) -> StoredProgramme | None:
    """The patient's latest programme (or that version); None when there is none."""
    sql = ("SELECT g.id, g.version, g.created_utc, g.toml FROM programmes g JOIN patients p ON "
           "g.patient_id = p.id WHERE p.label = ?")
    args: tuple = (patient,)
    if version is not None:
        sql, args = sql + " AND g.version = ?", (patient, version)
    row = conn.execute(sql + " ORDER BY g.version DESC LIMIT 1", args).fetchone()
    if row is None:
        return None
    return StoredProgramme(row[0], patient, row[1], row[2], from_toml(row[3]), row[3])


def versions(conn, patient: str) -> list[tuple[int, str]]:
    """(version, created_utc) of the patient's programmes, oldest first."""
    return [(r[0], r[1]) for r in conn.execute(
        "SELECT g.version, g.created_utc FROM programmes g JOIN patients p ON g.patient_id = p.id "
        "WHERE p.label = ? ORDER BY g.version", (patient,))]


def by_id(conn, programme_id: int) -> StoredProgramme:
    row = conn.execute("SELECT g.id, p.label, g.version, g.created_utc, g.toml FROM programmes g JOIN "
                       "patients p ON g.patient_id = p.id WHERE g.id = ?", (programme_id,)).fetchone()
    return StoredProgramme(row[0], row[1], row[2], row[3], from_toml(row[4]), row[4])


# ---- runs: one `hiplevel today` session of a programme, resumable ----

@dataclass
class Run:
    id: int
    programme_id: int
    version: int
    number: int                    # the patient's n-th programme session
    started_utc: str
    completed_utc: str | None
    done_steps: set[int] = field(default_factory=set)
    pain: dict[int, int] = field(default_factory=dict)   # item -> rating


def _run_row(conn, row) -> Run:
    run = Run(row[0], row[1], row[2], row[3], row[4], row[5])
    run.done_steps = {r[0] for r in conn.execute("SELECT step FROM programme_steps WHERE run_id = ?", (run.id,))}
    run.pain = {r[0]: r[1] for r in conn.execute("SELECT item, rating FROM pain_ratings WHERE run_id = ?",
                                                 (run.id,))}
    return run


_RUN_SQL = ("SELECT r.id, r.programme_id, g.version, r.number, r.started_utc, r.completed_utc FROM "
            "programme_runs r JOIN programmes g ON r.programme_id = g.id JOIN patients p ON "
            "g.patient_id = p.id WHERE p.label = ?")


def runs(conn, patient: str) -> list[Run]:
    return [_run_row(conn, r) for r in conn.execute(_RUN_SQL + " ORDER BY r.id", (patient,)).fetchall()]


def next_run(conn, stored: StoredProgramme) -> tuple[Run, bool]:
    """The run `hiplevel today` goes on with: the patient's unfinished run of this version (resumed:
    True), else a new one numbered after the patient's earlier runs (the caller commits)."""
    row = conn.execute(_RUN_SQL + " AND r.completed_utc IS NULL AND r.programme_id = ? ORDER BY r.id DESC "
                       "LIMIT 1", (stored.patient, stored.id)).fetchone()
    if row is not None:
        return _run_row(conn, row), True
    number = 1 + conn.execute(
        "SELECT count(*) FROM programme_runs r JOIN programmes g ON r.programme_id = g.id JOIN patients p "
        "ON g.patient_id = p.id WHERE p.label = ? AND r.completed_utc IS NOT NULL", (stored.patient,)).fetchone()[0]
    started = store.utc_now()
    rid = conn.execute("INSERT INTO programme_runs (programme_id, number, started_utc) VALUES (?, ?, ?)",
                       (stored.id, number, started)).lastrowid
    return Run(rid, stored.id, stored.version, number, started, None), False


def record_step(conn, run_id: int, step: Step, session_id: int | None, block_number: int | None,
                reps: int, cued_reps: int) -> None:
    # ON CONFLICT ... DO UPDATE (SQLite >= 3.24 and PostgreSQL alike) rather than SQLite's OR REPLACE
    conn.execute("INSERT INTO programme_steps (run_id, step, item, stance, set_number, session_id, "
                 "block_number, reps, cued_reps, completed_utc) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                 "ON CONFLICT (run_id, step) DO UPDATE SET item = excluded.item, stance = excluded.stance, "
                 "set_number = excluded.set_number, session_id = excluded.session_id, "
                 "block_number = excluded.block_number, reps = excluded.reps, cued_reps = excluded.cued_reps, "
                 "completed_utc = excluded.completed_utc",
                 (run_id, step.number, step.item, step.stance, step.set_number, session_id, block_number,
                  reps, cued_reps, store.utc_now()))


def record_pain(conn, run_id: int, item: int, rating: int) -> None:
    if not (isinstance(rating, int) and 0 <= rating <= 10):
        raise ProgrammeError(f"pain is rated 0 to 10, not {rating!r}")
    conn.execute("INSERT INTO pain_ratings (run_id, item, rating, rated_utc) VALUES (?, ?, ?, ?) "
                 "ON CONFLICT (run_id, item) DO UPDATE SET rating = excluded.rating, rated_utc = excluded.rated_utc",
                 (run_id, item, rating, store.utc_now()))


def complete_run(conn, run_id: int) -> None:
    conn.execute("UPDATE programme_runs SET completed_utc = ? WHERE id = ?", (store.utc_now(), run_id))


def step_rows(conn, run_id: int) -> list[dict]:
    return [dict(r) for r in conn.execute(
        "SELECT step, item, stance, set_number, session_id, block_number, reps, cued_reps, completed_utc "
        "FROM programme_steps WHERE run_id = ? ORDER BY step", (run_id,))]


# ---- adherence: what the patient did against what was prescribed (the patient report) ----

def _utc_date(utc: str) -> date:
    return datetime.fromisoformat(utc.replace("Z", "+00:00")).date()


def iso_week(day: date) -> str:
    """'2026-W49': the ISO week of a day (weeks start on Monday)."""
    y, w, _ = day.isocalendar()
    return f"{y}-W{w:02d}"


def adherence(conn, patient: str) -> dict:
    """The patient's programme sessions against the prescription, for the report: `weeks` (one row
    per ISO week from the first run's to the last's: runs completed, runs started but unfinished, and
    sessions_per_week of the version in force at the week's last run) and `runs` (per run: number,
    version, date, completed, and per item its exercise, feedback schedule in force with its cue
    share, reps counted, reps with the cue, pain). Empty lists when the patient never ran `today`."""
    out: dict = {"weeks": [], "runs": []}
    all_runs = runs(conn, patient)
    if not all_runs:
        return out
    programmes: dict[int, StoredProgramme] = {}
    for r in all_runs:
        stored = programmes.setdefault(r.programme_id, by_id(conn, r.programme_id))
        per_item: dict[int, dict] = {}
        for row in step_rows(conn, r.id):
            d = per_item.setdefault(row["item"], {"reps": 0, "cued_reps": 0})
            d["reps"] += row["reps"] or 0
            d["cued_reps"] += row["cued_reps"] or 0
        items = []
        for i, item in enumerate(stored.programme.items, 1):
            done = per_item.get(i)
            items.append({"item": i, "exercise": item.exercise, "feedback": item.feedback,
                          "cue_share": round(item.cue_share(r.number), 3), "done": done is not None,
                          "reps": None if done is None else done["reps"],
                          "cued_reps": None if done is None else done["cued_reps"],
                          "pain": r.pain.get(i)})
        out["runs"].append({"run": r.number, "version": r.version, "started_utc": r.started_utc,
                            "week": iso_week(_utc_date(r.started_utc)), "completed": r.completed_utc is not None,
                            "sessions_per_week": stored.programme.sessions_per_week, "items": items})
    first, last = (_utc_date(out["runs"][k]["started_utc"]) for k in (0, -1))
    day = first - timedelta(days=first.weekday())
    while day <= last:
        week = iso_week(day)
        in_week = [r for r in out["runs"] if r["week"] == week]
        prescribed = (in_week[-1] if in_week else
                      [r for r in out["runs"] if r["started_utc"] < day.isoformat()][-1])["sessions_per_week"]
        out["weeks"].append({"week": week, "completed": sum(r["completed"] for r in in_week),
                             "unfinished": sum(not r["completed"] for r in in_week),
                             "prescribed": prescribed})
        day += timedelta(days=7)
    return out
