"""Shared test set-up: the tests import the project from the repo root."""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

# Every `hiplevel run` in the tests records (recording is on by default): keep those sessions out
# of the user's own database.
import os as _os
import tempfile as _tempfile

_os.environ.setdefault("HIPLEVEL_DB", _os.path.join(_tempfile.mkdtemp(prefix="hiplevel-test-db-"),
                                                    "sessions.sqlite"))
