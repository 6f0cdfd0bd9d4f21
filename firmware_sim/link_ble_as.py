"""The simulated sensor speaking a third-party sensor's BLE protocol (`hiplevel sim --link ble --as
dot|movesense`), on the same virtual radio as firmware_sim.link_ble.

In: a `SimDevice` (firmware_sim.device) making the samples at the sensor's rate, and the wall clock.
Out: the GATT server, advertising and notifications of a Movella DOT (XD0506P rev C, "rate
quantities" payload) or a Movesense running gatt_sensordata_app (GSP, /Meas/IMU6/{rate}), byte for
byte as host.devices.dot / host.devices.movesense describe them; the encoders there are the ones
the host's decoders are tested against with hand-built vectors from the documents.

As the real sensors do: streaming starts when the host writes the start command after subscribing,
and stops when the link drops - a reconnecting host subscribes and starts again, and the samples
taken meanwhile are never sent (the sensor keeps sampling, so its timestamps show the gap). Nothing
is re-sent. When the scenario is over, the DOT notifies its "power off" device report and switches
off; the Movesense, whose protocol has no such message, goes off the air (the user ends the
session, e.g. Ctrl-C). The samples come from the SimDevice's pelvis model and sensor errors at the
third-party sensor's own rate (`Sampler`), sent as float32 m/s^2 and deg/s.
"""
from __future__ import annotations

import asyncio
import logging
import struct
import time

import numpy as np
from bumble import hci
from bumble.device import Device
from bumble.gatt import Characteristic, CharacteristicValue, Service
from bumble.host import Host
from bumble.transport.common import AsyncPipeSink

from host.devices import dot, movesense
from .device import G_MS2, SimDevice
from .link_ble import sensor_time

log = logging.getLogger(__name__)

TICK_S = 0.005
FINISH_LINGER_S = 1.0
ADV_INTERVAL_MS = 100.0


class Sampler:
    """The third-party sensor's own sampling (it runs its maker's firmware, not hiplevel's core):
    samples at `rate_hz` of its clock, which runs the SimDevice's `clock_ppm` off true time, read
    from the SimDevice's pelvis model with its sensor errors; whole notifications of `spf` samples
    are lost at the SimDevice's `loss` rate. Writes the truth CSV rows (firmware_sim.device's
    columns; `sent` 0 for a lost notification) when the SimDevice has a truth file."""

    def __init__(self, device: SimDevice, rate_hz: int, spf: int):
        self.dev, self.rate_hz, self.spf = device, rate_hz, spf
        self.next_i = 0           # index of the next sample on the sensor's clock

    def _true_s(self, i):
        return np.asarray(i, float) / self.rate_hz / (1.0 + self.dev.clock_ppm * 1e-6)

    @property
    def finished(self) -> bool:
        return float(self._true_s(self.next_i)) > self.dev.scenario.duration_s

    def due(self, t_true_s: float):
        """[(t_device_us of the first sample, acc_ms2 (n, 3), gyr_dps (n, 3))] of the notifications
        whose samples were all taken by true time t_true_s, less the lost ones."""
        out = []
        end = self.dev.scenario.duration_s
        while True:
            i = np.arange(self.next_i, self.next_i + self.spf)
            t = self._true_s(i)
            if t[-1] > t_true_s or t[0] > end:
                return out
            self.next_i += self.spf
            acc_g, gyr_dps = self.dev._readings(t)
            t_dev_us = self.dev.boot_us + np.round(i * 1e6 / self.rate_hz).astype(np.int64)
            lost = bool(self.dev.loss) and self.dev.rng.random() < self.dev.loss
            self._truth(i, t_dev_us, t, not lost)
            if not lost:
                out.append((int(t_dev_us[0]), acc_g * G_MS2, gyr_dps))

    def _truth(self, i, t_dev_us, t, sent: bool) -> None:
        f = self.dev.truth_file
        if f is None:
            return
        sc = self.dev.scenario
        obl, _, _ = sc.angles_deg(t)
        R, _ = sc.pelvis(t)
        fwd = -np.degrees(np.arcsin(np.clip(R[:, 2, 0], -1, 1)))
        reps, phases = sc.rep_index(t), sc.phase_names(t)
        f.write("".join(f"{i[k]},{t_dev_us[k]},{t[k]:.6f},{obl[k]:.5f},{fwd[k]:.5f},{reps[k]},"
                        f"{int(sent)},{phases[k]},\n" for k in range(len(t))))


