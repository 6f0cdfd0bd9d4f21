"""Writes a benchmark's results into its own section of a Markdown file in docs/, leaving the
other sections (written by other benchmarks) as they are."""
from __future__ import annotations

import datetime
import platform
import re
from pathlib import Path


def replace_section(path: str, heading: str, body: str, title: str = "# Performance") -> None:
    """Replace (or append) the `## heading` section of `path` with `body`, stamped with the date
    and machine."""
    p = Path(path)
    text = p.read_text() if p.exists() else f"{title}\n\nEach section is written by the command it names; numbers are medians unless said otherwise.\n"
    stamp = (f"_Measured {datetime.date.today()} on {platform.machine()}, "
             f"Python {platform.python_version()}._")
    section = f"## {heading}\n\n{stamp}\n\n{body.strip()}\n"
    pattern = re.compile(rf"^## {re.escape(heading)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda m: section + "\n", text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text.rstrip("\n") + "\n")
