"""Runs once at power-on, before code.py: turns on the USB CDC data channel (the second serial port)
that carries the protocol's COBS-framed frames, beside the REPL console."""
import usb_cdc

usb_cdc.enable(console=True, data=True)
