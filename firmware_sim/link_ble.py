"""The simulated sensor as a real BLE peripheral (google's bumble) on a virtual radio.

In: a `SimDevice` (firmware_sim.device: the firmware core on a simulated chip) that makes the
frames, and the wall clock. Out: the same
frames as GATT notifications (docs/protocol.md), to any BLE central that attaches to the
virtual radio over loopback TCP. The first line printed says the sensor's name and where the radio
is, e.g. `ble hiplevel-sim-1a2b tcp-client:127.0.0.1:40213` (with `--as dot|movesense`, the
sensor's address instead of its name: firmware_sim.link_ble_as); hosts wait for that line (a TCP probe
before it would swallow the HCI replies).

Inside one process: a `VirtualRadio` (bumble LocalLink) joins two virtual controllers: the
sensor's own, driven by a bumble host stack with the GATT server below, and the host-facing one,
whose HCI is served on TCP to one client at a time (`HciTcpServer`). The radio emulates what the
bumble link lacks: a supervision timeout (a link that hears nothing for the negotiated timeout
drops on both sides) and "out of range" (`--dropout-at/--dropout-for`: nothing crosses the air,
link-layer data waits as a real link layer retransmits, and the link drops once the supervision
timeout passes). The host-facing controller also does what a real one does on HCI reset, on a
cancelled connection attempt and when its host goes away, and reports scan responses.

Firmware behaviour, as a real sensor would: sampling starts with the first CMD_START and goes on
while no host is connected (the last `history_s` are kept); a new connection starts idle, so the
host can ask CMD_RESEND_FROM before CMD_START and get what it missed first, in order; frames are
fitted to the link's ATT MTU; when the scenario is over the sensor notifies CMD_STOP and switches
off a moment later.
"""
from __future__ import annotations

import asyncio
import collections
import dataclasses
import hashlib
import logging
import os
import sys
import time

from bumble import hci, ll
from bumble.controller import Controller
from bumble.core import InvalidArgumentError
from bumble.device import Device
from bumble.gatt import Characteristic, CharacteristicValue, Service
from bumble.host import Host
from bumble.link import LocalLink
from bumble.profiles.battery_service import BatteryService
from bumble.profiles.device_information_service import DeviceInformationService
from bumble.transport.common import AsyncPipeSink, PacketParser

from host.protocol import gatt
from .device import FW_VERSION, SimDevice
from .firmware import core

log = logging.getLogger(__name__)

TICK_S = 0.005              # pacing step of the firmware loop (wall clock)
MAX_STEP_S = 0.1            # at most this much sensor time is run per tick
FINISH_LINGER_S = 1.0       # after CMD_STOP, stay on air this long so it is delivered
FINISH_WAIT_S = 10.0        # scenario over while no host is connected: wait this long for one


# ---------------------------------------------------------------- the virtual radio

class VirtualRadio(LocalLink):
    """A bumble LocalLink with the two things a radio has and LocalLink lacks: a supervision
    timeout, and being out of range. Out of range, advertising and LL control PDUs are lost and
    ACL data waits (a real link layer retransmits until the supervision timeout); back in range
    within the timeout, the waiting data is delivered in order; later, both ends have dropped
    the link with 'connection timeout'. Also carries each advertiser's scan response data, which
    the stock link does not model."""

    def __init__(self):
        super().__init__()
        self.out_of_range = False
        self.supervision_s = 0.72  # replaced by the value of each connection request
        self.scan_responses: dict[str, bytes] = {}
        self._held: list[tuple] = []
        self._supervision_timer: asyncio.TimerHandle | None = None

    def set_out_of_range(self, out: bool) -> None:
        if out == self.out_of_range:
            return
        self.out_of_range = out
        loop = asyncio.get_running_loop()
        if out:
            self._supervision_timer = loop.call_later(self.supervision_s, self._supervision_timeout)
            return
        if self._supervision_timer is not None:  # back within the timeout: the link survives
            self._supervision_timer.cancel()
            self._supervision_timer = None
        held, self._held = self._held, []
        for args in held:
            super().send_acl_data(*args)

    def _supervision_timeout(self) -> None:
        self._supervision_timer = None
        self._held.clear()
        for c in list(self.controllers):
            for connection in list(c.le_connections.values()):
                c.on_le_disconnected(connection, hci.HCI_ErrorCode.CONNECTION_TIMEOUT_ERROR)

    def send_acl_data(self, sender_controller, destination_address, transport, data):
        if self.out_of_range:
            self._held.append((sender_controller, destination_address, transport, data))
            return
        super().send_acl_data(sender_controller, destination_address, transport, data)

    def send_advertising_pdu(self, sender_controller, packet):
        if self.out_of_range:
            return
        if isinstance(packet, ll.ConnectInd):
            self.supervision_s = max(0.1, packet.timeout * 0.010)  # 10 ms units
        elif isinstance(packet, (ll.AdvInd, ll.AdvExtInd)):
            rsp = _scan_response_of(sender_controller, packet.advertiser_address)
            if rsp:
                self.scan_responses[str(packet.advertiser_address)] = rsp
        super().send_advertising_pdu(sender_controller, packet)

    def send_ll_control_pdu(self, sender_address, receiver_address, packet):
        if self.out_of_range:
            return
        try:
            super().send_ll_control_pdu(sender_address, receiver_address, packet)
        except InvalidArgumentError:
            pass  # the peer is gone (e.g. a terminate after a supervision timeout)


