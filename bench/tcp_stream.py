#!/usr/bin/env python3
"""A raw TCP byte stream between two hosts: the shaped suite's check of tbf.

    tcp_stream.py server ADDR [PORT]     accept one connection, read to EOF
    tcp_stream.py client ADDR BYTES [PORT]

The client sends 200 MB to warm up (and to drain tbf's bucket), then BYTES
in 1 MiB writes, and prints one OSU-format row: 1048576 and MB/s (1e6 B/s)
until the server has read everything (it closes after EOF).  One kernel TCP
stream with GSO, no MPI: how much of a shaped rate the kernel itself gets.
"""

import socket
import sys
import time

PORT = 18516
CHUNK = 1 << 20
WARMUP = 200 * CHUNK


def server(addr: str, port: int) -> None:
    with socket.create_server((addr, port)) as listener:
        conn, _ = listener.accept()
        buf = bytearray(4 * CHUNK)
        with conn:
            while conn.recv_into(buf):
                pass


def client(addr: str, total: int, port: int) -> None:
    data = bytes(CHUNK)
    with socket.create_connection((addr, port), timeout=60) as conn:
        conn.sendall(data * (WARMUP // CHUNK))
        start = time.monotonic()
        for _ in range(max(1, total // CHUNK)):
            conn.sendall(data)
        conn.shutdown(socket.SHUT_WR)
        conn.recv(1)  # the server's close: every byte is read
        seconds = time.monotonic() - start
    print("# raw TCP stream, 1 MiB writes")
    print(f"{CHUNK:<10}{max(1, total // CHUNK) * CHUNK / seconds / 1e6:18.2f}")


def main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[0] == "server":
        server(argv[1], int(argv[2]) if len(argv) > 2 else PORT)
    elif len(argv) >= 3 and argv[0] == "client":
        client(argv[1], int(argv[2]), int(argv[3]) if len(argv) > 3 else PORT)
    else:
        print(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
