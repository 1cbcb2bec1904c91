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


class ThreadedAcceptLoop(AcceptLoop):
    """An accept loop that serves each connection in its own thread (a slow answer must not
    hold up the next request) with :meth:`serve`; the connection is closed after it, and a
    client that gives up (an ``OSError`` on the socket) ends it quietly. :meth:`close` also
    sets ``_stop``, which long answers should watch."""

    def handle(self, conn: socket.socket) -> None:
        threading.Thread(target=self._serve_and_close, args=(conn,), daemon=True).start()

    def _serve_and_close(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.settimeout(5)
                self.serve(conn)
            except OSError:
                pass                      # the client gave up: that is often the point

    def serve(self, conn: socket.socket) -> None:
        raise NotImplementedError


def read_request_head(conn: socket.socket, limit: int = 65536) -> bytes:
    """The request line and headers (at most ``limit`` bytes; ``b""`` if the client left)."""
    request = b""
    while b"\r\n\r\n" not in request and len(request) < limit:
        data = conn.recv(4096)
        if not data:
            return b""
        request += data
    return request
