"""``python -m devnet up``: the whole local stack; ``python -m devnet node``: only the node.

``up`` starts anvil, deploys the contracts, creates the app, runs the host-mode node, prints
the addresses and URLs, writes them to ``<state-dir>/devnet.json`` and runs until Ctrl-C or
SIGTERM, then stops everything it started (anvil included).

``node`` follows an app already deployed (``--config devnet.json``) with its own SQLite
database; restarted on the same database, it resumes where it stopped.

``replay`` re-executes a node's inputs in a fresh DApp and checks its outputs and claims
(``devnet.replay``).
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from devnet.api import NodeApi
from devnet.node import Node, NodeConfig
from devnet.replay import run_replay
from devnet.rpc import AppInfo, RpcMethods
from devnet.stack import HOST_MODE_TEMPLATE_HASH, Devnet, DevnetConfig
from devnet.store import Store


def _stop_on_signals(stop: threading.Event) -> None:
    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def cmd_up(args: argparse.Namespace) -> int:
    config = DevnetConfig(
        state_dir=Path(args.state_dir),
        port=args.port,
        epoch_length=args.epoch_length,
        block_time_s=args.block_time or None,
    )
    devnet = Devnet(config)
    stop = threading.Event()
    _stop_on_signals(stop)
    try:
        devnet.start()
    except OSError as exc:
        print(
            f"error: the devnet did not start: {exc} (is port {args.port} taken? try "
            "--port 0 for any free port)",
            file=sys.stderr,
        )
        return 1
    except Exception as exc:
        print(f"error: the devnet did not start: {exc}", file=sys.stderr)
        return 1
    info = devnet.info
    print(f"devnet ready in {info['startup_seconds']} s")
    for key in (
        "rpc_url",
        "anvil_url",
        "inspect_url",
        "jsonrpc_url",
        "application",
        "authority",
        "reward_token",
        "epoch_length",
    ):
        print(f"  {key:<13} {info[key]}")
    print(f"  written to    {config.state_dir / 'devnet.json'}\nCtrl-C to stop.")

    def stop_when_the_node_fails() -> None:
        devnet.wait()
        stop.set()

    threading.Thread(target=stop_when_the_node_fails, daemon=True).start()
    stop.wait()
    devnet.stop()
    if devnet.failure is not None:
        print(f"error: the node failed: {devnet.failure}", file=sys.stderr)
        return 1
    return 0


def cmd_node(args: argparse.Namespace) -> int:
    info = json.loads(Path(args.config).read_text())
    config = NodeConfig(
        rpc_url=info["rpc_url"],
        application=info["application"],
        authority=info["authority"],
        deployment_block=info["deployment_block"],
        epoch_length=info["epoch_length"],
        claimer=None if args.no_claims else info["accounts"][0],
        name=info.get("application_name", "deml"),
        snapshot_dir=args.snapshot_dir,
        snapshot_every=args.snapshot_every,
    )
    stop = threading.Event()
    _stop_on_signals(stop)
    store = Store(args.db)
    node = Node(config, store).start()
    app = AppInfo(
        name=config.name,
        address=config.application,
        consensus=config.authority,
        chain_id=int(info["chain_id"]),
        epoch_length=config.epoch_length,
        deployment_block=config.deployment_block,
        template_hash="0x" + HOST_MODE_TEMPLATE_HASH.hex(),
    )
    api = NodeApi(
        rpc=RpcMethods(app, store, node.processed_input_count),
        inspect=node.inspect,
        app_names=(config.name, config.application),
        port=args.port,
    ).start()
    print(f"node API at {api.url}", flush=True)
    try:
        node.run(stop)
    finally:
        api.close()
        node.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devnet",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start anvil, deploy, run the node (Ctrl-C stops all)")
    up.add_argument("--state-dir", default=".devnet")
    up.add_argument("--port", type=int, default=6751, help="node HTTP port (0 = any free)")
    up.add_argument("--epoch-length", type=int, default=10, help="blocks per epoch")
    up.add_argument(
        "--block-time",
        type=float,
        default=2.0,
        help="a block every N seconds besides one per transaction, so an idle devnet still "
        "closes and claims its epochs (default 2, like `cartesi run`; 0: only a block per "
        "transaction)",
    )
    node = sub.add_parser("node", help="run only the node against a deployed app")
    node.add_argument("--config", required=True, help="devnet.json written by `up`")
    node.add_argument("--db", required=True, help="SQLite file (kept across restarts)")
    node.add_argument("--port", type=int, default=0, help="node HTTP port (0 = any free)")
    node.add_argument("--no-claims", action="store_true", help="follow and serve, never claim")
    node.add_argument(
        "--snapshot-dir", help="where the DApp writes state snapshots (a restart replays less)"
    )
    node.add_argument("--snapshot-every", type=int, default=100, help="inputs per snapshot")
    replay = sub.add_parser("replay", help="re-execute a node's inputs, check outputs and claims")
    replay.add_argument("--db", type=Path, help="the node's SQLite store (inputs and outputs)")
    replay.add_argument(
        "--config", type=Path, help="devnet.json: claims (and, without --db, inputs) from chain"
    )
    replay.add_argument("--riscv", action="store_true", help="in the riscv64 root, under qemu")
    replay.add_argument("--dapp-log", type=Path, help="append the DApp's log to this file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(name)s] %(message)s")
    if args.command == "replay":
        return run_replay(db=args.db, config=args.config, riscv=args.riscv, dapp_log=args.dapp_log)
    return cmd_up(args) if args.command == "up" else cmd_node(args)


if __name__ == "__main__":
    sys.exit(main())
