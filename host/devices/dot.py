"""Movella (formerly Xsens) DOT over BLE: UUIDs, commands and the "rate quantities" decoder.

Source: Movella "Movella DOT BLE Service Specification", document XD0506P, revision C (July 2023).
Sections used (and nothing else):
- 1.1 base UUID 1517xxxx-4947-11E9-8646-D663BD873D93; Table 2 services (configuration 0x1000,
  measurement 0x2000, battery 0x3000); 1.2 advertising: company identifier 2182 (0x0886) and the
  device name "Movella DOT" (Table 4: "Xsens DOT" on firmware before 2.x); 1.3 all little-endian.
- 2.2 Table 7, device control 0x1002 (32 bytes, read/write): visit index (b4 = output rate),
  identifying, power options, 4 power-saving bytes, tag length, tag (16), output rate u16 at byte 24,
  filter profile, 5 reserved. Rates 1, 4, 10, 12, 15, 20, 30, 60 Hz for live streaming.
- 2.3.1 Table 9, device report 0x1004 (notify, 36 bytes): type 1 = the sensor is powering off.
- 3.1 Table 13, measurement control 0x2001 (3 bytes): type 1 (measurement), action 1 start /
  0 stop, payload mode; mode 21 = "Rate quantities". Enable notification on the payload
  characteristic before writing start; stop first, then disable notification (3.8).
- 3.3 Table 15, medium payload 0x2003 (notify, 40 bytes): Rate quantities = timestamp (4), then
  acceleration (12) and angular velocity (12); trailing unused bytes 0x00.
- 3.5 Table 17: timestamp u32 microseconds (so it wraps after 2^32 us, about 71.6 min);
  acceleration "calibrated acceleration in sensor coordinate, m/s^2", angular velocity "rate of
  turn in sensor coordinate, dps", x y z float32 (IEEE-754).
- 4.1 Table 21, battery 0x3001 (read/notify, 2 bytes): level %, charging 0/1.

Not checkable here without a real DOT: the axes printed on the case against docs/conventions.md
(the sensor frame is used as is), whether real firmware notifies all 40 bytes or only 28, and the
real clock's accuracy. One sample per notification (rate quantities carry one timestamp and one
sample).
"""
from __future__ import annotations

import logging
import struct
from collections import Counter

import numpy as np

from host.protocol import gatt
from host.devices.base import G_MS2, BatchMaker, Bridge, DeviceClock

log = logging.getLogger(__name__)

KIND = "dot"
LABEL = "Movella DOT"
MANUFACTURER = "Movella"
MODEL = "DOT"
COMPANY_ID = 0x0886           # 2182, Movella Technologies B.V. (spec 1.2, Table 3)
ADV_NAMES = ("Movella DOT", "Xsens DOT")


def uuid(short: int) -> str:
    return f"1517{short:04x}-4947-11e9-8646-d663bd873d93"


CONFIG_SERVICE_UUID = uuid(0x1000)
DEVICE_INFO_UUID = uuid(0x1001)
DEVICE_CONTROL_UUID = uuid(0x1002)
DEVICE_REPORT_UUID = uuid(0x1004)
MEASUREMENT_SERVICE_UUID = uuid(0x2000)
CONTROL_UUID = uuid(0x2001)
LONG_PAYLOAD_UUID = uuid(0x2002)
MEDIUM_PAYLOAD_UUID = uuid(0x2003)
SHORT_PAYLOAD_UUID = uuid(0x2004)
BATTERY_SERVICE_UUID = uuid(0x3000)
BATTERY_UUID = uuid(0x3001)
SERVICE_UUID = MEASUREMENT_SERVICE_UUID  # the service that tells a DOT from other sensors

PAYLOAD_RATE_QUANTITIES = 21
CONTROL_TYPE_MEASUREMENT = 1
ACTION_STOP, ACTION_START = 0, 1
REPORT_POWER_OFF = 1
VISIT_OUTPUT_RATE = 0x10       # device control visit index, b4
DEVICE_CONTROL_LEN = 32
MEDIUM_PAYLOAD_LEN = 40
RATES_HZ = (1, 4, 10, 12, 15, 20, 30, 60)  # Table 7 (120 Hz is for recording only)
DEFAULT_RATE_HZ = 60
TIMESTAMP_MODULO = 1 << 32    # microseconds

_RATE_QUANTITIES = struct.Struct("<I3f3f")   # 28 bytes
_CONTROL = struct.Struct("<BBB")
_DEVICE_CONTROL = struct.Struct("<BBBBBBBB16sHB5s")
assert _DEVICE_CONTROL.size == DEVICE_CONTROL_LEN


def advertises(name: str | None, service_uuids, manufacturer_data) -> bool:
    """Does this advertisement come from a DOT? (company id, else the advertised name)."""
    return (COMPANY_ID in (manufacturer_data or {})) or (name or "") in ADV_NAMES \
        or MEASUREMENT_SERVICE_UUID in (service_uuids or ())


def control(action: int, payload_mode: int = PAYLOAD_RATE_QUANTITIES) -> bytes:
    return _CONTROL.pack(CONTROL_TYPE_MEASUREMENT, action, payload_mode)


