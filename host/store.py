"""The session store: one SQLite file holding patients, sessions, blocks, raw frames, events and reps.

Data enters through `host.sinks.recorder.Recorder` (which writes from its own thread with the `insert_*`
helpers below) and leaves through the query functions (`list_sessions`, `frames`, `events`, `reps`,
`progress`, ...) used by `hiplevel sessions | replay | export | report` and the GUI. See
docs/sessions.md for the data model.

- Where: `--db PATH`, else $HIPLEVEL_DB, else `sessions.sqlite` in the user's data folder
  (platformdirs; ~/.local/share/hiplevel on Linux).
- Versioned: `PRAGMA user_version` is the schema version; `MIGRATIONS[i]` takes version i to i + 1,
  each in one transaction, so a database is never left half-migrated. A file made by a newer
  hiplevel is refused with a plain message instead of being misread.
- Crash-safe: while recording the file is in WAL mode with synchronous=NORMAL, so a killed process
  loses only what was not yet committed; a clean close switches it back to a single self-contained
  file (journal_mode=DELETE) that can be copied or opened on read-only media.
- Raw frames are stored exactly as received (protocol bytes + host receive time), so a session can
  be re-analysed later through the same decoder and pipeline (host.links.replay).
"""
from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

DB_FILENAME = "sessions.sqlite"