def _scan_response_of(controller: Controller, address) -> bytes:
    legacy = controller.le_legacy_advertiser
    if legacy.enabled and legacy.address == address:
        return bytes(legacy.scan_response_data)
    for adv_set in controller.advertising_sets.values():
        if adv_set.enabled and adv_set.address == address:
            return bytes(adv_set.scan_response_data)
    return b""


class HostFacingController(Controller):
    """The controller whose HCI the host app drives over TCP. Adds what bumble's virtual
    controller leaves out and a host relies on: HCI reset clears connections, scanning and a
    pending connection; cancelling a connection attempt completes it with an error (bumble's
    otherwise waits forever); scan response reports carry the scan response data."""

    _scan_rsp: bytes | None = None

    def drop_host_state(self) -> None:
        for connection in list(self.le_connections.values()):
            connection.send_ll_control_pdu(
                ll.TerminateInd(hci.HCI_ErrorCode.REMOTE_USER_TERMINATED_CONNECTION_ERROR))
            del self.le_connections[connection.peer_address]
        self.pending_le_connection = None
        self.le_scan_enable = False
        self.le_legacy_advertiser.stop()
        for adv_set in self.advertising_sets.values():
            adv_set.stop()

    def on_hci_reset_command(self, command):
        self.drop_host_state()
        return super().on_hci_reset_command(command)

    def on_hci_le_create_connection_cancel_command(self, command):
        pending, self.pending_le_connection = self.pending_le_connection, None
        if pending is not None:
            self.send_hci_packet(hci.HCI_LE_Connection_Complete_Event(
                status=hci.HCI_ErrorCode.UNKNOWN_CONNECTION_IDENTIFIER_ERROR,
                connection_handle=0, role=hci.Role.CENTRAL,
                peer_address_type=pending.peer_address.address_type,
                peer_address=pending.peer_address, connection_interval=0,
                peripheral_latency=0, supervision_timeout=0, central_clock_accuracy=0))
        return super().on_hci_le_create_connection_cancel_command(command)

    def on_advertising_pdu(self, pdu):
        self._scan_rsp = self.link.scan_responses.get(str(pdu.advertiser_address))
        try:
            super().on_advertising_pdu(pdu)
        finally:
            self._scan_rsp = None

    def send_hci_packet(self, packet):
        rsp = self._scan_rsp
        if rsp is not None and isinstance(packet, hci.HCI_LE_Extended_Advertising_Report_Event):
            flag = hci.HCI_LE_Extended_Advertising_Report_Event.EventType.SCAN_RESPONSE
            packet = hci.HCI_LE_Extended_Advertising_Report_Event(
                [dataclasses.replace(r, data=rsp) if r.event_type & flag else r
                 for r in packet.reports])
        elif rsp is not None and isinstance(packet, hci.HCI_LE_Advertising_Report_Event):
            scan_rsp = hci.HCI_LE_Advertising_Report_Event.EventType.SCAN_RSP
            packet = hci.HCI_LE_Advertising_Report_Event(
                [dataclasses.replace(r, data=rsp) if r.event_type == scan_rsp else r
                 for r in packet.reports])
        super().send_hci_packet(packet)


