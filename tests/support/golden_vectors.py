"""Loads tests/golden/frames.json into protocol objects (shared by the tests and make_golden.py)."""
import json
from pathlib import Path

import numpy as np

from host.protocol.frames import Command, DataFrame, FrameType, InfoFrame

GOLDEN = Path(__file__).resolve().parents[1] / "golden"


def load():
    spec = json.loads((GOLDEN / "frames.json").read_text())
    out = []
    for f in spec["frames"]:
        if f["type"] == "data":
            frame = DataFrame(f["seq"], f["t_device_us"], np.array(f["acc_raw"], np.int16),
                              np.array(f["gyr_raw"], np.int16))
        elif f["type"] == "info":
            frame = InfoFrame(f["rate_hz"], f["acc_range_g"], f["gyr_range_dps"], f["acc_g_per_lsb"],
                              f["gyr_dps_per_lsb"], tuple(f["fw_version"]), f["samples_per_frame"])
        else:
            frame = Command(FrameType[f["command"]], rate_hz=f.get("rate_hz"), from_seq=f.get("from_seq"))
        out.append((f["name"], frame))
    return out
