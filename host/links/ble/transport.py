"""The BLE link to a sensor (bleak), as a host.links.base.Transport that survives dropouts.

Two kinds of sensor: hiplevel's own (below), and the third-party IMUs of host.devices (Movella DOT,
Movesense). Which one is chosen from what the sensor advertises, confirmed by its GATT services
after connecting, unless `sensor=` names the kind (`hiplevel run --sensor`). A third-party sensor's
notifications go through its driver's decoder, which turns them into hiplevel v1 frames (an info
frame, then data frames numbered from the sensor's timestamps), so everything after the link is
identical; `send()` turns CMD_START/CMD_STOP into the driver's start/stop writes. Such sensors
re-send nothing: after a reconnect the link subscribes again and writes start again, and the
samples missed meanwhile show as a gap (the decoder is kept, so its numbering runs on).

In: GATT notifications on the data characteristic (one protocol frame each, docs/protocol.md).
Out: `read()` -> `(t_host_s, frame_bytes)` in sensor order; `send()` writes command frames to the
control characteristic; link happenings go to `on_event(kind, **fields)`:
  connected     (name, address, mtu, battery_pct, attempt, after_s: seconds since the loss)
  disconnected  (reason)
  reconnecting  (attempt, since_s) - when a reconnect starts, then at most every 5 s
  backfill      (frames, samples) - what the sensor re-sent after a reconnect
  sensor_restarted (expected_seq, got_seq) - the sensor's numbering started over (it rebooted)
  gave_up       (reason)

After a lost link it reconnects by itself: it scans for the same sensor, connects, asks
CMD_RESEND_FROM(the next sample it needs, counting frames still queued here) and then CMD_START
(if the app had started streaming; the first START is the app's, via `send()`), so the sensor sends what the host missed (up to its history, ~10 s) before new samples. Frames the
sensor re-sends this way carry `late = True` (read the attribute right after `read()` returned
them): the history and any recording keep them; the live cue should ignore them. Frames the host
already holds are dropped here, so the decoder sees one gap-free, in-order stream. `read()` waits
while reconnecting and returns None only when the sensor said CMD_STOP or the link is given up
(`lost_reason` says why). Waits between failed connection attempts back off from 0.25 s to at
most `max_backoff_s`; while the sensor is not heard at all the scan simply goes on.
"""
from __future__ import annotations

import asyncio
import logging
import time

from host.protocol.frames import (SEQ_MODULO, Command, DataFrame, FrameError, FrameType, InfoFrame,
                           decode_frame, encode_frame)
from host.links.base import Transport, TransportError

from host import devices
from host.protocol import gatt
from host.links.ble.bumble_backend import bleak_backend_kwargs, release_idle_radios
from host.links.ble.scan import BleUnavailable, explain_ble_error, find_sensor

log = logging.getLogger(__name__)

RESCAN_S = 2.0            # one reconnect scan window
RADIO_RETRY_S = 0.5       # radio missing (virtual radio restarting, adapter unplugged): poll
STATUS_EVERY_S = 5.0      # repeat 'reconnecting' this often while it lasts


class _NotOurSensor(TransportError):
    pass


async def _quietly_disconnect(client) -> None:
    try:
        await asyncio.wait_for(client.disconnect(), 2.0)
    except Exception:
        pass


async def _negotiated_mtu(client) -> int | None:
    """The link's ATT MTU, or None where the stack does not tell (BlueZ negotiates it by itself
    but bleak reports 23 until asked through its documented private workaround)."""
    from bleak.backends import BleakBackend
    if client.backend_id == BleakBackend.BLUEZ_DBUS:
        try:
            await client._backend._acquire_mtu()
        except Exception:
            return None
    return client.mtu_size


