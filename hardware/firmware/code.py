"""The belt sensor's board glue for the Seeed XIAO nRF52840 Sense (CircuitPython 10): wires the
firmware core (hiplevel_core.py) to the board.

In: the on-board LSM6DS3TR-C over I2C (board.IMU_SCL/IMU_SDA, address 0x6A, powered by
board.IMU_PWR), host commands written to the GATT control characteristic or sent over the USB CDC
data channel (COBS + CRC), the cell voltage on board.VBATT (divider 1 MOhm / 510 kOhm, enabled by
pulling board.READ_BATT_ENABLE low). Out: the core's frames as notifications of the data
characteristic (one frame each) and over USB; the info characteristic; Battery Service (percent from
the cell voltage) and Device Information (firmware version); the RGB LED (active low); advertising
with the name hiplevel-XXXX that `hiplevel scan` looks for.

Power: while nobody is connected and nothing is sampling the board light-sleeps between checks
(advertising goes on); after IDLE_DEEP_S without a host it deep-sleeps and wakes every
DEEP_SLEEP_S to advertise again. All decisions (batching, timing, resend, commands) are the core's.
"""
import time

import _bleio
import alarm
import alarm.time
import analogio
import board
import busio
import digitalio
import microcontroller
import usb_cdc

import hiplevel_core as core

SERVICE_UUID = "4f8a0001-1c2e-4b7d-9a61-3e5c7b2d9f10"
DATA_CHAR_UUID = "4f8a0002-1c2e-4b7d-9a61-3e5c7b2d9f10"
CONTROL_CHAR_UUID = "4f8a0003-1c2e-4b7d-9a61-3e5c7b2d9f10"
INFO_CHAR_UUID = "4f8a0004-1c2e-4b7d-9a61-3e5c7b2d9f10"
MAX_PAYLOAD = 244            # ATT MTU 247 - 3: 19 samples
BATTERY_EVERY_S = 10.0
IDLE_DEEP_S = 600.0
DEEP_SLEEP_S = 30.0
DIVIDER = (1000.0 + 510.0) / 510.0


class I2CRegisters:
    """The core's `bus`: register reads and writes on one I2C device."""

    def __init__(self, i2c: busio.I2C, address: int) -> None:
        self.i2c = i2c
        self.address = address
        self._reg = bytearray(1)

    def read_into(self, register: int, buf: bytearray) -> None:
        self._reg[0] = register
        while not self.i2c.try_lock():
            pass
        try:
            self.i2c.writeto_then_readfrom(self.address, self._reg, buf)
        finally:
            self.i2c.unlock()

    def write(self, register: int, data: bytes) -> None:
        while not self.i2c.try_lock():
            pass
        try:
            self.i2c.writeto(self.address, bytes((register,)) + data)
        finally:
            self.i2c.unlock()


def output(pin: microcontroller.Pin, value: bool) -> digitalio.DigitalInOut:
    io = digitalio.DigitalInOut(pin)
    io.direction = digitalio.Direction.OUTPUT
    io.value = value
    return io


def battery_volts(adc: analogio.AnalogIn) -> float:
    return adc.value / 65535.0 * adc.reference_voltage * DIVIDER


def add_char(service: _bleio.Service, uuid: str, properties: int, max_length: int,
             value: bytes = b"", fixed: bool = False) -> _bleio.Characteristic:
    return _bleio.Characteristic.add_to_service(
        service, _bleio.UUID(uuid), properties=properties, read_perm=_bleio.Attribute.OPEN,
        write_perm=_bleio.Attribute.OPEN if properties & (_bleio.Characteristic.WRITE |
                                                          _bleio.Characteristic.WRITE_NO_RESPONSE)
        else _bleio.Attribute.NO_ACCESS,
        max_length=max_length, fixed_length=fixed, initial_value=value)


