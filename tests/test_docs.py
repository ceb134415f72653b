"""Docs that cannot rot: every command line in the user docs parses with the CLI's own parser, and every
relative link (and its #anchor) resolves. Nothing is run: the parser only reads the arguments."""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest

from pccd_hpc.launch import build_parser

ROOT = Path(__file__).resolve().parents[1]
README_LIMIT_BYTES = 15 * 1024
SETUP_COMMANDS = (
    "bash scripts/bootstrap.sh && .venv/bin/python -m pccd_hpc.launch generate --n 200 --out runs/demo",
    "bash scripts/bootstrap.sh && .venv/bin/python -m pytest -q",
)
PLACEHOLDER = re.compile(r"^[A-Z][A-Z0-9_]*$|^<[^>]+>$")  # DIR, CKPT, N, <id>: stand for a value
SHELL_OPERATORS = {"&&", "||", "|", ";", ">", ">>", "2>", "2>&1", "&"}
FENCE = re.compile(r"^\s*(```|~~~)")
INLINE_CODE = re.compile(r"`([^`\n]+)`")  # within one line, or a paragraph joined into one
LINK = re.compile(r"!?\[[^\]\n]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
JARGON = [
    (re.compile(r"\bstop \d+", re.I), "a 'stop N' (an internal session number)"),
    (re.compile(r"\bissue[s]? #?\d+", re.I), "an issue number"),
    (re.compile(r"\.\./shared|/work/"), "a path outside the repository"),
]


def doc_files() -> list[Path]:
    """The Markdown a user reads: README, CHANGELOG, the model card and everything under docs/."""
    files = [ROOT / "README.md", ROOT / "CHANGELOG.md", ROOT / "pccd_hpc" / "weights" / "MODEL_CARD.md"]
    return [f for f in files if f.exists()] + sorted((ROOT / "docs").rglob("*.md"))


def command_lines(text: str) -> list[tuple[int, str]]:
    """(line number, command) for each shell line in fenced blocks (continuations joined) and each inline
    code span that runs the CLI (``python -m pccd_hpc.launch ...`` or ``pccd ...``)."""
    found: list[tuple[int, str]] = []
    in_block, pending, start = False, "", 0
    paragraph: list[tuple[int, str]] = []  # inline code may wrap onto the next line of its paragraph

    def flush() -> None:
        joined = " ".join(line for _, line in paragraph)
        found.extend((paragraph[0][0], span) for span in INLINE_CODE.findall(joined))
        paragraph.clear()

    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            flush()
            in_block, pending = not in_block, ""
            continue
        if in_block:
            if not pending:
                start = number
            pending += line.rstrip()
            if pending.endswith("\\"):
                pending = pending[:-1] + " "
                continue
            found.append((start, pending))
            pending = ""
        elif line.strip() and not line.lstrip().startswith(("|", "#")):
            paragraph.append((number, line.strip()))
        else:
            flush()
            found += [(number, span) for span in INLINE_CODE.findall(line)]
    flush()
    return [(n, c) for n, c in found if _cli_args(c) is not None]


def _cli_args(command: str) -> list[str] | None:
    """The arguments given to the CLI in one shell command, or None when it does not run the CLI."""
    try:
        tokens = shlex.split(command, comments=True)
    except ValueError:
        return None
    for i, token in enumerate(tokens):
        if token == "pccd_hpc.launch" and i > 0 and tokens[i - 1] == "-m" or token == "pccd" and _starts_command(tokens, i):
            args = []
            for arg in tokens[i + 1:]:
                if arg in SHELL_OPERATORS or arg.startswith((">", "2>")):
                    break
                args.append(arg)
            return args
    return None


def _starts_command(tokens: list[str], i: int) -> bool:
    """True when ``tokens[i]`` is the program of its command (first, or after env assignments / an operator)."""
    before = tokens[:i]
    while before and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", before[-1]):
        before.pop()
    return not before or before[-1] in SHELL_OPERATORS


def subcommands() -> dict[str, argparse.ArgumentParser]:
    """The CLI's subcommands by name, from its own parser."""
    return next(a.choices for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))


