"""A broken sensor on a real pseudo-terminal: the test says which bytes it sends.

`hiplevel run --serial PORT` talks to it exactly as to a USB-serial sensor (the real pty, the real
SerialTransport and deframer). After the host's START it calls `script(write)` on its own thread;
`write(frame_bytes)` sends one frame COBS-framed with its CRC, `write_raw(bytes)` sends bytes as they
are (junk, damaged packets). `recorded_frames(sim_args)` gives the frames a real simulated sensor
(firmware_sim.device.SimDevice) sends for a scenario, so a test can damage a realistic stream.
"""
from __future__ import annotations

import os
import pty
import select
import threading
import time
import tty

from host.protocol.frames import SerialDeframer, decode_frame, serial_wrap, Command, FrameType


class PtySensor:
    def __init__(self, script, start_timeout_s: float = 30.0):
        self.master, self.slave = pty.openpty()
        tty.setraw(self.slave)
        self.port = os.ttyname(self.slave)
        self.script = script
        self.start_timeout_s = start_timeout_s
        self.error: BaseException | None = None
        self.started = threading.Event()
        self.done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def write_raw(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                n = os.write(self.master, view)
            except BlockingIOError:
                select.select([], [self.master], [], 0.1)
                continue
            except OSError:  # the host closed the port: nothing more to say
                return
            view = view[n:]

    def write(self, frame_bytes: bytes) -> None:
        self.write_raw(serial_wrap(frame_bytes))

    def _run(self) -> None:
        deframer = SerialDeframer()
        deadline = time.monotonic() + self.start_timeout_s
        try:
            while not self.started.is_set() and time.monotonic() < deadline:
                ready, _, _ = select.select([self.master], [], [], 0.05)
                if not ready:
                    continue
                for frame in deframer.feed(os.read(self.master, 4096)):
                    cmd = decode_frame(frame)
                    if isinstance(cmd, Command) and cmd.type == FrameType.CMD_START:
                        self.started.set()
            if self.started.is_set():
                self.script(self)
        except BaseException as e:  # noqa: BLE001 - reported by the test
            self.error = e
        finally:
            self.done.set()

    def close(self) -> None:
        self.done.wait(60)
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def recorded_frames(drops=(6.0,), seed: int = 3, rate_hz: int = 200, bends: int = 2) -> list[bytes]:
    """Every frame a simulated sensor sends for a hip-dip scenario (INFO first, then DATA), without
    the trailing STOP."""
    from firmware_sim.device import SimDevice
    from firmware_sim.motion import Scenario
    dev = SimDevice(Scenario(drops_deg=list(drops), calibration_bends=bends), rate_hz=rate_hz, seed=seed)
    dev.streaming = True
    frames = [dev.info_frame()]
    frames += dev.frames_due(dev.scenario.duration_s + 1.0)
    return frames


def stop_frame() -> bytes:
    from host.protocol.frames import encode_frame
    return encode_frame(Command(FrameType.CMD_STOP))
