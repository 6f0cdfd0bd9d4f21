"""Movesense with the `gatt_sensordata_app` firmware: the GATT SensorData Protocol (GSP) for IMU6.

Sources:
- Movesense "GATT SensorData Protocol specification" (document GD-77, version 1.0, as republished
  at movesense.com/docs/esw/gatt_sensordata_protocol): service 34802252-7185-4d5d-b431-630e7050e8f0,
  write characteristic 34800001-..., notify characteristic 34800002-... (same 128-bit root).
- movesense-device-lib, samples/gatt_sensordata_app/GATTSensorDataClient.cpp: commands are
  [command, client reference (not 0), data]: HELLO = 0, SUBSCRIBE = 1 (data = resource path as a
  string, no terminator), UNSUBSCRIBE = 2 (reference of the subscription); notifications are
  [response type, reference, ...]: COMMAND_RESULT = 1 followed by a u16 HTTP status (or "Hello"
  for HELLO), DATA = 2 followed by the SBEM-serialised resource value. Newer firmware splits long
  values over DATA and DATA_PART2 = 3 (continuation with the same reference).
- movesense-device-lib, MovesenseCoreLib/resources/movesense-api/meas/imu.yaml: /Meas/IMU6/{rate}
  (13, 26, 52, 104, 208, 416, 833, 1666 Hz) gives IMU6Data = Timestamp (u32, ms, "local timestamp
  of first measurement"), ArrayAcc (FloatVector3D, m/s^2) and ArrayGyro (FloatVector3D, deg/s). SBEM
  writes the struct's members in order and arrays without a length, so a DATA notification is
  type (1) + reference (1) + timestamp (4) + n x acc (12) + n x gyr (12), little-endian float32;
  n = (length - 6) / 24.

Not checkable here without a real sensor: the axes printed on the case, how many samples real
firmware packs per notification at each rate (the decoder takes n from the length), and the real
clock's accuracy (timestamps are whole milliseconds: sample times within a notification come from
the rate). The u32 millisecond timestamp wraps after 49.7 days.
"""
from __future__ import annotations

import logging
import struct
from collections import Counter

import uuid as uuid_mod

import numpy as np

from host.protocol import gatt
from host.devices.base import G_MS2, BatchMaker, Bridge, DeviceClock

log = logging.getLogger(__name__)

KIND = "movesense"
LABEL = "Movesense"
MANUFACTURER = "Movesense"
MODEL = "Movesense (gatt_sensordata_app)"

SERVICE_UUID = "34802252-7185-4d5d-b431-630e7050e8f0"
WRITE_UUID = "34800001-7185-4d5d-b431-630e7050e8f0"
NOTIFY_UUID = "34800002-7185-4d5d-b431-630e7050e8f0"
NOTIFY_UUIDS = (NOTIFY_UUID,)
BATTERY_UUID = None           # gatt_sensordata_app has no battery characteristic (GSP /System/Energy instead)
ADV_NAME_PREFIX = "Movesense"

CMD_HELLO, CMD_SUBSCRIBE, CMD_UNSUBSCRIBE = 0, 1, 2
RESP_COMMAND_RESULT, RESP_DATA, RESP_DATA_PART2 = 1, 2, 3
IMU_REF = 99                  # our client reference for the IMU6 subscription (any 1..255)
RATES_HZ = (13, 26, 52, 104, 208, 416, 833, 1666)
DEFAULT_RATE_HZ = 104
TIMESTAMP_MODULO = 1 << 32    # milliseconds
_HEAD = struct.Struct("<BBI")  # response type, reference, timestamp ms
_SAMPLE_BYTES = 24             # acc xyz + gyr xyz, float32


def advertises(name: str | None, service_uuids, manufacturer_data) -> bool:
    return SERVICE_UUID in (service_uuids or ()) or (name or "").startswith(ADV_NAME_PREFIX)


def imu6_path(rate_hz: int) -> str:
    if rate_hz not in RATES_HZ:
        raise ValueError(f"Movesense IMU6 runs at {', '.join(map(str, RATES_HZ))} Hz, not {rate_hz}")
    return f"/Meas/IMU6/{rate_hz}"


def subscribe(path: str, ref: int = IMU_REF) -> bytes:
    return bytes([CMD_SUBSCRIBE, ref]) + path.encode("ascii")


def unsubscribe(ref: int = IMU_REF) -> bytes:
    return bytes([CMD_UNSUBSCRIBE, ref])


def hello(ref: int = IMU_REF) -> bytes:
    return bytes([CMD_HELLO, ref])


def start_writes(rate_hz: int) -> list[tuple[str, bytes]]:
    return [(WRITE_UUID, subscribe(imu6_path(rate_hz)))]


def stop_writes() -> list[tuple[str, bytes]]:
    return [(WRITE_UUID, unsubscribe())]


