"""The firmware files as CircuitPython sees them: the board glue type-checked with mypy against
`circuitpython-stubs` (with the Seeed XIAO nRF52840 Sense's own `board` stub, from the stubs'
board_definitions), and every file checked to use only what CircuitPython offers.

How the subset check works (an AST walk of each file, `check_circuitpython_subset`): every import
must name a module on the board's "Included modules" list in that same board stub (plus the
firmware's own `hiplevel_core`), so `dataclasses`, `typing`, `enum`, `numpy` and relative imports
fail; no f-strings (CircuitPython builds differ in `=`, `!r` and nested format specs, so the
firmware uses %-formatting throughout), no assignment expressions, `match` or async code; no
`int.from_bytes/to_bytes(signed=...)` and no str methods CircuitPython lacks (`format_map`,
`removeprefix`, `removesuffix`, `casefold`); no bare variable annotations.
What it cannot see: attributes a built-in type lacks on this build beyond that list, memory use,
speed, and how the real radio and chip behave: those need a board (docs/firmware.md).
"""
import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

FIRMWARE = Path(__file__).resolve().parents[2] / "hardware" / "firmware"
FILES = sorted(FIRMWARE.glob("*.py"))
BOARD = "Seeed_XIAO_nRF52840_Sense"


def board_stub() -> Path:
    stubs = pytest.importorskip("board_definitions", reason="pip install circuitpython-stubs")
    return Path(stubs.__path__[0]) / BOARD / "__init__.pyi"


def board_modules() -> set[str]:
    doc = board_stub().read_text()
    line = re.search(r"Included modules: (.*)", doc).group(1)
    return {m.strip().split(" ")[0].split(".")[0] for m in line.split(",")}


FORBIDDEN_CALL_KWARGS = {("from_bytes", "signed"), ("to_bytes", "signed")}


def check_circuitpython_subset(path: Path, allowed: set[str]) -> list[str]:
    problems = []
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        where = f"{path.name}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] not in allowed:
                    problems.append(f"{where}: imports {alias.name}, not on the board")
        elif isinstance(node, ast.ImportFrom):
            if node.level or (node.module or "").split(".")[0] not in allowed:
                problems.append(f"{where}: imports from {node.module}, not on the board")
        elif isinstance(node, ast.JoinedStr):
            problems.append(f"{where}: f-string (use % formatting)")
        elif isinstance(node, ast.NamedExpr):
            problems.append(f"{where}: assignment expression")
        elif isinstance(node, ast.Match):
            problems.append(f"{where}: match statement")
        elif isinstance(node, (ast.AsyncFunctionDef, ast.AsyncFor, ast.AsyncWith, ast.Await)):
            problems.append(f"{where}: async code (the firmware loop is synchronous)")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            for kw in node.keywords:
                if (node.func.attr, kw.arg) in FORBIDDEN_CALL_KWARGS:
                    problems.append(f"{where}: {node.func.attr}({kw.arg}=...)")
            if node.func.attr in ("format_map", "removeprefix", "removesuffix", "casefold"):
                problems.append(f"{where}: str.{node.func.attr} is not in CircuitPython")
        elif isinstance(node, ast.AnnAssign) and node.value is None:
            problems.append(f"{where}: bare annotation")
    return problems


def test_every_firmware_file_uses_only_what_circuitpython_offers():
    allowed = board_modules() | {"hiplevel_core"}
    assert {"_bleio", "busio", "alarm", "usb_cdc", "struct", "analogio"} <= allowed
    assert "dataclasses" not in allowed and "typing" not in allowed and "numpy" not in allowed
    assert FILES and {p.name for p in FILES} >= {"code.py", "boot.py", "hiplevel_core.py"}
    problems = [p for path in FILES for p in check_circuitpython_subset(path, allowed)]
    assert problems == []


def test_the_subset_check_catches_what_circuitpython_lacks(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import dataclasses\nfrom typing import List\nx = f'{1=}'\n"
                   "if (y := 2):\n    pass\nn = int.from_bytes(b'1', 'little', signed=True)\n")
    problems = check_circuitpython_subset(bad, board_modules())
    assert len(problems) == 5, problems


def test_board_glue_type_checks_against_circuitpython_stubs(tmp_path):
    if shutil.which("mypy") is None and not (Path(sys.executable).parent / "mypy").exists():
        pytest.importorskip("mypy", reason="pip install mypy")
    stub_dir = tmp_path / "stubs" / "board"
    stub_dir.mkdir(parents=True)
    shutil.copy(board_stub(), stub_dir / "__init__.pyi")  # the XIAO's own pins, not a generic board
    env = dict(os.environ, MYPYPATH=str(tmp_path / "stubs"))
    # Checked as the board sees them: three top-level modules in CIRCUITPY's root, outside the
    # repository's `hardware` package (mypy would otherwise find the core under two names).
    board_root = tmp_path / "CIRCUITPY"
    board_root.mkdir()
    for name in ("code.py", "boot.py", "hiplevel_core.py"):
        shutil.copy(FIRMWARE / name, board_root / name)
    r = subprocess.run([sys.executable, "-m", "mypy", "--no-incremental", "--cache-dir", os.devnull,
                        "--check-untyped-defs", "--warn-unused-ignores", "code.py", "boot.py",
                        "hiplevel_core.py"], cwd=board_root, env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Success" in r.stdout
