#!/usr/bin/env python3
"""A lecture-style UDP client, written for shout's tests.

Usage: udp_client.py [HOST] [PORT]   (defaults localhost 12000). Like the
textbook client: prompts, reads one line from standard input, sends it as
one datagram without its newline, prints the reply of one recvfrom(2048).
A 5 s timeout, which the lecture's client lacks, keeps a lost reply from
hanging a test.
"""
import socket
import sys


def main():
    host = sys.argv[1] if len(sys.argv) > 1 else "localhost"
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 12000
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.settimeout(5)
        line = input("Input lowercase sentence:")
        client.sendto(line.encode(), (host, port))
        reply, _ = client.recvfrom(2048)
        print(reply.decode())


if __name__ == "__main__":
    main()
