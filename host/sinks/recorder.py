"""Records a live session into the session store (host.store) without slowing or breaking the live path.

In: `frame(t_host_s, frame_bytes)` and `event(dict)` from runner.StreamRunner on the pipeline's thread, plus
`start_block(settings)`, `marker(label, t_s)` and `close()` from the command or the GUI. These calls
only append to an in-memory queue (a deque append: thread-safe, no lock, no I/O). Out: a writer
thread drains the queue into the store (SQLite or PostgreSQL) every COMMIT_INTERVAL_S, one
transaction per drain, so a killed process loses at most that interval and the file always opens
cleanly (WAL, see host.store).

Failures (full disk, read-only folder, damaged file) are said once through `report(message)` in
plain words; recording stops, the live feedback goes on, and what was committed before is intact
(a failed transaction is rolled back). A database locked by another writer is retried, not dropped.
A PostgreSQL server that goes away (network, restart) does not stop the recording: what follows goes
into a local spool (host.sinks.spool) and is uploaded, in order, when the server answers again. A
commit the server may or may not have taken when the connection broke is looked up on the server
(the session's block, event and frame counts) before anything is sent again: nothing twice.
"""
from __future__ import annotations

import argparse
import collections
import copy
import dataclasses
import sqlite3
import sys
import threading
import time
from typing import NamedTuple

from host import __version__
from host import store
from host.sinks.spool import Spool

COMMIT_INTERVAL_S = 0.5
START_BUSY_TIMEOUT_S = 0.5  # at start a locked database is not waited for on the caller's thread


RECONNECT_INTERVAL_S = 1.0  # while the server is away: how often to try it again
UPLOAD_CHUNK = 5000        # spooled items per transaction when catching up


class _Busy(Exception):
    """Another program holds the database's lock: try again later."""


class _Unreachable(Exception):
    """The database server cannot be reached: spool locally and try again later."""


# What the live path and the window queue for the writer thread, one kind per tuple type.
class _Frame(NamedTuple):
    t_host_s: float
    data: bytes
    late: bool


class _Event(NamedTuple):
    t_host_s: float
    event: dict


class _Block(NamedTuple):
    started_utc: str
    settings: dict


class _Marker(NamedTuple):
    t_host_s: float
    t_s: float | None
    label: str


class _Patient(NamedTuple):
    label: str


@dataclasses.dataclass
class _BlockState:
    block_id: int | None = None
    n: int = 0                      # frames in the current block
    first_t: float | None = None
    last_t: float | None = None
    blocks: int = 0                 # committed in this session (to tell whether an unanswered
    events: int = 0                 # commit reached the server)
    frames: int = 0


