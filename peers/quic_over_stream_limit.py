#!/usr/bin/env python3
"""A QUIC client on aioquic that breaks the server's stream limit.

Usage: quic_over_stream_limit.py HOST PORT CAFILE STREAMS

It connects (ALPN "shout"), then lets aioquic believe the server allows
any number of streams, and opens STREAMS streams at once, each carrying
"x\n" and its FIN. A server that enforces its limit must close the
connection with STREAM_LIMIT_ERROR (RFC 9000 section 4.6).

It prints two lines: `limit N`, the streams the server allowed at the
handshake, and `closed error_code=0x4 reason=TEXT` once the server
closed the connection (0x4 is STREAM_LIMIT_ERROR; another code is
printed as it came), or `not closed answers=K` if the server answered
K streams and did not close it within 10 seconds. Exit status 0 in both
cases: the caller judges; 1 when the connection cannot be made.
"""
import asyncio
import sys

from aioquic.asyncio import connect
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import ConnectionTerminated


async def main():
    host, port, cafile = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    streams = int(sys.argv[4])
    configuration = QuicConfiguration(is_client=True, alpn_protocols=["shout"])
    configuration.load_verify_locations(cafile)
    configuration.server_name = "localhost"
    async with connect(
        host, port, configuration=configuration, wait_connected=True
    ) as client:
        quic = client._quic
        print(f"limit {quic._remote_max_streams_bidi}", flush=True)
        # aioquic holds back streams past the peer's limit; this client
        # is here to send them anyway.
        quic._remote_max_streams_bidi = 1 << 40
        terminated = asyncio.get_running_loop().create_future()
        handle_event = client.quic_event_received

        def watch(event):
            if isinstance(event, ConnectionTerminated) and not terminated.done():
                terminated.set_result(event)
            handle_event(event)

        client.quic_event_received = watch
        answers = 0

        async def exchange():
            nonlocal answers
            reader, writer = await client.create_stream()
            writer.write(b"x\n")
            writer.write_eof()
            if await reader.read() == b"X\n":
                answers += 1

        tasks = [asyncio.ensure_future(exchange()) for _ in range(streams)]
        try:
            event = await asyncio.wait_for(asyncio.shield(terminated), 10)
            print(
                f"closed error_code=0x{event.error_code:x} "
                f"reason={event.reason_phrase}",
                flush=True,
            )
        except asyncio.TimeoutError:
            print(f"not closed answers={answers}", flush=True)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


if __name__ == "__main__":
    try:
        asyncio.run(asyncio.wait_for(main(), 20))
    except ConnectionError as error:
        print(f"cannot connect: {error}", file=sys.stderr)
        sys.exit(1)
