"""A small JSON-RPC client for an EVM node: the only place devnet speaks to the chain.

Deliberately not web3.py: the devnet needs a dozen methods, and owning them keeps reverts
easy to assert. Every call has a timeout, JSON-RPC errors become typed exceptions once, here,
and a reverted transaction raises :class:`TransactionReverted` carrying the 4-byte error
selector (``exc.selector == selector_of("OutputNotReexecutable(bytes)")``).

Exceptions::

    ChainError
    ├── RpcError               the node answered with a JSON-RPC error, or not at all
    ├── TransactionReverted    a call or transaction reverted (selector, data, reason)
    └── ReceiptTimeout         a sent transaction was not mined in time
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import requests
from eth_abi.abi import decode, encode
from eth_abi.exceptions import DecodingError

from deml_protocol.abi import selector_of

__all__ = [
    "Block",
    "BlockTag",
    "Chain",
    "ChainError",
    "Log",
    "Receipt",
    "ReceiptTimeout",
    "RpcError",
    "TransactionReverted",
    "decode_result",
    "encode_call",
    "parse_signature",
]

BlockTag = int | str
_ERROR_STRING: Final = selector_of("Error(string)")
_PANIC: Final = selector_of("Panic(uint256)")


class ChainError(Exception):
    """Root of every error this module raises."""


class RpcError(ChainError):
    def __init__(self, method: str, code: int, message: str, data: bytes | None = None) -> None:
        super().__init__(f"{method}: JSON-RPC error {code}: {message}")
        self.method, self.code, self.rpc_message, self.data = method, code, message, data


class BadReply(ChainError):
    """The endpoint answered, but not with what the method returns (a broken or lying
    backend): treated like an outage, retried, never parsed into wrong values."""


class TransactionReverted(ChainError):
    """A call or transaction reverted. ``selector`` is ``b""`` when there was no data."""

    def __init__(
        self, data: bytes, *, error_name: str | None = None, tx_hash: str | None = None
    ) -> None:
        self.data, self.error_name, self.tx_hash = data, error_name, tx_hash
        self.selector = data[:4]
        self.reason = _revert_reason(data)
        what = self.reason or error_name or (f"0x{self.selector.hex()}" if data else "no data")
        where = f" in {tx_hash}" if tx_hash else ""
        super().__init__(f"reverted{where}: {what} (data 0x{data.hex()})")


class ReceiptTimeout(ChainError):
    pass


def _revert_reason(data: bytes) -> str | None:
    """The message of ``Error(string)`` or the code of ``Panic(uint256)``, if that's it."""
    try:
        if data[:4] == _ERROR_STRING:
            return str(decode(["string"], data[4:])[0])
        if data[:4] == _PANIC:
            return f"panic 0x{decode(['uint256'], data[4:])[0]:02x}"
    except DecodingError:  # malformed revert data: the raw bytes are still on the error
        return None
    return None


@dataclass(frozen=True, slots=True)
class Log:
    address: str
    topics: tuple[bytes, ...]
    data: bytes
    block_number: int
    tx_hash: str
    log_index: int
    #: The block's hash as the backend saw it: what a node checks for a reorg.
    block_hash: str = ""


@dataclass(frozen=True, slots=True)
class Receipt:
    tx_hash: str
    block_number: int
    is_success: bool
    gas_used: int
    contract_address: str | None
    logs: tuple[Log, ...]


@dataclass(frozen=True, slots=True)
class Block:
    number: int
    hash: str
    timestamp: int
    #: ``block.prevrandao`` (the header's mixHash), as InputBox records it.
    prev_randao: bytes


def parse_signature(signature: str) -> tuple[str, tuple[str, ...]]:
    """``"f(address,(uint64,bytes32[]))"`` -> ``("f", ("address", "(uint64,bytes32[])"))``."""
    name, sep, rest = signature.partition("(")
    if not sep or not rest.endswith(")") or not name:
        raise ValueError(f"not a function signature: {signature!r}")
    types: list[str] = []
    depth, start, body = 0, 0, rest[:-1]
    for i, char in enumerate(body):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            types.append(body[start:i])
            start = i + 1
    if body:
        types.append(body[start:])
    return name, tuple(types)


