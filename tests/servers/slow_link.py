"""A slow link for the tests: a TCP relay on 127.0.0.1 in front of a local server that passes
what the server sends at a fixed rate, and counts it, so a test can tell how much of a large
message went over the link before a process stopped."""

from __future__ import annotations

import contextlib
import socket
import threading
import time

from servers.dovecot import free_port

CHUNK = 16 * 1024


class SlowLink:
    def __init__(self, target_port: int, bytes_per_second: int) -> None:
        self.target_port = target_port
        self.rate = bytes_per_second
        self.port = free_port()
        self.downstream = 0  # bytes passed from the server to the client
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._listener.settimeout(0.2)
        self._closing = threading.Event()
        self._sockets: list[socket.socket] = []
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def close(self) -> None:
        self._closing.set()
        for sock in [self._listener, *self._sockets]:
            with contextlib.suppress(OSError):
                sock.close()
        for thread in self._threads:
            thread.join(timeout=5)

    def _accept(self) -> None:
        while not self._closing.is_set():
            try:
                client, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            server = socket.create_connection(("127.0.0.1", self.target_port), timeout=10)
            self._sockets += [client, server]
            for source, sink, slow in ((client, server, False), (server, client, True)):
                thread = threading.Thread(target=self._pump, args=(source, sink, slow),
                                          daemon=True)
                self._threads.append(thread)
                thread.start()

    def _pump(self, source: socket.socket, sink: socket.socket, slow: bool) -> None:
        """Until either side closes (or the link is closed), at `rate` when `slow`."""
        source.settimeout(0.2)
        while not self._closing.is_set():
            try:
                data = source.recv(CHUNK)
            except TimeoutError:
                continue
            except OSError:
                break
            if not data:
                break
            try:
                sink.sendall(data)
            except OSError:
                break
            if slow:
                self.downstream += len(data)
                time.sleep(len(data) / self.rate)
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
