"""What every third-party sensor driver shares: device-time unwrapping, sequence numbers from
device time, and the bridge into hiplevel's own frames.

In: one sensor's notifications, already parsed by its driver module into (first sample's raw
device timestamp, acc_g (n, 3), gyr_dps (n, 3)). Out: `SampleBatch`es (host.protocol.frames) with a
sequence number per sample, unwrapped device time in microseconds and `lost_before` counting the
samples of lost notifications; and, for the session, the same samples as hiplevel v1 frames (an info
frame first, then data frames) so everything after the link - decoder, pipeline, recorder, replay -
is identical whatever the sensor.

Third-party sensors number nothing: a sample's place in the stream comes from its timestamp. The
expected time of the next notification is re-anchored on every notification, so a sensor clock
that runs a little off its nominal rate never shows up as phantom gaps; a step of at least half a
sample period more than expected counts as lost samples.

Bridging quantises to int16 at 16 g and 2000 deg/s full scale (0.49 mg and 0.061 deg/s per count,
below these sensors' noise); values beyond full scale are clipped and counted as `clipped`.
"""
from __future__ import annotations

import logging
import numpy as np

import struct

from host.protocol.frames import PROTOCOL_VERSION, SEQ_MODULO, FrameType, SampleBatch

# The v1 layouts (docs/protocol.md). The host's own encoder makes only commands (sensor frames come
# from hiplevel's firmware core); for a third-party sensor the bridge stands where that firmware
# would, so it writes these two layouts itself. tests/devices decode them with the host's decoder.
_DATA_HEAD = struct.Struct("<BBIQB")       # version, type, seq, t_device_us, n; then n x 6 int16
_INFO = struct.Struct("<BBHHHffBBBB")      # version, type, rate, ranges, scales, fw x3, spf

log = logging.getLogger(__name__)

G_MS2 = 9.80665  # m/s^2 per g (docs/conventions.md)

BRIDGE_ACC_RANGE_G = 16
BRIDGE_GYR_RANGE_DPS = 2000
BRIDGE_ACC_G_PER_LSB = BRIDGE_ACC_RANGE_G / 32768.0
BRIDGE_GYR_DPS_PER_LSB = BRIDGE_GYR_RANGE_DPS / 32768.0


class DeviceClock:
    """A wrapping unsigned counter (u32 microseconds, u32 milliseconds) -> a count that keeps
    increasing. A step back of less than half the range is a step back (returned as such, the
    caller decides); anything else is a wrap."""

    def __init__(self, modulo: int):
        self.modulo = modulo
        self._last_raw: int | None = None
        self._total = 0
        self.wraps = 0

    def unwrap(self, raw: int) -> int:
        if self._last_raw is None:
            self._total = raw
        else:
            step = (raw - self._last_raw) % self.modulo
            if step >= self.modulo // 2:
                step -= self.modulo
            elif raw < self._last_raw:
                self.wraps += 1
            self._total += step
        self._last_raw = raw
        return self._total

    def reset(self) -> None:
        self._last_raw = None


class BatchMaker:
    """Turns (device time of the first sample, samples) into SampleBatches with sequence numbers,
    counting lost samples from the device-time gaps. Rate in Hz, device time in microseconds."""

    def __init__(self, rate_hz: float):
        self.rate_hz = float(rate_hz)
        self.next_seq = 0
        self._next_t_us: float | None = None
        self.samples = 0
        self.lost_samples = 0

    def make(self, t_first_us: int, acc_g: np.ndarray, gyr_dps: np.ndarray,
             t_host_s: float) -> SampleBatch | None:
        n = len(acc_g)
        period_us = 1e6 / self.rate_hz
        lost = 0
        if self._next_t_us is not None:
            ahead = (t_first_us - self._next_t_us) / period_us  # in samples
            if ahead < -0.5 * n - 0.5:
                # earlier than what we already have: a repeat, or the sensor restarted its clock
                log.warning("a notification's time went back %.0f samples: skipped", -ahead)
                return None
            lost = max(0, int(round(ahead)))
        seq = self.next_seq + lost
        self.next_seq = seq + n
        self._next_t_us = t_first_us + n * period_us
        self.samples += n
        self.lost_samples += lost
        t = t_first_us + np.round(np.arange(n) * period_us).astype(np.int64)
        return SampleBatch(seq % SEQ_MODULO, t, np.asarray(acc_g, float), np.asarray(gyr_dps, float),
                           t_host_s, lost)


class Bridge:
    """SampleBatches -> hiplevel v1 frame bytes: an info frame before the first data frame (and
    again if the rate changes), then one data frame per batch."""

    def __init__(self, fw_version: tuple[int, int, int] = (0, 0, 0)):
        self.fw_version = fw_version
        self._rate_sent: int | None = None
        self.clipped = 0

    def info(self, rate_hz: int, samples_per_frame: int) -> bytes:
        return _INFO.pack(PROTOCOL_VERSION, FrameType.INFO, int(rate_hz), BRIDGE_ACC_RANGE_G,
                          BRIDGE_GYR_RANGE_DPS, BRIDGE_ACC_G_PER_LSB, BRIDGE_GYR_DPS_PER_LSB,
                          *self.fw_version, max(1, min(255, samples_per_frame)))

    def frames(self, batch: SampleBatch, rate_hz: int) -> list[bytes]:
        out = []
        if self._rate_sent != int(rate_hz):
            self._rate_sent = int(rate_hz)
            out.append(self.info(rate_hz, len(batch.acc_g)))
        acc = np.round(batch.acc_g / BRIDGE_ACC_G_PER_LSB)
        gyr = np.round(batch.gyr_dps / BRIDGE_GYR_DPS_PER_LSB)
        over = int(np.count_nonzero((np.abs(acc) > 32767).any(axis=1) |
                                    (np.abs(gyr) > 32767).any(axis=1)))
        if over:
            self.clipped += over
        acc_raw = np.clip(acc, -32768, 32767).astype(np.int16)
        gyr_raw = np.clip(gyr, -32768, 32767).astype(np.int16)
        n = len(acc_raw)
        body = np.concatenate([acc_raw, gyr_raw], axis=1).astype("<i2").tobytes()
        out.append(_DATA_HEAD.pack(PROTOCOL_VERSION, FrameType.DATA, batch.seq % SEQ_MODULO,
                                   int(batch.t_device_us[0]), n) + body)
        return out

    @staticmethod
    def stop() -> bytes:
        """The sensor said it ended (switched off): the session ends like after a hiplevel STOP."""
        return struct.pack("<BB", PROTOCOL_VERSION, FrameType.CMD_STOP)