def encode_call(signature: str, *args: Any) -> bytes:
    """Selector + ``abi.encode(args)``, like ``cast calldata``."""
    _, types = parse_signature(signature)
    if len(args) != len(types):
        raise TypeError(f"{signature} takes {len(types)} arguments, got {len(args)}")
    return selector_of(signature) + encode(list(types), list(args))


def decode_result(types: Sequence[str], data: bytes) -> tuple[Any, ...]:
    return tuple(decode(list(types), data))


def _int(value: str) -> int:
    if not isinstance(value, str) or not value.startswith("0x"):
        raise BadReply(f"expected a 0x quantity, got {str(value)[:80]!r}")
    try:
        return int(value, 16)
    except ValueError as exc:
        raise BadReply(f"expected a 0x quantity, got {value[:80]!r}") from exc


def _bytes(value: str) -> bytes:
    if not isinstance(value, str):
        raise BadReply(f"expected 0x hex data, got {str(value)[:80]!r}")
    try:
        return bytes.fromhex(value[2:] if value.startswith("0x") else value)
    except ValueError as exc:
        raise BadReply(f"expected 0x hex data, got {value[:80]!r}") from exc


def _quantity(value: int) -> str:
    return hex(value)


def _tag(block: BlockTag) -> str:
    return _quantity(block) if isinstance(block, int) else block