class Recorder:
    def __init__(self, path, patient: str, source: str = "", report=None,
                 commit_interval_s: float = COMMIT_INTERVAL_S, spool_folder=None):
        self.path = store.db_target(path)
        self.patient = patient
        self.report = report or (lambda msg: print(msg, file=sys.stderr, flush=True))
        self.commit_interval_s = commit_interval_s
        self.failed: str | None = None
        self.session_id: int | None = None
        self.frames_committed = 0
        self.commit_s: list[float] = []   # wall time of each commit, for the benchmark
        self._source = source
        self._queue: collections.deque = collections.deque()
        self._carry: list = []            # items of a commit that met a busy database: retried
        self._state = _BlockState()
        self._busy_said = False
        self._busy_now = False            # the last flush met a locked database
        self._stop = threading.Event()
        self._thread = None
        self._closed = False
        self._conn = None
        self._spool_folder = spool_folder
        self._spool: Spool | None = None  # while the server is away, and until it has caught up
        self._in_doubt = None             # (state, session_id, new_session, last spooled seq) of an unanswered COMMIT
        self._next_try = 0.0
        self.spooled = 0                  # items that went through the spool
        try:  # a busy database is waited for on the writer thread, not here: the session starts now
            self._open(START_BUSY_TIMEOUT_S)
        except _Busy as e:
            self._say_waiting(str(e))
        except _Unreachable as e:
            if not self._go_offline([], str(e)):
                return
        except (store.StoreError, *store.DB_ERRORS) as e:
            self._fail(str(e))
            return
        self._thread = threading.Thread(target=self._run, name="hiplevel-recorder", daemon=True)
        self._thread.start()

    def _open(self, busy_timeout_s: float) -> None:
        """Open the database for recording and check that it can be written. The session row is
        written with the first frames (a run that never got data leaves nothing behind, even when
        it is killed). Raises _Busy when another program holds the lock, StoreError otherwise."""
        try:
            conn = store.connect(self.path, create=True, busy_timeout_s=busy_timeout_s)
        except store.StoreError as e:
            raise (_Busy(str(e)) if e.busy else _Unreachable(str(e)) if e.unreachable else e) from None
        try:
            store.set_recording_mode(conn)
            conn.execute("BEGIN IMMEDIATE")  # can it be written at all (read-only file, lock)?
            conn.execute("ROLLBACK")
            store.set_busy_timeout(conn, store.BUSY_TIMEOUT_S)
        except store.DB_ERRORS as e:
            _rollback(conn)
            conn.close()
            if store.is_busy(e):
                raise _Busy(store.explain(e, self.path)) from None
            if store.is_unreachable(e):
                raise _Unreachable(store.explain(e, self.path)) from None
            raise store.StoreError(store.explain(e, self.path)) from None
        self._conn = conn

    def _say_waiting(self, why: str) -> None:
        if not self._busy_said:
            self._busy_said = True
            self.report(f"Recording is waiting: {why}.")

    # ---- called from the live path: append only ----
    def frame(self, t_host_s: float, frame_bytes: bytes, late: bool = False) -> None:
        """late: the transport says the frame was re-sent after a dropout (replayed the same way)."""
        if self.failed is None:
            self._queue.append(_Frame(t_host_s, frame_bytes, late))

    def event(self, event: dict) -> None:
        if self.failed is None:
            # deep copy: the pipeline may keep and change its dicts after handing them over
            self._queue.append(_Event(time.monotonic(), copy.deepcopy(event)))

    # ---- called by the command / GUI ----
    def start_block(self, settings: dict) -> None:
        """Frames and events after this belong to a new block with these pipeline settings (missing
        ones are taken as the pipeline's defaults)."""
        if self.failed is None:
            self._queue.append(_Block(store.utc_now(), complete_settings(settings)))

    def marker(self, label: str, t_s: float | None = None) -> None:
        """A therapist's marker at device time t_s (seconds since the block's first sample)."""
        if self.failed is None:
            self._queue.append(_Marker(time.monotonic(), t_s, str(label)))

    def set_patient(self, label: str) -> None:
        """Record this session under another patient label (picked or corrected in the window). The
        label is checked here (ValueError with the reason); the change is written by the writer thread
        with the next commit, so the caller never waits on the database."""
        label = store.check_patient_label(label)
        self.patient = label
        if self.failed is None:
            self._queue.append(_Patient(label))

    def known_patients(self) -> list[str]:
        """The patient labels in the database (for the window's picker), read on a connection of its
        own; just the current label if the database cannot be read."""
        try:
            conn = store.connect(self.path)
        except store.StoreError:
            return [self.patient]
        try:
            return sorted(set(store.list_patients(conn)) | {self.patient})
        except store.DB_ERRORS:
            return [self.patient]
        finally:
            conn.close()

    def close(self) -> str:
        """Commit what is left, mark the session ended; returns one line for the user. Safe twice."""
        if self._closed:
            return self.summary_line()
        self._closed = True
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout=60)
        conn, self._conn = self._conn, None
        if self._spool is not None and self.failed is None:
            self._fail(f"the database server stayed unreachable; {len(self._spool)} items (frames, events) "
                       f"of session {self.session_id or '(new)'} are kept in {self._spool.path}")
        if conn is None:
            return self.summary_line()
        try:
            if self.session_id is None:
                pass  # no data came (or none could be written): no session was made
            elif self.failed is None:
                conn.execute("UPDATE sessions SET ended_utc = ? WHERE id = ?", (store.utc_now(), self.session_id))
            if self.failed is None:
                store.close_recording(conn)
        except store.DB_ERRORS as e:
            self._fail(store.explain(e, self.path))
        finally:
            try:
                conn.close()
            except store.DB_ERRORS:
                pass
        return self.summary_line()

    def summary_line(self) -> str:
        if self.failed is not None and (self.session_id is None or self.frames_committed == 0):
            return f"Not recorded: {self.failed}."
        if self.failed is not None:
            return (f"Recording stopped early ({self.failed}); session {self.session_id} keeps the "
                    f"{self.frames_committed} frames recorded before.")
        if self.frames_committed == 0:
            return "Nothing recorded (no data came from the sensor)."
        return f"Recorded as session {self.session_id} (patient {self.patient}) in {store.shown(self.path)}."

    # ---- the writer thread ----
    def _run(self) -> None:
        while not self._stop.wait(self.commit_interval_s):
            self._flush()
        # closing: a busy database gets a few more chances (5 s each), an unreachable server a few
        # seconds to come back before what is spooled is left in the spool file
        for _ in range(5):
            self._flush()
            if not self._busy_now and self._spool is None:
                return
            if self._spool is not None:
                time.sleep(RECONNECT_INTERVAL_S)
        if self._busy_now:
            self._fail(f"the session database {store.shown(self.path)} stayed busy (another program kept it "
                       "locked)" + (" and nothing was recorded" if self.session_id is None else ""))

    def _flush(self) -> None:
        """One transaction with everything queued since the last one; the state (block, frame
        count) is applied only when the commit succeeds, so a failed commit can be retried whole.
        While the server is away (or the spool is still being uploaded) the items go to the spool."""
        self._busy_now = False
        if self.failed is not None:
            return
        items = self._carry
        self._carry = []
        queue = self._queue
        while queue:
            items.append(queue.popleft())
        if self._spool is not None:
            try:
                if items:
                    self._spool.append(items)
                    self.spooled += len(items)
            except (OSError, sqlite3.Error) as e:
                self._queue.clear()
                self._fail(f"the database server is unreachable and the local spool cannot be written ({e})")
                return
            self._catch_up()
            return
        if self._conn is None:  # the database was locked at start: try to open it again
            try:
                self._open(store.BUSY_TIMEOUT_S)
            except _Busy:
                self._busy_now = True
                self._carry = items
                return  # everything stays queued
            except _Unreachable as e:
                self._go_offline(items, str(e))
                return
            except (store.StoreError, *store.DB_ERRORS) as e:
                self._queue.clear()
                self._fail(str(e))
                return
        if not items:
            return
        if self.session_id is None and not any(isinstance(i, _Frame) for i in items):
            self._carry = items  # the session is made with its first frame; until then, wait
            return
        outcome = self._commit(items)
        if outcome == "busy":
            self._carry = items  # another writer holds the file: try again next time
        elif isinstance(outcome, tuple):  # the server went away
            self._go_offline(items, outcome[1], in_doubt=outcome[2])

    def _commit(self, items: list):
        """Write `items` in one transaction. Returns "ok", "busy", "failed" (said and recording
        stopped) or ("unreachable", why, in_doubt): in_doubt is the state the session would have
        if the server took the COMMIT it never answered."""
        t0 = time.perf_counter()
        state = dataclasses.replace(self._state)
        conn = self._conn
        frames_before = self.frames_committed
        new_session = self.session_id is None
        committing = False
        try:
            conn.execute("BEGIN IMMEDIATE")
            if new_session:
                self.session_id = store.insert_session(conn, self.patient, self._source, __version__)
            source = self._write_items(conn, state, items)
            committing = True
            conn.execute("COMMIT")
        except store.DB_ERRORS as e:
            _rollback(conn)
            session_id, self.frames_committed = self.session_id, frames_before
            if new_session:
                self.session_id = None
            if store.is_busy(e):
                self._busy_now = True
                self._say_waiting(store.explain(e, self.path))
                return "busy"
            if store.is_unreachable(e):
                in_doubt = (state, session_id, new_session, source) if committing else None
                return ("unreachable", store.explain(e, self.path), in_doubt)
            self._queue.clear()
            self._fail(store.explain(e, self.path))
            return "failed"
        except Exception as e:  # noqa: BLE001 - a bug must not silently stop the writer thread
            _rollback(conn)
            self.frames_committed = frames_before
            if new_session:
                self.session_id = None
            self._queue.clear()
            self._fail(f"an unexpected error in the recorder ({e!r})")
            return "failed"
        self._state = state
        if source is not None:
            self._source = source
        self.commit_s.append(time.perf_counter() - t0)
        return "ok"

    # ---- while the server is away ----
    def _go_offline(self, items: list, why: str, in_doubt=None) -> bool:
        """Keep recording into the local spool; `items` (not on the server, or in doubt) go first.
        False (said, recording stopped) when the spool itself cannot be written."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        try:
            if self._spool is None:
                self._spool = Spool(_ITEM_KINDS, self._spool_folder)
                self.report(f"Recording goes on locally: {why}. What is recorded is kept on this machine and "
                            "sent when the server answers again.")
            if items:
                self._spool.append(items)
                self.spooled += len(items)
        except (OSError, sqlite3.Error) as e:
            self._queue.clear()
            self._fail(f"{why}, and the local spool cannot be written ({e})")
            return False
        if in_doubt is not None:
            self._in_doubt = (*in_doubt, self._spool.last_seq())
        self._next_try = time.monotonic() + RECONNECT_INTERVAL_S
        return True

    def _catch_up(self) -> None:
        """Reconnect (at most every RECONNECT_INTERVAL_S), settle an unanswered commit, then upload
        the spool oldest first, one transaction per chunk; the spool is removed once it is empty."""
        if self._conn is None:
            if time.monotonic() < self._next_try:
                return
            self._next_try = time.monotonic() + RECONNECT_INTERVAL_S
            try:
                self._open(store.BUSY_TIMEOUT_S)
            except (_Busy, _Unreachable):
                return
            except (store.StoreError, *store.DB_ERRORS) as e:
                self._fail(str(e))
                return
        try:
            if self._in_doubt is not None:
                self._settle_in_doubt()
        except store.DB_ERRORS as e:
            if store.is_unreachable(e) or store.is_busy(e):
                self._conn.close()
                self._conn = None
                return
            self._fail(store.explain(e, self.path))
            return
        while len(self._spool):
            chunk = self._spool.head(UPLOAD_CHUNK)
            items = [item for _, item in chunk]
            if self.session_id is None and not any(isinstance(i, _Frame) for i in items):
                if len(chunk) == len(self._spool):
                    return  # no frame yet: the session is made with its first frame
                chunk = self._spool.head()
                items = [item for _, item in chunk]
            outcome = self._commit(items)
            if outcome == "ok":
                self._spool.drop(chunk[-1][0])
                continue
            if isinstance(outcome, tuple):
                self._conn.close()
                self._conn = None
                if outcome[2] is not None:
                    self._in_doubt = (*outcome[2], chunk[-1][0])
            return
        self._spool.remove()
        self._spool = None
        self.report(f"Recording reached the database server again; the {self.spooled} items kept locally are "
                    "stored.")

    def _settle_in_doubt(self) -> None:
        """Did the server take the COMMIT it never answered? Compare the session's counts on the
        server with what they would be after it: equal -> taken (drop those items from the spool)."""
        state, session_id, new_session, source, last_seq = self._in_doubt
        taken = False
        if session_id is not None:
            row = self._conn.execute(
                "SELECT count(*), coalesce(sum(frame_count), 0), (SELECT count(*) FROM events e JOIN blocks b "
                "ON e.block_id = b.id WHERE b.session_id = ?) FROM blocks WHERE session_id = ?",
                (session_id, session_id)).fetchone()
            taken = (row[0], row[1], row[2]) == (state.blocks, state.frames, state.events)
            if new_session and not taken:  # (an id is never handed out twice: present means committed)
                taken = self._conn.execute("SELECT 1 FROM sessions WHERE id = ?", (session_id,)).fetchone() is not None
        if taken:
            self._state = state
            self.session_id = session_id
            self.frames_committed = state.frames
            if source is not None:
                self._source = source
            self._spool.drop(last_seq)
        self._in_doubt = None

    def _write_items(self, conn, state: _BlockState, items: list) -> str | None:
        """Write the queued items in order inside the open transaction; frames are batched between
        other items. Returns the link name when this batch names the session's source."""
        source = None
        rows: list = []
        for item in items:
            if isinstance(item, _Frame):
                if state.block_id is None:
                    self._new_block(conn, state, store.utc_now(), complete_settings({}))
                rows.append((state.block_id, state.n, item.t_host_s, item.data, int(bool(item.late))))
                state.n += 1
                state.last_t = item.t_host_s
                if state.first_t is None:
                    state.first_t = item.t_host_s
                continue
            self._write_frames(conn, state, rows)
            rows = []
            if isinstance(item, _Block):
                self._new_block(conn, state, item.started_utc, item.settings)
            elif isinstance(item, _Event):
                if state.block_id is None:
                    self._new_block(conn, state, store.utc_now(), complete_settings({}))
                store.insert_event(conn, state.block_id, item.t_host_s, item.event)
                state.events += 1
                if item.event.get("event") == "connected" and not (self._source or source):
                    source = str(item.event.get("link", ""))
                    conn.execute("UPDATE sessions SET source = ? WHERE id = ?", (source, self.session_id))
            elif isinstance(item, _Patient):
                store.set_session_patient(conn, self.session_id, item.label)
            elif isinstance(item, _Marker):
                if state.block_id is not None:
                    store.insert_marker(conn, state.block_id, item.t_s, item.t_host_s, item.label)
        self._write_frames(conn, state, rows)
        return source

    def _new_block(self, conn, state: _BlockState, started_utc: str, settings: dict) -> None:
        state.block_id = store.insert_block(conn, self.session_id, settings, started_utc)
        state.n, state.first_t, state.last_t = 0, None, None
        state.blocks += 1

    def _write_frames(self, conn, state: _BlockState, rows: list) -> None:
        if not rows:
            return
        conn.executemany("INSERT INTO frames (block_id, n, t_host_s, data, late) VALUES (?, ?, ?, ?, ?)", rows)
        conn.execute("UPDATE blocks SET frame_count = ?, t_host_first_s = ?, t_host_last_s = ?, last_data_utc = ? "
                     "WHERE id = ?", (state.n, state.first_t, state.last_t, store.utc_now(), state.block_id))
        self.frames_committed += len(rows)
        state.frames += len(rows)

    def _fail(self, message: str) -> None:
        if self.failed is None:
            self.failed = message
            if self.session_id is None:
                self.report(f"Not recording: {message}. The live feedback goes on.")
            else:
                self.report(f"Recording stopped: {message}. The live feedback goes on; "
                            "anything recorded before is kept.")


