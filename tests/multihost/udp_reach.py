"""Which addresses a host reaches over UDP from one source address, and back.

Run inside hosts of a usb4fabric/nshosts.py cluster::

    udp_reach.py echo PORT                    every host: answers what comes
    udp_reach.py ask SRC PORT DST [DST...]    prints "DST reached|lost"

``ask`` sends from a socket bound to SRC, as the provider's udp link does
(it binds one interface's address), to DST:PORT and waits for the echo to
come back to SRC: a route there, forwarding on the way and a route back
(which reverse-path filtering may refuse when it differs from the way there)
are all needed.  A datagram is asked again a few times before DST counts as
lost.  ``echo`` runs until killed.
"""

from __future__ import annotations

import os
import socket
import sys
import time

TRIES = 5
WAIT_SEC = 0.2  # per try


def echo(port: int) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("0.0.0.0", port))
    print("ready", flush=True)
    while True:
        data, peer = sock.recvfrom(2048)
        try:
            sock.sendto(data, peer)
        except OSError:  # no route back: the asker counts it lost
            pass


def reached(sock: socket.socket, dst: str, port: int) -> bool:
    nonce = os.urandom(16)
    for _ in range(TRIES):
        try:
            sock.sendto(nonce, (dst, port))
        except OSError:  # no route there (ENETUNREACH)
            return False
        deadline = time.monotonic() + WAIT_SEC
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                data, _ = sock.recvfrom(2048)
            except (socket.timeout, ConnectionRefusedError):
                continue
            if data == nonce:
                return True
    return False


def ask(src: str, port: int, dsts: list[str]) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((src, 0))
    for dst in dsts:
        print("%s %s" % (dst, "reached" if reached(sock, dst, port) else "lost"), flush=True)


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "echo":
        echo(int(argv[1]))
    elif len(argv) >= 4 and argv[0] == "ask":
        ask(argv[1], int(argv[2]), argv[3:])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
