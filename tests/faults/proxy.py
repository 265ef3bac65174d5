"""A TCP proxy in front of the throwaway server that can lose the answer to a COMMIT.

`drop_next_commit_ack()` arms it: the next COMMIT a client sends (psycopg sends it as a
simple-protocol Query message) reaches the server, the server commits and answers, and
the proxy then closes both sides without passing the answer on. The client sees its
connection drop during COMMIT although the transaction committed: the in-doubt commit
every client of a networked database can meet.

The client side must not use SSL or GSS encryption (`sslmode=disable`,
`gssencmode=disable`): the proxy reads the protocol's message framing.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from dataclasses import dataclass, field


@dataclass
class CommitAckDropper:
    upstream_port: int
    host: str = "127.0.0.1"
    port: int = 0
    armed: threading.Event = field(default_factory=threading.Event)
    dropped: threading.Event = field(default_factory=threading.Event)
    _listener: socket.socket | None = None
    _sockets: list[socket.socket] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _closed: bool = False

    def start(self) -> CommitAckDropper:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, 0))
        listener.listen(32)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, name="faults-proxy", daemon=True).start()
        return self

    def drop_next_commit_ack(self) -> None:
        self.dropped.clear()
        self.armed.set()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            sockets, self._sockets = self._sockets, []
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.close()
        for sock in sockets:
            _close(sock)

    # --- plumbing -------------------------------------------------------------------------
    def _accept(self) -> None:
        assert self._listener is not None
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection((self.host, self.upstream_port), timeout=5)
                server.settimeout(None)
            except OSError:
                _close(client)
                continue
            with self._lock:
                if self._closed:
                    _close(client)
                    _close(server)
                    return
                self._sockets += [client, server]
            link = _Link(self, client, server)
            threading.Thread(target=link.client_to_server, daemon=True).start()
            threading.Thread(target=link.server_to_client, daemon=True).start()


class _Link:
    """One client connection: forward both ways, watching the client's messages."""

    def __init__(self, proxy: CommitAckDropper, client: socket.socket, server: socket.socket):
        self.proxy = proxy
        self.client = client
        self.server = server
        self.dropping = threading.Event()

    def client_to_server(self) -> None:
        try:
            # The startup message has no type byte: length (including itself), then body.
            length = struct.unpack("!i", _read(self.client, 4))[0]
            self.server.sendall(struct.pack("!i", length) + _read(self.client, length - 4))
            while True:
                kind = _read(self.client, 1)
                length = struct.unpack("!i", _read(self.client, 4))[0]
                body = _read(self.client, length - 4)
                if (
                    kind == b"Q"
                    and body.rstrip(b"\0").strip().upper() == b"COMMIT"
                    and self.proxy.armed.is_set()
                ):
                    self.proxy.armed.clear()
                    self.dropping.set()  # from now on the server's answers go nowhere
                self.server.sendall(kind + struct.pack("!i", length) + body)
        except (OSError, ConnectionError):
            pass
        finally:
            if not self.dropping.is_set():
                self._close_both()

    def server_to_client(self) -> None:
        try:
            while True:
                data = self.server.recv(65536)
                if not data:
                    break
                if self.dropping.is_set():
                    # The answer to COMMIT: wait for ReadyForQuery (the commit is done),
                    # then cut the line without passing anything on.
                    buffer = data
                    while b"Z\x00\x00\x00\x05" not in buffer:
                        more = self.server.recv(65536)
                        if not more:
                            break
                        buffer += more
                    self.proxy.dropped.set()
                    break
                self.client.sendall(data)
        except (OSError, ConnectionError):
            pass
        finally:
            self._close_both()

    def _close_both(self) -> None:
        _close(self.client)
        _close(self.server)


def _read(sock: socket.socket, size: int) -> bytes:
    chunks = b""
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            raise ConnectionError("closed")
        chunks += chunk
    return chunks


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()
