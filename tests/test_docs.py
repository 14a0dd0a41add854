"""README and docs/: the front door stays short, links resolve, commands parse, keys are listed."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from pipeline.cli import build_parser
from pipeline.config import Config
from pipeline.schema import field_paths

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to dashes."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    return {slug(line.lstrip("#")) for line in outside_code(page) if line.startswith("#")}


def outside_code(page: Path) -> list[str]:
    lines, fenced = [], False
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def bash_commands(page: Path) -> list[str]:
    """The ``pipeline`` command lines of a page's ```bash blocks, continuations joined."""
    commands, block, pending = [], None, ""
    for line in page.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if stripped.startswith("```"):
            block = stripped[3:] if block is None else None
            continue
        if block != "bash":
            continue
        pending += stripped.removesuffix("\\") + " "
        if stripped.endswith("\\"):
            continue
        text, pending = pending.split(" #")[0].strip(), ""
        match = re.search(r"(?:^|\s|/)pipeline\s+(.*)$", text)
        if match and not text.startswith("pip "):
            commands.append(match.group(1))
    return commands


def test_readme_is_a_short_front_door():
    assert len((ROOT / "README.md").read_text(encoding="utf-8").splitlines()) <= 200


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_links_resolve(page):
    for target in re.findall(r"\]\(([^)\s]+)\)", "\n".join(outside_code(page))):
        if re.match(r"[a-z]+://", target):
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        assert linked.exists(), f"{page.name}: link to missing {target}"
        if anchor and linked.suffix == ".md":
            assert anchor in anchors(linked), f"{page.name}: no heading for {target}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_documented_commands_parse(page):
    parser = build_parser()
    for command in bash_commands(page):
        # ``[--option VALUE]`` groups are a synopsis of what may be added: left out here.
        argv = shlex.split(re.sub(r"\[[^\]]*\]", "", command))
        try:
            args, extra = parser.parse_known_args(argv)
        except SystemExit as exc:
            pytest.fail(f"{page.name}: `pipeline {command}` does not parse (exit {exc.code})")
        unknown = [e for e in extra if "=" not in e or e.startswith("-")]
        assert not unknown and (not extra or hasattr(args, "overrides")), \
            f"{page.name}: `pipeline {command}`: unrecognised {unknown or extra}"


def test_documented_commands_are_found():
    assert any(c.startswith("run configs/kitti_to_cityscapes.yaml") for c in
               bash_commands(ROOT / "README.md"))
    assert len([c for page in PAGES for c in bash_commands(page)]) >= 20


def test_every_config_key_is_in_the_configuration_reference():
    text = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    missing = [key for key in field_paths(Config) if f"`{key}`" not in text]
    assert not missing, f"docs/configuration.md lacks {missing}"