def _placeholder_tolerant(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Let typed options take a placeholder (``--n N``, ``--checkpoint CKPT``); names and choices stay checked."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _placeholder_tolerant(sub)
        elif action.type is not None and not isinstance(action.type, _Tolerant):
            action.type = _Tolerant(action.type)
    return parser


class _Tolerant:
    """A type converter that passes placeholders through unchanged."""

    def __init__(self, convert) -> None:
        self.convert = convert
        self.__name__ = getattr(convert, "__name__", "value")

    def __call__(self, value: str):
        return value if PLACEHOLDER.match(value) else self.convert(value)


def parse_error(args: list[str]) -> str | None:
    """argparse's complaint about ``args`` (None when they parse); nothing is run."""
    if any(a in ("-h", "--help") for a in args):
        args = [a for a in args if a not in ("-h", "--help")]
        if not args:
            return None
        return None if args[0] in subcommands() else f"unknown subcommand {args[0]!r}"
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            parsed = _placeholder_tolerant(build_parser()).parse_args(args)
    except SystemExit:
        return stderr.getvalue().strip().splitlines()[-1] if stderr.getvalue().strip() else "exit"
    return None if hasattr(parsed, "func") else "no subcommand"


def _github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"`|\*\*|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip()).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text, in_block, seen, anchors = path.read_text(), False, {}, set()
    for line in text.splitlines():
        if FENCE.match(line):
            in_block = not in_block
        elif not in_block and (m := re.match(r"^#{1,6}\s+(.*)$", line)):
            slug = _github_slug(m.group(1))
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def broken_links(path: Path) -> list[str]:
    """Relative links (and #anchors) in ``path`` that do not resolve inside the repository."""
    text = re.sub(r"(?ms)^\s*```.*?^\s*```", "", path.read_text())
    text = INLINE_CODE.sub("", text)
    problems = []
    for target in LINK.findall(text):
        if re.match(r"^[a-z]+:", target):  # http:, https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        resolved = (path.parent / file_part).resolve() if file_part else path
        if not resolved.exists():
            problems.append(f"{target}: no such file")
        elif ROOT not in resolved.parents and resolved != ROOT:
            problems.append(f"{target}: outside the repository")
        elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
            problems.append(f"{target}: no heading with anchor #{anchor}")
    return problems


def test_the_checks_can_fail() -> None:
    assert parse_error(["generate", "--n", "16", "--out", "x", "--no-such-flag"])
    assert parse_error(["no-such-stage", "--out", "x"])
    assert parse_error(["generate", "--out", "x"])  # --n is required
    assert parse_error(["generate", "--n", "N", "--out", "DIR"]) is None  # placeholders stand for values
    assert parse_error(["generate", "--n", "many", "--out", "x"])  # but a wrong value is caught
    text = "```bash\nmpiexec -n 8 python -m pccd_hpc.launch encode \\\n    --out DIR   # comment\npccd info\n```\n"
    lines = command_lines(text)
    assert [(n, _cli_args(c)) for n, c in lines] == [(2, ["encode", "--out", "DIR"]), (4, ["info"])]
    wrapped = "Run `python -m pccd_hpc.launch generate\n--n 16 --out DIR` now.\n"
    assert [_cli_args(c) for _, c in command_lines(wrapped)] == [["generate", "--n", "16", "--out", "DIR"]]
    assert _github_slug("Running on a cluster (SLURM)") == "running-on-a-cluster-slurm"


def test_user_docs_exist() -> None:
    pages = sorted((ROOT / "docs").rglob("*.md"))
    assert len(pages) >= 6, pages
    assert (ROOT / "CHANGELOG.md").exists()


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_command_parses(path: Path) -> None:
    bad = [f"{path.name}:{n}: {cmd.strip()}\n    -> {err}"
           for n, cmd in command_lines(path.read_text()) if (err := parse_error(_cli_args(cmd) or []))]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(path: Path) -> None:
    assert not broken_links(path), broken_links(path)


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_internal_jargon(path: Path) -> None:
    text = path.read_text()
    hits = [f"{path.name}:{text[:m.start()].count(chr(10)) + 1}: {why}: {m.group(0)!r}"
            for pattern, why in JARGON for m in pattern.finditer(text)]
    assert not hits, hits


def test_every_subcommand_is_documented() -> None:
    documented = {(_cli_args(cmd) or [""])[0] for path in doc_files() for _, cmd in command_lines(path.read_text())}
    internal = {"generate-task"}  # run by the array job script, not by hand
    assert set(subcommands()) - internal <= documented, set(subcommands()) - internal - documented


def test_readme_is_short_and_keeps_the_setup_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.encode()) <= README_LIMIT_BYTES, len(readme.encode())
    for command in SETUP_COMMANDS:
        assert f"```bash\n{command}\n```" in readme, command
    assert SETUP_COMMANDS[1] in (ROOT / ".ci" / "run").read_text()  # CI runs exactly the README's test command
