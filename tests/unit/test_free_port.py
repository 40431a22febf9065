"""free_port never hands one port out twice: servers get their ports before they bind."""

from __future__ import annotations

import socket

from tools.testbed.support import free_port


def test_a_thousand_ports_are_all_different() -> None:
    # The kernel offers a closed probe's port again: among a thousand draws from its
    # ephemeral range (about 28,000 ports) some would repeat without the bookkeeping.
    ports = [free_port() for _ in range(1000)]
    assert len(set(ports)) == len(ports)


def test_the_port_is_free_to_bind() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", free_port()))
