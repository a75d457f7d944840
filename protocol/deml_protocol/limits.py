"""Hard limits of the Cartesi Rollups v2 transport."""

from typing import Final

#: InputBox accepts an EvmAdvance of at most 65,536 bytes: 292 + ceil32(payload) <= 65536.
MAX_INPUT_PAYLOAD: Final = 65_216
