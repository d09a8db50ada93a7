"""Every relative link of the README and of docs/ leads somewhere: to a file or directory of the
repository and, with a ``#fragment``, to a heading of that page (STYLE.md 16: the README is a
door, so its doors must open). Links out of the repository (``https:`` and the like) are not
followed."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

FENCE = re.compile(r"^```.*?^```$", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"\[[^\]\n]*\]\(([^)\s]+)\)")


def prose(text: str) -> str:
    """The text without fenced blocks, indented code blocks and code spans, where brackets and
    parentheses are code, not links."""
    text = FENCE.sub("", text)
    kept = []
    previous_blank = True
    in_code = False
    for line in text.splitlines():
        indented = line.startswith("    ") and not line.lstrip().startswith(("- ", "* "))
        in_code = indented and (in_code or previous_blank)
        if not in_code:
            kept.append(line)
        previous_blank = not line.strip()
    return CODE_SPAN.sub("", "\n".join(kept))


def anchors(text: str) -> set[str]:
    """GitHub's anchors for the headings of a page's text: lower case, punctuation but ``-`` and
    ``_`` dropped, spaces as ``-``; a repeated heading gets ``-1``, ``-2``, ..."""
    seen: dict[str, int] = {}
    found = set()
    for line in FENCE.sub("", text).splitlines():
        heading = re.match(r"#{1,6} +(.+?) *#* *$", line)
        if not heading:
            continue
        slug = re.sub(r"[^\w\- ]", "", heading.group(1).lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def relative_links(page: Path) -> list[str]:
    links = LINK.findall(prose(page.read_text(encoding="utf-8")))
    return [link for link in links if not re.match(r"[a-z][a-z0-9+.-]*:", link)]


def test_the_readme_links_every_docs_page() -> None:
    linked = {
        (ROOT / unquote(link.partition("#")[0])).resolve()
        for link in relative_links(ROOT / "README.md")
    }
    missing = [page.name for page in PAGES[1:] if page.resolve() not in linked]
    assert missing == [], f"docs pages the README does not link to: {missing}"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.relative_to(ROOT).as_posix())
def test_every_relative_link_resolves(page: Path) -> None:
    broken = []
    for link in relative_links(page):
        path, _, fragment = link.partition("#")
        target = (page.parent / unquote(path)).resolve() if path else page
        if not target.exists() or ROOT not in (target, *target.parents):
            broken.append(f"{link}: no such file in the repository")
        elif fragment and not target.is_file():
            broken.append(f"{link}: #{fragment} on a directory")
        elif fragment and fragment not in anchors(target.read_text(encoding="utf-8")):
            broken.append(f"{link}: no heading #{fragment} in {target.name}")
    assert broken == [], f"{page.name}: {broken}"


def test_the_checker_sees_links_and_anchors() -> None:
    text = "[a](x.md) `[b](y.md)` [c](https://example.com)\n\n    [d](code.md)\n"
    assert LINK.findall(prose(text)) == ["x.md", "https://example.com"]
    assert "control-api-_emulator" in anchors("## Control API (`/_emulator`)")
    assert anchors("# A\n## A\n```\n# not a heading\n```") == {"a", "a-1"}
