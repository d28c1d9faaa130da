"""``python -m tests.qdrant_grpc_server --port P --storage DIR [--api-key K]``: run the test server.

Prints ``ready PORT`` on stdout once it listens (``--port 0`` picks a free port); SIGTERM or
Ctrl-C stops it cleanly (calls in flight finish, shards are closed).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

from .services import DEFAULT_MAX_MESSAGE_BYTES, build_server
from .store import Store


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m tests.qdrant_grpc_server",
                                 description="Qdrant's gRPC API on top of Qdrant Edge shards (for tests).")
    ap.add_argument("--port", type=int, default=6334, help="gRPC port (0: a free one, printed)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--storage", required=True, help="directory of the collections (created when missing)")
    ap.add_argument("--api-key", help="require this api-key on every call but HealthCheck")
    ap.add_argument("--max-message-bytes", type=int, default=DEFAULT_MAX_MESSAGE_BYTES,
                    help="largest request accepted (RESOURCE_EXHAUSTED above)")
    ap.add_argument("--workers", type=int, default=16, help="gRPC worker threads")
    ap.add_argument("--exit-with-parent", action="store_true",
                    help="stop when the process that started it dies (so a killed test run leaves no server)")
    args = ap.parse_args(argv)

    store = Store(args.storage)
    server, port = build_server(store, args.port, args.host, args.api_key, args.max_message_bytes, args.workers)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    if args.exit_with_parent:
        parent = os.getppid()

        def watch() -> None:
            while not stop.wait(1.0):
                if os.getppid() != parent:
                    stop.set()

        threading.Thread(target=watch, daemon=True).start()
    print(f"ready {port}", flush=True)
    stop.wait()
    server.stop(grace=5).wait()
    store.close()
    sys.exit(0)


if __name__ == "__main__":
    main()
