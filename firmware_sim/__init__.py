"""Simulated belt sensor: a kinematic pelvis model sampled like real firmware, served over a link."""
