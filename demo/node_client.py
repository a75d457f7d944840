"""What the SDK does not do yet against the devnet: close an epoch (mine to its end and wait
for the claim) and execute vouchers. Inputs, deposits and inspects go through the SDK's
:class:`~deml_console.sdk.node.NodeTransport` (:func:`node_transport`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from deml_console.sdk.node import NodeTransport, accounts_from_mnemonic
from deml_console.sdk.results import raw_reply
from devnet.anvil import DEFAULT_MNEMONIC
from devnet.chain import Chain
from devnet.contracts import Rollups
from devnet.stack import Devnet


class Client:
    """What a user of a real node has: the chain, inspect and JSON-RPC (no node internals; the
    devnet only says when to look again, see :meth:`wait_until`)."""

    def __init__(self, devnet: Devnet) -> None:
        self.devnet = devnet
        self.info = devnet.info
        self.chain = Chain(self.info["rpc_url"])
        self.rollups = Rollups(self.chain, {})
        self.app = str(self.info["application"])
        self.accounts: list[str] = list(self.info["accounts"])
        self.net = node_transport(devnet)

    def rpc(self, method: str, **params: Any) -> Any:
        """The node's JSON-RPC (an error reply raises ``NodeError``)."""
        return self.net.rpc(method, **params)

    def inspect(self, path: str) -> Any:
        """An inspect reply's JSON, a rejection report included."""
        return raw_reply(self.net.inspect(path))

    def processed(self) -> int:
        return self.net.processed_inputs()

    def wait_until(self, condition: Callable[[], bool]) -> None:
        """Wait until ``condition`` (which reads JSON-RPC, like any client) holds. A real node can
        only be polled; the devnet's node tells us when it stored something, so ``condition``
        is re-checked exactly then: no sleep, no deadline to tune for a slow machine."""
        self.devnet.wait_until(condition)

    def wait_processed(self, count: int) -> None:
        self.wait_until(lambda: self.processed() >= count)

    def input_count(self) -> int:
        return int(
            self.chain.call_fn(
                "0x1b51e2992a2755ba4d6f7094032df91991a0cfac",
                "getNumberOfInputs(address)",
                self.app,
                returns=["uint256"],
            )
        )

    def sync(self) -> None:
        """Wait until the node has processed every input on chain."""
        self.wait_processed(self.input_count())

    def close_epoch(self) -> None:
        """Mine to the end of the last input's epoch and wait for the node's claim of it.

        The epoch is the last input's, not the chain head's: the node's own claim transactions
        mine blocks (one per transaction on anvil), so by now the head may be in a later epoch,
        which has no inputs and is never claimed (waiting for it would never end)."""
        self.sync()
        last = self.rpc("cartesi_listInputs", application=self.app, descending=True, limit=1)
        epoch = int(last["data"][0]["epoch_index"], 16)
        self.chain.mine_until((epoch + 1) * int(self.info["epoch_length"]) - 1)

        def claimed() -> bool:
            got = self.rpc("cartesi_getEpoch", application=self.app, epoch_index=hex(epoch))
            return bool(got["data"]["status"] == "CLAIM_ACCEPTED")

        self.wait_until(claimed)

    def output_count(self) -> int:
        listed = self.rpc("cartesi_listOutputs", application=self.app, limit=1)
        return int(listed["pagination"]["total_count"])

    def output(self, index: int) -> dict[str, Any]:
        data: dict[str, Any] = self.rpc(
            "cartesi_getOutput", application=self.app, output_index=hex(index)
        )["data"]
        return data

    def execute(self, index: int, sender: str | None = None) -> None:
        out = self.output(index)
        assert out["output_hashes_siblings"] is not None, "epoch not claimed yet"
        self.rollups.execute_output(
            self.app,
            bytes.fromhex(out["raw_data"][2:]),
            index=index,
            siblings=[bytes.fromhex(s[2:]) for s in out["output_hashes_siblings"]],
            sender=sender or self.accounts[0],
        )


def node_transport(devnet: Devnet) -> NodeTransport:
    """The SDK's transport to the devnet's node, signing as the devnet's accounts (derived from
    its mnemonic with eth-account); woken by the devnet's node instead of polling."""
    info = devnet.info
    signers = accounts_from_mnemonic(DEFAULT_MNEMONIC, len(info["accounts"]))
    return NodeTransport(
        rpc_url=info["rpc_url"],
        node_url=info["node_url"],
        app=info["application"],
        signers=signers,
        wait_until=devnet.wait_until,
        dev_chain=True,
    )