def set_output_rate(rate_hz: int) -> bytes:
    """A device-control write that changes only the output rate (visit index b4)."""
    if rate_hz not in RATES_HZ:
        raise ValueError(f"a Movella DOT streams at {', '.join(map(str, RATES_HZ))} Hz, not {rate_hz}")
    return _DEVICE_CONTROL.pack(VISIT_OUTPUT_RATE, 0, 0, 0, 0, 0, 0, 0, b"\x00" * 16, rate_hz, 0,
                                b"\x00" * 5)


def parse_device_control(data: bytes) -> dict:
    (visit, identify, power, x_min, x_s, y_min, y_s, tag_len, tag, rate, profile,
     _reserved) = _DEVICE_CONTROL.unpack(bytes(data))
    return {"visit": visit, "identify": identify, "power": power, "tag": tag[:tag_len],
            "output_rate_hz": rate, "filter_profile": profile,
            "power_saving": (x_min, x_s, y_min, y_s)}


def device_control_value(tag: str, rate_hz: int, filter_profile: int = 0) -> bytes:
    """The 32-byte value a DOT returns when device control is read (defaults of Table 7)."""
    raw = tag.encode()[:16]
    return _DEVICE_CONTROL.pack(0, 0, 0, 10, 0, 30, 0, len(raw), raw.ljust(16, b"\x00"), rate_hz,
                                filter_profile, b"\x00" * 5)


def encode_rate_quantities(t_us: int, acc_ms2, gyr_dps) -> bytes:
    """One medium-payload notification in mode 21, padded with 0x00 to the characteristic's 40 bytes."""
    body = _RATE_QUANTITIES.pack(t_us % TIMESTAMP_MODULO, *map(float, acc_ms2), *map(float, gyr_dps))
    return body.ljust(MEDIUM_PAYLOAD_LEN, b"\x00")


def power_off_report() -> bytes:
    return bytes([REPORT_POWER_OFF]).ljust(36, b"\x00")


def start_writes(rate_hz: int) -> list[tuple[str, bytes]]:
    """Writes that start streaming, after notifications on the payload are enabled (spec 3.8)."""
    return [(DEVICE_CONTROL_UUID, set_output_rate(rate_hz)),
            (CONTROL_UUID, control(ACTION_START))]


def stop_writes() -> list[tuple[str, bytes]]:
    return [(CONTROL_UUID, control(ACTION_STOP))]


NOTIFY_UUIDS = (MEDIUM_PAYLOAD_UUID, DEVICE_REPORT_UUID)


def min_mtu(rate_hz: int) -> int:
    """The ATT MTU a link needs: a whole medium payload (40 bytes) per notification."""
    return MEDIUM_PAYLOAD_LEN + 3


def advertising_data() -> bytes:
    """ADV_IND payload of a DOT (1.2): flags and Movella's company identifier as manufacturer data."""
    return (gatt.ad_field(gatt.AD_FLAGS, bytes([gatt.FLAGS_LE_GENERAL_NO_BREDR]))
            + gatt.ad_field(gatt.AD_MANUFACTURER, struct.pack("<H", COMPANY_ID)))


def scan_response_data() -> bytes:
    return gatt.ad_field(gatt.AD_COMPLETE_NAME, ADV_NAMES[0].encode())


class Decoder:
    """DOT notifications -> hiplevel v1 frames (see host.devices.base). `errors` counts what was
    skipped by reason. Kept across reconnects: the DOT's clock runs on, so numbering continues
    and the samples missed while the link was down are counted as lost."""

    def __init__(self, rate_hz: int = DEFAULT_RATE_HZ):
        self.rate_hz = rate_hz
        self.clock = DeviceClock(TIMESTAMP_MODULO)
        self.batches = BatchMaker(rate_hz)
        self.bridge = Bridge()
        self.errors: Counter[str] = Counter()
        self.powered_off = False

    def batch(self, data: bytes, t_host_s: float):
        """One medium-payload notification -> SampleBatch (None, counted, if unusable)."""
        if len(data) < _RATE_QUANTITIES.size or len(data) > MEDIUM_PAYLOAD_LEN:
            self.errors["bad_length"] += 1
            log.warning("DOT: skipped a %d-byte notification (rate quantities are 28 bytes, "
                        "padded to at most 40)", len(data))
            return None
        t_raw, ax, ay, az, gx, gy, gz = _RATE_QUANTITIES.unpack_from(data)
        values = (ax, ay, az, gx, gy, gz)
        if not all(np.isfinite(values)):
            self.errors["not_a_number"] += 1
            return None
        t_us = self.clock.unwrap(t_raw)
        acc_g = np.array([[ax, ay, az]]) / G_MS2
        gyr_dps = np.array([[gx, gy, gz]])
        b = self.batches.make(t_us, acc_g, gyr_dps, t_host_s)
        if b is None:
            self.errors["time_went_back"] += 1
        return b

    def feed(self, char_uuid: str, data: bytes, t_host_s: float) -> list[bytes]:
        char_uuid = str(char_uuid).lower()
        if char_uuid == MEDIUM_PAYLOAD_UUID:
            b = self.batch(bytes(data), t_host_s)
            return [] if b is None else self.bridge.frames(b, self.rate_hz)
        if char_uuid == DEVICE_REPORT_UUID and data and data[0] == REPORT_POWER_OFF:
            self.powered_off = True
            return [self.bridge.stop()]
        return []
