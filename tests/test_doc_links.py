"""The repository's Markdown points only at files in the repository.

A reader has the clone and nothing beside it, so in every ``*.md`` (outside ``.git``,
``.venv``, ``node_modules`` and other generated directories; fenced code blocks are not
read):

- a link or image (``[text](target)``, ``[label]: target``, ``href=``/``src=``) is a URL
  (``http:``, ``https:``, ``mailto:``) or a relative path that stays inside the repository,
  names a file or directory that exists in it, and, with ``#fragment`` into a Markdown file,
  names one of that file's headings;
- a backticked path is a file of the repository when it starts with one of its top-level
  entries (``dapp/app.py``, ``docs/cids.md``; a ``:name`` or ``::test`` suffix is allowed),
  and never ``../…`` or an absolute path into the directory that holds the repository;
- any ``name.md`` mentioned, linked or not, is a file of the repository (next to the
  document or at its root).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Never part of a clone (generated, installed or ignored), so nothing may point into them.
NOT_IN_A_CLONE = {
    ".git",
    ".venv",
    "node_modules",
    ".devnet",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
    ".benchmarks",
    "build",
    "__pycache__",
}
URL_SCHEMES = {"http", "https", "mailto"}

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,}).*?^ {0,3}\1[`~]*[ \t]*$", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)", re.DOTALL)
URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s)>\]]+")
INLINE_LINK = re.compile(r"\]\(\s*<?([^()\s<>]*(?:\([^()\s]*\)[^()\s<>]*)*)>?(?:\s+[\"'(][^)]*)?\)")
REFERENCE = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.MULTILINE)
HTML_LINK = re.compile(r"\b(?:href|src)\s*=\s*[\"']([^\"']+)[\"']", re.IGNORECASE)
HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$", re.MULTILINE)
HTML_ANCHOR = re.compile(r"<a\s[^>]*\b(?:name|id)\s*=\s*[\"']([^\"']+)[\"']", re.IGNORECASE)
MD_MENTION = re.compile(r"(?<![\w./~-])((?:/|~/)?(?:[\w.-]+/)*[\w.-]+\.md)\b")


def markdown_files(root: Path) -> list[Path]:
    found = []
    for directory, subdirectories, files in os.walk(root):
        subdirectories[:] = [
            d for d in subdirectories if d not in NOT_IN_A_CLONE and not d.endswith(".egg-info")
        ]
        found += [Path(directory) / name for name in files if name.endswith(".md")]
    return sorted(found)


def _blank(text: str, pattern: re.Pattern[str]) -> str:
    """``text`` with every match of ``pattern`` spaced out (offsets and newlines kept)."""
    return pattern.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"<[^>]+>", "", heading)
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def anchors(document: Path) -> set[str]:
    text = _blank(document.read_text(encoding="utf-8"), FENCE)
    found = set(HTML_ANCHOR.findall(text))
    seen: dict[str, int] = {}
    for heading in HEADING.findall(text):
        slug = _slug(heading)
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def _not_in_repository(path: Path, root: Path) -> str | None:
    if not path.is_relative_to(root):
        return "points outside the repository"
    if NOT_IN_A_CLONE & set(path.relative_to(root).parts):
        return "points into a directory no clone has"
    if not path.exists():
        return "no such file in the repository"
    return None


def link_problem(document: Path, target: str, root: Path) -> str | None:
    scheme = re.match(r"([a-zA-Z][a-zA-Z0-9+.-]*):", target)
    if scheme and len(scheme.group(1)) > 1:  # not a Windows drive letter
        if scheme.group(1).lower() in URL_SCHEMES:
            return None
        return f"{scheme.group(1)}: links lead nowhere in a clone; use a relative path"
    path, _, fragment = target.partition("#")
    path = unquote(path.partition("?")[0])
    if path.startswith(("/", "~")):
        return "absolute path; link relative to this file"
    destination = (document.parent / path).resolve() if path else document
    if problem := _not_in_repository(destination, root):
        return problem
    if fragment and destination.suffix == ".md" and fragment not in anchors(destination):
        return f"{destination.relative_to(root)} has no heading #{fragment}"
    return None


def code_path_problem(document: Path, span: str, root: Path) -> str | None:
    token = span.strip()
    if not token or re.search(r"\s|[<>*{}$|\[\]]|://", token) or "/" not in token:
        return None
    if token.startswith("../"):
        return "points outside the repository; say what the reader needs here"
    if token.startswith("/"):
        if Path(token).is_relative_to(root.parent):
            return "an absolute path on one machine; say what the reader needs here"
        return None  # a path on another system (the machine image, an HTTP path)
    top = token.split("/", 1)[0]
    if top in NOT_IN_A_CLONE or not (root / top).exists():
        return None  # not a path into the repository
    path = re.sub(r"(::|:(?=[A-Za-z_])|#).*$", "", token)
    return _not_in_repository((root / path).resolve(), root)


def md_mention_problem(document: Path, name: str, root: Path) -> str | None:
    if name.startswith(("/", "~")):
        return "a Markdown file outside the repository; say what the reader needs here"
    candidates = [(document.parent / name).resolve(), (root / name).resolve()]
    problems = [_not_in_repository(path, root) for path in candidates]
    if None in problems:
        return None
    return "a Markdown file the repository does not have; say what the reader needs here"


def problems(document: Path, root: Path) -> list[str]:
    original = document.read_text(encoding="utf-8")
    text = _blank(original, FENCE)
    found: list[tuple[int, str, str]] = []

    def note(offset: int, what: str, problem: str | None) -> None:
        if problem:
            found.append((original.count("\n", 0, offset) + 1, what, problem))

    for match in CODE_SPAN.finditer(text):
        note(match.start(), match.group(0), code_path_problem(document, match.group(2), root))
    without_code = _blank(text, CODE_SPAN)
    for pattern in (INLINE_LINK, REFERENCE, HTML_LINK):
        for match in pattern.finditer(without_code):
            note(match.start(1), match.group(1), link_problem(document, match.group(1), root))
    for match in MD_MENTION.finditer(_blank(text, URL)):
        note(match.start(1), match.group(1), md_mention_problem(document, match.group(1), root))
    where = document.relative_to(root)
    return [f"{where}:{line}: {what}: {problem}" for line, what, problem in sorted(found)]


DOCUMENTS = markdown_files(ROOT)


def test_the_documents_are_found() -> None:
    names = {str(path.relative_to(ROOT)) for path in DOCUMENTS}
    assert {"README.md", "docs/machine.md", "docs/protocol.md"} <= names
    assert not any(part in NOT_IN_A_CLONE for name in names for part in Path(name).parts)


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_links_stay_in_the_repository(document: Path) -> None:
    assert problems(document, ROOT) == []


def test_the_checker_catches_every_kind(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    (root / "docs").mkdir(parents=True)
    (root / "dapp").mkdir()
    (root / "dapp" / "app.py").write_text("", encoding="utf-8")
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "notes.md").write_text("# Notes\n", encoding="utf-8")
    (root / "docs" / "other.md").write_text("# Other doc\n\n## Step 2: run it\n", "utf-8")
    document = root / "docs" / "guide.md"
    document.write_text(
        "\n".join(
            [
                "# Guide",
                "[ok](other.md) [ok](other.md#step-2-run-it) [ok](#guide) [ok](../dapp/app.py)",
                "[web](https://a.org/x.md) `dapp/app.py:main` `/var/lib/image` `contracts/*.sol`",
                "[out](../../shared/notes.md)",
                "[gone](missing.md)",
                "[anchor](other.md#nope)",
                "[abs](/etc/hosts) [file](file:///etc/hosts)",
                f"`{tmp_path}/shared/notes.md` `../shared/x.txt` `dapp/gone.py`",
                "as notes.md says",
                "```",
                "[fenced](../../shared/notes.md) is code, not a link",
                "```",
                "[ref]: ../../shared/notes.md",
            ]
        ),
        encoding="utf-8",
    )
    lines = [problem.split(":")[1] for problem in problems(document, root)]
    assert lines == ["4", "4", "5", "5", "6", "7", "7", "8", "8", "8", "8", "9", "13", "13"]
