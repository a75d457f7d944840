"""docs/protocol.md stays complete, and dapp/ stays inside its boundaries.

Every error code, input and notice the code declares must be documented. The DApp must not
raise bare ``Exception`` or import host-side packages (it runs alone in the machine).
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
from pathlib import Path

import pytest

import dapp
from dapp.errors import Rejected
from deml_protocol.abi import Method
from deml_protocol.inputs import ALL_INPUTS
from deml_protocol.notices import ALL_NOTICES

ROOT = Path(__file__).resolve().parent.parent
PROTOCOL = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")
DAPP_FILES = sorted((ROOT / "dapp").glob("**/*.py"))
HOST_PACKAGES = {"devnet", "deml_console", "frontend", "frontend_console", "demo", "tests"}
SNAKE_CASE = re.compile(r"[a-z][a-z0-9]*(_[a-z0-9]+)*")


def _registry() -> dict[str, type[Rejected]]:
    """Every code, once every dapp module (each declares its own) is imported."""
    for module in pkgutil.iter_modules(dapp.__path__):
        importlib.import_module(f"dapp.{module.name}")
    return Rejected.registry()


def _error_table() -> set[str]:
    section = PROTOCOL.split("## 6. Error codes", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([^`]+)` \|", section, flags=re.MULTILINE))


def test_every_error_code_is_in_the_table_and_nothing_else() -> None:
    codes, documented = set(_registry()), _error_table()
    assert not codes - documented, f"undocumented codes: {sorted(codes - documented)}"
    assert not documented - codes, f"documented codes no class declares: {documented - codes}"


def test_error_codes_are_snake_case() -> None:
    bad = [code for code in _registry() if not SNAKE_CASE.fullmatch(code)]
    assert not bad


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
