#!/usr/bin/env python3
"""A lecture-style TCP uppercase server, written for shout's tests.

Usage: tcp_server.py [PORT [HOST]]   (defaults 12000 and every interface;
the tests pass 127.0.0.1). It behaves like the textbook server: per
connection, one recv(1024), the text uppercased, one send, then close. It
says "The server is ready to receive" on stdout once it listens.
"""
import socket
import sys


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 12000
    host = sys.argv[2] if len(sys.argv) > 2 else ""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # Lets a test start it again on the same port at once.
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.listen(1)
    print("The server is ready to receive", flush=True)
    while True:
        connection, _ = listener.accept()
        with connection:
            text = connection.recv(1024).decode()
            connection.send(text.upper().encode())


if __name__ == "__main__":
    main()