MIGRATIONS: list[str] = [
    # 0 -> 1: the first release.
    """
    CREATE TABLE patients (
        id          INTEGER PRIMARY KEY,
        label       TEXT NOT NULL UNIQUE,     -- pseudonymous label, e.g. "P-017"; no personal data
        created_utc TEXT NOT NULL
    );
    CREATE TABLE sessions (
        id          INTEGER PRIMARY KEY,
        patient_id  INTEGER NOT NULL REFERENCES patients(id),
        started_utc TEXT NOT NULL,
        ended_utc   TEXT,                     -- NULL: interrupted (killed, power, full disk)
        source      TEXT NOT NULL,            -- the sensor link, e.g. "serial /dev/ttyACM0"
        app_version TEXT NOT NULL
    );
    CREATE INDEX sessions_patient ON sessions(patient_id, started_utc);
    -- a block is one continuous stream from the sensor with one exercise and its settings (one
    -- `hiplevel run`); the exercise's own sets of reps are the `set` field of its rep events
    CREATE TABLE blocks (
        id                  INTEGER PRIMARY KEY,
        session_id          INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
        number              INTEGER NOT NULL,  -- 1, 2, ... within the session
        started_utc         TEXT NOT NULL,
        exercise            TEXT NOT NULL,
        stance              TEXT NOT NULL,     -- stance leg; the cue watches the other side
        threshold_left_deg  REAL NOT NULL,
        threshold_right_deg REAL NOT NULL,
        estimator           TEXT NOT NULL,
        settings_json       TEXT NOT NULL,     -- the full pipeline settings, for replay
        calibration_json    TEXT,              -- the last `calibrated` event
        end_json            TEXT,              -- the `end` event (NULL: interrupted)
        frame_count         INTEGER NOT NULL DEFAULT 0,
        t_host_first_s      REAL,              -- host monotonic time of the first / last frame
        t_host_last_s       REAL,
        UNIQUE (session_id, number)
    );
    CREATE TABLE frames (
        block_id   INTEGER NOT NULL REFERENCES blocks(id) ON DELETE CASCADE,
        n        INTEGER NOT NULL,             -- 0, 1, ... in order of arrival
        t_host_s REAL NOT NULL,                -- host time.monotonic() when the frame arrived
        data     BLOB NOT NULL,                -- the protocol frame, as received (docs/protocol.md)
        PRIMARY KEY (block_id, n)
    ) WITHOUT ROWID;
    CREATE TABLE events (
        id       INTEGER PRIMARY KEY,
        block_id   INTEGER NOT NULL REFERENCES blocks(id) ON DELETE CASCADE,
        kind     TEXT NOT NULL,                -- the event's "event" field (docs/events.md)
        t_s      REAL,                         -- its "t": device seconds since the first sample
        t_host_s REAL NOT NULL,                -- host monotonic time when it happened
        json     TEXT NOT NULL                 -- the whole event
    );
    CREATE INDEX events_set ON events(block_id, kind);
    CREATE TABLE reps (                        -- indexed columns of the `rep` events
        event_id     INTEGER PRIMARY KEY REFERENCES events(id) ON DELETE CASCADE,
        block_id       INTEGER NOT NULL REFERENCES blocks(id) ON DELETE CASCADE,
        idx          INTEGER,
        t_s          REAL,
        low_side     TEXT,
        max_drop_deg REAL,
        cued         INTEGER
    );
    CREATE INDEX reps_set ON reps(block_id, idx);
    CREATE TABLE markers (                     -- therapist markers ("good rep", "pain", ...)
        id          INTEGER PRIMARY KEY,
        block_id      INTEGER NOT NULL REFERENCES blocks(id) ON DELETE CASCADE,
        t_s         REAL,
        t_host_s    REAL NOT NULL,
        label       TEXT NOT NULL,
        created_utc TEXT NOT NULL
    );
    """,
    # 1 -> 2: whether a frame arrived late (re-sent after a link dropout), so replay treats it alike
    """
    ALTER TABLE frames ADD COLUMN late INTEGER NOT NULL DEFAULT 0;
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)


BUSY_TIMEOUT_S = 5.0  # how long one statement waits for another program's lock


class StoreError(Exception):
    """A problem with the session database, said in words a user understands. `busy`: another
    program holds its lock (worth trying again later)."""

    def __init__(self, message: str, busy: bool = False):
        super().__init__(message)
        self.busy = busy


def is_busy(e: BaseException) -> bool:
    name = getattr(e, "sqlite_errorname", "")
    return name.startswith("SQLITE_BUSY") or name.startswith("SQLITE_LOCKED")


def default_db_path() -> Path:
    env = os.environ.get("HIPLEVEL_DB")
    if env:
        return Path(env)
    import platformdirs
    return platformdirs.user_data_path("hiplevel", appauthor=False) / DB_FILENAME


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def local_time(utc: str | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    if not utc:
        return ""
    return datetime.fromisoformat(utc.replace("Z", "+00:00")).astimezone().strftime(fmt)


def explain(e: BaseException, path) -> str:
    """A sqlite3 / OS error as a sentence about the database file."""
    name = getattr(e, "sqlite_errorname", "")
    if name == "SQLITE_FULL" or getattr(e, "errno", None) == 28:
        return f"the disk is full ({path})"
    if name.startswith("SQLITE_READONLY") or getattr(e, "errno", None) in (30, 13):
        return f"the session database cannot be written (read-only folder or file: {path})"
    if name.startswith("SQLITE_CANTOPEN"):
        folder = Path(path).parent
        if folder.exists() and not os.access(folder, os.W_OK):
            return f"the session database cannot be written (read-only folder: {folder})"
        return f"the session database {path} cannot be opened (missing or unwritable folder?)"
    if name in ("SQLITE_NOTADB", "SQLITE_CORRUPT"):
        return f"{path} is not a hiplevel session database, or it is damaged"
    if name.startswith("SQLITE_BUSY") or name.startswith("SQLITE_LOCKED"):
        return f"the session database {path} is busy (another program is writing to it)"
    if name.startswith("SQLITE_IOERR"):
        return f"the disk reported an error writing {path} ({e})"
    return f"session database {path}: {e}"


def connect(path, *, create: bool = False, writable: bool = True,
            busy_timeout_s: float = BUSY_TIMEOUT_S) -> sqlite3.Connection:
    """Open (and migrate) the database. Raises StoreError with a plain message.

    create: make the file (and its folder) if missing. writable=False opens read-only, which also
    works for a cleanly closed file on read-only media. Only `create` makes a database of a file that
    is not one yet (missing or empty): a reader refuses an empty file instead of writing into it."""
    path = Path(path)
    if not create and not path.exists():
        raise StoreError(f"no session database at {path} (nothing recorded there yet)")
    if create:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StoreError(explain(e, path)) from None
    mode = "rwc" if create else ("rw" if writable else "ro")
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode={mode}", uri=True,
                               isolation_level=None, check_same_thread=False, timeout=busy_timeout_s)
    except sqlite3.Error as e:
        if mode == "rw":  # read-only media: reading still works
            return connect(path, create=False, writable=False, busy_timeout_s=busy_timeout_s)
        raise StoreError(explain(e, path), busy=is_busy(e)) from None
    try:
        conn.execute("PRAGMA foreign_keys = ON")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(f"{path} was written by a newer hiplevel (schema {version}, this one knows "
                             f"up to {SCHEMA_VERSION}); update hiplevel to open it")
        if version < 0:
            raise StoreError(f"{path} is not a hiplevel session database (its schema version is {version})")
        if version == 0 and _has_tables(conn):
            raise StoreError(f"{path} is an SQLite file but not a hiplevel session database")
        if version == 0 and not create:
            raise StoreError(f"{path} is an empty file, not a session database (nothing recorded there yet)")
        if version < SCHEMA_VERSION:
            migrate(conn, path)
    except sqlite3.Error as e:
        conn.close()
        if mode == "rw" and getattr(e, "sqlite_errorname", "").startswith("SQLITE_READONLY"):
            return connect(path, create=False, writable=False, busy_timeout_s=busy_timeout_s)
        raise StoreError(explain(e, path), busy=is_busy(e)) from None
    except StoreError:
        conn.close()
        raise
    conn.row_factory = sqlite3.Row
    return conn


def _has_tables(conn) -> bool:
    return conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] > 0


def migrate(conn: sqlite3.Connection, path="database", migrations: list[str] | None = None) -> None:
    """Bring the schema up to date, one transaction per step (user_version is transactional)."""
    migrations = MIGRATIONS if migrations is None else migrations
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    for target in range(version + 1, len(migrations) + 1):
        try:
            conn.executescript(f"BEGIN IMMEDIATE;\n{migrations[target - 1]}\n"
                               f"PRAGMA user_version = {target};\nCOMMIT;")
        except sqlite3.Error as e:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if getattr(e, "sqlite_errorname", "").startswith("SQLITE_READONLY"):
                raise StoreError(f"{path} was written by an older hiplevel and must be upgraded, but it "
                                 "is read-only here; open it once where it can be written") from None
            raise


def set_recording_mode(conn: sqlite3.Connection) -> None:
    """WAL + synchronous=NORMAL: a commit is one append to the WAL file (no fsync per commit), and
    a killed process loses nothing committed; readers (the GUI's history) never block the writer."""
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")


def close_recording(conn: sqlite3.Connection) -> None:
    """Fold the WAL back into the file and leave a single self-contained file. Best effort: another
    recorder may still have the file open (then it stays in WAL mode, which is fine)."""
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("PRAGMA journal_mode = DELETE")
    except sqlite3.Error:
        pass


# ---- writing (used by host.sinks.recorder from its writer thread) ----

def patient_id(conn, label: str, create: bool = True) -> int | None:
    row = conn.execute("SELECT id FROM patients WHERE label = ?", (label,)).fetchone()
    if row is not None:
        return row[0]
    if not create:
        return None
    return conn.execute("INSERT INTO patients (label, created_utc) VALUES (?, ?)",
                        (label, utc_now())).lastrowid


def check_patient_label(label: str) -> str:
    """A pseudonymous label: 1-40 printable characters. Raises ValueError with the reason."""
    label = label.strip()
    if not 1 <= len(label) <= 40:
        raise ValueError("a patient label has 1 to 40 characters, e.g. P-017")
    if not label.isprintable():
        raise ValueError("a patient label cannot hold control characters")
    return label


def insert_session(conn, patient_label: str, source: str, app_version: str) -> int:
    pid = patient_id(conn, patient_label)
    return conn.execute("INSERT INTO sessions (patient_id, started_utc, source, app_version) "
                        "VALUES (?, ?, ?, ?)", (pid, utc_now(), source, app_version)).lastrowid


def set_session_patient(conn, session_id: int, label: str) -> None:
    """Move a session to another patient (picked or corrected while recording). A patient left with
    no session at all (e.g. the 'default' label the session started under) is removed."""
    row = conn.execute("SELECT patient_id FROM sessions WHERE id = ?", (session_id,)).fetchone()
    pid = patient_id(conn, label)
    conn.execute("UPDATE sessions SET patient_id = ? WHERE id = ?", (pid, session_id))
    if row is not None and row[0] != pid:
        conn.execute("DELETE FROM patients WHERE id = ? AND NOT EXISTS "
                     "(SELECT 1 FROM sessions WHERE patient_id = ?)", (row[0], row[0]))


def insert_block(conn, session_id: int, settings: dict, started_utc: str) -> int:
    number = conn.execute("SELECT coalesce(max(number), 0) + 1 FROM blocks WHERE session_id = ?",
                          (session_id,)).fetchone()[0]
    ex = settings.get("exercise", {})
    return conn.execute(
        "INSERT INTO blocks (session_id, number, started_utc, exercise, stance, threshold_left_deg, "
        "threshold_right_deg, estimator, settings_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (session_id, number, started_utc, ex.get("exercise", ""), ex.get("stance", ""),
         ex.get("threshold_left_deg", float("nan")), ex.get("threshold_right_deg", float("nan")),
         settings.get("estimator", ""), json.dumps(settings))).lastrowid


def insert_event(conn, block_id: int, t_host_s: float, event: dict) -> int:
    kind = str(event.get("event", ""))
    t = event.get("t")
    text = json.dumps(event, default=_json_default)
    event_id = conn.execute("INSERT INTO events (block_id, kind, t_s, t_host_s, json) VALUES (?, ?, ?, ?, ?)",
                            (block_id, kind, t, t_host_s, text)).lastrowid
    if kind in ("rep", "step"):
        # a walking step is indexed like a rep: its swing side is the low side, its drop the rep's
        # (so progress over weeks covers walking too, as the exercise "walk")
        cued = event.get("cued")
        low = event.get("low_side", event.get("swing_side"))
        drop = event.get("max_drop_deg", event.get("drop_deg"))
        conn.execute("INSERT INTO reps (event_id, block_id, idx, t_s, low_side, max_drop_deg, cued) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?)",
                     (event_id, block_id, event.get("index"), t, low, drop,
                      None if cued is None else int(bool(cued))))
    elif kind == "calibrated":
        conn.execute("UPDATE blocks SET calibration_json = ? WHERE id = ?", (text, block_id))
    elif kind == "end":
        conn.execute("UPDATE blocks SET end_json = ? WHERE id = ?", (text, block_id))
    return event_id


def insert_marker(conn, block_id: int, t_s: float | None, t_host_s: float, label: str) -> int:
    return conn.execute("INSERT INTO markers (block_id, t_s, t_host_s, label, created_utc) VALUES (?, ?, ?, ?, ?)",
                        (block_id, t_s, t_host_s, label, utc_now())).lastrowid


def _json_default(o):
    # numpy scalars and arrays sneak into event dicts from the pipeline
    if hasattr(o, "tolist"):
        return o.tolist()
    return str(o)


# ---- reading ----

@dataclass
class BlockInfo:
    id: int
    session_id: int
    number: int
    started_utc: str
    exercise: str
    stance: str
    threshold_left_deg: float
    threshold_right_deg: float
    estimator: str
    settings: dict
    calibration: dict | None
    end: dict | None
    frame_count: int
    host_duration_s: float  # host time from the first to the last frame

    @property
    def duration_s(self) -> float:
        """The block's length in sensor time (its `end` event's `t`: device seconds since the first
        sample), so a sped-up simulation is as long as its data; the host time from the first to the
        last frame for an interrupted block."""
        t = (self.end or {}).get("t")
        return float(t) if isinstance(t, (int, float)) else self.host_duration_s

    @property
    def free_side(self) -> str:
        return "right" if self.stance == "left" else "left"

    @property
    def status(self) -> str:
        if self.end is None:
            return "interrupted"
        return "complete" if self.end.get("reason") == "the sensor finished the set" else self.end.get("reason", "")


@dataclass
class SessionInfo:
    id: int
    patient: str
    started_utc: str
    ended_utc: str | None
    source: str
    app_version: str
    blocks: list[BlockInfo] = field(default_factory=list)
    reps: int = 0
    cued_reps: int = 0

    @property
    def status(self) -> str:
        if self.ended_utc is None:
            return "interrupted"
        statuses = {s.status for s in self.blocks}
        return statuses.pop() if len(statuses) == 1 else "mixed"

    @property
    def duration_s(self) -> float:
        return sum(s.duration_s for s in self.blocks)


def _block_from_row(r) -> BlockInfo:
    first, last = r["t_host_first_s"], r["t_host_last_s"]
    return BlockInfo(id=r["id"], session_id=r["session_id"], number=r["number"], started_utc=r["started_utc"],
                   exercise=r["exercise"], stance=r["stance"], threshold_left_deg=r["threshold_left_deg"],
                   threshold_right_deg=r["threshold_right_deg"], estimator=r["estimator"],
                   settings=json.loads(r["settings_json"]),
                   calibration=json.loads(r["calibration_json"]) if r["calibration_json"] else None,
                   end=json.loads(r["end_json"]) if r["end_json"] else None, frame_count=r["frame_count"],
                   host_duration_s=(last - first) if first is not None and last is not None else 0.0)


def list_patients(conn) -> list[str]:
    return [r[0] for r in conn.execute("SELECT label FROM patients ORDER BY label")]


def list_sessions(conn, patient: str | None = None) -> list[SessionInfo]:
    """Sessions oldest first, with their blocks and rep counts."""
    where, params = ("WHERE p.label = ?", (patient,)) if patient is not None else ("", ())
    rows = conn.execute(
        "SELECT s.id, p.label, s.started_utc, s.ended_utc, s.source, s.app_version, "
        "(SELECT count(*) FROM reps r JOIN blocks t ON r.block_id = t.id WHERE t.session_id = s.id), "
        "(SELECT count(*) FROM reps r JOIN blocks t ON r.block_id = t.id WHERE t.session_id = s.id AND r.cued) "
        f"FROM sessions s JOIN patients p ON s.patient_id = p.id {where} ORDER BY s.started_utc, s.id",
        params).fetchall()
    sessions = [SessionInfo(id=r[0], patient=r[1], started_utc=r[2], ended_utc=r[3], source=r[4],
                            app_version=r[5], reps=r[6], cued_reps=r[7]) for r in rows]
    by_id = {s.id: s for s in sessions}
    if by_id:
        marks = ",".join("?" * len(by_id))
        for r in conn.execute(f"SELECT * FROM blocks WHERE session_id IN ({marks}) ORDER BY session_id, number",
                              tuple(by_id)):
            by_id[r["session_id"]].blocks.append(_block_from_row(r))
    return sessions


def get_session(conn, ref: str | int) -> SessionInfo:
    """A session by id, or "last" for the most recent one. Raises StoreError."""
    if str(ref).strip().lower() == "last":
        row = conn.execute("SELECT id FROM sessions ORDER BY started_utc DESC, id DESC LIMIT 1").fetchone()
        if row is None:
            raise StoreError("no sessions recorded yet")
        sid = row[0]
    else:
        try:
            sid = int(str(ref).strip())
        except ValueError:
            raise StoreError(f"a session is given by its number (see `hiplevel sessions`) or 'last', "
                             f"not {ref!r}") from None
    row = conn.execute("SELECT p.label FROM sessions s JOIN patients p ON s.patient_id = p.id WHERE s.id = ?",
                       (sid,)).fetchone()
    if row is None:
        raise StoreError(f"there is no session {sid} (see `hiplevel sessions`)")
    return next(s for s in list_sessions(conn, row[0]) if s.id == sid)


def frames(conn, block_id: int, chunk: int = 4096):
    """(t_host_s, frame_bytes, late) in order of arrival, read in chunks (a long block stays small in
    memory)."""
    n = -1
    while True:
        rows = conn.execute("SELECT n, t_host_s, data, late FROM frames WHERE block_id = ? AND n > ? "
                            "ORDER BY n LIMIT ?", (block_id, n, chunk)).fetchall()
        if not rows:
            return
        for r in rows:
            yield r[1], bytes(r[2]), bool(r[3])
        n = rows[-1][0]


def events(conn, block_id: int) -> list[tuple[float, dict]]:
    """(t_host_s, event) in the order they happened."""
    return [(r[0], json.loads(r[1]))
            for r in conn.execute("SELECT t_host_s, json FROM events WHERE block_id = ? ORDER BY id", (block_id,))]


def reps(conn, block_id: int) -> list[dict]:
    """The whole `rep` events of a block, in order."""
    return [json.loads(r[0]) for r in conn.execute(
        "SELECT e.json FROM reps r JOIN events e ON e.id = r.event_id WHERE r.block_id = ? ORDER BY e.id",
        (block_id,))]


def markers(conn, block_id: int) -> list[dict]:
    return [dict(r) for r in conn.execute(
        "SELECT t_s, t_host_s, label, created_utc FROM markers WHERE block_id = ? ORDER BY t_host_s", (block_id,))]


def cue_periods(evts: list[dict], end_t_s: float) -> list[tuple[float, float]]:
    """(start, end) device seconds of each cue, from cue_on / cue_off events; an open cue ends at end_t_s."""
    periods, on = [], None
    for e in evts:
        if e.get("event") == "cue_on" and on is None:
            on = float(e["t"])
        elif e.get("event") == "cue_off" and on is not None:
            periods.append((on, float(e["t"])))
            on = None
    if on is not None:
        periods.append((on, max(on, end_t_s)))
    return periods


def side_stats(rep_events: list[dict]) -> dict[str, dict]:
    """Per low side: reps, cued reps, worst and average drop (deg), average duration (s)."""
    out = {}
    for side in ("left", "right"):
        rs = [r for r in rep_events if r.get("low_side") == side and r.get("max_drop_deg") is not None]
        if not rs:
            continue
        drops = [float(r["max_drop_deg"]) for r in rs]
        durs = [float(r["duration_s"]) for r in rs if r.get("duration_s") is not None]
        out[side] = {"reps": len(rs), "cued": sum(1 for r in rs if r.get("cued")),
                     "worst_drop_deg": max(drops), "mean_drop_deg": sum(drops) / len(drops),
                     "mean_duration_s": sum(durs) / len(durs) if durs else None}
    return out


def progress(conn, patient: str) -> list[dict]:
    """A patient's progress, oldest first: one row per session and exercise with reps, cued reps
    and per-side worst / average drop (from the indexed rep columns; no frames are read). Exercises
    are kept apart because a hip dip drops on purpose and a squat should not."""
    if patient_id(conn, patient, create=False) is None:
        known = list_patients(conn)
        raise StoreError(f"no patient {patient!r} in the database"
                         + (f" (known: {', '.join(known[:20])})" if known else ""))
    out = []
    for s in list_sessions(conn, patient):
        for exercise in sorted({b.exercise for b in s.blocks}):
            row = {"session": s.id, "started_utc": s.started_utc, "status": s.status, "exercise": exercise,
                   "reps": 0, "cued_reps": 0, "sides": {}}
            for r in conn.execute(
                    "SELECT r.low_side, count(*), sum(r.cued), max(r.max_drop_deg), avg(r.max_drop_deg) "
                    "FROM reps r JOIN blocks b ON r.block_id = b.id WHERE b.session_id = ? AND b.exercise = ? "
                    "AND r.low_side IS NOT NULL GROUP BY r.low_side", (s.id, exercise)):
                row["sides"][r[0]] = {"reps": r[1], "cued": r[2] or 0, "worst_drop_deg": r[3],
                                      "mean_drop_deg": r[4]}
                row["reps"] += r[1]
                row["cued_reps"] += r[2] or 0
            out.append(row)
    return out
