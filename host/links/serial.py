"""Serial transport (USB-serial sensor, or the simulator's pseudo-terminal), on pyserial.

In: the byte stream from the port, read without blocking from the asyncio loop (`add_reader` on the
port's file descriptor), split and checked by host.protocol.frames.SerialDeframer. Out: `(t_host_s,
frame_bytes)` from `read()`, t_host_s stamped when the bytes arrived. Commands go out COBS-framed.
A port that vanishes mid-stream ends the stream with `lost_reason` in plain words. `prepare()` opens
the port before anything else starts (sound, window), so a wrong port is the first and only thing said;
every way a port can be wrong (missing, a folder, a file, not a terminal, in use, no permission)
gets one sentence.
"""
from __future__ import annotations

import asyncio
import collections
import errno
import os
import stat
import time

import serial

from host.protocol.frames import SerialDeframer, serial_wrap
from host.links.base import Transport, TransportError

BAUD = 921600  # ignored by a pty; a USB-serial bridge at 200 Hz needs ~60 kbit/s
# Frames read but not yet processed. A working sensor never gets near it (200 Hz in 4-sample frames is
# 50 frames/s; this is 10 s of the fastest valid stream, 2000 one-sample frames/s); a sensor flooding
# the line faster than the host can decode would otherwise grow memory without bound.
MAX_BACKLOG_FRAMES = 20_000


class SerialTransport(Transport):
    def __init__(self, port: str, baudrate: int = BAUD):
        super().__init__()
        self.port = port
        self.baudrate = baudrate
        self.description = f"serial {port}"
        self.deframer = SerialDeframer()
        self._ser = None
        self._frames = collections.deque()
        self._wake = asyncio.Event()
        self._ended = False

    def prepare(self) -> None:
        """Open the port now (synchronously); TransportError with one sentence when it is wrong."""
        if self._ser is not None:
            return
        check_port(self.port)
        try:
            self._ser = serial.Serial(self.port, self.baudrate, timeout=0, write_timeout=1.0)
        except (serial.SerialException, OSError) as e:
            raise TransportError(f"Cannot open the serial port {self.port}: {_words(e)}.") from None

    async def open(self) -> None:
        self.prepare()
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._ser.fileno(), self._on_readable)
        self.on_event("connected", link=self.description)

    def _on_readable(self) -> None:
        try:
            chunk = self._ser.read(max(1, self._ser.in_waiting))
        except (serial.SerialException, OSError):
            chunk = None
        if not chunk:  # EOF / EIO: the other end went away
            self._end(f"the serial port {self.port} closed")
            return
        t_host = time.monotonic()
        for frame in self.deframer.feed(chunk):
            if len(self._frames) >= MAX_BACKLOG_FRAMES:
                # keep the newest: live feedback is about now; what is dropped shows as a gap
                self._frames.popleft()
                self.deframer.errors["backlog_full"] += 1
            self._frames.append((t_host, frame))
        self._wake.set()

    def _end(self, reason: str) -> None:
        if not self._ended:
            self._ended = True
            self.lost_reason = reason
            try:
                self._loop.remove_reader(self._ser.fileno())
            except (ValueError, OSError):
                pass
        self._wake.set()

    async def read(self):
        while not self._frames:
            if self._ended:
                return None
            self._wake.clear()
            await self._wake.wait()
        return self._frames.popleft()

    def read_nowait(self):
        return self._frames.popleft() if self._frames else None

    async def send(self, frame_bytes: bytes) -> None:
        if self._ended or self._ser is None:
            return
        try:
            self._ser.write(serial_wrap(frame_bytes))
        except (serial.SerialException, OSError) as e:
            self._end(f"cannot write to {self.port}: {e}")

    async def close(self) -> None:
        if self._ser is not None:
            if not self._ended:
                self._end("closed")
            self._ser.close()
            self._ser = None


def check_port(port: str) -> None:
    """TransportError with one sentence unless `port` is a terminal device this process may open."""
    hint = "give the sensor's port, e.g. /dev/ttyACM0 (or the one `hiplevel sim` printed)."
    try:
        st = os.stat(port)
    except FileNotFoundError:
        raise TransportError(f"The serial port {port} does not exist. Is the sensor plugged in "
                             f"(or the simulator running)?") from None
    except OSError as e:
        raise TransportError(f"Cannot open the serial port {port}: {_words(e)}.") from None
    if stat.S_ISDIR(st.st_mode):
        raise TransportError(f"{port} is a folder, not a serial port; {hint}")
    if not stat.S_ISCHR(st.st_mode):
        raise TransportError(f"{port} is a file, not a serial port; {hint}")
    try:
        fd = os.open(port, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError as e:
        raise TransportError(f"Cannot open the serial port {port}: {_words(e)}.") from None
    try:
        if not os.isatty(fd):
            raise TransportError(f"{port} is not a serial port (it takes no serial settings); {hint}")
    finally:
        os.close(fd)


def _words(e: Exception) -> str:
    """An OSError / SerialException from opening a port as a few plain words."""
    code = getattr(e, "errno", None)
    if code in (errno.EACCES, errno.EPERM):
        return "no permission (on Linux, add your user to the dialout group and log in again)"
    if code == errno.EBUSY:
        return "another program is using it"
    if code in (errno.ENXIO, errno.ENODEV, errno.EIO):
        return "the device is not answering (unplugged?)"
    strerror = getattr(e, "strerror", None)
    return (strerror or str(e)).rstrip(".").lower()
