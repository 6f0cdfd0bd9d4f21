"""A recorded session as one self-contained document, to move it from a home installation's store
into the clinic's (`hiplevel upload`, host/server/devices.py).

Out of `export_session`: gzip-compressed JSON (FORMAT, VERSION) holding the session row, each block
with its settings, every frame exactly as received (base64, with its host time and late flag), its
events and markers, and the programme steps and pain ratings recorded with it (with the programme's
TOML, so the clinic can match the version it prescribed). Into `import_session`: that document,
checked field by field (an absurd value refuses the whole document with UploadError, nothing is
written), inserted through the store's own insert functions so reps, calibration and end are indexed
as when recorded; the caller holds the transaction. Times stay what the recording machine said.
"""
from __future__ import annotations

import base64
import gzip
import json
import math
import re
import zlib

from host import store

FORMAT, VERSION = "hiplevel-session", 1
MAX_JSON_BYTES = 512 * 1024 * 1024   # decompressed; a 3 h session is about 60 MB
MAX_BLOCKS, MAX_FRAME_BYTES, MAX_EVENT_BYTES = 200, 4096, 64 * 1024
_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z")
_UUID = re.compile(r"[0-9a-f]{32}")


class UploadError(Exception):
    """The document is not a session this app can store; said in words, nothing was written."""


def check_uuid(text) -> str:
    if not isinstance(text, str) or not _UUID.fullmatch(text):
        raise UploadError("a session's upload id is 32 lower-case hex digits")
    return text


# ---- out of the home store ----

def export_session(conn, session_id: int, uuid_: str) -> bytes:
    s = store.get_session(conn, session_id)
    blocks = []
    for b in s.blocks:
        row = conn.execute("SELECT last_data_utc FROM blocks WHERE id = ?", (b.id,)).fetchone()
        blocks.append({
            "number": b.number, "started_utc": b.started_utc, "settings": b.settings, "last_data_utc": row[0],
            "frames": encoded_frames(store.frames(conn, b.id)), "events": stored_events(conn, b.id),
            "markers": [[r[0], r[1], r[2], r[3]] for r in conn.execute(
                "SELECT t_s, t_host_s, label, created_utc FROM markers WHERE block_id = ? ORDER BY id", (b.id,))],
        })
    doc = {"format": FORMAT, "version": VERSION, "uuid": uuid_, "started_utc": s.started_utc,
           "ended_utc": s.ended_utc, "source": s.source, "app_version": s.app_version, "blocks": blocks,
           "programme": _programme_part(conn, session_id)}
    return gzip.compress(json.dumps(doc, separators=(",", ":")).encode(), compresslevel=6, mtime=0)


def encoded_frames(frames) -> list:
    """[t_host_s, base64, late] of (t_host_s, frame_bytes, late) frames, as a document carries them."""
    return [[t, base64.b64encode(data).decode("ascii"), int(late)] for t, data, late in frames]


def stored_events(conn, block_id: int, first: int = 0) -> list:
    """[t_host_s, json] of the block's events from the first-th on (0-based), in order."""
    return [[r[0], r[1]] for r in conn.execute(
        "SELECT t_host_s, json FROM events WHERE block_id = ? ORDER BY id LIMIT ? OFFSET ?",
        (block_id, 2 ** 31, first))]


def _programme_part(conn, session_id: int) -> dict | None:
    """The programme run this session's sets belong to (a run resumed over several sessions sends
    the steps of this one), or None for a session outside a programme."""
    r = conn.execute("SELECT DISTINCT run_id FROM programme_steps WHERE session_id = ?", (session_id,)).fetchone()
    if r is None:
        return None
    run = conn.execute("SELECT r.number, r.started_utc, r.completed_utc, g.toml FROM programme_runs r JOIN programmes g "
                       "ON g.id = r.programme_id WHERE r.id = ?", (r[0],)).fetchone()
    steps = [dict(x) for x in conn.execute(
        "SELECT step, item, stance, set_number, block_number, reps, cued_reps, completed_utc FROM programme_steps "
        "WHERE run_id = ? AND session_id = ? ORDER BY step", (r[0], session_id))]
    pain = [[x[0], x[1], x[2]] for x in conn.execute(
        "SELECT item, rating, rated_utc FROM pain_ratings WHERE run_id = ? ORDER BY item", (r[0],))]
    return {"toml": run[3], "run_number": run[0], "run_started_utc": run[1], "run_completed_utc": run[2],
            "steps": steps, "pain": pain}


# ---- into the clinic's store ----

