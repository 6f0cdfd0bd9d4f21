"""A session database with two clinics, their therapists and recorded sessions, for the dashboard's
tests: real frames from the simulator's encoder, run through the real StreamRunner into the real
Recorder (no hand-made rows)."""
import asyncio
import math

from host import store
from host.links.memory import MemoryTransport
from host.processing.pipeline import PipelineConfig
from host.server import auth
from host.session.runner import StreamRunner
from host.sinks.recorder import Recorder, settings_of
from tests.support.ptysensor import recorded_frames, stop_frame

PASSWORDS = {"ann": "ann-secret-pw-1", "bob": "bob-secret-pw-2"}


def record_session(db, patient: str, drops=(6.0, 3.0), seed: int = 3) -> int:
    """One session of hip dips recorded as `hiplevel run` records it; its session id."""
    frames = recorded_frames(drops, seed=seed, bends=0) + [stop_frame()]
    cfg = PipelineConfig()
    cfg.calibration = "standing"
    rec = Recorder(db, patient, source="simulated station")
    rec.start_block(settings_of(cfg))
    runner = StreamRunner(MemoryTransport([(0.0, f) for f in frames]), cfg, recorder=rec,
                          no_data_timeout_s=math.inf)
    asyncio.run(runner.run())
    rec.close()
    return rec.session_id


def two_clinics(db) -> dict:
    """Clinic North (therapist ann, patient P-001 with a session) and clinic South (bob, P-002)."""
    ids = {"s1": record_session(db, "P-001"), "s2": record_session(db, "P-002", seed=5)}
    conn = store.connect(db)
    for clinic, user, patient in (("North", "ann", "P-001"), ("South", "bob", "P-002")):
        store.set_therapist(conn, clinic, user, auth.hash_password(PASSWORDS[user]))
        store.assign_patient(conn, patient, clinic)
    ids["p1"] = store.patient_id(conn, "P-001", create=False)
    ids["p2"] = store.patient_id(conn, "P-002", create=False)
    ids["b1"] = store.get_session(conn, ids["s1"]).blocks[0].id
    ids["b2"] = store.get_session(conn, ids["s2"]).blocks[0].id
    conn.close()
    return ids
