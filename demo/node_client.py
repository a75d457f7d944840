"""A client of a running node, as a user of a real node has it: the chain (InputBox and
portals), inspect and JSON-RPC. Used by `make demo` and the integration tests."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import requests

from devnet.chain import Chain
from devnet.contracts import Rollups
from devnet.guest_server import Output, Result
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

    def rpc(self, method: str, **params: Any) -> Any:
        reply = requests.post(
            self.info["jsonrpc_url"],
            timeout=10,
            json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params},
        ).json()
        if "error" in reply:
            raise AssertionError(f"{method}: {reply['error']}")
        return reply["result"]

    def inspect(self, path: str) -> Any:
        reply = requests.post(self.info["inspect_url"], data=path.encode(), timeout=30).json()
        text = b"".join(bytes.fromhex(r["payload"][2:]) for r in reply["reports"])
        return json.loads(text)

    def processed(self) -> int:
        return int(self.rpc("cartesi_getProcessedInputCount", application=self.app)["data"], 16)

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


class DevnetTransport:
    """The job scenario's transport on the real stack: inputs go through the InputBox and the
    portals; results are read back over JSON-RPC, as any client of a node would."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def _result(self, input_index: int) -> Result:
        c = self.client
        c.wait_processed(input_index + 1)
        row = c.rpc("cartesi_getInput", application=c.app, input_index=hex(input_index))["data"]
        outputs = c.rpc(
            "cartesi_listOutputs", application=c.app, input_index=hex(input_index), limit=1000
        )["data"]
        reports = c.rpc(
            "cartesi_listReports", application=c.app, input_index=hex(input_index), limit=1000
        )["data"]
        return Result(
            status=row["status"].lower(),
            outputs=[
                Output(int(o["index"], 16), bytes.fromhex(o["raw_data"][2:])) for o in outputs
            ],
            reports=[bytes.fromhex(r["raw_data"][2:]) for r in reports],
        )

    def send(self, sender: str, payload: bytes, *, advance_time: int = 12) -> Result:
        if advance_time > 12:
            self.client.chain.increase_time(advance_time)
        added = self.client.rollups.add_input(self.client.app, payload, sender=sender)
        return self._result(added.index)

    def deposit_ether(self, depositor: str, amount: int, call: bytes = b"") -> Result:
        added = self.client.rollups.deposit_ether(
            self.client.app, value_wei=amount, exec_layer_data=call, sender=depositor
        )
        return self._result(added.index)

    def deposit_erc20(self, token: str, depositor: str, amount: int, call: bytes = b"") -> Result:
        added = self.client.rollups.deposit_erc20(
            token, self.client.app, amount=amount, exec_layer_data=call, sender=depositor
        )
        return self._result(added.index)

    def query(self, path: str) -> Any:
        return self.client.inspect(path)