def main() -> None:
    imu_power = output(board.IMU_PWR, True)
    time.sleep(0.05)  # the chip's boot time after power-up
    i2c = busio.I2C(board.IMU_SCL, board.IMU_SDA, frequency=400000)
    fw = core.Firmware(I2CRegisters(i2c, core.LSM6DS3TRC.ADDRESS), max_spf=19)
    batt_enable = output(board.READ_BATT_ENABLE, False)  # low: the divider is on (keep it low)
    vbatt = analogio.AnalogIn(board.VBATT)
    leds = (output(board.LED_RED, True), output(board.LED_GREEN, True), output(board.LED_BLUE, True))

    adapter = _bleio.adapter
    suffix = microcontroller.cpu.uid[-2:]
    name = "hiplevel-%02x%02x" % (suffix[0], suffix[1])
    adapter.name = name
    service = _bleio.Service(_bleio.UUID(SERVICE_UUID))
    C = _bleio.Characteristic
    data_char = add_char(service, DATA_CHAR_UUID, C.NOTIFY, MAX_PAYLOAD)
    control_char = add_char(service, CONTROL_CHAR_UUID, C.WRITE | C.WRITE_NO_RESPONSE, 8)
    info_char = add_char(service, INFO_CHAR_UUID, C.READ, core.INFO_BYTES, fw.info_frame(), True)
    battery = _bleio.Service(_bleio.UUID(0x180F))
    pct = core.battery_percent(battery_volts(vbatt))
    level_char = _bleio.Characteristic.add_to_service(
        battery, _bleio.UUID(0x2A19), properties=C.READ | C.NOTIFY, max_length=1,
        fixed_length=True, initial_value=bytes((pct,)))
    dis = _bleio.Service(_bleio.UUID(0x180A))
    version = "%d.%d.%d" % core.FW_VERSION
    for short, text in ((0x2A29, "hiplevel"), (0x2A24, "hiplevel XIAO nRF52840 Sense"),
                        (0x2A25, "".join("%02x" % b for b in microcontroller.cpu.uid)),
                        (0x2A26, version)):
        _bleio.Characteristic.add_to_service(dis, _bleio.UUID(short), properties=C.READ,
                                             write_perm=_bleio.Attribute.NO_ACCESS,
                                             max_length=len(text), fixed_length=True,
                                             initial_value=text.encode())
    commands = _bleio.PacketBuffer(control_char, buffer_size=8)
    notify = _bleio.PacketBuffer(data_char, buffer_size=16, max_packet_size=MAX_PAYLOAD)
    cmd_buf = bytearray(8)
    serial = usb_cdc.data
    deframer = core.SerialDeframer()
    connection = None
    last_battery = time.monotonic()
    idle_since = time.monotonic()

    def advertise() -> None:
        if not adapter.advertising:
            adapter.start_advertising(core.advertising_data(SERVICE_UUID, pct),
                                      scan_response=core.scan_response_data(name),
                                      connectable=True, interval=0.1)

    def send(frames: list) -> None:
        for frame in frames:
            if connection is not None and fw.link == "ble":
                if len(frame) <= notify.outgoing_packet_length:
                    notify.write(frame)
            if serial is not None and serial.connected and fw.link == "usb":
                serial.write(core.serial_wrap(frame))

    advertise()
    while True:
        now = time.monotonic_ns() // 1000 & 0xFFFFFFFF  # a free-running 32-bit microsecond counter
        # -- link changes
        if connection is None and adapter.connected:
            connection = adapter.connections[0]
            try:
                connection.connection_interval = 7.5
            except _bleio.BluetoothError:
                pass  # the central keeps its own interval
            fw.set_link(connection.max_packet_length, int(connection.connection_interval * 1000))
            fw.link = "ble"
        elif connection is not None and not connection.connected:
            connection = None
            fw.disconnected()
            advertise()
        # -- commands
        if connection is not None:
            n = commands.readinto(cmd_buf)
            if n:
                fw.link = "ble"
                send(fw.handle_command(bytes(cmd_buf[:n]), now))
        if serial is not None and serial.in_waiting:
            for frame in deframer.feed(serial.read(serial.in_waiting)):
                if connection is None:
                    fw.set_link(1 << 16, core.DEFAULT_FLUSH_US)
                fw.link = "usb"
                send(fw.handle_command(frame, now))
        # -- the core's loop
        send(fw.poll(now))
        info_char.value = bytearray(fw.info_frame())
        # -- battery, LED
        t = time.monotonic()
        if t - last_battery > BATTERY_EVERY_S:
            last_battery = t
            pct = core.battery_percent(battery_volts(vbatt))
            level_char.value = bytearray((pct,))
        state = core.led_state(connection is not None, fw.streaming, fw.fault, pct)
        rgb = core.led_pattern(state, int(t * 1000))
        for led, on in zip(leds, rgb):
            led.value = not on  # active low
        # -- sleep when nobody needs us
        if connection is None and not fw.sampling and not (serial is not None and serial.connected):
            if t - idle_since > IDLE_DEEP_S:
                imu_power.value = False
                alarm.exit_and_deep_sleep_until_alarms(
                    alarm.time.TimeAlarm(monotonic_time=t + DEEP_SLEEP_S))
            alarm.light_sleep_until_alarms(alarm.time.TimeAlarm(monotonic_time=t + 0.1))
        else:
            idle_since = t
        batt_enable.value = False


main()