def parse(payload: bytes) -> dict:
    """The checked document of a payload. Raises UploadError."""
    try:
        d = zlib.decompressobj(wbits=31)  # gzip; bounded, so a small bomb cannot fill the memory
        raw = d.decompress(payload, MAX_JSON_BYTES)
        if d.unconsumed_tail or not d.eof:
            raise UploadError("the session is larger than a session can be, or its data is cut short")
        doc = json.loads(raw)
    except (zlib.error, ValueError, RecursionError):
        raise UploadError("the upload is not a readable session (damaged)") from None
    check_document(doc)
    return doc


def _need(ok: bool, what: str) -> None:
    if not ok:
        raise UploadError(f"the session's {what} is not valid")


def _utc(v, what: str, optional: bool = False) -> None:
    _need((optional and v is None) or (isinstance(v, str) and _UTC.fullmatch(v) is not None), what)


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _text(v, n: int) -> bool:
    return isinstance(v, str) and 0 < len(v) <= n and v.isprintable()


def check_document(doc, live: bool = False) -> None:
    """Raises UploadError unless `doc` is a session document this app can store. live: a piece of
    a running session (host.server.devices.live_append): blocks with new data only, each saying
    where its frames and events start (frames_from, events_from)."""
    _need(isinstance(doc, dict) and doc.get("format") == FORMAT, "format")
    _need(doc.get("version") == VERSION, "format version")
    check_uuid(doc.get("uuid"))
    _utc(doc.get("started_utc"), "start time")
    _utc(doc.get("ended_utc"), "end time", optional=True)
    _need(_text(doc.get("source"), 200), "sensor link")
    _need(_text(doc.get("app_version"), 40), "app version")
    blocks = doc.get("blocks")
    _need(isinstance(blocks, list) and len(blocks) <= MAX_BLOCKS, "block list")
    numbers = [b.get("number") if isinstance(b, dict) else None for b in blocks]
    if live:
        _need(all(isinstance(n, int) and not isinstance(n, bool) and 0 < n <= MAX_BLOCKS for n in numbers)
              and numbers == sorted(set(numbers)), "block numbers")
        _need(all(isinstance(b.get(k), int) and not isinstance(b.get(k), bool) and b[k] >= 0
                  for b in blocks for k in ("frames_from", "events_from")), "live position")
    else:
        _need(numbers == list(range(1, len(blocks) + 1)), "block numbers")
    for b in blocks:
        _utc(b.get("started_utc"), "block start")
        _utc(b.get("last_data_utc"), "block's last data time", optional=True)
        _need(isinstance(b.get("settings"), dict) and isinstance(b["settings"].get("exercise", {}), dict),
              "block settings")
        frames = b.get("frames")
        _need(isinstance(frames, list), "frame list")
        for f in frames:
            _need(isinstance(f, list) and len(f) == 3 and _number(f[0]) and isinstance(f[1], str)
                  and len(f[1]) <= MAX_FRAME_BYTES and f[2] in (0, 1), "frame")
        events = b.get("events")
        _need(isinstance(events, list), "event list")
        for e in events:
            _need(isinstance(e, list) and len(e) == 2 and _number(e[0]) and isinstance(e[1], str)
                  and len(e[1]) <= MAX_EVENT_BYTES, "event")
        markers = b.get("markers")
        _need(isinstance(markers, list), "marker list")
        for m in markers:
            _need(isinstance(m, list) and len(m) == 4 and (m[0] is None or _number(m[0])) and _number(m[1])
                  and _text(m[2], 80), "marker")
            _utc(m[3], "marker time")
    p = doc.get("programme")
    if p is not None:
        _need(isinstance(p, dict) and isinstance(p.get("toml"), str) and len(p["toml"]) <= 256 * 1024
              and isinstance(p.get("run_number"), int) and isinstance(p.get("steps"), list)
              and isinstance(p.get("pain"), list), "programme part")
        _utc(p.get("run_started_utc"), "programme run start")
        _utc(p.get("run_completed_utc"), "programme run end", optional=True)
        for st in p["steps"]:
            _need(isinstance(st, dict) and all(isinstance(st.get(k), int) for k in ("step", "item", "set_number"))
                  and st.get("stance") in ("left", "right", "both", "") and
                  all(st.get(k) is None or isinstance(st.get(k), int) for k in ("block_number", "reps", "cued_reps")),
                  "programme step")
            _utc(st.get("completed_utc"), "programme step time")
        for x in p["pain"]:
            _need(isinstance(x, list) and len(x) == 3 and isinstance(x[0], int) and isinstance(x[1], int)
                  and 0 <= x[1] <= 10, "pain rating")
            _utc(x[2], "pain rating time")