class _HciSession(asyncio.Protocol):
    def __init__(self, server: HciTcpServer):
        self.server = server
        self.transport = None
        self.parser = PacketParser(server.controller)

    def connection_made(self, transport):
        self.transport = transport
        if self.server.client is not None:
            log.warning("virtual radio: refused a second host (one host at a time)")
            transport.close()
            return
        self.server.client = self
        self.server.controller.host = self

    def on_packet(self, packet: bytes) -> None:  # controller -> host
        if self.server.client is self and not self.transport.is_closing():
            self.transport.write(packet)

    def data_received(self, data):
        if self.server.client is not self:
            return
        try:
            self.parser.feed_data(data)
        except Exception as e:  # garbage on the socket: drop this host, keep the radio
            log.warning("virtual radio: bad HCI data from the host (%s); disconnecting it", e)
            self.transport.close()

    def connection_lost(self, exc):
        if self.server.client is self:
            self.server.client = None
            self.server.controller.host = None
            self.server.controller.drop_host_state()


class HciTcpServer:
    """Serves one controller's HCI on loopback TCP to one host at a time. A second host is
    refused (closed at once) rather than taking over: one radio has one host stack."""

    def __init__(self, controller: HostFacingController):
        self.controller = controller
        self.client: _HciSession | None = None
        self.server: asyncio.Server | None = None

    async def start(self, port: int | None) -> int:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: _HciSession(self), "127.0.0.1", port or 0,
                                               reuse_address=True)
        return self.server.sockets[0].getsockname()[1]

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
        if self.client is not None and self.client.transport is not None:
            self.client.transport.close()


# ---------------------------------------------------------------- the sensor

def sensor_time(t0: float, speed: float, dropout_at_s: float | None, dropout_for_s: float,
                radio: VirtualRadio) -> float:
    """The scenario's time now (started at `t0`, run `speed` times real time), taking the sensor out
    of range while it is within the dropout."""
    t_true = (time.monotonic() - t0) * speed
    if dropout_at_s is not None:
        radio.set_out_of_range(dropout_at_s <= t_true < dropout_at_s + dropout_for_s)
    return t_true


def sensor_identity(hci_port: int | None) -> tuple[str, str]:
    """(default name, static random address). Fixed for a fixed port, so a restarted sensor is
    the same sensor to the host (as a real one keeps its address across power cycles)."""
    seed = f"port{hci_port}".encode() if hci_port else os.urandom(8)
    h = hashlib.sha256(seed).digest()
    addr = bytes([h[0] | 0xC0]) + h[1:6]  # static random: two top bits set
    return f"{gatt.NAME_PREFIX}-sim-{h[6]:02x}{h[7]:02x}", ":".join(f"{b:02X}" for b in addr)


