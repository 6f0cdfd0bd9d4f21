"""The layout's rules (docs/architecture.md), checked on the source so they stay true:
library code never imports a subcommand module, every host module says what it is for, the
tests do not edit sys.path, and every event kind the code emits is documented in docs/events.md."""
from __future__ import annotations

import ast
import re
from pathlib import Path

from host.bench import BENCHES
from host.cli import COMMANDS

ROOT = Path(__file__).resolve().parents[1]
HOST = ROOT / "host"


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = rel.parts[:-1] if rel.parts[-1] == "__init__" else rel.parts
    return ".".join(parts)


def imported_modules(path: Path) -> set[str]:
    """Every host module `path` imports (at module level or inside a function), by full name."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            assert node.level == 0, f"{path}: relative import (the layout uses absolute ones)"
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return {m for m in out if m.startswith("host")}


def test_no_library_module_imports_a_command_module():
    commands = {module for module, _help in COMMANDS.values()} | {m for m, _ in BENCHES.values()}
    commands.discard("host.bench")  # the bench group's own table
    # A bench's own parts (host/bench/latency_ble.py belongs to `latency`) are that command too.
    commands |= {module_name(p) for p in (HOST / "bench").glob("*_*.py")
                 if f"host.bench.{p.stem.split('_')[0]}" in commands}
    offenders = []
    for path in HOST.rglob("*.py"):
        name = module_name(path)
        if name in commands or name in ("host.cli", "host.bench"):
            continue
        offenders += [f"{name} imports {m}" for m in imported_modules(path) & commands]
    assert offenders == []


def test_every_host_module_has_a_docstring():
    missing = [module_name(p) for p in HOST.rglob("*.py")
               if p.name != "__init__.py" and not ast.get_docstring(ast.parse(p.read_text()))]
    assert missing == []


def test_tests_do_not_edit_sys_path():
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "tests").rglob("*.py")
                 if "sys.path.insert" in p.read_text() and p != Path(__file__).resolve()]
    assert offenders == []


def emitted_event_kinds() -> set[str]:
    """Event kinds written as literals in host/: {"event": "kind"} dicts and link events
    (on_event("kind") / self._event("kind"))."""
    kinds = set()
    for path in HOST.rglob("*.py"):
        text = path.read_text()
        kinds.update(re.findall(r'"event":\s*"([a-z_]+)"', text))
        kinds.update(re.findall(r'(?:on_event|self\._event)\("([a-z_]+)"', text))
    return kinds


def test_every_event_kind_is_documented():
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", (ROOT / "docs" / "events.md").read_text(), re.M))
    kinds = emitted_event_kinds()
    assert {"rep", "cue_on", "connected", "end"} <= kinds  # the scan itself finds what it should
    assert kinds - documented == set()
