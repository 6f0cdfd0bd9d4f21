"""One recording station as a process of its own, for the tests of several stations on one
database: `python -m tests.support.recording_station DB PATIENT FRAMES SEED` records FRAMES real
frames of the simulator's encoder through host.sinks.recorder.Recorder (its real writer thread),
about 1000 a second, and prints {"session": id, "frames": [[t_host_s, hex], ...], "line": ...} on
stdout for the test to compare with what the database holds."""
import json
import sys
import time

from firmware_sim.device import SimDevice
from firmware_sim.motion import Scenario
from host.sinks.recorder import Recorder


def main(db: str, patient: str, count: int, seed: int) -> None:
    sc = Scenario(drops_deg=[6.0] * 10, calibration_bends=0)
    dev = SimDevice(sc, seed=seed)
    dev.streaming = True
    frames = ([dev.info_frame()] + dev.frames_due(count / 50.0))[:count]
    msgs = []
    rec = Recorder(db, patient, report=msgs.append, commit_interval_s=0.1)
    rec.start_block({})
    sent = []
    for i, f in enumerate(frames):
        t = 1000.0 + 0.001 * i
        rec.frame(t, f)
        sent.append([t, f.hex()])
        if i % 50 == 49:
            time.sleep(0.05)
    line = rec.close()
    print(json.dumps({"session": rec.session_id, "frames": sent, "line": line, "messages": msgs}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
