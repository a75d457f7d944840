"""Cost of one input against the size of the state: it must not grow with history.

Fills the state's balance table with N entries (other holders' balances), then times the
same small input, a 1-wei ether withdrawal (advance + commit), and a rejected one (an
overdraft: a rollback), N = 10^3 .. 10^6. Also times the state digest, which is O(N) by
design and only runs when someone asks (``state/digest``).

Measured (2 cores, loaded): with whole-state copies per input (before issue 9 item 4) a
withdrawal cost 0.06 ms at 10^3 entries, 0.12 ms at 10^4, 1.9 ms at 10^5 and 50 ms at 10^6.
With the undo journal (``dapp/state.py``): 0.055, 0.047, 0.043 and 0.042 ms accepted, and
0.071, 0.064, 0.047 and 0.048 ms rejected: flat. The digest: 11 ms .. 12.4 s.

Run: ``.venv/bin/python -m bench.state_scaling``
"""

from __future__ import annotations

import statistics
import time

from dapp.app import DApp
from dapp.context import Metadata
from dapp.records import Amount
from deml_protocol import addresses, inputs

ALICE = "0x" + "a1" * 20
SIZES = (1_000, 10_000, 100_000, 1_000_000)
RUNS = 41


def metadata(index: int) -> Metadata:
    return Metadata(
        chain_id=31337,
        app_contract="0x" + "ab" * 20,
        msg_sender=ALICE,
        block_number=index,
        block_timestamp=1_700_000_000 + index,
        prev_randao="0x" + "00" * 32,
        input_index=index,
    )


def median_ms(dapp: DApp, payload: bytes) -> float:
    times = []
    for index in range(RUNS):
        started = time.perf_counter()
        dapp.advance(metadata(index), payload)
        dapp.commit()  # a no-op after a rejection
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> None:
    print(f"{'entries':>10} {'withdraw 1 wei':>16} {'overdraft (rejected)':>22} {'digest':>10}")
    for size in SIZES:
        dapp = DApp()
        for holder in range(size):
            owner = "0x" + holder.to_bytes(20, "big").hex()
            dapp.state.balances[(addresses.ETHER, owner)] = Amount(1)
        dapp.state.balances[(addresses.ETHER, ALICE)] = Amount(10**18)
        dapp.commit()
        accepted = median_ms(dapp, inputs.WITHDRAW_ETHER.encode(1))
        rejected = median_ms(dapp, inputs.WITHDRAW_ETHER.encode(10**30))
        started = time.perf_counter()
        dapp.state.digest()
        digest_ms = (time.perf_counter() - started) * 1000
        print(f"{size:>10,} {accepted:>13.3f} ms {rejected:>19.3f} ms {digest_ms:>7.0f} ms")


if __name__ == "__main__":
    main()
