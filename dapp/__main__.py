"""``python -m dapp``: run the DApp against the guest API at ``ROLLUP_HTTP_SERVER_URL``.

Inside the Cartesi Machine the Dockerfile sets the URL (http://127.0.0.1:5004); in host mode
the devnet starts this process with the URL of its own guest API server, and may ask for
snapshots (``dapp.snapshot``):

- ``DEML_SNAPSHOT_DIR`` and ``DEML_SNAPSHOT_EVERY``: write one there every N inputs;
- ``DEML_SNAPSHOT_LOAD`` and ``DEML_SNAPSHOT_DIGEST``: start from that snapshot, whose state
  must have that digest; otherwise exit with ``EXIT_SNAPSHOT_INVALID`` before serving.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from .app import DApp
from .config import Config
from .rollup import RollupServer
from .service import serve
from .snapshot import EXIT_SNAPSHOT_INVALID, SnapshotInvalid, SnapshotWriter, load_snapshot

log = logging.getLogger("dapp")


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
    dapp = DApp(config=Config.from_env())
    load = os.environ.get("DEML_SNAPSHOT_LOAD")
    if load:
        try:
            dapp.state = load_snapshot(Path(load), os.environ.get("DEML_SNAPSHOT_DIGEST", ""))
        except SnapshotInvalid as exc:
            log.error("snapshot %s refused: %s", load, exc)
            return EXIT_SNAPSHOT_INVALID
        log.info("state loaded from snapshot %s", load)
    directory, every = os.environ.get("DEML_SNAPSHOT_DIR"), os.environ.get("DEML_SNAPSHOT_EVERY")
    writer = SnapshotWriter(Path(directory), int(every)) if directory and every else None
    serve(RollupServer(url), dapp, writer)
    return 0


if __name__ == "__main__":
    sys.exit(main())
