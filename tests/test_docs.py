"""The README and docs/ as a reader uses them: every local link and anchor resolves, and every geopool command
line their shell blocks show parses as written (its subcommand and options exist; a usage synopsis with
``[...]`` or ``a|b`` is not a command to paste, and is left out). Running the commands is the live tests' job."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest

from geopool.cli import main

REPO = Path(__file__).resolve().parent.parent
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), REPO / "CHANGELOG.md",
         REPO / "examples" / "ci" / "README.md"]
COMMAND = re.compile(r"^(?:\./run |\.venv/bin/)?geopool (?=[a-z])")


def _anchors(text: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces as hyphens."""
    return {re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
            for heading in re.findall(r"^#+ (.*)$", text, re.M)}


def _links() -> list[tuple[str, str]]:
    return [(page.name, target) for page in PAGES
            for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()) if not re.match(r"[a-z]+:", target)]


def _commands() -> list[tuple[str, str]]:
    found = []
    for page in PAGES:
        for block in re.findall(r"```(?:bash|sh)?\n(.*?)```", page.read_text(), re.S):
            for line in block.replace("\\\n", " ").split("\n"):
                line = re.split(r"\s+#", line)[0].strip()
                if COMMAND.match(line) and not re.search(r"\[|\||<|\.\.\.", line):
                    found.append((page.name, line))
    return found


@pytest.mark.parametrize(("page", "target"), _links())
def test_every_local_link_resolves(page, target):
    source = next(p for p in PAGES if p.name == page)
    path, _, anchor = target.partition("#")
    destination = (source.parent / path).resolve() if path else source
    assert destination.exists(), f"{page}: {target} names no file"
    if anchor and destination.suffix == ".md":
        assert anchor in _anchors(destination.read_text()), f"{page}: {target} names no heading"


def test_the_pages_show_commands_to_check():
    assert len(_commands()) >= 10 and {page for page, _ in _commands()} >= {"README.md", "load.md"}


def _refusal(line: str) -> str | None:
    """Why geopool's command line refuses ``line`` (None: it parses), without running it."""
    words = shlex.split(COMMAND.sub("", line))
    name, args = words[0], words[1:]
    command = main.get_command(click.Context(main), name)
    if command is None:
        return f"geopool has no command {name!r}"
    try:
        command.make_context(name, args, parent=click.Context(main, info_name="geopool"))
    except click.ClickException as exc:
        return exc.format_message()
    return None


@pytest.mark.parametrize(("page", "line"), _commands())
def test_every_command_line_parses(page, line):
    assert _refusal(line) is None, f"{page}: `{line}` does not parse: {_refusal(line)}"


@pytest.mark.parametrize("line", ["geopool load --rats 2", "./run geopool gate --bogus", "geopool nosuch --x"])
def test_a_misspelt_command_or_flag_is_caught(line):
    assert _refusal(line)
