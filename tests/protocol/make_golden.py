"""Writes the golden byte files from tests/golden/frames.json. Run only when the protocol version
changes; the files are then reviewed by hand against docs/protocol.md and committed."""
from tests.support.golden_vectors import GOLDEN, load

from host.protocol.frames import serial_wrap
from tests.support.sensor_frames import encode_frame  # DATA/INFO by the firmware core, commands by the host

for name, frame in load():
    raw = encode_frame(frame)
    (GOLDEN / f"{name}.bin").write_bytes(raw)
    (GOLDEN / f"{name}.serial").write_bytes(serial_wrap(raw))
    print(name, raw.hex(" "))
