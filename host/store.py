"""The session store: patients, sessions, blocks, raw frames, events and reps, in one SQLite file (the
default, for one machine) or one PostgreSQL database (a clinic's stations sharing it).

Data enters through `host.sinks.recorder.Recorder` (which writes from its own thread with the `insert_*`
helpers below) and leaves through the query functions (`list_sessions`, `frames`, `events`, `reps`,
`progress`, ...) used by `hiplevel sessions | replay | export | report` and the GUI. See
docs/sessions.md for the data model.

- Where: `--db PATH|postgresql://...`, else $HIPLEVEL_DB, else `sessions.sqlite` in the user's data
  folder (platformdirs; ~/.local/share/hiplevel on Linux).
- Versioned: one migration history for both backends. `MIGRATIONS[i]` takes version i to i + 1, each
  in one transaction, so a database is never left half-migrated; SQLite keeps the version in
  `PRAGMA user_version`, PostgreSQL in the table hiplevel_schema (host.store_pg translates the DDL).
  A database made by a newer hiplevel is refused with a plain message instead of being misread.
- One SQL for both: qmark placeholders and SQL both engines accept; host.store_pg wraps psycopg so a
  PostgreSQL connection reads like the sqlite3 one. Database errors of either are `DB_ERRORS`.
- Crash-safe: while recording the file is in WAL mode with synchronous=NORMAL, so a killed process
  loses only what was not yet committed; a clean close switches it back to a single self-contained
  file (journal_mode=DELETE) that can be copied or opened on read-only media.
- Raw frames are stored exactly as received (protocol bytes + host receive time), so a session can
  be re-analysed later through the same decoder and pipeline (host.links.replay).
"""
from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from host import store_pg
from host.store_pg import PgError

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
    # 2 -> 3: the clinic's web dashboard (host/server): clinics, their therapists' accounts, which
    # clinic a patient belongs to (NULL: none yet, seen by no therapist) and the signed-in browser
    # sessions. Portable SQL (SQLite and PostgreSQL): times are epoch seconds in REAL columns.
    """
    CREATE TABLE clinics (
        id          INTEGER PRIMARY KEY,
        name        TEXT NOT NULL UNIQUE,
        created_utc TEXT NOT NULL
    );
    CREATE TABLE therapists (
        id            INTEGER PRIMARY KEY,
        clinic_id     INTEGER NOT NULL REFERENCES clinics(id),
        username      TEXT NOT NULL UNIQUE,
        password_hash TEXT NOT NULL,          -- argon2id, never the password
        created_utc   TEXT NOT NULL
    );
    ALTER TABLE patients ADD COLUMN clinic_id INTEGER REFERENCES clinics(id);
    CREATE TABLE web_sessions (
        token_sha256 TEXT PRIMARY KEY,        -- the cookie's digest: a stolen database signs nobody in
        therapist_id INTEGER NOT NULL REFERENCES therapists(id) ON DELETE CASCADE,
        csrf_token   TEXT NOT NULL,
        created_s    REAL NOT NULL,           -- epoch seconds
        seen_s       REAL NOT NULL
    );
    """,
    # 3 -> 4: the patient's programme (host/session/programme.py), versioned: each edit is a new
    # row; a run is one `hiplevel today` session of it (resumed runs span several sessions), its
    # steps say which item, side and set each recorded block followed; pain ratings per item.
    """
    CREATE TABLE programmes (
        id          INTEGER PRIMARY KEY,
        patient_id  INTEGER NOT NULL REFERENCES patients(id),
        version     INTEGER NOT NULL,          -- 1, 2, ... per patient
        created_utc TEXT NOT NULL,
        toml        TEXT NOT NULL,             -- the programme as its TOML file
        UNIQUE (patient_id, version)
    );
    CREATE TABLE programme_runs (
        id            INTEGER PRIMARY KEY,
        programme_id  INTEGER NOT NULL REFERENCES programmes(id),
        number        INTEGER NOT NULL,        -- the patient's n-th programme session (fading)
        started_utc   TEXT NOT NULL,
        completed_utc TEXT                     -- NULL: not finished (the next `today` resumes it)
    );
    CREATE TABLE programme_steps (
        run_id        INTEGER NOT NULL REFERENCES programme_runs(id) ON DELETE CASCADE,
        step          INTEGER NOT NULL,        -- 0, 1, ... in the session's order
        item          INTEGER NOT NULL,        -- 1-based item of the programme version
        stance        TEXT NOT NULL,
        set_number    INTEGER NOT NULL,
        session_id    INTEGER REFERENCES sessions(id) ON DELETE SET NULL,
        block_number  INTEGER,                 -- the block of that session holding the set
        reps          INTEGER,                 -- reps counted
        cued_reps     INTEGER,
        completed_utc TEXT NOT NULL,
        PRIMARY KEY (run_id, step)
    );
    CREATE TABLE pain_ratings (
        run_id     INTEGER NOT NULL REFERENCES programme_runs(id) ON DELETE CASCADE,
        item       INTEGER NOT NULL,
        rating     INTEGER NOT NULL CHECK (rating BETWEEN 0 AND 10),
        rated_utc  TEXT NOT NULL,
        PRIMARY KEY (run_id, item)
    );
    """,
    # 4 -> 5: when a block's frames last reached the database (UTC, the recording machine's clock),
    # so the dashboard can tell a block still being recorded from one whose station was killed
    # or lost power before it could write the block's end
    """
    ALTER TABLE blocks ADD COLUMN last_data_utc TEXT;
    """,
    # 5 -> 6: home installations paired with the clinic (host/server/devices.py): one-time pairing
    # codes and device tokens are kept only as SHA-256; a finished session is uploaded in chunks,
    # each checked, and inserted whole at the end. sessions.upload_uuid is the session's identity
    # across machines (an upload or a live home session arrives once, however often it is sent);
    # uploaded_utc, on the home machine, says when the clinic confirmed it.
    """
    CREATE TABLE pair_codes (
        code_sha256  TEXT PRIMARY KEY,
        patient_id   INTEGER NOT NULL REFERENCES patients(id) ON DELETE CASCADE,
        therapist_id INTEGER NOT NULL REFERENCES therapists(id) ON DELETE CASCADE,
        expires_s    REAL NOT NULL,            -- epoch seconds
        used_s       REAL                      -- NULL: not used yet (a code pairs one device)
    );
    CREATE TABLE devices (
        id            INTEGER PRIMARY KEY,
        patient_id    INTEGER NOT NULL REFERENCES patients(id) ON DELETE CASCADE,
        name          TEXT NOT NULL,
        token_sha256  TEXT NOT NULL UNIQUE,    -- the bearer token's digest, never the token
        paired_utc    TEXT NOT NULL,
        last_seen_utc TEXT,
        revoked_utc   TEXT                     -- not NULL: the token is refused
    );
    CREATE TABLE uploads (
        id          INTEGER PRIMARY KEY,
        device_id   INTEGER NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
        uuid        TEXT NOT NULL,             -- the session's upload_uuid
        total_bytes INTEGER NOT NULL,
        sha256      TEXT NOT NULL,             -- of the whole payload
        chunk_bytes INTEGER NOT NULL,
        chunks_json TEXT NOT NULL,             -- each chunk's SHA-256, in order
        started_utc TEXT NOT NULL,
        session_id  INTEGER REFERENCES sessions(id) ON DELETE SET NULL,  -- set when inserted
        UNIQUE (device_id, uuid)
    );
    CREATE TABLE upload_chunks (
        upload_id INTEGER NOT NULL REFERENCES uploads(id) ON DELETE CASCADE,
        idx       INTEGER NOT NULL,
        data      BLOB NOT NULL,
        PRIMARY KEY (upload_id, idx)
    ) WITHOUT ROWID;
    ALTER TABLE sessions ADD COLUMN upload_uuid TEXT;
    ALTER TABLE sessions ADD COLUMN uploaded_utc TEXT;
    CREATE UNIQUE INDEX sessions_upload_uuid ON sessions(upload_uuid);
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)
DB_ERRORS = (sqlite3.Error, PgError)  # what a statement on either backend raises
PG_MIGRATION_LOCK = 0x68697001        # pg_advisory_lock key: stations starting at once migrate one by one


DB_HELP = ("session database: an SQLite file, or postgresql://USER:PASSWORD@HOST/DBNAME for a clinic's "
           "shared server (default: $HIPLEVEL_DB, else sessions.sqlite in the user's data folder)")
BUSY_TIMEOUT_S = 5.0  # how long one statement waits for another program's lock


class StoreError(Exception):
    """A problem with the session database, said in words a user understands. `busy`: another
    program holds its lock (worth trying again later). `unreachable`: the database server cannot be
    reached (the recorder then spools locally)."""

    def __init__(self, message: str, busy: bool = False, unreachable: bool = False):
        super().__init__(message)
        self.busy = busy
        self.unreachable = unreachable


def is_unreachable(e: BaseException) -> bool:
    """The database server went away (or cannot be reached): worth spooling, not failing."""
    return (isinstance(e, PgError) and e.kind == "unreachable") or bool(getattr(e, "unreachable", False))


def is_busy(e: BaseException) -> bool:
    if isinstance(e, PgError):
        return e.busy
    name = getattr(e, "sqlite_errorname", "")
    return name.startswith("SQLITE_BUSY") or name.startswith("SQLITE_LOCKED")


def db_target(value) -> Path | str:
    """A --db value as the store takes it: a postgresql:// URL stays text, anything else is a path."""
    return str(value) if store_pg.is_url(str(value)) else Path(value)


