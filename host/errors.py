"""Errors said in words a user understands.

`UserError` is a problem the user can fix (a wrong port, a bad value, a missing folder). Any code
may raise it; the entry point (host/cli.py) prints its text as one sentence on stderr and exits
with status 2, without a traceback.
"""
from __future__ import annotations


class UserError(Exception):
    """A problem the user can fix, said in words they understand."""
