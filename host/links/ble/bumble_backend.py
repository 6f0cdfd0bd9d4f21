"""bleak backend classes built on google's bumble host stack, for any HCI bumble can open.

Used for the simulated sensor's virtual radio (`tcp-client:127.0.0.1:PORT`, printed by
`hiplevel sim --link ble`), and usable with a real USB dongle (`usb:0`). The app keeps its own
bleak code: `BleakScanner(..., backend=BumbleScanner, hci=SPEC)` and
`BleakClient(..., backend=BumbleClient, hci=SPEC)` (see `bleak_backend_kwargs`).

Data in: HCI packets from the transport. Data out: what bleak's backend interfaces promise
(advertisements as BLEDevice + AdvertisementData, GATT services, notifications as bytearray, the
disconnected callback).

One `_Radio` (one bumble host stack) per HCI spec and event loop is shared by every scanner and
client, because an HCI transport has one host. Every operation races against the radio going away
and against a timeout, so nothing hangs: bumble's HCI reset and GATT requests have no useful
timeout of their own, and a TCP radio can vanish with its process. Because a virtual link has no
supervision timeout, a connected client also probes an idle link (a small GATT read) and treats
`SUPERVISION_S` of silence as a lost link (the sensor must be noticed gone within 2 s).
"""
from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from typing import Any, Callable

from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient, NotifyCallback
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, BaseBleakScanner
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import BleakBluetoothNotAvailableError, BleakBluetoothNotAvailableReason, BleakError

from host.protocol.gatt import parse_ad_structures

log = logging.getLogger(__name__)

HCI_ENV = "HIPLEVEL_BLE_HCI"  # default HCI spec when none is passed
OPEN_TIMEOUT_S = 3.0          # transport open + controller reset
OP_TIMEOUT_S = 5.0            # one GATT operation
PROBE_IDLE_S = 0.3            # probe a link that has been quiet this long
SUPERVISION_S = 1.5           # ... and call it lost when it has been quiet this long
REQUESTED_MTU = 517           # ATT maximum; the peripheral answers with what it supports

_PROPS = ((0x01, "broadcast"), (0x02, "read"), (0x04, "write-without-response"), (0x08, "write"),
          (0x10, "notify"), (0x20, "indicate"), (0x40, "authenticated-signed-writes"),
          (0x80, "extended-properties"))


def hci_spec(hci: str | None) -> str:
    spec = hci or os.environ.get(HCI_ENV)
    if not spec:
        raise BleakError(f"no HCI transport given (pass hci=... or set {HCI_ENV})")
    return spec


def bleak_backend_kwargs(hci: str | None, client: bool) -> dict:
    """Extra keyword arguments for BleakClient/BleakScanner: none for the platform's own
    Bluetooth stack, or the bumble backend on `hci` (argument, else $HIPLEVEL_BLE_HCI)."""
    spec = hci or os.environ.get(HCI_ENV)
    if not spec:
        return {}
    return {"backend": BumbleClient if client else BumbleScanner, "hci": spec}


async def release_idle_radios() -> None:
    """Close the bumble radios this event loop opened and no longer uses (call when done)."""
    await _Radio.release_idle()


def _uuid_str(bumble_uuid) -> str:
    return str(uuid.UUID(bytes=bumble_uuid.to_bytes(force_128=True)[::-1]))


class RadioGone(BleakError):
    """The HCI transport closed or stopped answering."""