_ITEM_KINDS = {cls.__name__: cls for cls in (_Frame, _Event, _Block, _Marker, _Patient)}


# ---- for `hiplevel run` (and the GUI) ----

def _rollback(conn) -> None:
    """Undo a failed commit's half-written transaction; a broken connection has none to undo."""
    try:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
    except store.DB_ERRORS:
        pass


def patient_label(text: str) -> str:
    try:
        return store.check_patient_label(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_recording_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("recording (on by default; see docs/sessions.md)")
    g.add_argument("--db", metavar="PATH|URL", help=store.DB_HELP)
    g.add_argument("--patient", type=patient_label, default=None, metavar="LABEL",
                   help="pseudonymous patient label, e.g. P-017 (default: the patient this installation is "
                        "paired for, `hiplevel pair`, else 'default')")
    g.add_argument("--no-record", action="store_true", help="do not record this session")
    add_share_argument(g)


def add_share_argument(p) -> None:
    p.add_argument("--share-live", action="store_true",
                   help="let the clinic this installation is paired with watch the session live (only when "
                        "the patient agrees); finished sessions upload either way")


def settings_of(cfg) -> dict:
    """The pipeline settings to store with a block (all of PipelineConfig, whatever fields it has)."""
    return dataclasses.asdict(cfg)


def complete_settings(settings: dict) -> dict:
    """`settings` over the pipeline's defaults (one level deep), so every block says what it ran with."""
    from host.processing.pipeline import PipelineConfig
    out = settings_of(PipelineConfig())
    for k, v in copy.deepcopy(settings).items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k].update(v)
        else:
            out[k] = v
    return out


def open_recorder(opts, cfg, say, live=None) -> Recorder | None:
    """The recorder for a live session (`opts`: record, db, patient), or None when not recording.
    A database that cannot be written gives a message and no recording; the session runs anyway."""
    if not opts.record:
        return None

    def report(message: str) -> None:
        say(message)
        if live is not None:
            live.update_status(message=message)

    rec = Recorder(opts.db or store.default_db_path(), opts.patient, report=report)
    rec.start_block(settings_of(cfg))
    return rec
