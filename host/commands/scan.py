"""List the sensors hiplevel can use in Bluetooth reach (`hiplevel scan`).

Listens for advertisements for --timeout seconds and prints one line per sensor hiplevel can use
(its own, a Movella DOT, a Movesense; host.devices): kind, name, address, signal strength and battery
level when the sensor advertises it. Use the
name or the address with `hiplevel run --ble`. With --ble-hci (or $HIPLEVEL_BLE_HCI) it listens on
a bumble radio instead of this computer's Bluetooth, e.g. the simulator's virtual radio.
"""
from __future__ import annotations

import argparse
import asyncio
import sys

from host.errors import UserError


def _seconds(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, e.g. 5, got {text!r}") from None
    if not 0.5 <= v <= 120:
        raise argparse.ArgumentTypeError(f"scan for 0.5 to 120 seconds, not {v:g}")
    return v


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--timeout", type=_seconds, default=5.0, metavar="S",
                   help="how long to listen, seconds (default 5)")
    p.add_argument("--ble-hci", metavar="SPEC", default=None,
                   help="use a bumble radio, e.g. tcp-client:127.0.0.1:PORT from `hiplevel sim "
                        "--link ble` (default: $HIPLEVEL_BLE_HCI, else this computer's Bluetooth)")


def run(args) -> int:
    from host.links.ble.scan import BleUnavailable, scan

    try:
        found = asyncio.run(scan(args.timeout, args.ble_hci))
    except BleUnavailable as e:
        raise UserError(str(e)) from None
    if not found:
        print(f"No sensor heard within {args.timeout:g} s. Is it switched on, charged "
              "and within a few metres?", file=sys.stderr)
        return 1
    width = max(len("NAME"), *(len(s.name or "?") for s in found))
    print(f"{'KIND':<9}  {'NAME':<{width}}  {'ADDRESS':<17}  {'SIGNAL':>8}  BATTERY")
    for s in found:
        battery = f"{s.battery_pct}%" if s.battery_pct is not None else "unknown"
        print(f"{s.kind:<9}  {s.name or '?':<{width}}  {s.address:<17}  {s.rssi_dbm:>4} dBm  {battery}")
    return 0