class _Radio:
    """One bumble Device on one HCI transport, opened on first use and reopened after loss."""
    _radios: dict[tuple[int, str], _Radio] = {}

    def __init__(self, spec: str):
        self.spec = spec
        self.loop = asyncio.get_running_loop()
        self.device = None
        self.transport = None
        self.alive = False
        self.lost: asyncio.Future = self.loop.create_future()
        self.lost_listeners: set[Callable[[str], None]] = set()
        self.users = 0  # scanners scanning + clients connected
        self._lock = asyncio.Lock()

    @classmethod
    async def get(cls, spec: str) -> _Radio:
        loop = asyncio.get_running_loop()
        key = (id(loop), spec)
        radio = cls._radios.get(key)
        if radio is None or radio.loop is not loop:
            radio = cls._radios[key] = _Radio(spec)
        await radio._ensure()
        return radio

    async def _ensure(self) -> None:
        async with self._lock:
            if not self.alive:
                await self._open()

    async def _open(self) -> None:
        from bumble.device import Device, DeviceConfiguration
        from bumble.host import Host
        from bumble.transport import open_transport

        bumble_log = logging.getLogger("bumble")
        if bumble_log.level == logging.NOTSET and not logging.getLogger().isEnabledFor(logging.INFO):
            # bumble logs a lost link as an error with a traceback; here that is an expected
            # event, reported once by the transport in words
            bumble_log.setLevel(logging.CRITICAL)
        try:
            transport = await asyncio.wait_for(open_transport(self.spec), OPEN_TIMEOUT_S)
        except (OSError, asyncio.TimeoutError) as e:
            if isinstance(e, ConnectionRefusedError) or getattr(e, "errno", None) == 111:
                why = "nothing is listening there; is the sensor or simulator running?"
            elif isinstance(e, asyncio.TimeoutError):
                why = "no answer"
            else:
                why = e.strerror or str(e)
            raise BleakBluetoothNotAvailableError(
                f"no Bluetooth radio at {self.spec} ({why})",
                BleakBluetoothNotAvailableReason.NO_BLUETOOTH) from None
        except Exception as e:  # bumble: unknown scheme, malformed spec
            raise BleakBluetoothNotAvailableError(
                f"cannot open the Bluetooth radio {self.spec!r}: {e}",
                BleakBluetoothNotAvailableReason.NO_BLUETOOTH) from None
        config = DeviceConfiguration()
        config.name = "hiplevel-host"
        host = Host(transport.source, transport.sink)
        lost_hook = host.on_transport_lost

        def on_transport_lost() -> None:
            try:
                lost_hook()
            except asyncio.InvalidStateError:
                pass  # bumble fails a command future we had already cancelled; nothing to do

        host.on_transport_lost = on_transport_lost
        device = Device(config=config, host=host)
        power = asyncio.ensure_future(device.power_on())
        terminated = transport.source.terminated
        done, _ = await asyncio.wait({power, terminated}, timeout=OPEN_TIMEOUT_S,
                                     return_when=asyncio.FIRST_COMPLETED)
        if power not in done or power.exception() is not None:
            power.cancel()
            await _quietly(transport.close())
            why = ("it closed the connection; is another app using it?" if terminated.done()
                   else "the controller did not answer")
            raise BleakBluetoothNotAvailableError(
                f"the Bluetooth radio at {self.spec} is not usable: {why}",
                BleakBluetoothNotAvailableReason.UNKNOWN)
        self.device, self.transport, self.alive = device, transport, True
        self.lost = self.loop.create_future()
        terminated.add_done_callback(lambda _f: self.kill("the Bluetooth radio went away"))
        log.debug("bumble radio %s ready", self.spec)

    @classmethod
    async def release_idle(cls) -> None:
        """Close this event loop's radios that nobody uses, so the HCI transport (which serves
        one host) is free for the next app."""
        loop = asyncio.get_running_loop()
        for key, radio in list(cls._radios.items()):
            if key[0] == id(loop) and radio.users <= 0:
                del cls._radios[key]
                transport, radio.transport = radio.transport, None
                radio.alive = False
                if not radio.lost.done():
                    radio.lost.set_result("closed")
                if transport is not None:
                    await _quietly(asyncio.wait_for(transport.close(), 1.0))

    def kill(self, why: str) -> None:
        """The radio is unusable: tell every user, drop the transport; the next get() reopens."""
        if not self.alive:
            return
        self.alive = False
        if not self.lost.done():
            self.lost.set_result(why)
        for listener in list(self.lost_listeners):
            listener(why)
        transport, self.transport = self.transport, None
        if transport is not None:
            self.loop.create_task(_quietly(transport.close()))

    async def run(self, aw, timeout: float, what: str):
        """Await `aw`, but give up when the radio goes away or after `timeout` seconds."""
        if not self.alive:
            if asyncio.iscoroutine(aw):
                aw.close()  # never started: don't leave a 'never awaited' warning
            raise RadioGone(f"{what}: the Bluetooth radio is gone")
        task = asyncio.ensure_future(aw)
        lost = self.lost
        try:
            done, _ = await asyncio.wait({task, lost}, timeout=timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not task.done():
                task.cancel()
        if task in done:
            if task.cancelled():  # bumble cancels requests pending when the link goes down
                raise BleakError(f"{what}: the link went down")
            return task.result()
        if lost in done:
            raise RadioGone(f"{what}: {lost.result()}")
        raise asyncio.TimeoutError(f"{what}: no answer within {timeout:g} s")


async def _quietly(aw) -> None:
    try:
        await aw
    except Exception:
        pass


class BumbleScanner(BaseBleakScanner):
    def __init__(self, detection_callback, service_uuids, scanning_mode="active", *,
                 hci: str | None = None, **kwargs: Any):
        super().__init__(detection_callback, service_uuids)
        self._spec = hci_spec(hci)
        self._active = scanning_mode != "passive"
        self._radio: _Radio | None = None
        self._merged: dict[str, dict] = {}

    async def start(self) -> None:
        self.seen_devices = {}
        self._merged = {}
        self._radio = await _Radio.get(self._spec)
        self._radio.users += 1
        self._radio.device.on("advertisement", self._on_advertisement)
        await self._radio.run(self._radio.device.start_scanning(active=self._active),
                              OP_TIMEOUT_S, "start scanning")

    async def stop(self) -> None:
        radio, self._radio = self._radio, None
        if radio is None or radio.device is None:
            return
        radio.users -= 1
        radio.device.remove_listener("advertisement", self._on_advertisement)
        if radio.alive and radio.device.is_scanning:
            try:
                await radio.run(radio.device.stop_scanning(), OP_TIMEOUT_S, "stop scanning")
            except (BleakError, asyncio.TimeoutError) as e:
                log.debug("stop scanning: %s", e)

    def _on_advertisement(self, adv) -> None:
        key = adv.address.to_string(False)
        raw = b"".join(bytes([len(v) + 1, int(t)]) + bytes(v) for t, v in adv.data.ad_structures)
        fields = parse_ad_structures(raw)
        # an advertisement and its scan response arrive apart: keep what each said, as BlueZ does
        m = self._merged.setdefault(key, {"local_name": None, "service_uuids": [],
                                          "service_data": {}, "manufacturer_data": {},
                                          "tx_power": None})
        m["local_name"] = fields["local_name"] or m["local_name"]
        m["service_uuids"] = list(dict.fromkeys(m["service_uuids"] + fields["service_uuids"]))
        m["service_data"].update(fields["service_data"])
        m["manufacturer_data"].update(fields["manufacturer_data"])
        if fields["tx_power"] is not None:
            m["tx_power"] = fields["tx_power"]
        if not self.is_allowed_uuid(m["service_uuids"]):
            return
        ad = AdvertisementData(m["local_name"], dict(m["manufacturer_data"]),
                               dict(m["service_data"]), list(m["service_uuids"]), m["tx_power"],
                               adv.rssi, (adv,))
        device = self.create_or_update_device(key, key, m["local_name"], adv.address, ad)
        self.call_detection_callbacks(device, ad)


class BumbleClient(BaseBleakClient):
    def __init__(self, address_or_ble_device: BLEDevice | str, *,
                 disconnected_callback: Callable[[], None] | None = None,
                 services: set[str] | None = None, timeout: float = 10.0,
                 hci: str | None = None, **kwargs: Any):
        super().__init__(address_or_ble_device, disconnected_callback=disconnected_callback,
                         timeout=timeout)
        self._spec = hci_spec(hci)
        self._ble_device = address_or_ble_device if isinstance(address_or_ble_device,
                                                               BLEDevice) else None
        self._wanted_services = services
        self._radio: _Radio | None = None
        self._connection = None
        self._peer = None
        self._mtu = 23
        self._subscriptions: dict[int, Callable] = {}
        self._last_rx = 0.0
        self._watchdog: asyncio.Task | None = None
        self._probe_handle: int | None = None
        self._closing = False
        self._told_disconnected = False

    # -- properties
    @property
    def name(self) -> str:
        if self._ble_device is not None and self._ble_device.name:
            return self._ble_device.name
        return self.address.replace(":", "-")

    @property
    def mtu_size(self) -> int:
        return self._mtu

    @property
    def is_connected(self) -> bool:
        return self._connection is not None and self._radio is not None and self._radio.alive

    # -- connection
    async def connect(self, pair: bool, **kwargs: Any) -> None:
        from bumble import core
        from bumble.device import Peer

        if pair:
            log.info("bumble backend: pairing not supported; connecting without it")
        self._radio = radio = await _Radio.get(self._spec)
        address = await self._peer_address()
        self._closing = self._told_disconnected = False
        try:
            connection = await radio.run(
                radio.device.connect(address, timeout=self._timeout), self._timeout + 2.0,
                f"connect to {self.address}")
        except (core.TimeoutError, asyncio.TimeoutError):
            raise BleakError(f"{self.address} did not answer the connection request") from None
        except (core.ConnectionError, core.InvalidStateError) as e:
            raise BleakError(f"could not connect to {self.address}: {e}") from None
        self._connection = connection
        radio.users += 1
        connection.on("disconnection", self._on_disconnection)
        radio.lost_listeners.add(self._on_radio_lost)
        try:
            peer = self._peer = Peer(connection)
            try:
                self._mtu = await radio.run(peer.request_mtu(REQUESTED_MTU), OP_TIMEOUT_S,
                                            "MTU exchange")
            except Exception as e:  # keep the default MTU; the caller checks what it needs
                if isinstance(e, (RadioGone, asyncio.TimeoutError)):
                    raise
                log.info("MTU exchange refused (%s); staying at %d", e, self._mtu)
            self.services = await radio.run(self._discover(peer), self._timeout,
                                            "service discovery")
        except BaseException as e:
            await self._abandon()
            if isinstance(e, (RadioGone, asyncio.TimeoutError)):
                raise BleakError(f"{self.address} stopped answering while connecting") from None
            if isinstance(e, core.BaseBumbleError):
                raise BleakError(f"{self.address}: {e}") from None
            raise
        self._last_rx = time.monotonic()
        self._watchdog = asyncio.get_running_loop().create_task(self._watch())

    async def _peer_address(self):
        from bumble import hci
        if self._ble_device is not None and isinstance(self._ble_device.details, hci.Address):
            return self._ble_device.details
        # a bare address: find it on the air first (its address type comes with it)
        scanner = BumbleScanner(None, None, hci=self._spec)
        found = asyncio.get_running_loop().create_future()
        scanner.register_detection_callback(
            lambda d, _ad: found.done() or d.address.lower() != self.address.lower()
            or found.set_result(d))
        await scanner.start()
        try:
            device = await asyncio.wait_for(found, self._timeout)
        except asyncio.TimeoutError:
            from bleak.exc import BleakDeviceNotFoundError
            raise BleakDeviceNotFoundError(
                self.address, f"{self.address} was not found within {self._timeout:g} s") from None
        finally:
            await scanner.stop()
        self._ble_device = device
        return device.details

    async def _discover(self, peer) -> BleakGATTServiceCollection:
        from bumble.core import UUID
        wanted = [UUID(u) for u in self._wanted_services] if self._wanted_services else ()
        await peer.discover_services(wanted)
        collection = BleakGATTServiceCollection()
        for sp in peer.services:
            service = BleakGATTService(sp, sp.handle, _uuid_str(sp.uuid))
            collection.add_service(service)
            for cp in await sp.discover_characteristics():
                props = [name for bit, name in _PROPS if cp.properties & bit]
                char = BleakGATTCharacteristic(cp, cp.handle, _uuid_str(cp.uuid), props,
                                               lambda: self._mtu - 3, service)
                collection.add_characteristic(char)
                if self._probe_handle is None and "read" in props:
                    self._probe_handle = cp.handle
                for dp in await cp.discover_descriptors():
                    collection.add_descriptor(
                        BleakGATTDescriptor(dp, dp.handle, _uuid_str(dp.type), char))
        return collection

    async def disconnect(self) -> None:
        self._closing = True
        connection, radio = self._connection, self._radio
        if connection is not None and radio is not None and radio.alive:
            try:
                await radio.run(connection.disconnect(), 2.0, "disconnect")
            except (BleakError, asyncio.TimeoutError):
                radio.kill("the Bluetooth radio did not answer a disconnect")
            except Exception as e:  # already gone (bumble raises on a stale handle)
                log.debug("disconnect: %s", e)
        self._cleanup()

    async def _abandon(self) -> None:
        self._closing = True
        await _quietly(self.disconnect())

    def _cleanup(self) -> None:
        if self._watchdog is not None and self._watchdog is not asyncio.current_task():
            self._watchdog.cancel()
        self._watchdog = None
        if self._radio is not None:
            self._radio.lost_listeners.discard(self._on_radio_lost)
        if self._connection is not None:
            self._connection.remove_listener("disconnection", self._on_disconnection)
            if self._radio is not None:
                self._radio.users -= 1
        self._connection = self._peer = None
        self._subscriptions.clear()

    def _lost(self, why: str) -> None:
        was_connected = self._connection is not None
        self._cleanup()
        if was_connected and not self._closing and not self._told_disconnected:
            self._told_disconnected = True
            log.info("link to %s lost: %s", self.address, why)
            if self._disconnected_callback is not None:
                self._disconnected_callback()

    def _on_disconnection(self, reason: int) -> None:
        from bumble import hci
        self._lost(hci.HCI_Constant.error_name(reason))

    def _on_radio_lost(self, why: str) -> None:
        self._lost(why)

    async def _watch(self) -> None:
        """Emulated supervision timeout: probe a quiet link, drop it when nothing answers."""
        try:
            while self._connection is not None:
                await asyncio.sleep(0.1)
                quiet_s = time.monotonic() - self._last_rx
                if quiet_s < PROBE_IDLE_S or self._probe_handle is None:
                    continue
                try:
                    await self._radio.run(self._peer.gatt_client.read_value(
                        self._probe_handle, no_long_read=True),
                        max(0.1, SUPERVISION_S - quiet_s), "link probe")
                    self._last_rx = time.monotonic()
                except RadioGone:
                    return  # the radio listener reports it
                except asyncio.TimeoutError:
                    if time.monotonic() - self._last_rx >= SUPERVISION_S - 0.05:
                        await self._drop_silent_link()
                        return
                except Exception as e:  # an ATT error is an answer: the peer is alive
                    log.debug("link probe: %s", e)
                    self._last_rx = time.monotonic()
        except asyncio.CancelledError:
            pass

    async def _drop_silent_link(self) -> None:
        from bumble import hci
        connection, radio = self._connection, self._radio
        self._lost(f"nothing heard for {SUPERVISION_S:g} s")  # tell the app first
        try:
            await radio.run(connection.disconnect(hci.HCI_ErrorCode.CONNECTION_TIMEOUT_ERROR),
                            1.0, "disconnect")
        except (BleakError, asyncio.TimeoutError):
            radio.kill("the Bluetooth radio stopped answering")  # frozen: reopen it next time
        except Exception as e:
            log.debug("disconnect of a silent link: %s", e)

    # -- pairing: our sensor needs none
    async def pair(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError("pairing is not supported by the bumble backend")

    async def unpair(self) -> None:
        raise NotImplementedError("pairing is not supported by the bumble backend")

    # -- GATT I/O
    def _require(self):
        if not self.is_connected:
            raise BleakError("Not connected")
        return self._radio

    async def _gatt(self, aw, what: str):
        radio = self._require()
        from bumble import att, core
        try:
            result = await radio.run(aw, OP_TIMEOUT_S, what)
        except att.ATT_Error as e:
            from bleak.exc import BleakGATTProtocolError
            raise BleakGATTProtocolError(e.error_code) from None
        except asyncio.TimeoutError:
            raise BleakError(f"{what}: {self.address} did not answer") from None
        except core.BaseBumbleError as e:
            raise BleakError(f"{what}: {e}") from None
        self._last_rx = time.monotonic()
        return result

    async def read_gatt_char(self, characteristic: BleakGATTCharacteristic, *,
                             use_cached: bool = False, **kwargs: Any) -> bytearray:
        return bytearray(await self._gatt(self._peer.read_value(characteristic.obj), "read"))

    async def read_gatt_descriptor(self, descriptor: BleakGATTDescriptor, *,
                                   use_cached: bool = False, **kwargs: Any) -> bytearray:
        return bytearray(await self._gatt(self._peer.read_value(descriptor.obj),
                                          "read descriptor"))

    async def write_gatt_char(self, characteristic: BleakGATTCharacteristic, data,
                              response: bool) -> None:
        await self._gatt(self._peer.write_value(characteristic.obj, bytes(data),
                                                with_response=response), "write")

    async def write_gatt_descriptor(self, descriptor: BleakGATTDescriptor, data) -> None:
        await self._gatt(self._peer.write_value(descriptor.obj, bytes(data), with_response=True),
                         "write descriptor")

    async def start_notify(self, characteristic: BleakGATTCharacteristic,
                           callback: NotifyCallback, **kwargs: Any) -> None:
        def on_value(value: bytes) -> None:
            self._last_rx = time.monotonic()
            callback(bytearray(value))

        self._subscriptions[characteristic.handle] = on_value
        await self._gatt(self._peer.subscribe(characteristic.obj, on_value), "subscribe")

    async def stop_notify(self, characteristic: BleakGATTCharacteristic) -> None:
        on_value = self._subscriptions.pop(characteristic.handle, None)
        await self._gatt(self._peer.unsubscribe(characteristic.obj, on_value), "unsubscribe")