def shown(target) -> str:
    """The database as a user is shown it (a URL without its password)."""
    return store_pg.redact(target) if store_pg.is_url(target) else str(target)


def default_db_path() -> Path | str:
    env = os.environ.get("HIPLEVEL_DB")
    if env:
        return db_target(env)
    import platformdirs
    return platformdirs.user_data_path("hiplevel", appauthor=False) / DB_FILENAME


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def local_time(utc: str | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    if not utc:
        return ""
    return datetime.fromisoformat(utc.replace("Z", "+00:00")).astimezone().strftime(fmt)


def explain(e: BaseException, path) -> str:
    """A sqlite3 / PostgreSQL / OS error as a sentence about the database."""
    if isinstance(e, PgError):
        return explain_pg(e, path)
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


def explain_pg(e: PgError, url) -> str:
    where = shown(url)
    words = {
        "unreachable": f"the database server cannot be reached ({where}: {e})",
        "auth": f"the database server refused the user name or password ({where})",
        "no-database": f"there is no such database on the server ({where}); ask its administrator to "
                       "create it (hiplevel makes the tables itself)",
        "busy": f"the session database {where} is busy (another station holds a lock)",
        "full": f"the database server's disk is full ({where})",
        "read-only": f"the session database cannot be written (read-only server or user: {where})",
    }
    return words.get(e.kind, f"session database {where}: {e}")


def connect(path, *, create: bool = False, writable: bool = True,
            busy_timeout_s: float = BUSY_TIMEOUT_S):
    """Open (and migrate) the database: an SQLite file, or a postgresql:// URL (then a
    host.store_pg.Connection, used the same way). Raises StoreError with a plain message.

    create: make the file (and its folder) if missing. writable=False opens read-only, which also
    works for a cleanly closed file on read-only media. Only `create` makes a database of a file that
    is not one yet (missing or empty): a reader refuses an empty file instead of writing into it.
    On PostgreSQL the database itself must exist; `create` makes its tables."""
    path = db_target(path)
    if isinstance(path, str):
        return _connect_pg(path, create=create, busy_timeout_s=busy_timeout_s)
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


def _connect_pg(url: str, *, create: bool, busy_timeout_s: float):
    try:
        conn = store_pg.connect(url, store_pg.id_tables(MIGRATIONS), busy_timeout_s)
    except PgError as e:
        raise StoreError(explain_pg(e, url), busy=e.busy, unreachable=e.kind == "unreachable") from None
    where = shown(url)
    try:
        # Stations starting at once check and migrate one by one: a session-level advisory lock
        # (each step then runs in a transaction begun after the lock, so it sees the catalogue as
        # the previous holder left it).
        conn.execute("SELECT pg_advisory_lock(?)", (PG_MIGRATION_LOCK,))
        try:
            version = schema_version(conn)
            if version > SCHEMA_VERSION:
                raise StoreError(f"{where} was written by a newer hiplevel (schema {version}, this one knows "
                                 f"up to {SCHEMA_VERSION}); update hiplevel to open it")
            if version == 0 and _has_tables(conn):
                raise StoreError(f"{where} holds other tables but no hiplevel session database; give "
                                 "hiplevel a database of its own")
            if version == 0 and not create:
                raise StoreError(f"{where} holds no session database yet (nothing recorded there yet)")
            if version < SCHEMA_VERSION:
                migrate(conn, url)
        finally:
            if not conn.closed:
                conn.execute("SELECT pg_advisory_unlock(?)", (PG_MIGRATION_LOCK,))
    except PgError as e:
        conn.close()
        raise StoreError(explain_pg(e, url), busy=e.busy, unreachable=e.kind == "unreachable") from None
    except StoreError:
        conn.close()
        raise
    return conn


def is_pg(conn) -> bool:
    return isinstance(conn, store_pg.Connection)


def schema_version(conn) -> int:
    """The database's schema version (0: no hiplevel tables yet)."""
    if not is_pg(conn):
        return conn.execute("PRAGMA user_version").fetchone()[0]
    if conn.execute("SELECT to_regclass('hiplevel_schema')").fetchone()[0] is None:
        return 0
    row = conn.execute("SELECT version FROM hiplevel_schema").fetchone()
    return 0 if row is None else row[0]


def set_schema_version(conn, version: int) -> None:
    """Record the schema version (inside the migration's transaction)."""
    if not is_pg(conn):
        conn.execute(f"PRAGMA user_version = {int(version)}")
        return
    conn.execute("CREATE TABLE IF NOT EXISTS hiplevel_schema (version INTEGER NOT NULL)")
    conn.execute("DELETE FROM hiplevel_schema")
    conn.execute("INSERT INTO hiplevel_schema (version) VALUES (?)", (int(version),))


def table_names(conn) -> set[str]:
    if is_pg(conn):
        return {r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")}
    return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def column_names(conn, table: str) -> list[str]:
    return [d[0] for d in conn.execute(f"SELECT * FROM {table} LIMIT 0").description]


def _has_tables(conn) -> bool:
    if is_pg(conn):
        return bool(table_names(conn))
    return conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] > 0


def migrate(conn, path="database", migrations: list[str] | None = None) -> None:
    """Bring the schema up to date, one transaction per step (user_version is transactional; so is
    PostgreSQL's DDL)."""
    migrations = MIGRATIONS if migrations is None else migrations
    if is_pg(conn):
        _migrate_pg(conn, migrations)
        return
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


def _migrate_pg(conn, migrations: list[str]) -> None:
    """Each step in one transaction (PostgreSQL's DDL is transactional). Called under
    _connect_pg's advisory lock, or by one connection alone (the tests)."""
    for target in range(schema_version(conn) + 1, len(migrations) + 1):
        conn.execute("BEGIN")
        try:
            conn.executescript(store_pg.schema_sql(migrations[target - 1]))
            set_schema_version(conn, target)
            conn.execute("COMMIT")
        except BaseException:
            try:
                conn.execute("ROLLBACK")
            except PgError:
                pass
            raise


def set_busy_timeout(conn, seconds: float) -> None:
    """How long a statement waits for another writer's lock before it fails as busy."""
    if is_pg(conn):
        conn.execute(f"SET lock_timeout = {int(seconds * 1000)}")
    else:
        conn.execute(f"PRAGMA busy_timeout = {int(seconds * 1000)}")


def set_recording_mode(conn) -> None:
    """WAL + synchronous=NORMAL: a commit is one append to the WAL file (no fsync per commit), and
    a killed process loses nothing committed; readers (the GUI's history) never block the writer.
    (PostgreSQL: nothing to set; a commit is durable and readers never block writers.)"""
    if is_pg(conn):
        return
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")


def close_recording(conn) -> None:
    """Fold the WAL back into the file and leave a single self-contained file. Best effort: another
    recorder may still have the file open (then it stays in WAL mode, which is fine)."""
    if is_pg(conn):
        return
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("PRAGMA journal_mode = DELETE")
    except sqlite3.Error:
        pass


# ---- writing (used by host.sinks.recorder from its writer thread) ----

def patient_id(conn, label: str, create: bool = True) -> int | None:
    row = conn.execute("SELECT id FROM patients WHERE label = ?", (label,)).fetchone()
    if row is not None or not create:
        return None if row is None else row[0]
    # ON CONFLICT: another station may add the same patient at the same moment
    conn.execute("INSERT INTO patients (label, created_utc) VALUES (?, ?) ON CONFLICT (label) DO NOTHING",
                 (label, utc_now()))
    return conn.execute("SELECT id FROM patients WHERE label = ?", (label,)).fetchone()[0]


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
        "(SELECT count(*) FROM reps r JOIN blocks t ON r.block_id = t.id WHERE t.session_id = s.id AND r.cued = 1) "
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


FRAME_CHUNK = 4096  # frames per read of a block's frames


def frames(conn, block_id: int, chunk: int | None = None):
    """(t_host_s, frame_bytes, late) in order of arrival, read FRAME_CHUNK at a time (a long block
    stays small in memory)."""
    chunk = chunk or FRAME_CHUNK
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


# ---- clinics and therapists (host/server, `hiplevel clinic`) ----

@dataclass
class Therapist:
    id: int
    clinic_id: int
    clinic: str
    username: str
    password_hash: str


def clinic_id(conn, name: str, create: bool = False) -> int | None:
    row = conn.execute("SELECT id FROM clinics WHERE name = ?", (name,)).fetchone()
    if row is not None:
        return row[0]
    if not create:
        return None
    return conn.execute("INSERT INTO clinics (name, created_utc) VALUES (?, ?)", (name, utc_now())).lastrowid


def list_clinics(conn) -> list[dict]:
    return [{"name": r[0], "therapists": r[1], "patients": r[2]} for r in conn.execute(
        "SELECT c.name, (SELECT count(*) FROM therapists t WHERE t.clinic_id = c.id), "
        "(SELECT count(*) FROM patients p WHERE p.clinic_id = c.id) FROM clinics c ORDER BY c.name")]


def set_therapist(conn, clinic: str, username: str, password_hash: str) -> bool:
    """Add a therapist account to `clinic` (made if new), or set a known one's password (it stays
    in its clinic). Returns True when the account is new."""
    row = conn.execute("SELECT id FROM therapists WHERE username = ?", (username,)).fetchone()
    if row is not None:
        conn.execute("UPDATE therapists SET password_hash = ? WHERE id = ?", (password_hash, row[0]))
        conn.execute("DELETE FROM web_sessions WHERE therapist_id = ?", (row[0],))  # signed out everywhere
        return False
    cid = clinic_id(conn, clinic, create=True)
    conn.execute("INSERT INTO therapists (clinic_id, username, password_hash, created_utc) VALUES (?, ?, ?, ?)",
                 (cid, username, password_hash, utc_now()))
    return True


def therapist(conn, *, username: str | None = None, therapist_id: int | None = None) -> Therapist | None:
    col, val = ("t.username", username) if username is not None else ("t.id", therapist_id)
    r = conn.execute("SELECT t.id, t.clinic_id, c.name, t.username, t.password_hash FROM therapists t "
                     f"JOIN clinics c ON c.id = t.clinic_id WHERE {col} = ?", (val,)).fetchone()
    return Therapist(*r) if r is not None else None


def assign_patient(conn, label: str, clinic: str) -> None:
    """Put a patient (made if new) under a clinic: its therapists see the patient from then on."""
    cid = clinic_id(conn, clinic)
    if cid is None:
        raise StoreError(f"no clinic {clinic!r} (add a therapist to it first: `hiplevel clinic add-therapist`)")
    conn.execute("UPDATE patients SET clinic_id = ? WHERE id = ?", (cid, patient_id(conn, label)))


def add_clinic_patient(conn, label: str, clinic_id_: int) -> int:
    """A new patient label for the clinic (the dashboard's "add a patient"): its patient id, made now
    or already one of the clinic's. A label that exists anywhere else
    (another clinic's, or recorded by a station and assigned to none, whose sessions may be another
    clinic's) raises StoreError, with the same words in both cases so they say nothing about it;
    only `hiplevel clinic assign-patient` moves an existing label. One INSERT decides, so two
    therapists adding one label at once cannot both get it."""
    label = check_patient_label(label)
    conn.execute("INSERT INTO patients (label, created_utc, clinic_id) VALUES (?, ?, ?) "
                 "ON CONFLICT (label) DO NOTHING", (label, utc_now(), clinic_id_))
    pid, owner = conn.execute("SELECT id, clinic_id FROM patients WHERE label = ?", (label,)).fetchone()
    if owner != clinic_id_:
        raise StoreError(f"the label {label} is already in use, so it cannot be added; choose another "
                         "label (an administrator can move an existing one with `hiplevel clinic "
                         "assign-patient`)")
    return pid


def clinic_patients(conn, clinic_id_: int) -> list[dict]:
    """The clinic's patients by label, with their session count and last session's start."""
    return [{"id": r[0], "label": r[1], "sessions": r[2], "last_utc": r[3]} for r in conn.execute(
        "SELECT p.id, p.label, count(s.id), max(s.started_utc) FROM patients p "
        "LEFT JOIN sessions s ON s.patient_id = p.id WHERE p.clinic_id = ? GROUP BY p.id, p.label "
        "ORDER BY p.label", (clinic_id_,))]


def patient_of_clinic(conn, patient_id_: int, clinic_id_: int) -> str | None:
    """The label of patient `patient_id_` if it belongs to the clinic, else None (not found and
    not theirs look the same from outside)."""
    r = conn.execute("SELECT label FROM patients WHERE id = ? AND clinic_id = ?", (patient_id_, clinic_id_)).fetchone()
    return r[0] if r else None


def session_of_clinic(conn, session_id: int, clinic_id_: int) -> SessionInfo | None:
    r = conn.execute("SELECT 1 FROM sessions s JOIN patients p ON p.id = s.patient_id "
                     "WHERE s.id = ? AND p.clinic_id = ?", (session_id, clinic_id_)).fetchone()
    return get_session(conn, session_id) if r else None


SILENT_AFTER_S = 60.0  # an open block with no frames for this long: its station stopped without an end


def open_blocks(conn, clinic_id_: int, now_utc: str | None = None) -> list[dict]:
    """Blocks of the clinic's patients with no `end` event in a session not closed, newest first.
    A station killed mid-block (SIGKILL, power, a crash) leaves one open for ever: `silent` says
    its frames stopped SILENT_AFTER_S or more before `now_utc` (`last_data_utc`: the last commit of
    frames, or the block's start before any), so it is not shown as being recorded now. Both times
    are wall clocks of different machines: a station's clock a minute off blurs the limit."""
    now = datetime.fromisoformat((now_utc or utc_now()).replace("Z", "+00:00"))

    def silent(last_utc: str) -> bool:
        return (now - datetime.fromisoformat(last_utc.replace("Z", "+00:00"))).total_seconds() >= SILENT_AFTER_S

    return [{"block_id": r[0], "session_id": r[1], "number": r[2], "exercise": r[3], "started_utc": r[4],
             "patient": r[5], "frames": r[6], "source": r[7], "last_data_utc": r[8], "silent": silent(r[8])}
            for r in conn.execute(
        "SELECT b.id, b.session_id, b.number, b.exercise, b.started_utc, p.label, b.frame_count, s.source, "
        "coalesce(b.last_data_utc, b.started_utc) FROM blocks b JOIN sessions s ON s.id = b.session_id JOIN patients p ON p.id = s.patient_id "
        "WHERE p.clinic_id = ? AND b.end_json IS NULL AND s.ended_utc IS NULL ORDER BY b.started_utc DESC, b.id DESC",
        (clinic_id_,))]


def block_of_clinic(conn, block_id: int, clinic_id_: int) -> BlockInfo | None:
    r = conn.execute("SELECT b.* FROM blocks b JOIN sessions s ON s.id = b.session_id JOIN patients p "
                     "ON p.id = s.patient_id WHERE b.id = ? AND p.clinic_id = ?", (block_id, clinic_id_)).fetchone()
    return _block_from_row(r) if r else None


def block(conn, block_id: int) -> BlockInfo | None:
    r = conn.execute("SELECT * FROM blocks WHERE id = ?", (block_id,)).fetchone()
    return _block_from_row(r) if r else None


def frames_after(conn, block_id: int, after_n: int, limit: int = 4096) -> list[tuple[int, float, bytes, bool]]:
    """(n, t_host_s, frame_bytes, late) of the frames committed after frame `after_n` (live tail)."""
    return [(r[0], r[1], bytes(r[2]), bool(r[3])) for r in conn.execute(
        "SELECT n, t_host_s, data, late FROM frames WHERE block_id = ? AND n > ? ORDER BY n LIMIT ?",
        (block_id, after_n, limit))]


def events_after(conn, block_id: int, after_id: int) -> list[tuple[int, float, dict]]:
    """(id, t_host_s, event) of the events committed after event `after_id` (live tail)."""
    return [(r[0], r[1], json.loads(r[2])) for r in conn.execute(
        "SELECT id, t_host_s, json FROM events WHERE block_id = ? AND id > ? ORDER BY id", (block_id, after_id))]


def add_web_session(conn, token_sha256: str, therapist_id: int, csrf_token: str, now_s: float,
                    idle_s: float, max_s: float) -> None:
    """A new signed-in browser session; the expired ones of anyone are deleted on the way."""
    conn.execute("DELETE FROM web_sessions WHERE seen_s < ? OR created_s < ?", (now_s - idle_s, now_s - max_s))
    conn.execute("INSERT INTO web_sessions (token_sha256, therapist_id, csrf_token, created_s, seen_s) "
                 "VALUES (?, ?, ?, ?, ?)", (token_sha256, therapist_id, csrf_token, now_s, now_s))


WEB_SESSION_TOUCH_S = 60.0  # a session's last use is written at most this often: most requests only read


def web_session(conn, token_sha256: str, now_s: float, idle_s: float, max_s: float) -> tuple[int, str] | None:
    """(therapist_id, csrf_token) of a signed-in browser session that has not expired (idle for
    longer than idle_s, or older than max_s), else None (an expired one is deleted)."""
    r = conn.execute("SELECT therapist_id, csrf_token, created_s, seen_s FROM web_sessions WHERE token_sha256 = ?",
                     (token_sha256,)).fetchone()
    if r is None:
        return None
    if r[3] < now_s - idle_s or r[2] < now_s - max_s:
        end_web_session(conn, token_sha256)
        return None
    if now_s - r[3] > WEB_SESSION_TOUCH_S:
        conn.execute("UPDATE web_sessions SET seen_s = ? WHERE token_sha256 = ?", (now_s, token_sha256))
    return r[0], r[1]


def end_web_session(conn, token_sha256: str) -> None:
    conn.execute("DELETE FROM web_sessions WHERE token_sha256 = ?", (token_sha256,))


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


@contextlib.contextmanager
def transaction(conn):
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK when the body raises (connections are in autocommit
    mode; on PostgreSQL, store_pg makes it a plain BEGIN)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


# ---- home installations paired with the clinic (host/server/devices.py) ----

@dataclass
class Device:
    id: int
    patient_id: int
    patient: str
    clinic_id: int | None
    name: str


def add_pair_code(conn, code_sha256: str, patient_id_: int, therapist_id: int, expires_s: float) -> None:
    conn.execute("DELETE FROM pair_codes WHERE expires_s < ?", (expires_s - 86400.0,))  # old ones, anyone's
    conn.execute("INSERT INTO pair_codes (code_sha256, patient_id, therapist_id, expires_s) VALUES (?, ?, ?, ?)",
                 (code_sha256, patient_id_, therapist_id, expires_s))


def use_pair_code(conn, code_sha256: str, now_s: float) -> int | None:
    """The patient id of a valid, unused code, marked used in the same statement (so two devices
    racing with one code cannot both pair); None for an unknown, used or expired code."""
    r = conn.execute("UPDATE pair_codes SET used_s = ? WHERE code_sha256 = ? AND used_s IS NULL AND expires_s >= ? "
                     "RETURNING patient_id", (now_s, code_sha256, now_s)).fetchone()
    return r[0] if r else None


def add_device(conn, patient_id_: int, name: str, token_sha256: str) -> int:
    return conn.execute("INSERT INTO devices (patient_id, name, token_sha256, paired_utc) VALUES (?, ?, ?, ?)",
                        (patient_id_, name, token_sha256, utc_now())).lastrowid


DEVICE_TOUCH_S = 60.0  # like a web session: last_seen is written at most this often


def device_of_token(conn, token_sha256: str) -> Device | None:
    """The paired, not revoked device holding this token, else None."""
    r = conn.execute("SELECT d.id, d.patient_id, p.label, p.clinic_id, d.name, d.last_seen_utc FROM devices d "
                     "JOIN patients p ON p.id = d.patient_id WHERE d.token_sha256 = ? AND d.revoked_utc IS NULL",
                     (token_sha256,)).fetchone()
    if r is None:
        return None
    now = utc_now()
    if r[5] is None or (datetime.fromisoformat(now.replace("Z", "+00:00"))
                        - datetime.fromisoformat(r[5].replace("Z", "+00:00"))).total_seconds() > DEVICE_TOUCH_S:
        conn.execute("UPDATE devices SET last_seen_utc = ? WHERE id = ?", (now, r[0]))
    return Device(r[0], r[1], r[2], r[3], r[4])


def patient_devices(conn, patient_id_: int) -> list[dict]:
    return [dict(r) for r in conn.execute(
        "SELECT id, name, paired_utc, last_seen_utc, revoked_utc FROM devices WHERE patient_id = ? ORDER BY id",
        (patient_id_,))]


def revoke_device(conn, device_id: int, patient_id_: int) -> bool:
    return conn.execute("UPDATE devices SET revoked_utc = ? WHERE id = ? AND patient_id = ? AND revoked_utc IS NULL",
                        (utc_now(), device_id, patient_id_)).rowcount == 1


def session_by_upload_uuid(conn, uuid_: str) -> tuple[int, int, str | None] | None:
    """(session id, patient id, ended_utc) of the session that arrived with this uuid, else None."""
    r = conn.execute("SELECT id, patient_id, ended_utc FROM sessions WHERE upload_uuid = ?", (uuid_,)).fetchone()
    return (r[0], r[1], r[2]) if r else None
