"""The live view's stream: a station (the real StreamRunner and Recorder, on a thread, frames from
the simulator's encoder handed over on a sped-up real-time schedule) records into the database
while a therapist's WebSocket watches the block; what arrives must be what the stored block gives
when replayed afterwards (same angles, same reps), with the link and cue states of the record."""
import asyncio
import math
import threading
import time

import numpy as np

from host import store
from host.links.memory import MemoryTransport
from host.processing.pipeline import PipelineConfig
from host.session.review import review_block
from host.session.runner import StreamRunner
from host.sinks.recorder import Recorder, settings_of
from tests.server.conftest import WS_ORIGIN
from tests.support.ptysensor import recorded_frames, stop_frame

SPEED = 4.0


def station(db, patient, done: threading.Event):
    frames = recorded_frames((7.0, 3.0, 7.0), seed=8, bends=0) + [stop_frame()]
    period_s = 1.0 / 200 * 10 / SPEED  # ten samples a frame at 200 Hz, SPEED times real time
    cfg = PipelineConfig()
    cfg.calibration = "standing"
    rec = Recorder(db, patient, source="station 2")
    rec.start_block(settings_of(cfg))
    runner = StreamRunner(MemoryTransport([(i * period_s, f) for i, f in enumerate(frames)]), cfg,
                          recorder=rec, no_data_timeout_s=math.inf)
    asyncio.run(runner.run())
    rec.close()
    done.set()


def test_live_stream_matches_the_stored_block_and_measures_its_delay(clinic_db, ann, app):
    db, _ = clinic_db
    conn = store.connect(db)
    store.assign_patient(conn, "P-LIVE", "North")
    conn.close()
    done = threading.Event()
    threading.Thread(target=station, args=(db, "P-LIVE", done), daemon=True).start()
    deadline = time.monotonic() + 20
    while not (live := ann.get("/api/live").json()["live"]) or live[0]["patient"] != "P-LIVE":
        assert time.monotonic() < deadline, "the recording block never showed as live"
        time.sleep(0.1)
    block_id = live[0]["block_id"]
    assert f"/live/{block_id}" in ann.get("/live").text
    msgs = []
    with ann.websocket_connect(f"/ws/live/{block_id}", headers=WS_ORIGIN) as ws:
        while not (msgs and msgs[-1]["ended"]):
            m = ws.receive_json()
            msgs.append(m)
            ws.send_json({"ack": m["seq"]})
            assert time.monotonic() < deadline + 60
    done.wait(30)
    assert "error" not in msgs[-1]
    # the angles streamed live are exactly those of the stored block replayed afterwards
    pts = np.array([p for m in msgs for p in m["points"]])
    conn = store.connect(db)
    b = store.block(conn, block_id)
    review = review_block(conn, b)
    conn.close()
    assert len(pts) == len(review.t_s) > 1000
    assert np.allclose(pts[:, 0], review.t_s, atol=1e-4) and np.allclose(pts[:, 1], review.obliquity_deg, atol=2e-3)
    last = msgs[-1]
    assert last["reps"] == len(review.reps) == 3 and last["cued_reps"] == sum(bool(r["cued"]) for r in review.reps)
    assert last["frames"] == b.frame_count and last["link"].startswith("ended")
    assert any(m["cue"] for m in msgs) and not last["cue"]  # a cue came on and went off again
    assert {m["link"] for m in msgs[:-1]} >= {"connected"}
    assert len(msgs) > 20  # streamed while it ran, not once at the end
    hub = app.state.hubs.hub(block_id)
    newest, oldest = list(hub.delays_s), list(hub.oldest_delays_s)
    assert newest and all(0 < a <= b < 5 for a, b in zip(newest, oldest))
    print(f"live delay frame -> browser over {len(newest)} messages: newest frame p50 "
          f"{np.percentile(newest, 50) * 1000:.0f} ms, oldest frame p50 {np.percentile(oldest, 50) * 1000:.0f} ms")
