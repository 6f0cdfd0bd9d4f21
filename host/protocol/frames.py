"""Wire protocol v1 between the belt sensor and the host (see docs/protocol.md).

Pure code, no I/O: bytes in, frames out, and commands in, bytes out. The sensor's frames are
encoded only by the firmware core (hardware/firmware/hiplevel_core.py, run by the simulator too);
the host decodes them here and encodes only its commands. Golden vectors in tests/golden pin the
byte layout for both (tests/protocol, tests/firmware).

Layers:
- a *frame* is one message (data, info or command). It is the payload of one BLE notification or
  write, and the same bytes travel over serial.
- over serial a frame is followed by a CRC-16 and COBS-encoded with a 0x00 delimiter
  (`serial_wrap` / `SerialDeframer`), so the host can resynchronise after any corruption.
- `SampleDecoder` turns data frames into physical samples (g, deg/s, device microseconds) using the
  last info frame, and tracks sequence numbers to count lost samples.

Every malformed input raises or records a `FrameError` with a reason; nothing here hangs or crashes
on bad bytes.
"""
from __future__ import annotations

import binascii
import logging
import struct
from collections import Counter
from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np

log = logging.getLogger(__name__)

PROTOCOL_VERSION = 1
SEQ_MODULO = 1 << 32  # sample sequence numbers are u32: 248 days at 200 Hz before they wrap
SENSOR_RATES_HZ = (52, 104, 208, 416)  # what SET_RATE can get from the LSM6DS3TR-C (docs/protocol.md)

_HEADER = struct.Struct("<BB")          # version, type
_DATA_HEAD = struct.Struct("<BBIQB")    # version, type, seq of first sample, t_device_us of first sample, n
_INFO = struct.Struct("<BBHHHffBBBB")   # version, type, rate, acc range, gyr range, scales, fw x3, spf
_SAMPLE_BYTES = 12                      # ax ay az gx gy gz, int16 little-endian
_CMD_RATE = struct.Struct("<BBH")
_CMD_RESEND = struct.Struct("<BBI")


class FrameType(IntEnum):
    DATA = 0x01
    INFO = 0x02
    FAULT = 0x03
    CMD_START = 0x10
    CMD_STOP = 0x11
    CMD_SET_RATE = 0x12
    CMD_RESEND_FROM = 0x13


class FrameError(ValueError):
    """A frame that cannot be used. `reason` is a short stable key for counting."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass(frozen=True)
class DataFrame:
    """A batch of consecutive raw samples. Sample i has sequence number seq + i (mod 2^32) and was
    taken at t_device_us + i * 1e6 / rate_hz on the device's clock."""
    seq: int
    t_device_us: int
    acc_raw: np.ndarray  # (n, 3) int16, sensor frame, counts
    gyr_raw: np.ndarray  # (n, 3) int16, sensor frame, counts

    def __eq__(self, other):
        return (isinstance(other, DataFrame) and self.seq == other.seq
                and self.t_device_us == other.t_device_us
                and np.array_equal(self.acc_raw, other.acc_raw)
                and np.array_equal(self.gyr_raw, other.gyr_raw))


@dataclass(frozen=True)
class InfoFrame:
    rate_hz: int
    acc_range_g: int
    gyr_range_dps: int
    acc_g_per_lsb: float
    gyr_dps_per_lsb: float
    fw_version: tuple[int, int, int]
    samples_per_frame: int


@dataclass(frozen=True)
class Command:
    type: FrameType
    rate_hz: int | None = None   # CMD_SET_RATE
    from_seq: int | None = None  # CMD_RESEND_FROM


@dataclass(frozen=True)
class Fault:
    """The sensor reports a fault it cannot fix itself (firmware: hiplevel_core.encode_fault)."""
    code: int


# what each fault code means, as one plain sentence for the patient's screen and the event log
FAULT_MESSAGES = {1: "the sensor's motion chip does not answer"}


def fault_message(code: int) -> str:
    return FAULT_MESSAGES.get(code, f"the sensor reports fault {code}")


Frame = DataFrame | InfoFrame | Command | Fault


