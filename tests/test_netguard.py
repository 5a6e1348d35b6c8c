import socket
import subprocess
import sys

import pytest


def test_outbound_connection_is_blocked():
    with pytest.raises(ConnectionRefusedError, match="blocked"):
        socket.create_connection(("93.184.216.34", 80), timeout=1)


def test_dns_lookup_is_blocked():
    with pytest.raises(ConnectionRefusedError, match="blocked"):
        socket.getaddrinfo("pypi.org", 443)


def test_subprocesses_inherit_the_guard():
    code = "import socket\ntry:\n    socket.getaddrinfo('example.com', 80)\nexcept ConnectionRefusedError:\n    print('blocked')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "blocked"


def test_loopback_stays_open():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    client = socket.create_connection(server.getsockname(), timeout=1)
    client.close()
    server.close()


def test_blocked_attempts_are_logged_when_asked(tmp_path):
    import os

    log = tmp_path / "net.log"
    code = "import socket\ntry:\n    socket.getaddrinfo('example.com', 80)\nexcept ConnectionRefusedError:\n    pass"
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "KDLAB_NETGUARD_LOG": str(log)})
    assert "a DNS lookup (tried 'example.com')" in log.read_text()
