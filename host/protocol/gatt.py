"""The hiplevel sensor's BLE GATT profile: UUIDs, sizes and advertising layout (docs/protocol.md).

Shared by the host (host.links.ble) and the simulated sensor (firmware_sim.link_ble) so both sides always
agree. Pure constants and byte builders/parsers, no I/O.

Services:
- hiplevel service (custom 128-bit): `data` (notify: v1 data/info frames, device -> host),
  `control` (write with response: v1 command frames, host -> device), `info` (read: the current
  v1 info frame).
- Battery Service 0x180F (Battery Level 0x2A19, read + notify) and Device Information 0x180A.

Advertising (legacy PDUs, 31 bytes each): ADV_IND carries flags, our 128-bit service UUID and the
battery level as 16-bit service data; the scan response carries the complete local name.
"""
from __future__ import annotations

import struct
import uuid

from host.protocol.frames import max_samples_per_frame

SERVICE_UUID = "4f8a0001-1c2e-4b7d-9a61-3e5c7b2d9f10"
DATA_CHAR_UUID = "4f8a0002-1c2e-4b7d-9a61-3e5c7b2d9f10"
CONTROL_CHAR_UUID = "4f8a0003-1c2e-4b7d-9a61-3e5c7b2d9f10"
INFO_CHAR_UUID = "4f8a0004-1c2e-4b7d-9a61-3e5c7b2d9f10"


def uuid16(short: int) -> str:
    """A Bluetooth SIG 16-bit UUID in the 128-bit string form bleak uses."""
    return f"0000{short:04x}-0000-1000-8000-00805f9b34fb"


BATTERY_SERVICE_UUID = uuid16(0x180F)
BATTERY_LEVEL_UUID = uuid16(0x2A19)
DEVICE_INFO_SERVICE_UUID = uuid16(0x180A)
MANUFACTURER_NAME_UUID = uuid16(0x2A29)
MODEL_NUMBER_UUID = uuid16(0x2A24)
SERIAL_NUMBER_UUID = uuid16(0x2A25)
FIRMWARE_REVISION_UUID = uuid16(0x2A26)

NAME_PREFIX = "hiplevel"
ATT_DEFAULT_MTU = 23       # every link starts here; a notification carries at most MTU - 3 bytes
PREFERRED_MTU = 247        # what the host asks for: 19 samples per frame would fit
MIN_STREAM_MTU = 3 + max(20, 15 + 12)  # info frame (20 B) and a 1-sample data frame (27 B) must fit
ADV_INTERVAL_MS = 100.0    # a connection request waits for the next advertisement

_AD_FLAGS = 0x01
_AD_UUID128_COMPLETE = 0x07
_AD_UUID128_INCOMPLETE = 0x06
_AD_UUID16_COMPLETE = 0x03
_AD_UUID16_INCOMPLETE = 0x02
_AD_SHORT_NAME = 0x08
_AD_COMPLETE_NAME = 0x09
_AD_TX_POWER = 0x0A
_AD_SERVICE_DATA16 = 0x16
_AD_MANUFACTURER = 0xFF
_FLAGS_LE_GENERAL_NO_BREDR = 0x06
LEGACY_AD_MAX = 31


def samples_per_frame_for_mtu(att_mtu: int, wanted: int) -> int:
    """How many samples a data frame may carry on a link with this ATT MTU (0: the link cannot
    stream at all). Notifications longer than MTU - 3 would be cut silently, so never exceed it."""
    return min(wanted, max_samples_per_frame(att_mtu - 3))


def ad_field(ad_type: int, payload: bytes) -> bytes:
    """One advertising data structure: length, type, payload (Core spec Vol 3 Part C 11)."""
    return bytes([len(payload) + 1, ad_type]) + payload


_ad = ad_field
AD_FLAGS, AD_UUID128_COMPLETE, AD_COMPLETE_NAME, AD_MANUFACTURER = (_AD_FLAGS, _AD_UUID128_COMPLETE,
                                                                    _AD_COMPLETE_NAME, _AD_MANUFACTURER)
FLAGS_LE_GENERAL_NO_BREDR = _FLAGS_LE_GENERAL_NO_BREDR


def advertising_data(battery_pct: int | None) -> bytes:
    """ADV_IND payload: flags, our service UUID, battery level (0-100) when known."""
    out = _ad(_AD_FLAGS, bytes([_FLAGS_LE_GENERAL_NO_BREDR]))
    out += _ad(_AD_UUID128_COMPLETE, uuid.UUID(SERVICE_UUID).bytes[::-1])  # little-endian on air
    if battery_pct is not None:
        out += _ad(_AD_SERVICE_DATA16, struct.pack("<HB", 0x180F, max(0, min(100, battery_pct))))
    assert len(out) <= LEGACY_AD_MAX
    return out


def scan_response_data(name: str) -> bytes:
    """SCAN_RSP payload: the complete local name (at most 29 UTF-8 bytes)."""
    raw = name.encode("utf-8")
    if len(raw) > LEGACY_AD_MAX - 2:
        raise ValueError(f"sensor name {name!r} is longer than 29 bytes")
    return _ad(_AD_COMPLETE_NAME, raw)


def parse_ad_structures(data: bytes) -> dict:
    """Advertising bytes -> {'local_name', 'service_uuids', 'service_data', 'manufacturer_data',
    'tx_power'} in bleak's conventions (lower-case 128-bit UUID strings). Malformed tails are
    ignored, as radios deliver whatever they heard."""
    out = {"local_name": None, "service_uuids": [], "service_data": {}, "manufacturer_data": {},
           "tx_power": None}
    i = 0
    while i + 1 < len(data):
        length = data[i]
        if length == 0 or i + 1 + length > len(data):
            break
        ad_type, payload = data[i + 1], bytes(data[i + 2:i + 1 + length])
        i += 1 + length
        if ad_type in (_AD_UUID128_COMPLETE, _AD_UUID128_INCOMPLETE):
            out["service_uuids"] += [str(uuid.UUID(bytes=payload[k:k + 16][::-1]))
                                     for k in range(0, len(payload) - 15, 16)]
        elif ad_type in (_AD_UUID16_COMPLETE, _AD_UUID16_INCOMPLETE):
            out["service_uuids"] += [uuid16(struct.unpack_from("<H", payload, k)[0])
                                     for k in range(0, len(payload) - 1, 2)]
        elif ad_type == _AD_SERVICE_DATA16 and len(payload) >= 2:
            out["service_data"][uuid16(struct.unpack_from("<H", payload)[0])] = payload[2:]
        elif ad_type == _AD_MANUFACTURER and len(payload) >= 2:
            out["manufacturer_data"][struct.unpack_from("<H", payload)[0]] = payload[2:]
        elif ad_type in (_AD_COMPLETE_NAME, _AD_SHORT_NAME):
            if ad_type == _AD_COMPLETE_NAME or out["local_name"] is None:
                out["local_name"] = payload.decode("utf-8", errors="replace")
        elif ad_type == _AD_TX_POWER and payload:
            out["tx_power"] = struct.unpack("<b", payload[:1])[0]
    return out


def battery_from_service_data(service_data: dict) -> int | None:
    """Battery level (%) from advertised service data, None when the sensor does not say."""
    raw = service_data.get(BATTERY_SERVICE_UUID)
    return raw[0] if raw else None
