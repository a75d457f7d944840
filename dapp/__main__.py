"""``python -m dapp``: run the DApp against the guest API at ``ROLLUP_HTTP_SERVER_URL``.

Inside the Cartesi Machine the Dockerfile sets the URL (http://127.0.0.1:5004); in host mode
the devnet starts this process with the URL of its own guest API server.
"""

from __future__ import annotations

import logging
import os
import sys

from .app import DApp
from .config import Config
from .rollup import RollupServer
from .service import serve


def main() -> int:
    logging.basicConfig(
        stream=sys.stderr,
        level=os.environ.get("DEML_LOG_LEVEL", "INFO"),
        format="[dapp] %(levelname)s %(message)s",
    )
    url = os.environ.get("ROLLUP_HTTP_SERVER_URL")
    if not url:
        print(
            "error: ROLLUP_HTTP_SERVER_URL is not set (e.g. http://127.0.0.1:5004)", file=sys.stderr
        )
        return 2
    serve(RollupServer(url), DApp(config=Config.from_env()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
