"""Bluetooth LE link to the belt sensor: GATT profile (gatt), bleak backend on bumble for virtual or
HCI radios (bumble_backend), finding sensors (scan) and the reconnecting Transport (transport).
bumble itself is imported only when a radio is opened."""
