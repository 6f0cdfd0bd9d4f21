"""The session store and the recorder on both backends (the `db` fixture: a real SQLite file and a
database on a real PostgreSQL server, tests/support/pgserver.py), with real frames from the
simulator's encoder and the recorder's real writer thread. Process-level faults (SIGKILL, full disk,
read-only folder) are in test_recording_faults.py; several stations and a server that goes away in
test_store_postgresql.py."""
import json
import sqlite3
import threading
import time

import pytest

from firmware_sim.device import SimDevice
from firmware_sim.motion import Scenario
from host import store
from host.processing.pipeline import PipelineConfig
from host.sinks.recorder import Recorder, settings_of


def sim_frames(reps=2, seed=1):
    """[(t_host_s, frame)] of a short simulated set, with host times 20 ms apart."""
    sc = Scenario(drops_deg=[6.0] * reps, calibration_bends=0)
    dev = SimDevice(sc, seed=seed)
    dev.streaming = True
    frames = [dev.info_frame()] + dev.frames_due(sc.duration_s + 1.0) + [dev.stop_frame()]
    return [(500.0 + 0.02 * i, f) for i, f in enumerate(frames)]


def record(db, frames, events=(), patient="P-001", settings=None):
    msgs = []
    rec = Recorder(db, patient, report=msgs.append)
    rec.start_block(settings or settings_of(PipelineConfig()))
    rec.event({"event": "connected", "t": 0.0, "link": "serial /dev/pts/9"})
    for t, f in frames:
        rec.frame(t, f)
    for e in events:
        rec.event(e)
    line = rec.close()
    return rec, line, msgs


REP = {"event": "rep", "t": 12.5, "index": 1, "set": 1, "low_side": "right", "max_drop_deg": 6.1,
       "duration_s": 3.2, "cued": True, "depth_deg": 6.1, "something_new": [1, 2]}


def test_fresh_database_has_the_current_schema(db, tmp_path):
    if not isinstance(db, str):
        db = tmp_path / "a" / "b" / "s.sqlite"  # folders are made
    conn = store.connect(db, create=True)
    assert store.schema_version(conn) == store.SCHEMA_VERSION >= 1
    tables = store.table_names(conn)
    assert {"patients", "sessions", "blocks", "frames", "events", "reps", "markers"} <= tables


def test_round_trip_keeps_every_frame_and_event_exactly(db, tmp_path):
    frames = sim_frames()
    end = {"event": "end", "t": 20.0, "reason": "the sensor finished the set", "samples": 1000}
    cal = {"event": "calibrated", "t": 3.0, "still_s": 2.0, "mounting_tilt_deg": 3.1}
    rec, line, msgs = record(db, frames, [cal, REP, {"event": "cue_on", "t": 11.0, "low_side": "right"}, end])
    assert msgs == [] and rec.failed is None
    assert f"session {rec.session_id}" in line and "P-001" in line
    conn = store.connect(db)
    if not store.is_pg(conn):
        # a clean close leaves one self-contained file (rollback journal, no -wal / -shm beside it)
        assert not (tmp_path / "s.sqlite-wal").exists()
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    (s,) = store.list_sessions(conn)
    assert s.patient == "P-001" and s.source == "serial /dev/pts/9" and s.ended_utc is not None
    assert s.status == "complete" and s.reps == 1 and s.cued_reps == 1
    (b,) = s.blocks
    assert (b.exercise, b.stance, b.threshold_left_deg, b.estimator) == ("hip-dip", "left", 5.0, "vqf")
    assert b.settings == json.loads(json.dumps(settings_of(PipelineConfig())))
    assert b.calibration == cal and b.end == end
    # the block's length is sensor time (its end event's t: issue 10 item 6); the host's span is kept too
    assert b.frame_count == len(frames) and b.host_duration_s == pytest.approx(frames[-1][0] - frames[0][0])
    assert b.duration_s == pytest.approx(b.end["t"])
    assert list(store.frames(conn, b.id, chunk=7)) == [(t, f, False) for t, f in frames]  # chunks lose nothing
    assert store.reps(conn, b.id) == [REP]  # the whole event, fields unknown to the store included
    row = conn.execute("SELECT idx, low_side, max_drop_deg, cued FROM reps").fetchone()
    assert tuple(row) == (1, "right", 6.1, 1)
    kinds = [e["event"] for _, e in store.events(conn, b.id)]
    assert kinds == ["connected", "calibrated", "rep", "cue_on", "end"]
    if not store.is_pg(conn):
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_commits_reach_the_database_within_a_second_while_recording(db):
    rec = Recorder(db, "P-002")
    rec.start_block({})
    frames = sim_frames()[:60]
    for t, f in frames:
        rec.frame(t, f)
    deadline = time.monotonic() + 1.0
    seen = 0
    reader = store.connect(db)  # another connection, as another process would see it
    while time.monotonic() < deadline and seen < len(frames):
        time.sleep(0.05)
        seen = reader.execute("SELECT count(*) FROM frames").fetchone()[0]
    assert seen == len(frames), f"only {seen} of {len(frames)} frames committed after 1 s"
    reader.close()
    rec.close()


