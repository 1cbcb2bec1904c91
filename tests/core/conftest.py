from __future__ import annotations

import socket
import struct
import threading
import time
from typing import Callable, Iterator

import pytest

Handler = Callable[[socket.socket], None]


@pytest.fixture
def raw_server() -> Iterator[Callable[[Handler], str]]:
    """A loopback TCP server whose per-connection behaviour is a plain function."""
    sockets: list[socket.socket] = []

    def start(handler: Handler) -> str:
        server = socket.socket()
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        server.settimeout(0.2)
        sockets.append(server)

        def loop() -> None:
            while server.fileno() != -1:
                try:
                    conn, _ = server.accept()
                except OSError:
                    continue
                threading.Thread(target=_guard, args=(handler, conn), daemon=True).start()

        threading.Thread(target=loop, daemon=True).start()
        return f"http://127.0.0.1:{server.getsockname()[1]}"

    yield start
    for server in sockets:
        server.close()


def _guard(handler: Handler, conn: socket.socket) -> None:
    try:
        handler(conn)
    except OSError:
        pass
    finally:
        conn.close()


def respond(status: str, body: bytes, headers: dict[str, str] | None = None) -> Handler:
    def handler(conn: socket.socket) -> None:
        conn.recv(65536)
        head = {"Content-Type": "application/json; charset=utf-8", "Server": "IMDS/150.870.65.1",
                "Content-Length": str(len(body)), **(headers or {})}
        conn.sendall(f"HTTP/1.1 {status}\r\n".encode() + "".join(f"{k}: {v}\r\n" for k, v in head.items()).encode()
                     + b"Connection: close\r\n\r\n" + body)
    return handler


def reset(conn: socket.socket) -> None:
    conn.recv(65536)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def hang(conn: socket.socket) -> None:
    conn.recv(65536)
    time.sleep(5)


def drip(conn: socket.socket) -> None:
    conn.recv(65536)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nServer: IMDS/1\r\nContent-Length: 50\r\n\r\n")
    for _ in range(50):
        conn.sendall(b" ")
        time.sleep(0.3)


def truncated(conn: socket.socket) -> None:
    conn.recv(65536)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nServer: IMDS/1\r\nContent-Length: 500\r\n\r\n{\"compute\":")