class BleTransport(Transport):
    def __init__(self, target: str, hci: str | None = None, find_timeout_s: float = 10.0,
                 connect_timeout_s: float = 10.0, max_backoff_s: float = 5.0,
                 give_up_after_s: float | None = 600.0, sensor: str | None = None,
                 rate_hz: int | None = None):
        super().__init__()
        if sensor is not None and sensor not in devices.KINDS:
            raise TransportError(f"unknown sensor kind {sensor!r}; choose from {', '.join(devices.KINDS)}")
        if rate_hz is not None and sensor in (None, "hiplevel"):
            raise TransportError("--sensor-rate needs --sensor dot or --sensor movesense")
        if rate_hz is not None:
            try:
                devices.check_rate(sensor, rate_hz)
            except ValueError as e:
                raise TransportError(str(e)) from None
        self.sensor = sensor         # the kind the user named; None: from the advertisement
        self.rate_hz = rate_hz       # third-party sensors: the rate to ask for (default: driver's)
        self.kind: str | None = None  # the kind connected to, once known
        self.manufacturer: str | None = None
        self.model: str | None = None
        self._decoder = None         # a third-party driver's Decoder, kept across reconnects
        if not target or not target.strip():
            raise TransportError("give the sensor's name or address (see `hiplevel scan`)")
        self.target = target.strip()
        self.hci = hci
        self.find_timeout_s = find_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.max_backoff_s = max_backoff_s
        self.give_up_after_s = give_up_after_s
        self.description = f"BLE sensor {self.target}"
        self.late = False            # the frame last returned by read() was re-sent (backfill)
        self.connected = False
        self.mtu = None
        self.battery_pct: int | None = None
        self.reconnects = 0
        self.reconnect_times_s: list[float] = []   # loss -> connected again, per reconnect
        self.backfilled_samples = 0
        self.duplicate_frames = 0
        self._queue: asyncio.Queue | None = None
        self._client = None
        self._next_seq: int | None = None  # next sample the host needs (frames queued count)
        self._backfilling = False
        self._backfill = [0, 0]
        self._reconnect_task: asyncio.Task | None = None
        self._closed = False
        self._ended = False
        self._started = False        # the app asked the sensor to stream
        self._device_name = self.target
        self._device_address: str | None = None

    @property
    def link_errors(self) -> dict:
        """A third-party sensor's skipped notifications by reason (docs/sensors.md); {} otherwise."""
        return dict(self._decoder.errors) if self._decoder is not None else {}

    # ---- Transport
    async def open(self) -> None:
        self._queue = asyncio.Queue()
        try:
            await self._open()
        except BaseException:
            await release_idle_radios()  # leave the radio free for the next try or app
            raise

    async def _open(self) -> None:
        deadline = time.monotonic() + self.find_timeout_s
        last_error = None
        while True:
            left = deadline - time.monotonic()
            try:
                found = await find_sensor(self.target, max(0.5, left), self.hci)
            except BleUnavailable as e:
                raise TransportError(str(e)) from None
            if found is None:
                raise TransportError(
                    last_error or f"No sensor named {self.target!r} was found within "
                    f"{self.find_timeout_s:g} s. Is it switched on, charged and nearby? "
                    "(`hiplevel scan` lists the sensors in reach.)")
            device, adv_kind = found
            try:
                await self._session(device, adv_kind)
                break
            except _NotOurSensor:
                raise
            except Exception as e:
                last_error = (f"Found {self.target} but could not connect: "
                              f"{explain_ble_error(e, self.hci)}")
                log.info("%s", last_error)
                if time.monotonic() >= deadline:
                    raise TransportError(last_error) from None
                await asyncio.sleep(0.25)
        self._event("connected", attempt=0, after_s=None)

    async def read(self) -> tuple[float, bytes] | None:
        if self._queue is None:
            raise TransportError("the BLE link is not open")
        item = await self._queue.get()
        if item is None:
            self._queue.put_nowait(None)  # stays ended for any later read
            return None
        t_host_s, frame, late = item
        self.late = late
        return t_host_s, frame

    async def send(self, frame_bytes: bytes) -> None:
        client = self._client
        if client is None or not self.connected:
            raise TransportError("the sensor is not connected right now (reconnecting)")
        if self._decoder is not None:
            await self._send_to_device(client, frame_bytes)
            return
        try:
            await client.write_gatt_char(gatt.CONTROL_CHAR_UUID, frame_bytes, response=True)
            if frame_bytes[1:2] in (bytes([FrameType.CMD_START]), bytes([FrameType.CMD_STOP])):
                self._started = frame_bytes[1] == FrameType.CMD_START  # resumed after reconnects
        except Exception as e:
            raise TransportError(f"could not send to the sensor: {explain_ble_error(e)}") from None

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._reconnect_task is not None:
            self._reconnect_task.cancel()
            try:
                await self._reconnect_task
            except (asyncio.CancelledError, Exception):
                pass
        client, self._client = self._client, None
        if client is not None:
            if self.connected:
                stop = ([(gatt.CONTROL_CHAR_UUID, encode_frame(Command(FrameType.CMD_STOP)))]
                        if self._decoder is None else devices.driver(self.kind).stop_writes())
                try:  # politely: the sensor stops streaming and goes back to advertising
                    for char_uuid, value in stop:
                        await asyncio.wait_for(client.write_gatt_char(char_uuid, value, response=True), 1.0)
                except Exception:
                    pass
            try:
                await asyncio.wait_for(client.disconnect(), 3.0)
            except Exception:
                pass
        self.connected = False
        await release_idle_radios()
        if self._queue is not None:
            self._queue.put_nowait(None)

    # ---- one connection
    async def _session(self, device, adv_kind: str | None = None) -> None:
        from bleak import BleakClient

        client = BleakClient(device, disconnected_callback=self._on_link_lost,
                             timeout=self.connect_timeout_s,
                             **bleak_backend_kwargs(self.hci, client=True))
        await client.connect()
        try:
            kind = self._kind_of(client, device, adv_kind)
        except BaseException:
            await _quietly_disconnect(client)
            raise
        if kind != "hiplevel":
            await self._device_session(client, device, kind)
            return
        try:
            if client.services.get_service(gatt.SERVICE_UUID) is None:
                raise _NotOurSensor(f"{device.name or device.address} is not a hiplevel sensor "
                                    "(it has no hiplevel service)")
            self.mtu = await _negotiated_mtu(client)
            if self.mtu is not None and self.mtu < gatt.MIN_STREAM_MTU:
                raise _NotOurSensor(f"the Bluetooth link's packet size (ATT MTU {self.mtu}) is "
                                    f"too small; the sensor needs at least {gatt.MIN_STREAM_MTU}")
            info = bytes(await client.read_gatt_char(gatt.INFO_CHAR_UUID))
            try:
                self.battery_pct = (await client.read_gatt_char(gatt.BATTERY_LEVEL_UUID))[0]
            except Exception:
                self.battery_pct = None  # optional service
            self._client = client
            self._queue.put_nowait((time.monotonic(), info, False))
            await client.start_notify(gatt.DATA_CHAR_UUID, self._on_notify)
            if self._next_seq is not None:
                self._backfilling, self._backfill = True, [0, 0]
                await client.write_gatt_char(
                    gatt.CONTROL_CHAR_UUID,
                    encode_frame(Command(FrameType.CMD_RESEND_FROM, from_seq=self._next_seq)),
                    response=True)
            if self._started:  # resume streaming; a first connection waits for the app's START
                await client.write_gatt_char(gatt.CONTROL_CHAR_UUID,
                                             encode_frame(Command(FrameType.CMD_START)),
                                             response=True)
            self._end_backfill()  # all re-sent frames came before the last write's response
            self.connected = True
            self._device_name = device.name or self.target
            self._device_address = device.address
        except BaseException:
            self._client = None
            self._backfilling = False
            try:
                await asyncio.wait_for(client.disconnect(), 2.0)
            except Exception:
                pass
            raise

    def _kind_of(self, client, device, adv_kind: str | None) -> str:
        """The kind of sensor connected to: the one the user named (its service must be there), or
        what its GATT services say, or its advertisement. _NotOurSensor (after disconnecting) when
        it is none hiplevel can use."""
        found = devices.kind_of_services(s.uuid for s in client.services)
        kind = self.sensor or found or adv_kind
        service = gatt.SERVICE_UUID if kind == "hiplevel" else (
            devices.driver(kind).SERVICE_UUID if kind in devices.DRIVERS else None)
        if kind is None or client.services.get_service(service) is None:
            what = {None: "a sensor hiplevel can use", "hiplevel": "a hiplevel sensor"}.get(
                kind, f"a {devices.driver(kind).LABEL}" if kind in devices.DRIVERS else kind)
            raise _NotOurSensor(f"{device.name or device.address} is not {what} (it lacks that "
                                "sensor's Bluetooth service)")
        if self.kind is None:
            self.kind = kind
            if kind in devices.DRIVERS:
                d = devices.driver(kind)
                self.manufacturer, self.model = d.MANUFACTURER, d.MODEL
                self.description = f"{d.LABEL} {self.target}"
        return kind

    async def _device_session(self, client, device, kind: str) -> None:
        """One connection to a third-party sensor: subscribe to its notifications and, once the app
        has started streaming, write its start commands (again after every reconnect)."""
        d = devices.driver(kind)
        try:
            self.mtu = await _negotiated_mtu(client)
            need = d.min_mtu(self.rate_hz or d.DEFAULT_RATE_HZ)
            if self.mtu is not None and self.mtu < need:
                raise _NotOurSensor(f"the Bluetooth link's packet size (ATT MTU {self.mtu}) is too small "
                                    f"for a {d.LABEL}; it needs at least {need}")
            if self._decoder is None:
                self._decoder = d.Decoder(self.rate_hz or d.DEFAULT_RATE_HZ)
            self.battery_pct = None
            if d.BATTERY_UUID and client.services.get_characteristic(d.BATTERY_UUID) is not None:
                try:
                    self.battery_pct = (await client.read_gatt_char(d.BATTERY_UUID))[0]
                except Exception:
                    pass  # a battery we cannot read is no reason not to stream
            self._client = client
            for char_uuid in d.NOTIFY_UUIDS:
                if client.services.get_characteristic(char_uuid) is not None:
                    await client.start_notify(char_uuid, lambda _c, data, u=char_uuid: self._on_device_notify(u, data))
            if self._started:  # a reconnect: subscribe again, as the sensor forgot us
                for char_uuid, value in d.start_writes(self._decoder.rate_hz):
                    await client.write_gatt_char(char_uuid, value, response=True)
            self.connected = True
            self._device_name = device.name or self.target
            self._device_address = device.address
        except BaseException:
            self._client = None
            try:
                await asyncio.wait_for(client.disconnect(), 2.0)
            except Exception:
                pass
            raise

    async def _send_to_device(self, client, frame_bytes: bytes) -> None:
        """A hiplevel command for a third-party sensor: START and STOP become its own writes."""
        try:
            cmd = decode_frame(frame_bytes)
        except FrameError:
            return
        d = devices.driver(self.kind)
        if isinstance(cmd, Command) and cmd.type == FrameType.CMD_SET_RATE:  # `run --rate` before START
            if cmd.rate_hz not in d.RATES_HZ:
                raise TransportError(f"a {d.LABEL} streams at {', '.join(map(str, d.RATES_HZ))} Hz, not "
                                     f"{cmd.rate_hz} (choose its rate with --sensor-rate)")
            if not self._started:
                self._decoder = d.Decoder(cmd.rate_hz)
            return
        if not isinstance(cmd, Command) or cmd.type not in (FrameType.CMD_START, FrameType.CMD_STOP):
            return  # nothing to resend from
        writes = d.start_writes(self._decoder.rate_hz) if cmd.type == FrameType.CMD_START else d.stop_writes()
        try:
            for char_uuid, value in writes:
                await client.write_gatt_char(char_uuid, value, response=True)
        except Exception as e:
            raise TransportError(f"could not send to the sensor: {explain_ble_error(e)}") from None
        self._started = cmd.type == FrameType.CMD_START

    def _on_device_notify(self, char_uuid: str, data: bytearray) -> None:
        if self._queue is None or self._closed or self._decoder is None:
            return
        t = time.monotonic()
        try:
            frames = self._decoder.feed(char_uuid, bytes(data), t)
        except Exception:  # noqa: BLE001 - a driver bug must not vanish inside the BLE stack's callback
            log.exception("the %s driver failed on a notification", self.kind)
            self._decoder.errors["driver_failed"] += 1
            return
        for frame in frames:
            self._queue.put_nowait((t, frame, False))
            if frame[1:2] == bytes([FrameType.CMD_STOP]):  # the sensor said it is switching off
                self._ended = True
                self._queue.put_nowait(None)
                return

    def _event(self, kind: str, **fields) -> None:
        if kind == "connected":
            fields = dict(name=self._device_name, address=self._device_address, mtu=self.mtu,
                          battery_pct=self.battery_pct, sensor=self.kind, **fields)
        try:
            self.on_event(kind, **fields)
        except Exception:
            log.exception("on_event(%s) failed", kind)

    def _end_backfill(self) -> None:
        if self._backfilling:
            self._backfilling = False
            frames, samples = self._backfill
            self.backfilled_samples += samples
            self._event("backfill", frames=frames, samples=samples)

    def _on_notify(self, _char, data: bytearray) -> None:
        t = time.monotonic()
        frame_bytes = bytes(data)
        if self._queue is None or self._closed:
            return
        try:
            frame = decode_frame(frame_bytes)
        except FrameError:
            self._queue.put_nowait((t, frame_bytes, False))  # the decoder counts it
            return
        if isinstance(frame, DataFrame):
            n = len(frame.acc_raw)
            if self._next_seq is not None:
                behind = (self._next_seq - frame.seq) % SEQ_MODULO
                if 0 < behind < SEQ_MODULO // 2:  # starts before what we need
                    if self._backfilling:
                        if behind >= n:  # all of it is held already
                            self.duplicate_frames += 1
                            return
                    else:
                        self._event("sensor_restarted", expected_seq=self._next_seq,
                                    got_seq=frame.seq)
            self._next_seq = (frame.seq + n) % SEQ_MODULO
            if self._backfilling:
                self._backfill[0] += 1
                self._backfill[1] += n
            self._queue.put_nowait((t, frame_bytes, self._backfilling))
            return
        if isinstance(frame, InfoFrame):
            self._end_backfill()  # the sensor answers START with an info frame
        elif isinstance(frame, Command) and frame.type == FrameType.CMD_STOP:
            self._ended = True    # scenario/session over: no reconnect when the link drops
            self._queue.put_nowait((t, frame_bytes, False))
            self._queue.put_nowait(None)
            return
        self._queue.put_nowait((t, frame_bytes, False))

    # ---- losing and regaining the link
    def _on_link_lost(self, client) -> None:
        if client is not self._client:
            return
        was_streaming, self.connected = self.connected, False
        self._client = None
        if not was_streaming:
            return  # a connection being set up fails by itself; its caller retries
        self._backfilling = False
        if self._closed or self._ended:
            return
        self._event("disconnected", reason="link lost")
        if self._reconnect_task is None or self._reconnect_task.done():
            self._reconnect_task = asyncio.get_running_loop().create_task(self._reconnect())

    async def _reconnect(self) -> None:
        t_lost = time.monotonic()
        attempt, delay, last_status = 0, 0.25, -1e9
        while not (self._closed or self._ended):
            attempt += 1
            now = time.monotonic()
            if now - last_status >= STATUS_EVERY_S:
                self._event("reconnecting", attempt=attempt, since_s=round(now - t_lost, 3))
                last_status = now
            wait = 0.0
            try:
                found = await find_sensor(self.target, RESCAN_S, self.hci)
                if found is not None:
                    await self._session(*found)
                    after_s = time.monotonic() - t_lost
                    self.reconnects += 1
                    self.reconnect_times_s.append(after_s)
                    self._event("connected", attempt=attempt, after_s=round(after_s, 3))
                    return
                delay = 0.25  # not heard: nothing failed, keep listening
            except _NotOurSensor as e:
                self._give_up(str(e))
                return
            except BleUnavailable as e:
                log.info("reconnect: %s", e)
                wait = RADIO_RETRY_S
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.info("reconnect attempt %d failed: %s", attempt, explain_ble_error(e))
                wait, delay = delay, min(delay * 2, self.max_backoff_s)
            if self.give_up_after_s is not None and time.monotonic() - t_lost > self.give_up_after_s:
                self._give_up(f"the sensor has been out of reach for {self.give_up_after_s:g} s")
                return
            if wait:
                await asyncio.sleep(wait)

    def _give_up(self, reason: str) -> None:
        self.lost_reason = reason
        self._event("gave_up", reason=reason)
        if self._queue is not None:
            self._queue.put_nowait(None)
