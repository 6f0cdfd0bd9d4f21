"""Serve a SimDevice (the firmware core on a simulated chip) over a pseudo-terminal, as a USB-serial sensor would appear.

Out: the first line on `out` says where to connect (`serial /dev/pts/N`); then every frame is
COBS-framed with a CRC by the firmware core (`serial_wrap`) and written to the pty master at the pace of the
device's clock (scaled by `speed`). In: command frames the host writes (START, STOP, SET_RATE,
RESEND_FROM), handed to the firmware core. The scenario clock starts at the first START; the core
answers START with an info frame and, on this link, repeats it every second so a host that opens
late still learns the scale factors. When the scenario is over the
device says STOP and, a moment later, closes the link.

`corrupt` flips a byte in that fraction of packets, to exercise the host's error handling;
`clock_jump` = (at_s, by_s) makes the device's time stamps jump once by by_s seconds at true time
at_s (SimDevice.jump_clock).
"""
from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import sys
import termios
import time
import tty

from .firmware import core

serial_wrap = core.serial_wrap  # the firmware's own serial framing (the host only decodes it)
DRAIN_S = 10.0  # at the end, wait at most this long for the host to read what was written


def _unread(slave: int) -> int:
    """Bytes written to the pty that the host has not read yet (the slave side's input queue)."""
    try:
        return struct.unpack("i", fcntl.ioctl(slave, termios.FIONREAD, b"\0\0\0\0"))[0]
    except OSError:
        return 0


def run_pty(device, speed: float = 1.0, out=sys.stdout, corrupt: float = 0.0,
            start_timeout_s: float = 120.0, clock_jump: tuple[float, float] | None = None) -> int:
    master, slave = pty.openpty()
    tty.setraw(slave)  # no echo, no CR/LF translation: the line carries binary frames
    name = os.ttyname(slave)
    print(f"serial {name}", file=out, flush=True)
    deframer = core.SerialDeframer()  # the firmware's own command deframer, as on USB
    device.fw.info_every_us = core.INFO_EVERY_US  # serial: INFO once a second
    t0 = None
    waited_since = time.monotonic()

    def write(frame: bytes):
        packet = bytearray(serial_wrap(frame))
        if corrupt and device.rng.random() < corrupt:
            i = int(device.rng.integers(0, len(packet) - 1))
            packet[i] ^= 0x5A
        view = memoryview(packet)
        while view:
            try:
                n = os.write(master, view)
            except BlockingIOError:
                select.select([], [master], [], 0.1)
                continue
            view = view[n:]

    try:
        while True:
            now = time.monotonic()
            if t0 is None and now - waited_since > start_timeout_s:
                print("sim: no host sent START; giving up", file=sys.stderr)
                return 1
            t_true = (now - t0) * speed if t0 is not None else 0.0
            if t0 is not None and device.streaming:
                if clock_jump is not None and t_true >= clock_jump[0]:
                    for frame in device.frames_due(clock_jump[0]):  # before the jump: the old clock
                        write(frame)
                    device.jump_clock(clock_jump[1])
                    clock_jump = None
                for frame in device.frames_due(t_true):
                    write(frame)
                if device.finished:
                    if device.truth_file is not None:
                        device.truth_file.flush()  # complete before the host hears the end
                    write(device.stop_frame())
                    # closing the pty throws away what the host has not read yet: a slow host (a
                    # loaded machine) gets up to DRAIN_S to read to the end first. Nothing unread
                    # for half a second: the kernel passes written bytes on to the reading side
                    # a moment later, so one empty look is not enough
                    drain_until = time.monotonic() + DRAIN_S
                    read_since = None
                    while time.monotonic() < drain_until:
                        if _unread(slave):
                            read_since = None
                        elif read_since is None:
                            read_since = time.monotonic()
                        elif time.monotonic() - read_since > 0.5:
                            break
                        time.sleep(0.02)
                    return 0
            ready, _, _ = select.select([master], [], [], 0.002)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:
                    chunk = b""
                for frame in deframer.feed(chunk):
                    for reply in device.handle_command(frame):
                        write(reply)
                    if device.streaming and t0 is None:
                        t0 = time.monotonic()
                        device.wall_clock = (t0, speed)
    finally:
        os.close(master)
        os.close(slave)