class ThirdPartyPeripheral:
    """What both sensors share: the bumble device, advertising, the connection, the paced loop.
    Subclasses give `services()`, `advertising()`, `notifications(samples)` and `finish()`."""

    def __init__(self, device: SimDevice, controller, name: str, address: str, battery_pct: int,
                 rate_hz: int, spf: int):
        self.sim = Sampler(device, rate_hz, spf)
        self.name, self.address = name, address
        self.battery_pct = battery_pct
        self.connection = None
        self.streaming = False
        self.t0: float | None = None
        self.ended = False
        self.ble = Device(name=name, address=hci.Address(address),
                          host=Host(controller, AsyncPipeSink(controller)))
        self.ble.add_services(self.services())
        self.ble.on("connection", self._on_connection)

    async def start(self) -> None:
        await self.ble.power_on()
        await self._advertise()

    async def _advertise(self) -> None:
        adv, rsp = self.advertising()
        await self.ble.start_advertising(advertising_data=adv, scan_response_data=rsp,
                                         advertising_interval_min=ADV_INTERVAL_MS,
                                         advertising_interval_max=ADV_INTERVAL_MS)

    def _on_connection(self, connection) -> None:
        log.info("connected to %s", connection.peer_address)
        self.connection = connection
        self.streaming = False  # a new connection starts idle, the host starts it
        connection.on("disconnection", lambda reason: self._on_disconnection(connection))
        connection.on("connection_att_mtu_update", lambda: self.on_mtu(connection.att_mtu))

    def _on_disconnection(self, connection) -> None:
        if self.connection is connection:
            self.connection = None
            self.streaming = False
        if not self.ended:
            asyncio.get_running_loop().create_task(self._advertise())

    def on_mtu(self, att_mtu: int) -> None:
        pass

    def begin(self) -> None:
        """The host started streaming; the scenario clock starts with the first start."""
        if self.t0 is None:
            self.t0 = time.monotonic()
        self.streaming = True

    async def notify(self, char, values: list[bytes]) -> None:
        conn = self.connection
        if conn is None:
            return
        for v in values:
            if len(v) > conn.att_mtu - 3:  # would be cut silently on air
                log.warning("a %d-byte notification does not fit ATT MTU %d", len(v), conn.att_mtu)
                continue
            await self.ble.notify_subscriber(conn, char, v)

    async def run(self, speed: float, dropout_at_s: float | None, dropout_for_s: float, radio) -> None:
        finished_at = None
        while True:
            await asyncio.sleep(TICK_S)
            if self.t0 is None:
                continue
            t_true = sensor_time(self.t0, speed, dropout_at_s, dropout_for_s, radio)
            if not self.sim.finished:
                samples = self.sim.due(t_true)  # sampled whether or not anyone listens
                if self.streaming and self.connection is not None:
                    await self.send_samples(samples)
                continue
            now = time.monotonic()
            if finished_at is None:
                finished_at = now
                if self.connection is not None:
                    self.ended = True
                    await self.finish()
            if now - finished_at > FINISH_LINGER_S:
                return


class DotPeripheral(ThirdPartyPeripheral):
    """A Movella DOT: configuration, measurement and battery services (XD0506P rev C 2-4)."""

    def services(self):
        self.rate_hz = self.sim.rate_hz
        self.device_control = Characteristic(
            dot.DEVICE_CONTROL_UUID, Characteristic.Properties.READ | Characteristic.Properties.WRITE,
            Characteristic.READABLE | Characteristic.WRITEABLE,
            CharacteristicValue(read=lambda _c: dot.device_control_value(self.name, self.rate_hz),
                                write=self._on_device_control))
        self.report = Characteristic(dot.DEVICE_REPORT_UUID, Characteristic.Properties.NOTIFY,
                                     Characteristic.READABLE, bytes(36))
        self.control_value = dot.control(dot.ACTION_STOP)
        self.control = Characteristic(
            dot.CONTROL_UUID, Characteristic.Properties.READ | Characteristic.Properties.WRITE,
            Characteristic.READABLE | Characteristic.WRITEABLE,
            CharacteristicValue(read=lambda _c: self.control_value, write=self._on_control))
        self.payload = Characteristic(dot.MEDIUM_PAYLOAD_UUID, Characteristic.Properties.NOTIFY,
                                      Characteristic.READABLE, bytes(dot.MEDIUM_PAYLOAD_LEN))
        battery = Characteristic(dot.BATTERY_UUID, Characteristic.Properties.READ | Characteristic.Properties.NOTIFY,
                                 Characteristic.READABLE,
                                 CharacteristicValue(read=lambda _c: bytes([self.battery_pct, 0])))
        return [Service(dot.CONFIG_SERVICE_UUID, [self.device_control, self.report]),
                Service(dot.MEASUREMENT_SERVICE_UUID, [self.control, self.payload]),
                Service(dot.BATTERY_SERVICE_UUID, [battery])]

    def advertising(self):
        return dot.advertising_data(), dot.scan_response_data()

    def _on_device_control(self, _conn, value: bytes) -> None:
        try:
            fields = dot.parse_device_control(value)
        except struct.error:
            log.warning("ignored a %d-byte device control write (32 expected)", len(value))
            return
        if fields["visit"] & dot.VISIT_OUTPUT_RATE:
            rate = fields["output_rate_hz"]
            if rate not in dot.RATES_HZ:
                log.warning("ignored output rate %d Hz", rate)
            elif self.t0 is None:  # the scenario's sampling keeps the rate it started with
                self.rate_hz = self.sim.rate_hz = rate

    def _on_control(self, _conn, value: bytes) -> None:
        if len(value) != 3 or value[0] != dot.CONTROL_TYPE_MEASUREMENT:
            return
        self.control_value = bytes(value)
        if value[1] == dot.ACTION_START:
            if value[2] != dot.PAYLOAD_RATE_QUANTITIES:
                log.warning("payload mode %d is not simulated; streaming rate quantities", value[2])
            self.begin()
        else:
            self.streaming = False

    async def send_samples(self, samples) -> None:
        values = [dot.encode_rate_quantities(t_us, acc[i], gyr[i])
                  for t_us, acc, gyr in samples for i in range(len(acc))]
        await self.notify(self.payload, values)

    async def finish(self) -> None:
        await self.notify(self.report, [dot.power_off_report()])
        log.info("scenario over: notified power off")


