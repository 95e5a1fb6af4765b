"""CURVE encryption (and optional client authentication) for the publish and control sockets.

Keys are ZeroMQ certificate files (``zmq.auth.create_certificates`` or ``curve_keygen``): the server
reads its ``.key_secret`` file; a client reads the server's public ``.key`` file and, optionally,
its own ``.key_secret`` (else it makes a throw-away key pair). With ``clients_dir`` the server only
accepts clients whose public ``.key`` file is in that folder (a ZAP handler checks each connection).
zmq is imported inside the functions: the CLI imports this module's users when it builds its parser.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.errors import PublishError

KEYGEN_FIX = (
    "create a key pair with python -c \"import zmq.auth; zmq.auth.create_certificates('DIR', 'station')\" "
    "and give the .key_secret file to the service, the .key file to its clients"
)


@dataclass(frozen=True)
class CurveKeys:
    public: bytes  # Z85, 40 bytes
    secret: bytes | None


def load_keys(path: Path, *, need_secret: bool, role: str) -> CurveKeys:
    """Read a certificate file; a missing, unreadable or public-only file is a PublishError."""
    import zmq.auth

    path = Path(path)
    if not path.is_file():
        raise PublishError(f"{role} CURVE key file {path} does not exist", fix=KEYGEN_FIX)
    try:
        public, secret = zmq.auth.load_certificate(path)
    except (OSError, ValueError, KeyError) as exc:
        raise PublishError(f"{role} CURVE key file {path} cannot be read: {exc}", fix=KEYGEN_FIX) from None
    if need_secret and not secret:
        raise PublishError(
            f"{role} CURVE key file {path} holds only a public key",
            fix="give the .key_secret file of the pair (the .key file is the one for the other side)",
        )
    return CurveKeys(public, secret or None)


def make_server(socket: Any, secret_key_file: Path, *, role: str) -> None:
    """Make ``socket`` a CURVE server (before it binds)."""
    keys = load_keys(secret_key_file, need_secret=True, role=role)
    socket.curve_secretkey = keys.secret
    socket.curve_publickey = keys.public
    socket.curve_server = True


def make_client(
    socket: Any, server_key_file: Path, client_key_file: Path | None = None, *, role: str = "client"
) -> None:
    """Make ``socket`` a CURVE client of the server whose public key is in ``server_key_file``."""
    import zmq

    server = load_keys(server_key_file, need_secret=False, role=f"{role} (server's public)")
    if client_key_file is not None:
        own = load_keys(client_key_file, need_secret=True, role=f"{role} (own)")
        public, secret = own.public, own.secret
    else:
        public, secret = zmq.curve_keypair()
    socket.curve_serverkey = server.public
    socket.curve_publickey = public
    socket.curve_secretkey = secret


def start_authenticator(context: Any, clients_dir: Path) -> Any:
    """Accept only the clients whose public keys are in ``clients_dir``; returns the authenticator."""
    from zmq.auth.thread import ThreadAuthenticator

    clients_dir = Path(clients_dir)
    if not clients_dir.is_dir():
        raise PublishError(
            f"CURVE clients folder {clients_dir} does not exist",
            fix="create it and copy each allowed client's public .key file into it",
        )
    authenticator = ThreadAuthenticator(context)
    authenticator.start()
    authenticator.configure_curve(domain="*", location=str(clients_dir))
    return authenticator
