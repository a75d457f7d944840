"""A node's outputs as anyone can read them: decoded, with whether each is claimed (its epoch's
claim accepted, so a proof exists) and, for a voucher, executed on the base layer.

Reads only the node's JSON-RPC (``cartesi_listOutputs``, ``cartesi_getEpoch``) and the
Application contract (``wasOutputExecuted``, ``validateOutput``): what any user of a real
node v2 has.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from web3 import Web3
from web3.exceptions import ContractLogicError

from deml_protocol.outputs import decode_output, output_type

from .sdk.node import ROLLUPS_ABI, NodeError, NodeTransport
from .sdk.results import Notice, Output, Voucher, decoded

__all__ = ["NoSuchOutput", "NodeOutput", "OutputReader"]

_PAGE = 500


class NoSuchOutput(LookupError):
    """The node has no output with that index (yet)."""

    code: ClassVar[str] = "no_such_output"


@dataclass(frozen=True, slots=True)
class NodeOutput:
    index: int
    input_index: int
    epoch_index: int
    raw: bytes  # the output's bytes: what executeOutput / validateOutput take
    siblings: list[bytes] | None  # the proof, once a claim covers the output
    notice: Notice | None = None
    voucher: Voucher | None = None

    @property
    def kind(self) -> str:
        return output_type(self.raw)

    def pays(self, address: str) -> bool:
        """A voucher that sends ether or ERC-20 tokens to ``address``."""
        if self.voucher is None:
            return False
        transfer = self.voucher.erc20_transfer()
        recipient = transfer[0] if transfer is not None else self.voucher.destination
        return recipient == address.lower()


def _decoded(row: dict[str, Any]) -> NodeOutput:
    raw = _hex(row["raw_data"])
    index = int(row["index"], 16)
    siblings = row.get("output_hashes_siblings")
    try:
        value = decoded(Output(index, raw))
    except (ValueError, KeyError):  # a notice that is not one of ours: shown raw
        value = Notice("(unknown)", {"payload": decode_output(raw)["payload"]}, index)
    return NodeOutput(
        index=index,
        input_index=int(row["input_index"], 16),
        epoch_index=int(row["epoch_index"], 16),
        raw=raw,
        siblings=None if siblings is None else [_hex(s) for s in siblings],
        notice=value if isinstance(value, Notice) else None,
        voucher=value if isinstance(value, Voucher) else None,
    )


@dataclass
class OutputReader:
    transport: NodeTransport
    _accepted: set[int] = field(default_factory=set)  # epochs seen claimed (a claim stays)

    def outputs(self, *, input_index: int | None = None) -> Iterator[NodeOutput]:
        """Every output of the application (or of one input), in index order."""
        params: dict[str, Any] = {"application": self.transport.app}
        if input_index is not None:
            params["input_index"] = hex(input_index)
        offset = 0
        while True:
            page = self.transport.rpc("cartesi_listOutputs", **params, limit=_PAGE, offset=offset)
            for row in page["data"]:
                yield _decoded(row)
            offset += len(page["data"])
            if not page["data"] or offset >= int(page["pagination"]["total_count"]):
                return

    def output(self, index: int) -> NodeOutput:
        try:
            got = self.transport.rpc(
                "cartesi_getOutput", application=self.transport.app, output_index=hex(index)
            )
        except NodeError as exc:
            raise NoSuchOutput(
                f"the node has no output {index} ({exc}); `deml outputs` lists them"
            ) from exc
        return _decoded(got["data"])

    def inputs_sent_by(self, address: str) -> set[int]:
        """Indexes of the inputs ``address`` sent (through the InputBox)."""
        found: set[int] = set()
        offset = 0
        while True:
            page = self.transport.rpc(
                "cartesi_listInputs",
                application=self.transport.app,
                sender=address.lower(),
                limit=_PAGE,
                offset=offset,
            )
            found.update(int(row["index"], 16) for row in page["data"])
            offset += len(page["data"])
            if not page["data"] or offset >= int(page["pagination"]["total_count"]):
                return found

    def is_claimed(self, output: NodeOutput) -> bool:
        """Its epoch's claim is accepted and the node serves the proof: executable now."""
        if output.siblings is None:
            return False
        epoch = output.epoch_index
        if epoch not in self._accepted:
            got = self.transport.rpc(
                "cartesi_getEpoch", application=self.transport.app, epoch_index=hex(epoch)
            )
            if got["data"]["status"] == "CLAIM_ACCEPTED":
                self._accepted.add(epoch)
        return epoch in self._accepted

    def is_executed(self, output: NodeOutput) -> bool:
        return bool(self._application().functions.wasOutputExecuted(output.index).call())

    def is_valid_on_chain(self, output: NodeOutput) -> bool:
        """``Application.validateOutput`` with the node's proof: True if the contract accepts
        it (the output is in a claimed outputs root), False if it reverts. Needs a claim."""
        assert output.siblings is not None
        proof = (output.index, output.siblings)
        try:
            self._application().functions.validateOutput(output.raw, proof).call()
        except ContractLogicError:
            return False
        return True

    def _application(self) -> Any:
        return self.transport.web3.eth.contract(
            address=Web3.to_checksum_address(self.transport.app), abi=ROLLUPS_ABI
        )


def _hex(text: str) -> bytes:
    return bytes.fromhex(text[2:] if text.startswith("0x") else text)