def _parse_log(raw: dict[str, Any]) -> Log:
    try:
        return Log(
            address=str(raw["address"]).lower(),
            topics=tuple(_bytes(t) for t in raw["topics"]),
            data=_bytes(raw["data"]),
            block_number=_int(raw["blockNumber"]),
            tx_hash=str(raw["transactionHash"]),
            log_index=_int(raw["logIndex"]),
            block_hash=str(raw.get("blockHash") or ""),
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise BadReply(f"malformed log in an eth_getLogs reply: {exc!r}") from exc


class Chain:
    """JSON-RPC over one ``requests.Session``; transactions come from unlocked accounts.

    ``error_names`` maps 4-byte selectors to error signatures so revert messages read
    ``OutputNotReexecutable(bytes)`` instead of ``0x7b97a6bb``; extend it with
    :meth:`register_errors`.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 10.0,
        receipt_timeout_s: float = 60.0,
        error_names: Mapping[bytes, str] | None = None,
    ) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.receipt_timeout_s = receipt_timeout_s
        self._session = requests.Session()
        self._error_names: dict[bytes, str] = dict(error_names or {})
        self._next_id = 0

    def close(self) -> None:
        self._session.close()

    def register_errors(self, error_names: Mapping[bytes, str]) -> None:
        self._error_names.update(error_names)

    def rpc(self, method: str, *params: Any) -> Any:
        """One JSON-RPC call; errors become :class:`RpcError` or :class:`TransactionReverted`."""
        self._next_id += 1
        body = {"jsonrpc": "2.0", "id": self._next_id, "method": method, "params": list(params)}
        try:
            response = self._session.post(self.url, json=body, timeout=self.timeout_s)
            response.raise_for_status()
            reply = response.json()
        except (requests.RequestException, ValueError) as exc:
            raise RpcError(method, -1, f"no valid reply from {self.url}: {exc}") from exc
        if not isinstance(reply, dict):
            raise BadReply(f"{method}: the reply is {type(reply).__name__}, not a JSON-RPC object")
        error = reply.get("error")
        if error is None:
            return reply.get("result")
        if not isinstance(error, dict):
            raise BadReply(f"{method}: the error is {type(error).__name__}, not an object")
        raw_data = error.get("data")
        data = _bytes(raw_data) if isinstance(raw_data, str) and raw_data.startswith("0x") else None
        message = str(error.get("message", ""))
        if error.get("code") == 3 or message.lower().startswith("execution reverted"):
            raise self._reverted(data or b"")
        raise RpcError(method, int(error.get("code", 0)), message, data)

    def _reverted(self, data: bytes, tx_hash: str | None = None) -> TransactionReverted:
        name = self._error_names.get(data[:4]) if len(data) >= 4 else None
        return TransactionReverted(data, error_name=name, tx_hash=tx_hash)

    # -- reads ---------------------------------------------------------------------------

    def chain_id(self) -> int:
        return _int(self.rpc("eth_chainId"))

    def block_number(self) -> int:
        return _int(self.rpc("eth_blockNumber"))

    def get_block(self, block: BlockTag = "latest") -> Block:
        raw = self.rpc("eth_getBlockByNumber", _tag(block), False)
        if raw is None:
            raise ChainError(f"block {block} does not exist yet")
        try:
            return Block(
                number=_int(raw["number"]),
                hash=str(raw["hash"]),
                timestamp=_int(raw["timestamp"]),
                prev_randao=_bytes(raw.get("mixHash") or "0x" + "00" * 32),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise BadReply(f"malformed eth_getBlockByNumber reply: {exc!r}") from exc

    def accounts(self) -> list[str]:
        return [a.lower() for a in self.rpc("eth_accounts")]

    def get_balance(self, address: str, block: BlockTag = "latest") -> int:
        return _int(self.rpc("eth_getBalance", address, _tag(block)))

    def get_code(self, address: str, block: BlockTag = "latest") -> bytes:
        return _bytes(self.rpc("eth_getCode", address, _tag(block)))

    def call(
        self,
        to: str,
        data: bytes,
        *,
        sender: str | None = None,
        value: int = 0,
        block: BlockTag = "latest",
    ) -> bytes:
        """``eth_call``; a revert raises :class:`TransactionReverted`."""
        tx = self._tx(sender, to=to, data=data, value=value)
        return _bytes(self.rpc("eth_call", tx, _tag(block)))

    def call_fn(
        self,
        to: str,
        signature: str,
        *args: Any,
        returns: Sequence[str] = (),
        block: BlockTag = "latest",
    ) -> Any:
        """Call a view by signature; one return type gives the value, several a tuple."""
        out = decode_result(returns, self.call(to, encode_call(signature, *args), block=block))
        return out[0] if len(returns) == 1 else out

    def get_logs(
        self,
        *,
        address: str | None = None,
        topics: Sequence[bytes | None] = (),
        from_block: BlockTag = 0,
        to_block: BlockTag = "latest",
    ) -> list[Log]:
        flt: dict[str, Any] = {"fromBlock": _tag(from_block), "toBlock": _tag(to_block)}
        if address is not None:
            flt["address"] = address
        if topics:
            flt["topics"] = [None if t is None else "0x" + t.hex() for t in topics]
        logs = self.rpc("eth_getLogs", flt)
        if not isinstance(logs, list):
            raise BadReply(f"eth_getLogs returned {type(logs).__name__}, not a list")
        return [_parse_log(raw) for raw in logs]

    # -- writes --------------------------------------------------------------------------

    def send_transaction(
        self,
        sender: str,
        *,
        to: str | None = None,
        data: bytes = b"",
        value: int = 0,
        gas: int | None = None,
    ) -> Receipt:
        """Send from an unlocked account, wait for the receipt, raise if it reverted.

        Gas is estimated first, which surfaces revert data before anything is mined. A
        transaction that still fails on chain is replayed with ``eth_call`` on the parent
        block to recover its revert data (exact under automine: one tx per block).
        """
        tx = self._tx(sender, to=to, data=data, value=value)
        if gas is None:
            estimate = _int(self.rpc("eth_estimateGas", tx))
            gas = estimate + estimate // 5
        tx["gas"] = _quantity(gas)
        receipt = self.wait_for_receipt(self.rpc("eth_sendTransaction", tx))
        if not receipt.is_success:
            raise self._replay_failure(tx, receipt)
        return receipt

    def transact(self, sender: str, to: str, signature: str, *args: Any, value: int = 0) -> Receipt:
        """Send a call by signature: ``transact(me, token, "approve(address,uint256)", a, n)``."""
        return self.send_transaction(sender, to=to, data=encode_call(signature, *args), value=value)

    def _replay_failure(self, tx: dict[str, Any], receipt: Receipt) -> TransactionReverted:
        try:
            self.rpc("eth_call", tx, _quantity(max(receipt.block_number - 1, 0)))
        except TransactionReverted as exc:
            return self._reverted(exc.data, receipt.tx_hash)
        return self._reverted(b"", receipt.tx_hash)

    def get_receipt(self, tx_hash: str) -> Receipt | None:
        """The transaction's receipt, or None if it is not in a block of the chain (yet, or
        any more: a reorg took it out)."""
        raw = self.rpc("eth_getTransactionReceipt", tx_hash)
        if raw is None:
            return None
        try:
            return Receipt(
                tx_hash=raw["transactionHash"],
                block_number=_int(raw["blockNumber"]),
                is_success=_int(raw["status"]) == 1,
                gas_used=_int(raw["gasUsed"]),
                contract_address=(raw.get("contractAddress") or None),
                logs=tuple(_parse_log(log) for log in raw["logs"]),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise BadReply(f"malformed eth_getTransactionReceipt reply: {exc!r}") from exc

    def wait_for_receipt(self, tx_hash: str, *, timeout_s: float | None = None) -> Receipt:
        timeout_s = self.receipt_timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + timeout_s
        while True:
            receipt = self.get_receipt(tx_hash)
            if receipt is not None:
                return receipt
            if time.monotonic() > deadline:
                raise ReceiptTimeout(f"{tx_hash} not mined after {timeout_s}s: is mining on?")
            time.sleep(0.05)

    @staticmethod
    def _tx(sender: str | None, *, to: str | None, data: bytes, value: int) -> dict[str, Any]:
        tx: dict[str, Any] = {"data": "0x" + data.hex(), "value": _quantity(value)}
        if sender is not None:
            tx["from"] = sender
        if to is not None:
            tx["to"] = to
        return tx

    # -- anvil / evm test helpers ------------------------------------------------------

    def mine(self, blocks: int = 1) -> None:
        """Mine ``blocks`` empty blocks at once (``anvil_mine``)."""
        self.rpc("anvil_mine", _quantity(blocks))

    def mine_until(self, block_number: int) -> None:
        """Mine until the latest block is at least ``block_number``."""
        missing = block_number - self.block_number()
        if missing > 0:
            self.mine(missing)

    def evm_mine(self, timestamp: int | None = None) -> None:
        self.rpc("evm_mine", *([] if timestamp is None else [timestamp]))

    def increase_time(self, seconds: int) -> None:
        """Move the clock forward; it shows in the timestamp of the next mined block."""
        self.rpc("evm_increaseTime", seconds)

    def set_next_block_timestamp(self, timestamp: int) -> None:
        self.rpc("evm_setNextBlockTimestamp", timestamp)

    def snapshot(self) -> str:
        return str(self.rpc("evm_snapshot"))

    def revert_to(self, snapshot_id: str) -> None:
        if not self.rpc("evm_revert", snapshot_id):
            raise ChainError(f"evm_revert({snapshot_id}) failed: unknown or used snapshot")

    def impersonate(self, address: str) -> None:
        """Let :meth:`send_transaction` send from ``address`` without its key."""
        self.rpc("anvil_impersonateAccount", address)

    def set_balance(self, address: str, wei: int) -> None:
        self.rpc("anvil_setBalance", address, _quantity(wei))
