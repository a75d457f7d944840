"""Each package's ``__all__`` names modules that exist and import."""

from __future__ import annotations

import importlib

import pytest


@pytest.mark.parametrize("package", ["dapp", "devnet", "deml_protocol", "deml_console"])
def test_all_names_import(package: str) -> None:
    names = importlib.import_module(package).__all__
    assert names == sorted(names) and len(names) <= 10
    for name in names:
        importlib.import_module(f"{package}.{name}")
