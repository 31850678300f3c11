"""The tests' HTTP servers on 127.0.0.1: served from a daemon thread that checks for shutdown every 50 ms.

`serve_forever`'s default half-second poll made every teardown wait up to that long; the suite starts
dozens of these servers.
"""
from __future__ import annotations

import contextlib
import http.server
import threading
from collections.abc import Iterator

POLL_INTERVAL = 0.05


def start(server: http.server.HTTPServer) -> None:
    """Serve `server` from a daemon thread until `stop`."""
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": POLL_INTERVAL}, daemon=True).start()


def stop(server: http.server.HTTPServer) -> None:
    server.shutdown()
    server.server_close()


@contextlib.contextmanager
def serving(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[http.server.ThreadingHTTPServer]:
    """A threading server for `handler` on a free port of 127.0.0.1, stopped on leaving."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    start(server)
    try:
        yield server
    finally:
        stop(server)
