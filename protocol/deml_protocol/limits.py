"""Hard limits of the Cartesi Rollups v2 transport."""

from typing import Final

#: InputBox accepts an EvmAdvance of at most 65,536 bytes: 292 + ceil32(payload) <= 65536.
MAX_INPUT_PAYLOAD: Final = 65_216

#: The machine's tx buffer (cmio, machine-guest-tools 0.17): every notice, voucher and report
#: is written through it, so none can be larger. The DApp emits far less (``dapp.app``).
TX_BUFFER_BYTES: Final = 2 << 20
