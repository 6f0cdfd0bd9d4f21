"""Third-party IMU sensors hiplevel can use over BLE, one module per protocol (dot, movesense).

Each driver module is pure (no I/O) and offers: KIND, LABEL, MANUFACTURER, MODEL, SERVICE_UUID,
NOTIFY_UUIDS, BATTERY_UUID (or None), RATES_HZ, DEFAULT_RATE_HZ, `min_mtu(rate_hz)`,
`advertises(name, service_uuids, manufacturer_data)`, `advertising_data(...)` (for the simulated
sensor, firmware_sim.link_ble_as), `start_writes(rate_hz)` / `stop_writes()` (characteristic,
bytes) pairs, and `Decoder(rate_hz)`
whose `feed(char_uuid, data, t_host_s)` turns a notification into hiplevel v1 frame bytes. The BLE
transport (host.links.ble.transport) consults this registry: it picks the driver from what the
sensor advertises or from its GATT services, or the one the user named with `--sensor`.

"hiplevel" is the project's own sensor (docs/protocol.md); it needs no driver here.
"""
from __future__ import annotations

from host.devices import dot, movesense

DRIVERS = {dot.KIND: dot, movesense.KIND: movesense}
KINDS = ("hiplevel", *DRIVERS)


def kind_of_advertisement(name: str | None, service_uuids, manufacturer_data) -> str | None:
    """'hiplevel', 'dot', 'movesense' or None for an advertisement of something else."""
    from host.protocol import gatt
    if gatt.SERVICE_UUID in (service_uuids or ()):
        return "hiplevel"
    for kind, driver in DRIVERS.items():
        if driver.advertises(name, service_uuids, manufacturer_data):
            return kind
    return None


def kind_of_services(service_uuids) -> str | None:
    """The kind from a connected sensor's GATT service UUIDs (lower-case strings)."""
    from host.protocol import gatt
    uuids = {str(u).lower() for u in service_uuids}
    if gatt.SERVICE_UUID in uuids:
        return "hiplevel"
    for kind, driver in DRIVERS.items():
        if driver.SERVICE_UUID in uuids:
            return kind
    return None


def driver(kind: str):
    """The driver module of a third-party kind (KeyError for 'hiplevel' or unknown)."""
    return DRIVERS[kind]


def check_rate(kind: str, rate_hz: int | None) -> int:
    """The rate to ask for: `rate_hz` if this kind supports it, else ValueError with the choices."""
    d = DRIVERS[kind]
    if rate_hz is None:
        return d.DEFAULT_RATE_HZ
    if rate_hz not in d.RATES_HZ:
        raise ValueError(f"a {d.LABEL} streams at {', '.join(map(str, d.RATES_HZ))} Hz, "
                         f"not {rate_hz}")
    return rate_hz
