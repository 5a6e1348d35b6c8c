"""Block network access in every Python process of the test run (pytest itself and notebook kernels).

Put this folder on PYTHONPATH and set ``KDLAB_BLOCK_NETWORK=1``: any socket connection or DNS lookup
to a host other than the loopback interface raises ``ConnectionRefusedError``. Loopback stays open
because Jupyter kernels talk to papermill over it. With ``KDLAB_NETGUARD_LOG`` set to a file, every blocked
attempt is also appended to it (one line each), so a test can assert that a server it started never tried.
"""
import os
import socket

LOOPBACK = ("127.", "::1", "localhost")


def _refuse(what: str) -> None:
    log = os.environ.get("KDLAB_NETGUARD_LOG")
    if log:
        with open(log, "a", encoding="utf-8") as handle:
            handle.write(f"{os.getpid()} {what}\n")
    raise ConnectionRefusedError(f"{what} is blocked during kdlab tests")


def _is_local(host) -> bool:
    return isinstance(host, str) and (host.startswith(LOOPBACK) or host == "")


def install() -> None:
    if getattr(socket, "_kdlab_guarded", False):
        return
    connect, connect_ex, getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo

    def _check(address) -> None:
        if isinstance(address, tuple) and not _is_local(address[0]):
            _refuse(f"network access (tried {address!r})")

    def guarded_connect(self, address):
        _check(address)
        return connect(self, address)

    def guarded_connect_ex(self, address):
        _check(address)
        return connect_ex(self, address)

    def guarded_getaddrinfo(host, *args, **kwargs):
        if host is not None and not _is_local(host if isinstance(host, str) else host.decode()):
            _refuse(f"a DNS lookup (tried {host!r})")
        return getaddrinfo(host, *args, **kwargs)

    socket.socket.connect = guarded_connect
    socket.socket.connect_ex = guarded_connect_ex
    socket.getaddrinfo = guarded_getaddrinfo
    socket._kdlab_guarded = True


if os.environ.get("KDLAB_BLOCK_NETWORK") == "1":
    install()
