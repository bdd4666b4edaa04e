#!/usr/bin/env python3
"""A lecture-style TCP client, written for shout's tests.

Usage: tcp_client.py [HOST] [PORT]   (defaults localhost 12000). Like the
textbook client: prompts, reads one line from standard input, sends it
without its newline, prints the answer of one recv(1024) as
"From Server: <answer>".
"""
import socket
import sys


def main():
    host = sys.argv[1] if len(sys.argv) > 1 else "localhost"
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 12000
    with socket.create_connection((host, port)) as connection:
        line = input("Input lowercase sentence:")
        connection.send(line.encode())
        answer = connection.recv(1024)
        print("From Server:", answer.decode())


if __name__ == "__main__":
    main()
