#!/usr/bin/env python3
"""A lecture-style UDP uppercase server, written for shout's tests.

Usage: udp_server.py [PORT [HOST]]   (defaults 12000 and every interface;
the tests pass 127.0.0.1). Like the textbook server: one recvfrom(2048),
the text uppercased, one sendto back to the sender, forever. Invalid UTF-8
ends it with a traceback, as it ends the lecture's. It says "The server is
ready to receive" on stdout once it is bound.
"""
import socket
import sys


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 12000
    host = sys.argv[2] if len(sys.argv) > 2 else ""
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind((host, port))
    print("The server is ready to receive", flush=True)
    while True:
        message, sender = server.recvfrom(2048)
        server.sendto(message.decode().upper().encode(), sender)


if __name__ == "__main__":
    main()
