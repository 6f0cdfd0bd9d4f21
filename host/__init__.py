"""hiplevel host app: real-time pelvic-level feedback from a belt-worn IMU."""
__version__ = "0.1.0"
