"""`hiplevel bench memory` on a short session: every command measured as often as asked, this
checkout's code against another's in one invocation, and its own section of a Markdown file."""
import re
import subprocess

from tests.support.simproc import ROOT, hiplevel


def cli(*args):
    return subprocess.run(hiplevel(*args), capture_output=True, text=True, cwd=ROOT, timeout=300)


def test_memory_bench_measures_each_command_repeatedly_against_other_code(tmp_path):
    doc = tmp_path / "performance.md"
    doc.write_text("# Performance\n\n## Another section\n\nkept\n")
    r = cli("bench", "memory", "--minutes", 0.3, "--repeats", 2, "--against", ROOT, "--write-docs", doc)
    assert r.returncode == 0, r.stderr
    text = doc.read_text()
    assert "## Another section\n\nkept" in text and "## Export and report memory" in text
    for command in ("`hiplevel sessions`", "`hiplevel export 1", "`hiplevel report 1`", "`hiplevel report 2`"):
        (row,) = [line for line in text.splitlines() if line.startswith(f"| {command}")]
        runs = re.findall(r"\(runs ([\d, ]+)\)", row)
        assert len(runs) == 2 and all(len(x.split(", ")) == 2 for x in runs), row  # this code and the other
    r = cli("bench", "memory", "--commands", "report", "--write-docs", doc)
    assert r.returncode == 2 and "measure both commands" in r.stderr and "Traceback" not in r.stderr
    r = cli("bench", "memory", "--against", tmp_path)
    assert r.returncode == 2 and "is not a hiplevel checkout" in r.stderr
