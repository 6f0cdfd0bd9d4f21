"""The one interface every sensor link implements (serial, BLE, replayed recording).

A transport delivers whole protocol frames (see host.protocol.frames) with the host receive time, and sends
command frames. Everything after it is identical whatever the source. Link-level happenings
(connected, disconnected, reconnecting) are reported through `on_event(kind, **fields)`, which the
pipeline turns into JSON events and status lines.

Contract:
- `prepare()` (optional, synchronous) checks what can be checked before the session starts.
- `await open()` connects, or raises TransportError with a sentence the user understands.
- `await read()` returns `(t_host_s, frame_bytes)` for the next frame, with t_host_s from
  time.monotonic(); returns None when the stream has ended for good (the sensor said it stopped, or
  a link that cannot come back went away: then `lost_reason` says why, in words).
- `late` (attribute) tells, right after `read()`, whether that frame arrived late (re-sent after a
  dropout).
- `await send(frame_bytes)` sends a command frame; it may raise TransportError while a link that
  reconnects by itself is down.
- `await close()` is safe to call twice.
"""
from __future__ import annotations

import abc
from typing import Callable


class TransportError(Exception):
    """A link problem, said in words a user understands."""


class Transport(abc.ABC):
    description = "sensor"  # e.g. "serial /dev/pts/3", used in messages

    def __init__(self) -> None:
        self.on_event: Callable[..., None] = lambda kind, **fields: None
        self.lost_reason: str | None = None
        # True while the frame read() just returned is one the sensor re-sent after a dropout:
        # it belongs in the history and recordings, but the live cue must not act on it.
        self.late = False

    def prepare(self) -> None:
        """Checks that can fail before anything else starts (a wrong serial port): called once
        before the sound and the window, raises TransportError with one sentence. Most links have
        nothing to check without their event loop; they find out in `open()`."""

    @abc.abstractmethod
    async def open(self) -> None: ...

    @abc.abstractmethod
    async def read(self) -> tuple[float, bytes] | None: ...

    def read_nowait(self) -> tuple[float, bytes] | None:
        """The next frame if one is already waiting, else None (then `await read()`). Lets the
        session drain a backlog (replay at full speed, a burst after a stall) without a task
        switch per frame."""
        return None

    @abc.abstractmethod
    async def send(self, frame_bytes: bytes) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None: ...
