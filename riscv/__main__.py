"""``python -m riscv`` (``make riscv-check``): see ``riscv.check``."""

import sys

from .check import main

sys.exit(main())
