#!/usr/bin/env python3
"""A QUIC uppercase server on aioquic (not shout's code), for shout's tests.

Usage: quic_server.py PORT HOST CERTFILE KEYFILE
ALPN "shout"; each bidirectional stream is answered with the uppercase of
what it carries (ASCII letters), then a FIN after the client's. It says
"listening quic HOST:PORT" on stdout once bound, as shoutd does.
"""
import asyncio
import sys

from aioquic.asyncio import serve
from aioquic.quic.configuration import QuicConfiguration


async def uppercase(reader, writer):
    while True:
        data = await reader.read(65536)
        if not data:
            break
        writer.write(data.upper())
    writer.write_eof()


def on_stream(reader, writer):
    asyncio.ensure_future(uppercase(reader, writer))


async def main():
    port, host = int(sys.argv[1]), sys.argv[2]
    configuration = QuicConfiguration(is_client=False, alpn_protocols=["shout"])
    configuration.load_cert_chain(sys.argv[3], sys.argv[4])
    await serve(host, port, configuration=configuration, stream_handler=on_stream)
    print(f"listening quic {host}:{port}", flush=True)
    await asyncio.Future()


if __name__ == "__main__":
    asyncio.run(main())
