"""Command-line plumbing shared by the CTI proxy tools: common options, help text, the run loop."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Callable

from .manpage import ManPageParser
from .output import OutputSink
from .proxy import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_LISTEN_ADDRESS,
    DEFAULT_PORT,
    DEFAULT_SERVER_PORT,
    ProxyConfig,
    ProxyError,
    ProxyServer,
    SessionObserver,
    stderr_note,
)

DEFAULT_MAX_MESSAGE_SIZE = 4 * 1024 * 1024

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2

PROXY_DESCRIPTION = """
The tool is a TCP proxy to insert between a CTI client and the CTI server (ctid). Start it with the
server's host name as first argument, then point the CTI client at the tool: port 50030 on the loopback
address by default (note the trailing 0: ctid itself listens on 5003). When the client connects, the tool
connects to the server and relays every byte both ways, unchanged: what the tool displays or saves never
alters the traffic. Messages are framed on newlines, so a message split over several TCP segments, or
several messages in one segment, are seen one by one. A line that is not a JSON object is reported as
undecodable, and relayed like the rest.

The tool serves one client at a time; a client that connects while a session is running is closed at once.
By default the tool exits when the first session ends (the client or the server closed its connection);
with --loop it keeps listening for the next client until it is stopped with Ctrl-C (SIGINT) or SIGTERM,
which closes a running session first. When one side closes its connection, the other side gets the end of
stream and has 5 seconds to finish before both connections are closed.

If the server cannot be reached when a client connects, the tool says so on standard error and closes the
client's connection. Memory use is bounded: when one side reads slowly, the tool stops reading from the
other side until it catches up, and the same applies when the tool's own output (terminal, pipe, disk) is
slow. If the output fails (disk full, closed pipe), the tool says so and keeps relaying without output.
Status notes (listening address, sessions refused, connection errors) go to standard error.
"""

PROXY_EXIT_STATUS = """
 0   the session ended (the client or the server closed its connection), or the tool
     was stopped by SIGINT or SIGTERM.
 1   the tool could not listen, the server could not be reached, or the output could
     not be written.
 2   invalid command line.
"""

PROXY_SEE_ALSO = "ctispy(1), ctisave(1), ctistat(1); docs/tools.md in the PBX source tree."


def port_number(allow_zero: bool) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text, 10)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
        low = 0 if allow_zero else 1
        if not low <= value <= 65535:
            raise argparse.ArgumentTypeError(f"port must be between {low} and 65535: {value}")
        return value

    return parse


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds: {text}")
    return value


def byte_size(text: str) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of bytes: {text!r}") from None
    if value < 1024:
        raise argparse.ArgumentTypeError(f"must be at least 1024 bytes: {value}")
    return value


def make_parser(prog: str, summary: str, description: str, examples: str) -> ManPageParser:
    parser = ManPageParser(
        prog=prog,
        summary=summary,
        description=description + "\n\n" + PROXY_DESCRIPTION,
        sections=[("examples", examples), ("exit status", PROXY_EXIT_STATUS), ("see also", PROXY_SEE_ALSO)],
    )
    parser.add_argument(
        "server",
        metavar="SERVER",
        help="host name or address of the CTI server (ctid) to relay to",
    )
    return parser


def add_common_options(parser: argparse.ArgumentParser) -> None:
    """Options every proxy tool has; call after the tool's positional arguments."""
    parser.add_argument(
        "--server-port",
        metavar="PORT",
        type=port_number(allow_zero=False),
        default=DEFAULT_SERVER_PORT,
        help=f"TCP port of the CTI server (default: {DEFAULT_SERVER_PORT})",
    )
    parser.add_argument(
        "-l",
        "--listen-address",
        metavar="ADDRESS",
        default=DEFAULT_LISTEN_ADDRESS,
        help=f"address to listen on for the CTI client (default: {DEFAULT_LISTEN_ADDRESS}); "
        "use 0.0.0.0 to accept clients from other hosts",
    )
    parser.add_argument(
        "-p",
        "--port",
        metavar="PORT",
        type=port_number(allow_zero=True),
        default=DEFAULT_PORT,
        help=f"TCP port to listen on for the CTI client (default: {DEFAULT_PORT}); 0 picks a free port, "
        "which is printed on standard error",
    )
    parser.add_argument(
        "--loop",
        action="store_true",
        help="keep listening for the next client when a session ends, until SIGINT or SIGTERM",
    )
    parser.add_argument(
        "--connect-timeout",
        metavar="SECONDS",
        type=positive_float,
        default=DEFAULT_CONNECT_TIMEOUT,
        help=f"give up connecting to the server after SECONDS (default: {DEFAULT_CONNECT_TIMEOUT:g})",
    )
    parser.add_argument(
        "--max-message-size",
        metavar="BYTES",
        type=byte_size,
        default=DEFAULT_MAX_MESSAGE_SIZE,
        help="longest line decoded as a message; longer lines are relayed but reported as too large "
        f"(default: {DEFAULT_MAX_MESSAGE_SIZE})",
    )


def add_strip_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--strip",
        metavar="KEY",
        action="append",
        default=[],
        help="remove the top-level field KEY from the messages shown or saved (repeatable), for "
        "instance timenow, commandid or replyid; the traffic itself is not changed",
    )


def proxy_config(args: argparse.Namespace) -> ProxyConfig:
    return ProxyConfig(
        server_host=args.server,
        server_port=args.server_port,
        listen_address=args.listen_address,
        listen_port=args.port,
        loop=args.loop,
        connect_timeout=args.connect_timeout,
    )


ObserverFactory = Callable[[OutputSink, Callable[[str], None]], SessionObserver]


def run(prog: str, config: ProxyConfig, make_observer: ObserverFactory) -> int:
    """Run the proxy until it is done; return the exit status."""
    note = stderr_note(prog)
    try:
        return asyncio.run(_serve(config, make_observer, note))
    except ProxyError as exc:
        note(str(exc))
        return EXIT_FAILURE


async def _serve(config: ProxyConfig, make_observer: ObserverFactory, note: Callable[[str], None]) -> int:
    sink = OutputSink()
    sink.start()
    server = ProxyServer(config, make_observer(sink, note), note)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, server.stop)
    try:
        status = await server.serve()
    finally:
        await sink.close()
    if sink.error is not None:
        _silence_stdout()
        status = EXIT_FAILURE
    return status


def _silence_stdout() -> None:
    """After a broken stdout pipe, keep Python's exit-time flush from printing a second error."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
