"""docs/protocol.md stays complete, and dapp/ stays inside its boundaries.

Every error code, input and notice the code declares must be documented. The DApp must not
raise bare ``Exception`` or import host-side packages (it runs alone in the machine).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pytest

from deml_protocol import errors
from deml_protocol.abi import Method
from deml_protocol.errors import ERROR_CODES, RETIRED_CODES, Cause, Rejected
from deml_protocol.inputs import ALL_INPUTS
from deml_protocol.notices import ALL_NOTICES
from deml_protocol.queries import ALL_QUERIES, Query

ROOT = Path(__file__).resolve().parent.parent
PROTOCOL = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")
DAPP_FILES = sorted((ROOT / "dapp").glob("**/*.py"))
#: Where rejections are raised: the DApp, and the query parser it shares with clients.
RAISING_FILES = [*DAPP_FILES, ROOT / "protocol" / "deml_protocol" / "queries.py"]
HOST_PACKAGES = {"devnet", "deml_console", "frontend", "frontend_console", "demo", "tests"}
SNAKE_CASE = re.compile(r"[a-z][a-z0-9]*(_[a-z0-9]+)*")


def _documented_codes() -> dict[str, set[str]]:
    """docs/protocol.md §6: cause -> the codes in that cause's table."""
    section = PROTOCOL.split("## 6. Error codes", 1)[1].split("\n## ", 1)[0]
    found: dict[str, set[str]] = {}
    for block in section.split("\n### ")[1:]:
        heading = re.search(r"\(`([a-z_]+)`\)", block.splitlines()[0])
        if heading is not None:
            rows = re.findall(r"^\| `([^`]+)` \|", block, flags=re.MULTILINE)
            found[heading.group(1)] = set(rows)
    return found


def test_docs_list_every_code_under_its_cause() -> None:
    table = {
        cause.value: {c for c, cls in ERROR_CODES.items() if cls.cause is cause}
        for cause in Cause
        if cause is not Cause.UNKNOWN
    }
    assert _documented_codes() == table


def test_docs_list_the_retired_codes() -> None:
    section = PROTOCOL.split("## 6. Error codes", 1)[1].split("\n## ", 1)[0]
    assert set(re.findall(r"~~`([^`]+)`~~", section)) == set(RETIRED_CODES)


def test_every_code_is_raised_somewhere_and_no_class_is_left_over() -> None:
    """A live code the DApp never raises should be retired, not kept."""
    sources = "\n".join(path.read_text(encoding="utf-8") for path in RAISING_FILES)
    unused = [
        cls.__name__
        for cls in ERROR_CODES.values()
        if not re.search(rf"\b{cls.__name__}\(", sources)
    ]
    assert not unused, f"codes nothing raises: {unused}"


def test_codes_are_snake_case_distinct_and_one_class_each() -> None:
    assert all(SNAKE_CASE.fullmatch(code) for code in [*ERROR_CODES, *RETIRED_CODES])
    assert not set(ERROR_CODES) & set(RETIRED_CODES)
    classes = [v for v in vars(errors).values() if isinstance(v, type) and issubclass(v, Rejected)]
    coded = [cls for cls in classes if "code" in cls.__dict__ and cls.cause is not Cause.UNKNOWN]
    assert len(coded) == len(ERROR_CODES) and set(coded) == set(ERROR_CODES.values())


def test_a_report_maps_back_to_its_class() -> None:
    for code, cls in ERROR_CODES.items():
        error = Rejected.from_report({"error": code, "detail": "why"})
        assert type(error) is cls and error.detail == "why" and error.as_report()["error"] == code
    unknown = Rejected.from_report({"error": "from_a_newer_dapp", "detail": "x"})
    assert isinstance(unknown, errors.UnknownError) and unknown.cause is Cause.UNKNOWN
    assert unknown.code == type(unknown).code == "from_a_newer_dapp"
    assert unknown.as_report() == {"error": "from_a_newer_dapp", "detail": "x"}
    assert "from_a_newer_dapp" not in ERROR_CODES  # a stand-in is never registered


def test_a_new_class_cannot_take_or_revive_a_code() -> None:
    for taken in ("window_closed", "wrong_sender"):
        with pytest.raises(TypeError):
            type("Again", (errors.TimingError,), {"code": taken})


def test_client_side_error_codes_never_collide_with_the_table() -> None:
    """Stores and CID parsing have codes of their own; none may mean a DApp code."""
    from deml_console import (
        datasets,
        job_history,
        job_spec,
        plots,
        sklearn_training,
        stores,
        workspace,
    )
    from deml_protocol import cid, multibase

    modules = (stores, cid, multibase, datasets, job_history, job_spec, plots, workspace)
    local = {
        v.__name__: str(v.__dict__["code"])
        for module in (*modules, sklearn_training)
        for v in vars(module).values()
        if isinstance(v, type) and issubclass(v, Exception) and "code" in v.__dict__
    }
    assert local
    clashes = {name: code for name, code in local.items() if code in {*ERROR_CODES, *RETIRED_CODES}}
    assert not clashes


@pytest.mark.parametrize("query", ALL_QUERIES, ids=lambda q: q.name)
def test_every_query_is_documented(query: Query[Any]) -> None:
    section = PROTOCOL.split("## 5. Inspect queries", 1)[1].split("\n## ", 1)[0]
    template = query.template
    shown = re.sub(
        r"\{([a-z_]+):[a-z]+\}",
        lambda m: (
            "<"
            + {
                "address": "address",
                "uploader": "address",
                "job_id": "id",
                "round": "r",
                "cid": "cid",
                "offset": "offset",
            }[m.group(1)]
            + ">"
        ),
        template,
    )
    assert f"| `{shown}` |" in section, f"docs/protocol.md §5 needs a row for `{shown}`"


@pytest.mark.parametrize("method", ALL_INPUTS + ALL_NOTICES, ids=lambda m: m.name)
def test_every_input_and_notice_is_documented(method: Method) -> None:
    """On one line: the exact signature and its selector, as a reader would copy them."""
    signature, selector = f"`{method.signature}`", f"`0x{method.selector.hex()}`"
    assert any(signature in line and selector in line for line in PROTOCOL.splitlines()), (
        f"docs/protocol.md needs a line with {signature} and {selector}"
    )


def _imported_roots(tree: ast.AST) -> set[str]:
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def _raises_bare_exception(tree: ast.AST) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.Raise) and node.exc is not None:
            target = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            if isinstance(target, ast.Name) and target.id in ("Exception", "BaseException"):
                return True
    return False


@pytest.mark.parametrize("path", DAPP_FILES, ids=lambda p: p.name)
def test_dapp_module_boundaries(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    tree = ast.parse(text)
    assert "raise Exception" not in text and not _raises_bare_exception(tree), (
        "raise a Rejected subclass (bad input) or let the bug surface as internal_error"
    )
    assert not _imported_roots(tree) & HOST_PACKAGES, "dapp/ runs in the machine alone"