def import_session(conn, doc: dict, patient_label: str, session_id: int | None = None) -> int:
    """Insert a checked document (parse) as a session of `patient_label`; its id. With session_id
    (a live home session that streamed in under the same uuid), that session's blocks are replaced
    by the document's, which is the whole record. The caller holds the transaction."""
    if session_id is None:
        session_id = store.insert_session(conn, patient_label, doc["source"], doc["app_version"])
    else:
        conn.execute("DELETE FROM blocks WHERE session_id = ?", (session_id,))
    conn.execute("UPDATE sessions SET started_utc = ?, ended_utc = ?, source = ?, app_version = ?, upload_uuid = ? "
                 "WHERE id = ?", (doc["started_utc"], doc["ended_utc"], doc["source"], doc["app_version"],
                                  doc["uuid"], session_id))
    for b in doc["blocks"]:
        block_id = store.insert_block(conn, session_id, b["settings"], b["started_utc"])
        insert_frames(conn, block_id, 0, b["frames"], b["last_data_utc"])
        insert_events(conn, block_id, b["events"])
        for t_s, t_host, label, created in b["markers"]:
            conn.execute("INSERT INTO markers (block_id, t_s, t_host_s, label, created_utc) VALUES (?, ?, ?, ?, ?)",
                         (block_id, t_s, t_host, label, created))
    if doc.get("programme"):
        _import_programme(conn, doc["programme"], patient_label, session_id)
    return session_id


def insert_frames(conn, block_id: int, first_n: int, frames: list, last_data_utc: str | None) -> None:
    """Checked [t_host_s, base64, late] frames as frames first_n, first_n + 1, ... of the block."""
    rows = []
    for n, (t, data, late) in enumerate(frames, start=first_n):
        try:
            raw = base64.b64decode(data, validate=True)
        except ValueError:
            raise UploadError("the session's frame is not valid") from None
        rows.append((block_id, n, float(t), raw, late))
    if rows:
        conn.executemany("INSERT INTO frames (block_id, n, t_host_s, data, late) VALUES (?, ?, ?, ?, ?)", rows)
        conn.execute("UPDATE blocks SET frame_count = frame_count + ?, t_host_first_s = coalesce(t_host_first_s, ?), "
                     "t_host_last_s = ? WHERE id = ?", (len(rows), rows[0][2], rows[-1][2], block_id))
    if last_data_utc is not None:
        conn.execute("UPDATE blocks SET last_data_utc = ? WHERE id = ?", (last_data_utc, block_id))


def insert_events(conn, block_id: int, events: list) -> None:
    """Checked [t_host_s, json] events, through store.insert_event (reps, calibration, end indexed)."""
    for t, text in events:
        try:
            event = json.loads(text)
        except ValueError:
            event = None
        if not isinstance(event, dict):
            raise UploadError("the session's event is not valid")
        store.insert_event(conn, block_id, float(t), event)


def _import_programme(conn, p: dict, patient_label: str, session_id: int) -> None:
    """The run's steps under the clinic's version with the same TOML (the one the device fetched).
    A programme the clinic never prescribed (edited at home) is not invented here: the session is
    stored, its steps are not."""
    row = conn.execute("SELECT g.id FROM programmes g JOIN patients p ON p.id = g.patient_id WHERE p.label = ? "
                       "AND g.toml = ? ORDER BY g.version DESC LIMIT 1", (patient_label, p["toml"])).fetchone()
    if row is None:
        return
    run = conn.execute("SELECT id FROM programme_runs WHERE programme_id = ? AND number = ? AND started_utc = ?",
                       (row[0], p["run_number"], p["run_started_utc"])).fetchone()
    run_id = run[0] if run else conn.execute(
        "INSERT INTO programme_runs (programme_id, number, started_utc) VALUES (?, ?, ?)",
        (row[0], p["run_number"], p["run_started_utc"])).lastrowid
    if p["run_completed_utc"]:
        conn.execute("UPDATE programme_runs SET completed_utc = ? WHERE id = ?", (p["run_completed_utc"], run_id))
    for st in p["steps"]:
        conn.execute("INSERT INTO programme_steps (run_id, step, item, stance, set_number, session_id, block_number, "
                     "reps, cued_reps, completed_utc) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, step) "
                     "DO UPDATE SET session_id = excluded.session_id, block_number = excluded.block_number, "
                     "reps = excluded.reps, cued_reps = excluded.cued_reps, completed_utc = excluded.completed_utc",
                     (run_id, st["step"], st["item"], st["stance"], st["set_number"], session_id, st["block_number"],
                      st["reps"], st["cued_reps"], st["completed_utc"]))
    for item, rating, rated in p["pain"]:
        conn.execute("INSERT INTO pain_ratings (run_id, item, rating, rated_utc) VALUES (?, ?, ?, ?) "
                     "ON CONFLICT (run_id, item) DO UPDATE SET rating = excluded.rating, rated_utc = excluded.rated_utc",
                     (run_id, item, rating, rated))
