"""A loopback TCP proxy that tests cut or hang, to play an outside system going away mid-run.

    with TcpProxy("127.0.0.1", 5432) as proxy:     # forwards 127.0.0.1:proxy.port -> :5432
        ...  APP_DATABASE_URL points at proxy.port
        proxy.cut()      # every open connection closed, new ones refused (server stopped)
        proxy.hang()     # new connections accepted and never answered (server wedged)
        proxy.restore()  # forwarding again

It counts the connections it accepted, so tests assert how often a client tried (not how long).
"""

from __future__ import annotations

import socket
import threading
from typing import Any


class TcpProxy:
    """Forwards a free loopback port to `target`; `cut`, `hang` and `restore` script outages."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.mode = "forward"  # forward | hang | refuse
        self.accepted = 0  # connections accepted, whatever the mode
        self.hung = 0  # connections accepted while hanging
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self.port = 0

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def start(self) -> TcpProxy:
        self._listen()
        return self

    def stop(self) -> None:
        self.mode = "refuse"
        self._close_listener()
        self._close_connections()

    def cut(self) -> None:
        """Close every connection and refuse new ones, as a stopped server does."""
        self.mode = "refuse"
        self._close_listener()
        self._close_connections()

    def hang(self) -> None:
        """Accept new connections and never answer them (existing ones are closed)."""
        self.mode = "hang"
        self._close_connections()
        if self._listener is None:
            self._listen()

    def restore(self) -> None:
        self.mode = "forward"
        if self._listener is None:
            self._listen()

    # ------------------------------------------------------------------ plumbing

    def _listen(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _close_listener(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            try:
                listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            listener.close()

    def _close_connections(self) -> None:
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def _track(self, *sockets: socket.socket) -> None:
        with self._lock:
            self._sockets.extend(sockets)

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # the listener was closed
            with self._lock:
                self.accepted += 1
            if self.mode == "refuse":
                client.close()
                continue
            self._track(client)
            if self.mode == "hang":
                with self._lock:
                    self.hung += 1
                continue  # held open, never read or answered
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            self._track(upstream)
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(source, sink), daemon=True).start()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (source, sink):
            _quiet_close(sock)


def _quiet_close(sock: Any) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