def min_mtu(rate_hz: int) -> int:
    """The ATT MTU a link needs: one IMU6 sample per DATA notification at least."""
    return 3 + _HEAD.size + _SAMPLE_BYTES


def samples_per_notification(att_mtu: int, wanted: int = 8) -> int:
    """How many IMU6 samples fit one DATA notification on this link (0: not even one)."""
    return max(0, min(wanted, (att_mtu - 3 - _HEAD.size) // _SAMPLE_BYTES))


def advertising_data() -> bytes:
    """ADV_IND payload of a Movesense running gatt_sensordata_app: flags and the GSP service UUID."""
    return (gatt.ad_field(gatt.AD_FLAGS, bytes([gatt.FLAGS_LE_GENERAL_NO_BREDR]))
            + gatt.ad_field(gatt.AD_UUID128_COMPLETE, uuid_mod.UUID(SERVICE_UUID).bytes[::-1]))


def scan_response_data(name: str) -> bytes:
    return gatt.ad_field(gatt.AD_COMPLETE_NAME, name.encode())


def encode_imu6(ref: int, t_ms: int, acc_ms2: np.ndarray, gyr_dps: np.ndarray) -> bytes:
    """One DATA notification of IMU6Data (n samples)."""
    acc = np.asarray(acc_ms2, "<f4").reshape(-1, 3)
    gyr = np.asarray(gyr_dps, "<f4").reshape(-1, 3)
    return _HEAD.pack(RESP_DATA, ref, t_ms % TIMESTAMP_MODULO) + acc.tobytes() + gyr.tobytes()


def command_result(ref: int, status: int) -> bytes:
    return struct.pack("<BBH", RESP_COMMAND_RESULT, ref, status)


class Decoder:
    """GSP notifications -> hiplevel v1 frames (see host.devices.base). Kept across reconnects:
    the sensor's clock runs on, so the samples missed while the link was down count as lost."""

    def __init__(self, rate_hz: int = DEFAULT_RATE_HZ, ref: int = IMU_REF):
        self.rate_hz = rate_hz
        self.ref = ref
        self.clock = DeviceClock(TIMESTAMP_MODULO)
        self.batches = BatchMaker(rate_hz)
        self.bridge = Bridge()
        self.errors: Counter[str] = Counter()
        self.refused: int | None = None   # HTTP status of a refused subscription
        self._pending: bytes | None = None  # a DATA value waiting for its DATA_PART2

    def batch(self, value: bytes, t_host_s: float):
        """One complete IMU6 value (timestamp + arrays, without type and reference)."""
        body = len(value) - 4
        if body <= 0 or body % _SAMPLE_BYTES:
            self.errors["bad_length"] += 1
            log.warning("Movesense: skipped a %d-byte IMU6 value (4 + n x 24 expected)", len(value))
            return None
        n = body // _SAMPLE_BYTES
        t_ms = struct.unpack_from("<I", value)[0]
        floats = np.frombuffer(value, "<f4", offset=4).astype(np.float64)
        if not np.all(np.isfinite(floats)):
            self.errors["not_a_number"] += 1
            return None
        acc_g = floats[:3 * n].reshape(n, 3) / G_MS2
        gyr_dps = floats[3 * n:].reshape(n, 3)
        t_us = self.clock.unwrap(t_ms) * 1000
        b = self.batches.make(t_us, acc_g, gyr_dps, t_host_s)
        if b is None:
            self.errors["time_went_back"] += 1
        return b

    def feed(self, char_uuid: str, data: bytes, t_host_s: float) -> list[bytes]:
        data = bytes(data)
        if len(data) < 2:
            self.errors["truncated"] += 1
            return []
        kind, ref = data[0], data[1]
        if ref != self.ref:
            self.errors["other_reference"] += 1
            return []
        if kind == RESP_COMMAND_RESULT:
            if len(data) >= 4:
                status = struct.unpack_from("<H", data, 2)[0]
                if status >= 400:
                    self.refused = status
                    log.warning("Movesense refused the IMU6 subscription (status %d)", status)
            return []
        if kind == RESP_DATA:
            if self._pending is not None:
                self.errors["incomplete"] += 1  # a first part whose continuation never came
            self._pending = None
            value = data[2:]
            if (len(value) - 4) % _SAMPLE_BYTES:
                self._pending = value  # the rest follows in DATA_PART2
                return []
        elif kind == RESP_DATA_PART2:
            if self._pending is None:
                self.errors["orphan_part"] += 1
                return []
            value, self._pending = self._pending + data[2:], None
        else:
            self.errors["unknown_type"] += 1
            return []
        b = self.batch(value, t_host_s)
        return [] if b is None else self.bridge.frames(b, self.rate_hz)