# What a real sensor can send (docs/protocol.md, "Limits"). Anything outside is a broken sensor or a
# damaged frame: counted under a reason and skipped, never passed on to the estimator.
RATE_MIN_HZ, RATE_MAX_HZ = 1, 2000             # the fastest consumer IMU output data rates are ~1.6-6.7 kHz,
                                               # but nothing streams raw samples over BLE/serial faster
ACC_FULL_SCALE_G = (1.0, 1000.0)               # acc_g_per_lsb * 32768: must see 1 g, at most a shock sensor's
GYR_FULL_SCALE_DPS = (10.0, 100_000.0)         # gyr_dps_per_lsb * 32768
T_DEVICE_MAX_US = 1 << 53                      # 285 years of up-time; keeps every timestamp exact in float64
# A DATA frame's timestamp must agree with its sequence number: t = t_ref + k * period (k samples after
# the last frame) within this slack. The fraction covers a device clock off by up to 5 % across a gap.
TIME_SLACK_US = 2000.0
TIME_SLACK_PERIODS = 3
TIME_SLACK_FRACTION = 0.05


def info_problem(rate_hz, acc_range_g, gyr_range_dps, acc_g_per_lsb, gyr_dps_per_lsb,
                 samples_per_frame) -> str:
    """Why these INFO fields cannot come from a working sensor, or "" when they can."""
    if not RATE_MIN_HZ <= rate_hz <= RATE_MAX_HZ:
        return f"rate {rate_hz} Hz is outside {RATE_MIN_HZ}..{RATE_MAX_HZ} Hz"
    for name, scale, (lo, hi), unit in (("acc_g_per_lsb", acc_g_per_lsb, ACC_FULL_SCALE_G, "g"),
                                        ("gyr_dps_per_lsb", gyr_dps_per_lsb, GYR_FULL_SCALE_DPS, "deg/s")):
        # written so that NaN fails too
        if not (lo <= scale * 32768.0 <= hi):
            return f"{name} {scale} gives a full scale outside {lo:g}..{hi:g} {unit}"
    if acc_range_g == 0 or gyr_range_dps == 0:
        return f"range {acc_range_g} g / {gyr_range_dps} deg/s"
    if samples_per_frame == 0:
        return "0 samples per frame"
    return ""


