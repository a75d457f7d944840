"""Our packages import: here, and installed alone into a fresh venv.

- Every package's ``__all__`` names modules that exist and import (in this venv; fast).
- Each installable package (``protocol/``, ``frontend-console/``) declares what it imports:
  installed from its directory into a new venv (no system site-packages, no pip of its own)
  with only the dependencies its ``pyproject.toml`` declares, every version held to
  ``constraints.txt``, each of its modules imports, and so does every module its source
  imports, lazy imports inside functions included. Nothing unpinned may come along.

The fresh-venv tests are marked ``slow`` (``make test-fast`` skips them): they resolve against
the package index and unpack numpy, onnx and scikit-learn. Both venvs are built at once, in
the background, from the moment collection ends (``tests/conftest.py``), without pip or
byte-compiling in them: about 33 s of work on an idle 2-vCPU machine, mostly hidden behind
the rest of the suite.
"""

from __future__ import annotations

import importlib
import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.packaging_support import (
    BUILDS_KEY,
    CONSTRAINTS,
    INSTALLABLE,
    ROOT,
    Build,
    Installable,
    clean_env,
    start_builds,
    stop_builds,
)

HELLO_V1 = "bafkreide5semuafsnds3ugrvm6fbwuyw2ijpj43gwjdxemstjkfozi37hq"


@pytest.mark.parametrize("package", ["dapp", "devnet", "deml_protocol", "deml_console"])
def test_all_names_import(package: str) -> None:
    names = importlib.import_module(package).__all__
    assert names == sorted(names) and len(names) <= 12  # a map of the package, not a dump
    for name in names:
        importlib.import_module(f"{package}.{name}")


# Run inside the fresh venv with `python -I` (no PYTHONPATH, no user site, no cwd on the
# path): import the package, every module under it, and every module their source names in
# an import statement (outside `if TYPE_CHECKING:`), then report what is installed.
IMPORT_EVERYTHING = r"""
import ast, importlib, importlib.metadata, json, pkgutil, sys

def imported(tree):
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module
        yield from imported(node)

package = importlib.import_module(sys.argv[1])
modules = [package.__name__]
modules += [info.name for info in pkgutil.walk_packages(package.__path__, modules[0] + ".")]
files, importers = {}, {}
for name in modules:
    module = importlib.import_module(name)
    files[name] = module.__file__
    with open(module.__file__, encoding="utf-8") as source:
        for target in imported(ast.parse(source.read())):
            importers.setdefault(target, name)
for target, importer in sorted(importers.items()):
    if target.partition(".")[0] not in sys.stdlib_module_names:
        try:
            importlib.import_module(target)
        except ImportError as exc:
            sys.exit(f"{importer} imports {target}: {exc!r}")
print(json.dumps({
    "prefix": sys.prefix,
    "files": files,
    "installed": {d.metadata["Name"]: d.version for d in importlib.metadata.distributions()},
}))
"""


def _modules_in_repository(item: Installable) -> list[str]:
    base = ROOT / item.directory
    names = []
    for path in (base / item.package).rglob("*.py"):
        parts = path.relative_to(base).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return sorted(names)


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins() -> dict[str, str]:
    pins = {}
    for line in CONSTRAINTS.read_text(encoding="utf-8").splitlines():
        if (line := line.split("#", 1)[0].strip()) and "==" in line:
            name, version = line.split("==", 1)
            pins[_canonical(name)] = version.strip()
    return pins


@pytest.fixture(scope="session")
def builds(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Build]]:
    """The builds conftest started early, or started now (e.g. when run alone)."""
    started = request.config.stash.get(BUILDS_KEY, None)
    if started is None:
        started = start_builds(tmp_path_factory.mktemp("packaging"))
        request.config.stash[BUILDS_KEY] = started
    yield started
    stop_builds(started)


@pytest.mark.slow
@pytest.mark.parametrize("item", INSTALLABLE, ids=lambda item: item.distribution)
def test_installs_alone_and_imports_everything(
    item: Installable, builds: dict[str, Build], tmp_path: Path
) -> None:
    python = builds[item.distribution].wait()
    run = subprocess.run(
        [python, "-I", "-c", IMPORT_EVERYTHING, item.package],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=clean_env(),
    )
    assert run.returncode == 0, (
        f"an import failed in a venv with only {item.distribution}:\n{run.stderr[-4000:]}"
    )
    report: dict[str, Any] = json.loads(run.stdout.splitlines()[-1])

    venv = builds[item.distribution].venv
    assert Path(report["prefix"]) == venv
    assert all(Path(file).is_relative_to(venv) for file in report["files"].values()), (
        "imported from outside the fresh venv"
    )
    assert sorted(report["files"]) == _modules_in_repository(item), "missing from the wheel"

    pins, own = _pins(), {_canonical(i.distribution) for i in INSTALLABLE}
    installed = {_canonical(name): version for name, version in report["installed"].items()}
    unpinned = {
        name: version
        for name, version in installed.items()
        if name not in own and pins.get(name) != version
    }
    assert not unpinned, f"installed but not pinned in constraints.txt: {unpinned}"


@pytest.mark.slow
def test_deml_command_runs_in_a_fresh_venv(builds: dict[str, Build], tmp_path: Path) -> None:
    builds["deml-console"].wait()
    hello = tmp_path / "hello.txt"
    hello.write_bytes(b"Hello world")
    deml = builds["deml-console"].venv / "bin" / "deml"
    run = subprocess.run(
        [deml, "cid", hello], capture_output=True, text=True, cwd=tmp_path, env=clean_env()
    )
    assert (run.returncode, run.stdout.strip()) == (0, HELLO_V1), run.stderr