class SensorPeripheral:
    """The firmware's BLE side: GATT server, advertising, and the loop that paces SimDevice."""

    def __init__(self, device: SimDevice, controller: Controller, name: str, address: str,
                 battery_pct: int):
        self.sim = device
        self.name = name
        self.battery_pct = battery_pct
        self.wanted_spf = device.samples_per_frame
        self.connection = None
        self.subscribed = False
        self.resent = False       # this connection asked CMD_RESEND_FROM before CMD_START
        self.warned_mtu = False
        self.unsent: collections.deque[bytes] = collections.deque()
        self.t0: float | None = None
        self.ended = False
        self.lock = asyncio.Lock()
        self._speed = 1.0
        self.ble = Device(name=name, address=hci.Address(address),
                          host=Host(controller, AsyncPipeSink(controller)))
        self.data_char = Characteristic(gatt.DATA_CHAR_UUID, Characteristic.Properties.NOTIFY,
                                        Characteristic.READABLE, b"")
        self.control_char = Characteristic(
            gatt.CONTROL_CHAR_UUID,
            Characteristic.Properties.WRITE | Characteristic.Properties.WRITE_WITHOUT_RESPONSE,
            Characteristic.WRITEABLE, CharacteristicValue(write=self._on_control))
        self.info_char = Characteristic(gatt.INFO_CHAR_UUID, Characteristic.Properties.READ,
                                        Characteristic.READABLE,
                                        CharacteristicValue(read=lambda _c: self.sim.info_frame()))
        self.ble.add_services([
            Service(gatt.SERVICE_UUID, [self.data_char, self.control_char, self.info_char]),
            BatteryService(lambda _c: self.battery_pct),
            DeviceInformationService(manufacturer_name="hiplevel", model_number="hiplevel-sim",
                                     serial_number=address.replace(":", ""),
                                     firmware_revision=".".join(map(str, FW_VERSION))),
        ])
        self.ble.on("connection", self._on_connection)
        self.ble.on("characteristic_subscription", self._on_subscription)

    async def start(self) -> None:
        await self.ble.power_on()
        await self._advertise()

    async def _advertise(self) -> None:
        await self.ble.start_advertising(
            advertising_data=gatt.advertising_data(self.battery_pct),
            scan_response_data=gatt.scan_response_data(self.name),
            advertising_interval_min=gatt.ADV_INTERVAL_MS,
            advertising_interval_max=gatt.ADV_INTERVAL_MS)

    # -- link events
    def _on_connection(self, connection) -> None:
        log.info("connected to %s", connection.peer_address)
        self.connection = connection
        self.subscribed = False
        self.resent = False
        self.warned_mtu = False
        self.sim.streaming = False  # a new connection starts idle until the host says START
        connection.on("disconnection", lambda reason: self._on_disconnection(connection, reason))
        connection.on("connection_att_mtu_update", lambda: self._on_mtu(connection))

    def _on_disconnection(self, connection, reason) -> None:
        log.info("disconnected (%s)", hci.HCI_Constant.error_name(reason))
        if self.connection is connection:
            self.connection = None
            self.subscribed = False
            self.sim.streaming = False
        if not self.ended:
            asyncio.get_running_loop().create_task(self._advertise())

    def _on_mtu(self, connection) -> None:
        spf = gatt.samples_per_frame_for_mtu(connection.att_mtu, self.wanted_spf)
        log.info("ATT MTU %d: %d samples per frame", connection.att_mtu, spf)
        if spf >= 1:
            self.sim.set_samples_per_frame(spf)

    def _on_subscription(self, bearer, characteristic, notify_enabled, _indicate) -> None:
        if characteristic is self.data_char:
            self.subscribed = bool(notify_enabled)

    async def _on_control(self, connection, value: bytes) -> None:
        cmd = core.parse_command(bytes(value))  # the firmware's own command parser
        if cmd is None:
            log.warning("ignored a bad command: %s", bytes(value).hex())
            return
        kind = cmd[0]
        async with self.lock:
            if kind == core.CMD_START:
                if self.t0 is None:
                    self.t0 = time.monotonic()  # the scenario clock starts with the first START
                    self.sim.wall_clock = (self.t0, self._speed)
                if not self.sim.streaming and not self.resent:
                    self.unsent.clear()  # a fresh session starts live, not with old samples
            replies = self.sim.handle_command(bytes(value))
            if kind == core.CMD_RESEND_FROM:
                self.resent = True
                self.unsent.clear()  # everything unsent is in the replies, in order
            await self._notify(replies)

    async def _notify(self, frames) -> None:
        conn = self.connection
        if conn is None or not self.subscribed:
            return
        limit = conn.att_mtu - 3
        for frame in frames:
            if len(frame) > limit:  # would be cut silently: never send a partial frame
                if not self.warned_mtu:
                    self.warned_mtu = True
                    log.warning("frames of %d bytes do not fit this link (ATT MTU %d); the host "
                                "must exchange a larger MTU", len(frame), conn.att_mtu)
                continue
            await self.ble.notify_subscriber(conn, self.data_char, frame)

    # -- the firmware loop
    async def run(self, speed: float, dropout_at_s: float | None, dropout_for_s: float,
                  radio: VirtualRadio) -> None:
        finished_at = None
        self._speed = speed
        while True:
            await asyncio.sleep(TICK_S)
            if self.t0 is None:
                continue
            t_true = sensor_time(self.t0, speed, dropout_at_s, dropout_for_s, radio)
            if not self.sim.finished:
                # a bounded step: a starved process catches up over several ticks, so the radio and
                # the GATT server are served in between (one long catch-up would let the host's
                # 1.5 s quiet-link check drop the link)
                self.unsent.extend(self.sim.frames_due(min(t_true, self.sim.t_s + MAX_STEP_S)))
                limit = int(self.sim.history_s * self.sim.rate_hz) + 1
                while len(self.unsent) > limit:  # bounded like the device's history
                    self.unsent.popleft()
            if self.sim.streaming and self.subscribed:
                async with self.lock:
                    frames = list(self.unsent)
                    self.unsent.clear()
                    await self._notify(frames)
            if not self.sim.finished:
                continue
            now = time.monotonic()
            if finished_at is None:
                finished_at = now
            if (not self.ended and self.connection is not None and self.subscribed
                    and self.sim.streaming and not self.unsent):
                self.ended = True
                await self._notify([self.sim.stop_frame()])
                log.info("scenario over: sent CMD_STOP")
                finished_at = now
            if now - finished_at > (FINISH_LINGER_S if self.ended else FINISH_WAIT_S):
                return


