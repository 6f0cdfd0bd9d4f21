"""Simulated belt sensor: the real firmware core (hardware/firmware/hiplevel_core.py) on a register
model of the LSM6DS3TR-C sampling a kinematic pelvis model, served over a pty or BLE link."""
