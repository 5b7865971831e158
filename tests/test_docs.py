"""Every command in the README's and docs/'s bash code blocks works as written.

Each block passes ``bash -n``; then its commands run in order in a scratch folder: ``snakemake``
calls as dry runs (``-n``) of this workflow, other shell commands (``printf ... > file``) as they
are, ``make`` targets must exist in the Makefile and ``python -m`` modules must import. A
``--report`` needs a finished run, so a report command is dry-run without it (the report covers
that DAG). A block preceded by ``<!-- not run: reason -->`` only gets ``bash -n`` (it needs the
user's data). The README stays a front door: at most 12 KB.
"""

from __future__ import annotations

import importlib.util
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(
    r"(?:<!--\s*(?P<skip>not run[^>]*?)\s*-->\s*\n)?^```(?P<lang>\w*)\n(?P<body>.*?)^```", re.S | re.M
)


def bash_blocks() -> list[tuple[str, str, str | None]]:
    """(doc name and block number, body, skip reason) of every bash block."""
    out = []
    for doc in DOCS:
        for n, m in enumerate(BLOCK.finditer(doc.read_text()), 1):
            if m.group("lang") in ("bash", "sh"):
                out.append((f"{doc.relative_to(ROOT)}#{n}", m.group("body"), m.group("skip")))
    return out


def commands(body: str) -> list[str]:
    """The commands of a block: continuation lines joined, comments and blank lines dropped."""
    out, current = [], ""
    for line in body.splitlines():
        line = line.split(" #", 1)[0] if not line.lstrip().startswith("printf") else line
        if line.lstrip().startswith("#") or not line.strip():
            continue
        current += line.strip().removesuffix("\\").strip() + " "
        if not line.rstrip().endswith("\\"):
            out.append(current.strip())
            current = ""
    return out


def _dry_run(args: list[str], scratch: Path) -> subprocess.CompletedProcess:
    if "--report" in args:  # a report needs a finished run: check its DAG
        i = args.index("--report")
        args = args[:i] + args[i + 2 :]
        args = [a for a in args if a != "--report-after-run"]
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        *args,
        "-n",
        "--snakefile",
        str(ROOT / "Snakefile"),
        "--directory",
        str(scratch),
    ]
    return subprocess.run(cmd, cwd=scratch, capture_output=True, text=True, timeout=300)


def run_command(command: str, scratch: Path) -> str | None:
    """None when ``command`` works as written, else why not."""
    words = shlex.split(command)
    exe = words[0].removeprefix(".venv/bin/")
    if exe == "snakemake":
        run = _dry_run(words[1:], scratch)
        return None if run.returncode == 0 else (run.stdout + run.stderr)[-2000:]
    if exe == "make":
        targets = re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), re.M)
        missing = [t for t in words[1:] if "=" not in t and t not in targets]
        return f"no make target {missing}" if missing else None
    if exe in ("python", "python3") and words[1] == "-m":
        sys.path.insert(0, str(ROOT))
        return None if importlib.util.find_spec(words[2]) else f"no module {words[2]}"
    if exe in ("python", "python3"):
        return None if (ROOT / words[1]).is_file() else f"no script {words[1]}"
    run = subprocess.run(["bash", "-c", command], cwd=scratch, capture_output=True, text=True, timeout=60)
    return None if run.returncode == 0 else run.stderr


def test_the_readme_is_a_front_door():
    assert len((ROOT / "README.md").read_bytes()) <= 12 * 1024
    names = {m.group(1) for m in re.finditer(r"\]\((docs/[\w.]+\.md)\)", (ROOT / "README.md").read_text())}
    assert {
        f"docs/{n}.md"
        for n in ("driving", "endoscopy", "cluster", "decisions", "development", "configuration")
    } <= names
    for doc in DOCS:
        for link in re.findall(r"\]\(([\w./-]+\.md)\)", doc.read_text()):
            assert (doc.parent / link).is_file(), f"{doc.name} links to {link}, which does not exist"


@pytest.mark.parametrize(("where", "body", "skip"), bash_blocks(), ids=[b[0] for b in bash_blocks()])
def test_commands_in_the_docs_work_as_written(tmp_path, where, body, skip):
    syntax = subprocess.run(["bash", "-n"], input=body, capture_output=True, text=True)
    assert syntax.returncode == 0, f"{where}: {syntax.stderr}"
    if skip:
        return
    (tmp_path / "profiles").symlink_to(ROOT / "profiles")
    for command in commands(body):
        problem = run_command(command, tmp_path)
        assert problem is None, f"{where}: `{command}` fails:\n{problem}"


def test_the_command_reader_joins_lines_and_drops_comments():
    body = "# say\nsnakemake all \\\n  -n   # dry\nprintf 'a # b' > x\n\nmake demo\n"
    assert commands(body) == ["snakemake all -n", "printf 'a # b' > x", "make demo"]