async def serve_ble(device: SimDevice, speed: float = 1.0, name: str | None = None,
                    hci_port: int | None = None, out=sys.stdout, dropout_at_s: float | None = None,
                    dropout_for_s: float = 0.0, battery_pct: int = 87, kind: str = "hiplevel",
                    third_party: tuple[int, int] | None = None) -> None:
    default_name, address = sensor_identity(hci_port)
    if kind != "hiplevel":  # `--as dot|movesense`: another maker's protocol (firmware_sim.link_ble_as)
        from .link_ble_as import PERIPHERALS, default_name as third_party_name
        default_name = third_party_name(kind, address)
    name = name or default_name
    gatt.scan_response_data(name)  # raises ValueError for a name that cannot be advertised
    radio = VirtualRadio()
    sensor_ctrl = Controller("sensor", link=radio, public_address="F0:00:00:00:00:01")
    host_ctrl = HostFacingController("radio", link=radio, public_address="F0:00:00:00:00:02")
    server = HciTcpServer(host_ctrl)
    try:
        port = await server.start(hci_port)
    except OSError as e:
        raise OSError(f"cannot open the virtual radio on port {hci_port}: {e.strerror}") from None
    if kind == "hiplevel":
        peripheral = SensorPeripheral(device, sensor_ctrl, name, address, battery_pct)
    else:  # third_party: (rate_hz, samples per notification) until the host asks otherwise
        peripheral = PERIPHERALS[kind](device, sensor_ctrl, name, address, battery_pct, *third_party)
    try:
        await asyncio.wait_for(peripheral.start(), 5.0)
        # a third-party sensor's name is not unique (every DOT says "Movella DOT"): its address
        print(f"ble {name if kind == 'hiplevel' else address} tcp-client:127.0.0.1:{port}", file=out, flush=True)
        await peripheral.run(speed, dropout_at_s, dropout_for_s, radio)
    finally:
        server.close()


def run_ble(device: SimDevice, speed: float = 1.0, name: str | None = None,
            hci_port: int | None = None, out=sys.stdout, dropout_at_s: float | None = None,
            dropout_for_s: float = 0.0, battery_pct: int = 87, kind: str = "hiplevel",
            third_party: tuple[int, int] | None = None) -> int:
    """Run the sensor until its scenario is over (exit status 0). `dropout_at_s`/`dropout_for_s`
    (sensor seconds since START) take the sensor out of range once, as walking away would."""
    problem = ("speed must be positive" if speed <= 0 else
               "--dropout-at must be 0 or more seconds" if dropout_at_s is not None and
               dropout_at_s < 0 else
               "--dropout-for must be more than 0 seconds" if dropout_at_s is not None and
               dropout_for_s <= 0 else None)
    if problem:
        print(f"sim: {problem}", file=sys.stderr)
        return 2
    if not logging.getLogger().isEnabledFor(logging.INFO):
        logging.getLogger("bumble").setLevel(logging.CRITICAL)  # link losses are expected here
    try:
        asyncio.run(serve_ble(device, speed, name, hci_port, out, dropout_at_s, dropout_for_s,
                              battery_pct, kind, third_party))
    except (OSError, ValueError) as e:  # port taken, name too long: say so, like the pty link
        print(f"sim: {e}", file=sys.stderr)
        return 2
    return 0