def max_samples_per_frame(payload_limit: int) -> int:
    """How many samples fit in one data frame of at most `payload_limit` bytes (BLE: ATT MTU - 3)."""
    return max(0, min(255, (payload_limit - _DATA_HEAD.size) // _SAMPLE_BYTES))


def encode_command(frame: Command) -> bytes:
    """A host -> sensor command frame. The host encodes only commands: the frames a sensor sends
    (DATA, INFO, STOP, FAULT) are encoded by the firmware core alone
    (hardware/firmware/hiplevel_core.py, which the simulator runs), and the host only decodes them."""
    if not isinstance(frame, Command):
        raise TypeError(f"the host encodes only commands, not {type(frame).__name__}")
    if frame.type == FrameType.CMD_SET_RATE:
        return _CMD_RATE.pack(PROTOCOL_VERSION, frame.type, frame.rate_hz)
    if frame.type == FrameType.CMD_RESEND_FROM:
        return _CMD_RESEND.pack(PROTOCOL_VERSION, frame.type, frame.from_seq % SEQ_MODULO)
    if frame.type in (FrameType.CMD_START, FrameType.CMD_STOP):
        return _HEADER.pack(PROTOCOL_VERSION, frame.type)
    raise TypeError(f"not a command: {frame.type!r}")


encode_frame = encode_command  # the name the host's links use


def decode_frame(data: bytes) -> Frame:
    """One frame from its bytes. Raises FrameError (never anything else) for bad input."""
    if len(data) < _HEADER.size:
        raise FrameError("truncated", f"{len(data)} bytes")
    version, ftype = data[0], data[1]
    if version != PROTOCOL_VERSION:
        raise FrameError("wrong_version", f"version {version}, this host speaks {PROTOCOL_VERSION}")
    try:
        ftype = FrameType(ftype)
    except ValueError:
        raise FrameError("unknown_type", f"type 0x{ftype:02x}") from None
    if ftype == FrameType.DATA:
        if len(data) < _DATA_HEAD.size:
            raise FrameError("truncated", f"data header {len(data)} bytes")
        _, _, seq, t_us, n = _DATA_HEAD.unpack_from(data)
        expected = _DATA_HEAD.size + n * _SAMPLE_BYTES
        if n == 0 or len(data) != expected:
            raise FrameError("truncated" if len(data) < expected else "bad_length",
                             f"{n} samples need {expected} bytes, got {len(data)}")
        body = np.frombuffer(data, dtype="<i2", offset=_DATA_HEAD.size).reshape(n, 6)
        return DataFrame(seq, t_us, body[:, :3].astype(np.int16), body[:, 3:].astype(np.int16))
    if ftype == FrameType.INFO:
        if len(data) != _INFO.size:
            raise FrameError("bad_length", f"info frame {len(data)} bytes, expected {_INFO.size}")
        (_, _, rate, acc_rng, gyr_rng, acc_s, gyr_s, a, b, c, spf) = _INFO.unpack(data)
        problem = info_problem(rate, acc_rng, gyr_rng, acc_s, gyr_s, spf)
        if problem:
            raise FrameError("bad_info", problem)
        return InfoFrame(rate, acc_rng, gyr_rng, acc_s, gyr_s, (a, b, c), spf)
    if ftype == FrameType.FAULT:
        if len(data) != 3:
            raise FrameError("bad_length", f"fault frame {len(data)} bytes, expected 3")
        return Fault(data[2])
    if ftype == FrameType.CMD_SET_RATE:
        if len(data) != _CMD_RATE.size:
            raise FrameError("bad_length", "set-rate command")
        return Command(ftype, rate_hz=_CMD_RATE.unpack(data)[2])
    if ftype == FrameType.CMD_RESEND_FROM:
        if len(data) != _CMD_RESEND.size:
            raise FrameError("bad_length", "resend command")
        return Command(ftype, from_seq=_CMD_RESEND.unpack(data)[2])
    if len(data) != _HEADER.size:
        raise FrameError("bad_length", f"{ftype.name} command")
    return Command(ftype)


# ---- serial byte framing: frame + CRC-16/CCITT-FALSE (LE), COBS-encoded, 0x00 delimiter ----

def crc16(data: bytes) -> int:
    return binascii.crc_hqx(data, 0xFFFF)


def cobs_encode(data: bytes) -> bytes:
    out = bytearray()
    block = bytearray()
    for byte in data:
        if byte == 0:
            out.append(len(block) + 1)
            out += block
            block.clear()
        else:
            block.append(byte)
            if len(block) == 254:
                out.append(255)
                out += block
                block.clear()
    out.append(len(block) + 1)
    out += block
    return bytes(out)


def cobs_decode(data: bytes) -> bytes:
    out = bytearray()
    i, n = 0, len(data)
    while i < n:
        code = data[i]
        end = i + code
        if code == 0 or end > n:
            raise FrameError("bad_cobs", f"block code {code} at byte {i} of {n}")
        out += data[i + 1:end]
        i = end
        if code != 255 and i < n:
            out.append(0)
    return bytes(out)


def serial_wrap(frame_bytes: bytes) -> bytes:
    return cobs_encode(frame_bytes + struct.pack("<H", crc16(frame_bytes))) + b"\x00"


class SerialDeframer:
    """Splits a serial byte stream into checked frames. Feed any chunks; get frame bytes back.

    Corrupt or truncated packets are dropped and counted in `errors` by reason. A packet longer than
    `max_packet` without a delimiter (noise, wrong baud) is discarded so memory stays bounded."""

    def __init__(self, max_packet: int = 4096):
        self._buf = bytearray()
        self.max_packet = max_packet
        self.errors: Counter[str] = Counter()
        self._synced = False  # the first packet after opening a port may be a tail: don't count it

    def feed(self, chunk: bytes) -> list[bytes]:
        frames = []
        self._buf += chunk
        while True:
            end = self._buf.find(0)
            if end < 0:
                if len(self._buf) > self.max_packet:
                    self._error("oversize", f"{len(self._buf)} bytes without a delimiter")
                    self._buf.clear()
                return frames
            packet = bytes(self._buf[:end])
            del self._buf[:end + 1]
            if not packet:
                continue
            synced, self._synced = self._synced, True
            try:
                raw = cobs_decode(packet)
                if len(raw) < 3:
                    raise FrameError("truncated", f"{len(raw)} bytes")
                body, crc = raw[:-2], struct.unpack("<H", raw[-2:])[0]
                if crc16(body) != crc:
                    raise FrameError("bad_crc")
            except FrameError as e:
                if synced:
                    self._error(e.reason, str(e))
                continue
            frames.append(body)

    def _error(self, reason: str, detail: str) -> None:
        self.errors[reason] += 1
        log.warning("serial: dropped a packet (%s)", detail)


# ---- physical samples ----

@dataclass
class SampleBatch:
    """Consecutive samples in physical units. Row i: sequence seq + i, device time t_device_us[i].
    acc_g and gyr_dps are in the sensor frame (see docs/conventions.md)."""
    seq: int
    t_device_us: np.ndarray  # (n,) int64, device clock
    acc_g: np.ndarray        # (n, 3) float64, g
    gyr_dps: np.ndarray      # (n, 3) float64, deg/s
    t_host_s: float          # host monotonic receive time of the frame (time.monotonic())
    lost_before: int = 0     # samples missing between the previous batch and this one
    # set on the first batch after the sensor's numbering and/or clock started over (a reboot): the
    # `sensor_restarted` event's fields. Nothing before it is missing: a new segment begins here.
    restarted: dict | None = None


@dataclass
class _Held:
    """A DATA frame that agrees neither with the stream so far nor (yet) with anything else."""
    frame: DataFrame
    batch: SampleBatch
    expected_seq: int | None
    expected_t_us: float | None


@dataclass
class SampleDecoder:
    """Stateful: frames in, SampleBatch out, with counts of everything that was skipped.

    Every DATA frame is checked against the stream so far: its timestamp must agree with its
    sequence number (`TIME_SLACK_*`). A frame that disagrees is held back and counted as
    `time_mismatch`; if the next frame continues *it* (sequence and time together), the sensor
    restarted its numbering or its clock: both are passed on as one batch with `restarted` set (and
    the count taken back). Otherwise the held frame stays dropped. So one damaged frame costs its
    own samples, and a restart costs none."""
    info: InfoFrame | None = None
    errors: Counter = field(default_factory=Counter)
    next_seq: int | None = None
    next_t_us: float | None = None   # device time the sample `next_seq` is due at
    samples: int = 0
    lost_samples: int = 0
    restarts: int = 0
    stopped: bool = False  # the device said it stopped streaming (end of the scenario / set)
    _held: _Held | None = None
    fault: int = 0         # the latest fault code the device reported (0: none)

    def feed(self, frame_bytes: bytes, t_host_s: float) -> SampleBatch | None:
        try:
            frame = decode_frame(frame_bytes)
        except FrameError as e:
            self.errors[e.reason] += 1
            log.warning("skipped a frame: %s", e)
            return None
        if isinstance(frame, InfoFrame):
            self.info = frame
            return None
        if isinstance(frame, Fault):
            self.fault = frame.code
            return None
        if isinstance(frame, Command):
            if frame.type == FrameType.CMD_STOP:
                self.stopped = True
            else:
                self.errors["unexpected_command"] += 1
            return None
        if self.info is None:
            self.errors["no_info_yet"] += 1
            return None
        batch = self.convert(frame, t_host_s)
        if batch is not None:
            self.fault = 0  # samples again: the chip answered a retry
        return batch

    def restart(self) -> None:
        """The link says the sensor started over: take the next frame as a fresh start."""
        self.next_seq = self.next_t_us = None
        self._held = None

    def _agrees(self, seq_ref: int, t_ref_us: float, seq: int, t_us: int, period_us: float) -> bool:
        k = (seq - seq_ref + SEQ_MODULO // 2) % SEQ_MODULO - SEQ_MODULO // 2  # samples after ref, signed
        dt = k * period_us
        slack = TIME_SLACK_US + TIME_SLACK_PERIODS * period_us + TIME_SLACK_FRACTION * abs(dt)
        return abs(t_us - (t_ref_us + dt)) <= slack

    def _physical(self, frame: DataFrame, skip: int, t_host_s: float, lost: int) -> SampleBatch:
        info = self.info
        n = len(frame.acc_raw)
        period_us = 1e6 / info.rate_hz
        t = frame.t_device_us + np.round(np.arange(skip, n) * period_us).astype(np.int64)
        return SampleBatch((frame.seq + skip) % SEQ_MODULO, t,
                           frame.acc_raw[skip:] * float(info.acc_g_per_lsb),
                           frame.gyr_raw[skip:] * float(info.gyr_dps_per_lsb), t_host_s, lost)

    def _advance(self, frame: DataFrame, n: int) -> None:
        period_us = 1e6 / self.info.rate_hz
        self.next_seq = (frame.seq + n) % SEQ_MODULO
        self.next_t_us = frame.t_device_us + n * period_us

    def convert(self, frame: DataFrame, t_host_s: float) -> SampleBatch | None:
        n = len(frame.acc_raw)
        if frame.t_device_us > T_DEVICE_MAX_US:
            self.errors["bad_timestamp"] += 1
            log.warning("skipped a frame: bad_timestamp: t_device_us %d", frame.t_device_us)
            return None
        period_us = 1e6 / self.info.rate_hz
        if self.next_seq is None:  # the first frame, or a start the link announced
            self._advance(frame, n)
            self.samples += n
            return self._physical(frame, 0, t_host_s, 0)
        if not self._agrees(self.next_seq, self.next_t_us, frame.seq, frame.t_device_us, period_us):
            return self._hold_or_restart(frame, n, period_us, t_host_s)
        self._held = None  # a held frame before this one was damaged: it stays counted and dropped
        lost = 0
        skip = 0
        ahead = (frame.seq - self.next_seq) % SEQ_MODULO
        if ahead >= SEQ_MODULO // 2:  # starts behind us: a repeat, or a resent frame overlapping
            skip = SEQ_MODULO - ahead
            if skip >= n:
                self.errors["stale"] += 1
                return None
        else:
            lost = ahead
        self._advance(frame, n)
        self.lost_samples += lost
        self.samples += n - skip
        return self._physical(frame, skip, t_host_s, lost)

    def _hold_or_restart(self, frame: DataFrame, n: int, period_us: float,
                         t_host_s: float) -> SampleBatch | None:
        held = self._held
        if held is not None:
            h = held.frame
            h_period_us = 1e6 / self.info.rate_hz
            h_n = len(h.acc_raw)
            if (frame.seq - h.seq) % SEQ_MODULO == h_n and self._agrees(
                    (h.seq + h_n) % SEQ_MODULO, h.t_device_us + h_n * h_period_us,
                    frame.seq, frame.t_device_us, period_us):
                # two frames agree with each other and not with the past: the sensor started over
                self._held = None
                self._uncount("time_mismatch")
                self.restarts += 1
                this = self._physical(frame, 0, t_host_s, 0)
                b = held.batch
                # the two agree within the slack, which can put this frame's first stamp at or before
                # the held frame's last: no sample may share or go back in time within a batch
                on_time = b.t_device_us[-1] + np.round(np.arange(1, n + 1) * period_us).astype(np.int64)
                t_this = np.maximum(this.t_device_us, on_time) if this.t_device_us[0] <= b.t_device_us[-1] \
                    else this.t_device_us
                self._advance(frame, n)
                self.samples += h_n + n
                return SampleBatch(b.seq, np.concatenate([b.t_device_us, t_this]),
                                   np.concatenate([b.acc_g, this.acc_g]),
                                   np.concatenate([b.gyr_dps, this.gyr_dps]), b.t_host_s, 0,
                                   restarted={"expected_seq": held.expected_seq, "got_seq": h.seq,
                                              "clock_jump_s": round((h.t_device_us - held.expected_t_us)
                                                                    * 1e-6, 6)})
            log.warning("skipped a frame: time_mismatch: seq %d at %d us", h.seq, h.t_device_us)
        self.errors["time_mismatch"] += 1  # taken back if the next frame shows a restart
        self._held = _Held(frame, self._physical(frame, 0, t_host_s, 0), self.next_seq, self.next_t_us)
        return None

    def _uncount(self, reason: str) -> None:
        self.errors[reason] -= 1
        if self.errors[reason] <= 0:
            del self.errors[reason]
