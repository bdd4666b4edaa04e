#!/usr/bin/env python3
"""A QUIC client on aioquic (not shout's code), for shout's tests.

Usage: quic_client.py HOST PORT CAFILE [SERVERNAME]
Each line of standard input is sent on a stream of its own, all streams
at once on one connection (ALPN "shout"), each with its FIN after the
line; the answers are printed in the order of the lines, each as it came.
"""
import asyncio
import sys

from aioquic.asyncio import connect
from aioquic.quic.configuration import QuicConfiguration


async def main():
    host, port, cafile = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    configuration = QuicConfiguration(is_client=True, alpn_protocols=["shout"])
    configuration.load_verify_locations(cafile)
    configuration.server_name = sys.argv[4] if len(sys.argv) > 4 else "localhost"
    lines = sys.stdin.buffer.read().splitlines(keepends=True)
    async with connect(host, port, configuration=configuration) as client:

        async def exchange(line):
            reader, writer = await client.create_stream()
            writer.write(line)
            writer.write_eof()
            return await reader.read()

        answers = await asyncio.gather(*(exchange(line) for line in lines))
    for answer in answers:
        sys.stdout.buffer.write(answer)
    sys.stdout.flush()


if __name__ == "__main__":
    asyncio.run(asyncio.wait_for(main(), 20))
