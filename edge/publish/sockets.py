"""What the station's two socket owners (the PUB publisher, the REP control server) share.

ZeroMQ sockets are not thread-safe, so each socket is created, bound, used and closed by one thread
of its own (``SocketOwner``); a bind that fails is raised from ``__enter__`` at start-up, not lost in
the thread. ``bind_secured`` binds with CURVE when a key is configured; ``bind_failure`` turns a
ZeroMQ bind error into a ``PublishError`` that names the endpoint and the fix.
"""

from __future__ import annotations

import errno
import threading
from pathlib import Path
from typing import Any

from edge.errors import PublishError


def bind_failure(endpoint: str, error: Exception, role: str) -> PublishError:
    """A PublishError naming ``endpoint`` and the fix for a failed bind."""
    number = getattr(error, "errno", None)
    fixes = {
        errno.EADDRINUSE: "another process (another inp-edge instance?) holds it: stop it or choose another "
        "port in the station config",
        errno.EADDRNOTAVAIL: "use an address of this machine (see `ip addr`), 127.0.0.1, or * for all",
        errno.ENODEV: "use an address of this machine (see `ip addr`), 127.0.0.1, or * for all",
        errno.EACCES: "let the service user write the ipc folder (systemd RuntimeDirectory=) or pick another",
        errno.ENOENT: "create the ipc socket's folder (systemd RuntimeDirectory=) or pick another path",
    }
    fix = fixes.get(number, "write it as tcp://ADDRESS:PORT, tcp://*:PORT or ipc:///run/inp-edge/NAME")
    return PublishError(f"cannot bind the {role} socket to {endpoint!r}: {error}", fix=fix)


def bind_secured(
    context: Any,
    socket: Any,
    endpoint: str,
    role: str,
    secret_key_file: Path | None,
    clients_dir: Path | None,
) -> tuple[str, Any]:
    """Bind ``socket`` (a CURVE server when ``secret_key_file`` is set; only the clients whose keys are
    in ``clients_dir`` when that is set too): (the bound endpoint, the authenticator or None).

    A failure is a ``PublishError``; the authenticator started here is stopped again.
    """
    import zmq

    authenticator = None
    try:
        if secret_key_file is not None:
            from edge.publish.curve import make_server, start_authenticator

            if clients_dir is not None:
                authenticator = start_authenticator(context, clients_dir)
            make_server(socket, secret_key_file, role=role)
        socket.bind(endpoint)
    except (zmq.ZMQError, PublishError) as exc:
        if authenticator is not None:
            authenticator.stop()
        raise exc if isinstance(exc, PublishError) else bind_failure(endpoint, exc, role) from None
    return socket.getsockopt_string(zmq.LAST_ENDPOINT), authenticator


class SocketOwner:
    """The thread that owns one socket; subclasses implement ``_run`` and call ``_ready(error)`` once."""

    def _start_owner(self, name: str) -> None:
        self._started = threading.Event()
        self._start_error: Exception | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:  # pragma: no cover - every subclass defines it
        raise NotImplementedError

    def _ready(self, error: Exception | None = None) -> None:
        """Called by ``_run`` once the socket is bound (or could not be): releases ``__enter__``."""
        self._start_error = error
        self._started.set()

    def __enter__(self) -> Any:
        self._thread.start()
        self._started.wait()
        if self._start_error is not None:
            self._thread.join()
            raise self._start_error
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self, timeout_s: float = 1.0) -> None:  # pragma: no cover - every subclass defines it
        raise NotImplementedError
