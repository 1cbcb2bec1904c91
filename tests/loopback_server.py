"""A TCP accept loop in a thread for tests: subclasses say what to do with each connection."""

from __future__ import annotations

import socket
import threading


class AcceptLoop:
    """Listens on ``address:port`` (0: any free port) until :meth:`close`; ``handle`` gets each
    accepted connection, in the loop's thread."""

    def __init__(self, address: str = "127.0.0.1", port: int = 0, *, backlog: int = 8, reuse: bool = False,
                 poll_s: float = 0.2) -> None:
        self.sock = socket.socket()
        if reuse:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((address, port))
        self.sock.listen(backlog)
        self.sock.settimeout(poll_s)   # how often the loop looks at the stop flag
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> AcceptLoop:
        self._thread.start()
        return self

    def handle(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.handle(conn)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()