class MovesensePeripheral(ThirdPartyPeripheral):
    """A Movesense with gatt_sensordata_app: one service, a write and a notify characteristic."""

    def services(self):
        self.ref = None
        self.n_wanted = self.sim.spf
        self.write = Characteristic(
            movesense.WRITE_UUID,
            Characteristic.Properties.WRITE | Characteristic.Properties.WRITE_WITHOUT_RESPONSE,
            Characteristic.WRITEABLE, CharacteristicValue(write=self._on_write))
        self.data = Characteristic(movesense.NOTIFY_UUID, Characteristic.Properties.NOTIFY,
                                   Characteristic.READABLE, b"")
        return [Service(movesense.SERVICE_UUID, [self.write, self.data])]

    def advertising(self):
        return movesense.advertising_data(), movesense.scan_response_data(self.name)

    def on_mtu(self, att_mtu: int) -> None:
        n = movesense.samples_per_notification(att_mtu, self.n_wanted)
        if n >= 1 and self.t0 is None:
            self.sim.spf = n

    async def _on_write(self, _conn, value: bytes) -> None:
        value = bytes(value)
        if len(value) < 2 or value[1] == 0:
            return
        cmd, ref = value[0], value[1]
        if cmd == movesense.CMD_HELLO:
            await self.notify(self.data, [bytes([movesense.RESP_COMMAND_RESULT, ref]) + b"Hello"])
        elif cmd == movesense.CMD_SUBSCRIBE:
            path = value[2:].decode("ascii", errors="replace")
            parts = path.split("/")
            rate = int(parts[3]) if len(parts) == 4 and parts[:3] == ["", "Meas", "IMU6"] \
                and parts[3].isdigit() else None
            if rate not in movesense.RATES_HZ:
                await self.notify(self.data, [movesense.command_result(ref, 404)])
                return
            if self.t0 is None:  # the rate is set before streaming starts
                self.sim.rate_hz = rate
            self.ref = ref
            await self.notify(self.data, [movesense.command_result(ref, 200)])
            self.begin()
        elif cmd == movesense.CMD_UNSUBSCRIBE and ref == self.ref:
            self.streaming = False
            await self.notify(self.data, [movesense.command_result(ref, 200)])

    async def send_samples(self, samples) -> None:
        values = [movesense.encode_imu6(self.ref, int(round(t_us / 1000)), acc, gyr)
                  for t_us, acc, gyr in samples]
        await self.notify(self.data, values)

    async def finish(self) -> None:
        log.info("scenario over: going off the air")  # GSP has no 'switched off' message


PERIPHERALS = {"dot": DotPeripheral, "movesense": MovesensePeripheral}
DEFAULTS = {"dot": (dot.DEFAULT_RATE_HZ, 1, dot.RATES_HZ),   # rate, samples per notification, rates
            "movesense": (movesense.DEFAULT_RATE_HZ, 8, movesense.RATES_HZ)}


def default_name(kind: str, address: str) -> str:
    """What the real sensor advertises: every DOT says "Movella DOT"; a Movesense its serial."""
    if kind == "dot":
        return dot.ADV_NAMES[0]
    return f"Movesense {int(address.replace(':', '')[-8:], 16) % 10**12:012d}"

