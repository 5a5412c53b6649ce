"""A TCP proxy for fault injection in front of a real server: up, down, or slow.

Down closes every open connection and resets new ones at once, as a crashed
or unreachable server would look to a client; up forwards again on the same
port. Slow holds each reply for ``delay`` seconds.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time


class TcpProxy:
    def __init__(self, upstream: tuple[str, int]):
        self.upstream = upstream
        self.delay = 0.0
        self.up = True
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def down(self) -> None:
        self.up = False
        self._close_all()

    def restore(self) -> None:
        self.up = True

    def close(self) -> None:
        self.up = False
        with contextlib.suppress(OSError):
            self.server.shutdown(socket.SHUT_RDWR)
        self.server.close()
        self._close_all()

    def _close_all(self) -> None:
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                client, _ = self.server.accept()
                if not self.up:
                    client.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                    )
                    client.close()  # RST: the client sees the connection reset at once
                    continue
                upstream = socket.create_connection(self.upstream)
                with self._lock:
                    self._sockets += [client, upstream]
                self._pump(client, upstream, slow=False)
                self._pump(upstream, client, slow=True)

    def _pump(self, source: socket.socket, target: socket.socket, slow: bool) -> None:
        def run() -> None:
            with contextlib.suppress(OSError):
                while data := source.recv(65536):
                    if slow and self.delay:
                        time.sleep(self.delay)
                    target.sendall(data)
            with contextlib.suppress(OSError):
                target.shutdown(socket.SHUT_RDWR)

        threading.Thread(target=run, daemon=True).start()
