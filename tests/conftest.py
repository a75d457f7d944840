"""Shared fixtures.

Chain fixtures (session-scoped, so every test shares one anvil; see docs/devnet-chain.md):

- ``anvil``: a running :class:`devnet.anvil.Anvil` (automine, chain 31337, test mnemonic).
- ``chain``: a :class:`devnet.chain.Chain` JSON-RPC client connected to it.
- ``rollups``: :class:`devnet.contracts.Rollups`, the Cartesi Rollups 2.2.0 contracts
  deployed at their canonical addresses; ``rollups.chain`` is the same client.

Because the chain is shared, deploy your own Application with a unique salt, compare
balances before and after rather than absolute values, and never assume block numbers.
A failing test that used ``anvil`` gets the tail of anvil's log in its report.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from devnet.anvil import Anvil
from devnet.chain import Chain
from devnet.contracts import Rollups, deploy_rollups
from devnet.guest_server import GuestServer


@pytest.fixture(scope="session")
def anvil() -> Iterator[Anvil]:
    with Anvil() as node:
        yield node


@pytest.fixture(scope="session")
def chain(anvil: Anvil) -> Iterator[Chain]:
    client = Chain(anvil.url)
    yield client
    client.close()


@pytest.fixture(scope="session")
def rollups(chain: Chain) -> Rollups:
    return deploy_rollups(chain, chain.accounts()[0])


@pytest.fixture
def server() -> Iterator[GuestServer]:
    """A guest API server with no DApp behind it: the test plays the DApp over HTTP."""
    with GuestServer() as srv:
        yield srv


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start the fresh-venv installs of ``test_packaging`` now, if any of its slow tests will
    run: pip resolves and unpacks while the other tests run, on the other core."""
    if any(
        item.get_closest_marker("slow") and item.nodeid.startswith("tests/test_packaging.py")
        for item in session.items
    ):
        from tests.packaging_support import BUILDS_KEY, start_builds

        workdir = Path(tempfile.mkdtemp(prefix="deml-packaging-"))
        session.config.add_cleanup(lambda: shutil.rmtree(workdir, ignore_errors=True))
        session.config.stash[BUILDS_KEY] = start_builds(workdir)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    node = getattr(item, "funcargs", {}).get("anvil")
    if report.failed and isinstance(node, Anvil):
        report.sections.append(("anvil log (tail)", node.log_tail()))
    return report