def test_replay_transport_gives_back_frames_times_and_late_flags(db):
    import asyncio
    from host.links.replay import ReplayTransport
    frames = sim_frames()[:40]
    rec = Recorder(db, "P-008")
    rec.start_block({})
    for i, (t, f) in enumerate(frames):
        rec.frame(t, f, late=10 <= i < 15)  # as re-sent frames after a dropout
    rec.close()
    conn = store.connect(db)
    block = store.list_sessions(conn)[0].blocks[0]
    tr = ReplayTransport(conn, block, speed=None)
    got, links = [], []
    tr.on_event = lambda kind, **f: links.append(kind)

    async def read_all():
        await tr.open()
        while (item := await tr.read()) is not None:
            got.append((*item, tr.late))
    asyncio.run(read_all())
    assert got == [(t, f, 10 <= i < 15) for i, (t, f) in enumerate(frames)]
    assert links == ["connected"] and tr.finished and "interrupted" in tr.lost_reason


def test_a_session_that_never_got_data_is_not_kept(db):
    rec = Recorder(db, "P-003")
    rec.start_block({})
    assert "Nothing recorded" in rec.close()
    assert store.list_sessions(store.connect(db)) == []


def test_markers_and_several_blocks(db):
    frames = sim_frames()
    rec = Recorder(db, "P-004")
    for exercise in ("hip-dip", "single-leg-squat"):
        cfg = settings_of(PipelineConfig())
        cfg["exercise"]["exercise"] = exercise
        rec.start_block(cfg)
        for t, f in frames[:50]:
            rec.frame(t, f)
        rec.marker("knee pain", t_s=4.5)
    rec.close()
    conn = store.connect(db)
    (s,) = store.list_sessions(conn)
    assert [b.exercise for b in s.blocks] == ["hip-dip", "single-leg-squat"]
    assert [b.number for b in s.blocks] == [1, 2]
    assert all(b.frame_count == 50 for b in s.blocks)
    assert [m["label"] for m in store.markers(conn, s.blocks[1].id)] == ["knee pain"]
    assert s.status == "interrupted"  # no `end` event was recorded for either block


def test_a_busy_database_is_waited_for_not_dropped(db):
    rec = Recorder(db, "P-005")
    rec.start_block({})
    other = store.connect(db, create=True)
    if store.is_pg(other):
        other.execute("BEGIN")
        other.execute("LOCK TABLE frames IN EXCLUSIVE MODE")  # another writer holds the lock for 1.5 s
    else:
        other.execute("BEGIN IMMEDIATE")  # another writer holds the lock for 1.5 s
    threading.Timer(1.5, lambda: other.execute("COMMIT")).start()
    frames = sim_frames()[:80]
    for t, f in frames:
        rec.frame(t, f)
        time.sleep(0.01)
    rec.close()
    other.close()
    conn = store.connect(db)
    assert [(t, f) for t, f, _ in store.frames(conn, store.list_sessions(conn)[0].blocks[0].id)] == frames


def test_a_database_from_a_newer_version_is_refused_in_words(db):
    store.set_schema_version(store.connect(db, create=True), store.SCHEMA_VERSION + 1)
    with pytest.raises(store.StoreError, match="newer hiplevel"):
        store.connect(db)
    msgs = []
    rec = Recorder(db, "P-006", report=msgs.append)
    rec.frame(1.0, b"x")  # a failed recorder takes frames and does nothing
    assert rec.failed and "newer hiplevel" in msgs[0] and "live feedback goes on" in msgs[0]
    assert rec.close().startswith("Not recorded")


