"""Finding hiplevel sensors on the air, and saying what went wrong with Bluetooth in plain words.

In: an optional HCI spec (None: the platform's own Bluetooth through bleak; otherwise the bumble
backend, e.g. the simulator's `tcp-client:127.0.0.1:PORT`). Out: `Sighting`s of the sensors hiplevel
can use - its own (advertising the hiplevel service) and the third-party ones of host.devices
(Movella DOT, Movesense), each with its kind, name, address, signal strength and battery when
advertised - or one `BLEDevice` to connect to, with the kind its advertisement says. Every Bluetooth failure becomes a `BleUnavailable` with one sentence a
user can act on (no adapter, adapter off, no permission, no Bluetooth service).
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass

from host import devices
from host.protocol import gatt
from host.links.ble.bumble_backend import bleak_backend_kwargs, release_idle_radios


class BleUnavailable(Exception):
    """Bluetooth cannot be used at all; the message says why and what to do."""


@dataclass(frozen=True)
class Sighting:
    name: str | None
    address: str
    rssi_dbm: int
    battery_pct: int | None
    kind: str = "hiplevel"    # host.devices.KINDS


def kind_of(adv) -> str | None:
    """The sensor kind an advertisement announces (host.devices.KINDS), None for other devices."""
    return devices.kind_of_advertisement(adv.local_name, [u.lower() for u in adv.service_uuids],
                                         adv.manufacturer_data)


def explain_ble_error(e: BaseException, hci: str | None = None) -> str:
    """One sentence for a user about a Bluetooth failure (no traceback, no jargon first)."""
    from bleak.exc import (BleakBluetoothNotAvailableError, BleakBluetoothNotAvailableReason,
                           BleakDBusError, BleakError)

    if isinstance(e, BleakBluetoothNotAvailableError):
        if hci:  # our bumble backend: the message names the radio
            return _sentence(e.args[0])
        reason = e.reason
        if reason == BleakBluetoothNotAvailableReason.POWERED_OFF:
            return ("Bluetooth is switched off. Turn it on (e.g. `bluetoothctl power on`) "
                    "and try again.")
        if reason in (BleakBluetoothNotAvailableReason.DENIED_BY_USER,
                      BleakBluetoothNotAvailableReason.DENIED_BY_SYSTEM,
                      BleakBluetoothNotAvailableReason.DENIED_BY_UNKNOWN):
            return ("This program is not allowed to use Bluetooth. Grant it Bluetooth "
                    "permission (on Linux: be in the 'bluetooth' group) and try again.")
        if reason == BleakBluetoothNotAvailableReason.NO_BLE_CENTRAL_ROLE:
            return "This computer's Bluetooth adapter cannot connect to BLE sensors."
        return "No Bluetooth adapter found. Plug one in or enable it, then try again."
    if isinstance(e, BleakDBusError):
        name = e.dbus_error
        if name == "org.bluez.Error.NotReady":
            return "Bluetooth is switched off. Turn it on and try again."
        if name in ("org.freedesktop.DBus.Error.AccessDenied", "org.bluez.Error.NotPermitted",
                    "org.bluez.Error.NotAuthorized"):
            return ("This program is not allowed to use Bluetooth. Grant it Bluetooth "
                    "permission (on Linux: be in the 'bluetooth' group) and try again.")
        if name in ("org.freedesktop.DBus.Error.ServiceUnknown",
                    "org.freedesktop.DBus.Error.NameHasNoOwner"):
            return "The Bluetooth service is not running. Start it (bluetoothd) and try again."
        return f"Bluetooth reported an error: {e.dbus_error_details or name}."
    if isinstance(e, (FileNotFoundError, ConnectionRefusedError)) and not hci:
        # bleak on Linux talks to BlueZ over the system D-Bus socket
        return ("Bluetooth is not available: no Bluetooth service (BlueZ) is running on this "
                "computer. Install and start it, or use --ble-hci for a virtual radio.")
    if isinstance(e, PermissionError):
        return "This program is not allowed to use Bluetooth. Grant it Bluetooth permission."
    if isinstance(e, BleakError):
        return _sentence(f"Bluetooth error: {e}")
    return _sentence(f"Bluetooth failed: {e}")


def _sentence(text: str) -> str:
    text = str(text).strip()
    return text if text.endswith((".", "?", "!")) else text + "."


async def _scanning(hci: str | None, on_seen, timeout_s: float, stop_when=None) -> None:
    from bleak import BleakScanner

    done = asyncio.Event()

    def callback(device, adv):
        kind = kind_of(adv)
        if kind is not None:
            on_seen(device, adv, kind)
            if stop_when is not None and stop_when(device, adv):
                done.set()

    try:
        # no service filter: a Movella DOT advertises its maker's company id and name, no service
        async with BleakScanner(callback, **bleak_backend_kwargs(hci, client=False)):
            try:
                await asyncio.wait_for(done.wait(), timeout_s)
            except asyncio.TimeoutError:
                pass
    except asyncio.CancelledError:
        raise
    except Exception as e:
        raise BleUnavailable(explain_ble_error(e, hci)) from None


async def scan(timeout_s: float = 5.0, hci: str | None = None) -> list[Sighting]:
    """Sensors heard within `timeout_s`, strongest first."""
    seen: dict[str, Sighting] = {}

    def on_seen(device, adv, kind):
        old = seen.get(device.address)
        seen[device.address] = Sighting(
            adv.local_name or (old.name if old else None), device.address, adv.rssi,
            gatt.battery_from_service_data(adv.service_data) if adv.service_data
            else (old.battery_pct if old else None), kind)

    try:
        await _scanning(hci, on_seen, timeout_s)
    finally:
        await release_idle_radios()
    return sorted(seen.values(), key=lambda s: -s.rssi_dbm)


def matches(target: str, device, adv) -> bool:
    """Is this advertisement the sensor the user named (by local name or by address)?"""
    t = target.strip().lower()
    return (adv.local_name or "").lower() == t or device.address.lower() == t


async def find_sensor(target: str, timeout_s: float, hci: str | None = None):
    """(BLEDevice, kind) of the sensor named or addressed `target`, or None if not heard in time."""
    found = []

    def on_seen(device, adv, kind):
        if not found and matches(target, device, adv):
            found.append((device, kind))

    await _scanning(hci, on_seen, timeout_s, stop_when=lambda d, a: bool(found))
    return found[0] if found else None