@pytest.mark.parametrize("content,words", [
    (b"this is not a database at all" * 100, "not a hiplevel session database"),
    (None, "not a hiplevel session database"),  # some other program's SQLite file
])
def test_a_file_that_is_not_ours_is_refused_and_left_alone(tmp_path, content, words):
    db = tmp_path / "s.sqlite"
    if content is None:
        c = sqlite3.connect(db)
        c.execute("CREATE TABLE addresses (name TEXT)")
        c.commit()
        c.close()
    else:
        db.write_bytes(content)
    before = db.read_bytes()
    msgs = []
    rec = Recorder(db, "P-007", report=msgs.append)
    rec.close()
    assert rec.failed and words in rec.failed and msgs
    assert db.read_bytes() == before


def test_migrations_are_atomic_and_keep_data(db):
    record(db, sim_frames()[:20])
    conn = store.connect(db)
    v = store.SCHEMA_VERSION
    broken = store.MIGRATIONS + ["ALTER TABLE sessions ADD COLUMN room TEXT; INSERT INTO no_such_table VALUES (1);"]
    with pytest.raises(store.DB_ERRORS):
        store.migrate(conn, db, broken)
    assert store.schema_version(conn) == v  # nothing of the failed step stays
    assert "room" not in store.column_names(conn, "sessions")
    good = store.MIGRATIONS + ["ALTER TABLE sessions ADD COLUMN room TEXT DEFAULT 'gym';"]
    store.migrate(conn, db, good)
    assert store.schema_version(conn) == v + 1
    assert conn.execute("SELECT room FROM sessions").fetchone()[0] == "gym"
    assert conn.execute("SELECT count(*) FROM frames").fetchone()[0] == 20


def test_progress_per_patient_session_and_side(db):
    frames = sim_frames()[:10]
    for drops in ([8.0, 9.5, 7.0], [5.0, 6.0, 4.0]):
        reps = [dict(REP, index=i + 1, max_drop_deg=d, cued=d > 6.5) for i, d in enumerate(drops)]
        reps.append(dict(REP, index=4, low_side="left", max_drop_deg=2.0, cued=False))
        record(db, frames, reps, patient="P-010")
    record(db, frames, [REP], patient="P-011")
    conn = store.connect(db)
    rows = store.progress(conn, "P-010")
    assert [r["exercise"] for r in rows] == ["hip-dip", "hip-dip"]
    assert [r["sides"]["right"]["worst_drop_deg"] for r in rows] == [9.5, 6.0]
    assert [round(r["sides"]["right"]["mean_drop_deg"], 3) for r in rows] == [8.167, 5.0]
    assert [r["cued_reps"] for r in rows] == [3, 0]
    assert rows[0]["sides"]["left"] == {"reps": 1, "cued": 0, "worst_drop_deg": 2.0, "mean_drop_deg": 2.0}
    with pytest.raises(store.StoreError, match="no patient 'nobody'.*P-010"):
        store.progress(conn, "nobody")
    assert [s.patient for s in store.list_sessions(conn)] == ["P-010", "P-010", "P-011"]
    assert store.get_session(conn, "last").patient == "P-011"
    with pytest.raises(store.StoreError, match="no session 99"):
        store.get_session(conn, 99)
    with pytest.raises(store.StoreError, match="by its number"):
        store.get_session(conn, "yesterday")


@pytest.mark.parametrize("label,ok", [("P-017", True), ("  Knie links 3 ", True), ("", False),
                                      ("x" * 41, False), ("a\nb", False)])
def test_patient_labels(label, ok):
    if ok:
        assert store.check_patient_label(label) == label.strip()
    else:
        with pytest.raises(ValueError):
            store.check_patient_label(label)


def test_a_postgresql_database_of_another_program_is_refused_and_left_alone(pg_server):
    url = pg_server.new_database()
    other = store.connect(url, create=True)
    other.execute("DROP TABLE hiplevel_schema")  # as if some other program's tables were there
    other.close()
    msgs = []
    rec = Recorder(url, "P-007", report=msgs.append)
    rec.frame(1.0, b"x")
    rec.close()
    assert rec.failed and "no hiplevel session database" in rec.failed and msgs
    with pytest.raises(store.StoreError, match="other tables"):
        store.connect(url)
