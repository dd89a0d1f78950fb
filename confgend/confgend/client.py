"""pbx-confgen: what Asterisk's `#exec` runs for every generated file on every reload. Kept tiny: standard
library only (no Twisted, no confdb), one socket, a connect timeout and a total read timeout.

    pbx-confgen asterisk/pjsip.conf

On success it prints the file and keeps a local copy (atomically); when confgend says the file is its
last good copy (it could not generate it now), the client warns as below. On any failure (confgend down, slow,
a cut or garbled answer, ERR) it prints its own last good copy and warns on stderr and in the journal
(syslog socket /dev/log); with no copy it prints nothing and exits 1.

Asterisk runs this client about 40 times at start (19 for pjsip.conf) and 11 times per res_pjsip reload,
and answers no SIP request before its start is over. When confgend did not answer in time, the client
notes it (`.unreachable` in the cache folder); for the next --retry-after seconds a run gives confgend
only --quick-timeout, and at most one run per --probe-interval tries at all (`.probed`: when a quick try
last failed): the others print the copy at once. So a frozen confgend delays Asterisk's start by one
timeout, not one per run (nor a quick one per run). A success clears both notes; a quick failure does not
extend the window, so confgend gets a full --timeout again once the window has passed.

Options (or the environment): --host (PBX_CONFGEN_HOST, 127.0.0.1), --port (PBX_CONFGEN_PORT, 8669),
--connect-timeout seconds (PBX_CONFGEN_CONNECT_TIMEOUT, 1), --timeout seconds for the whole answer
(PBX_CONFGEN_TIMEOUT, 5), --quick-timeout seconds (PBX_CONFGEN_QUICK_TIMEOUT, 0.2), --retry-after
seconds (PBX_CONFGEN_RETRY_AFTER, 10) after a timeout and --probe-interval seconds
(PBX_CONFGEN_PROBE_INTERVAL, 1) between quick tries, --cache-dir (PBX_CONFGEN_CACHE_DIR,
/var/cache/pbx-confgen); PBX_CONFGEN_SYSLOG_SOCKET (/dev/log).
"""

from __future__ import annotations

import _socket  # the C module: `socket` would import enum, selectors, collections... on every call
import os
import sys
import time

# No `re`: every import is paid on every Asterisk reload, for every file.
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_.-")
MAX_SIZE = 256 * 1024 * 1024


def valid_name(name: str) -> bool:
    """Same rule as the server: 1 to 3 parts of [a-z0-9][a-z0-9_.-]{0,63}, separated by `/`."""
    parts = name.split("/")
    return 1 <= len(parts) <= 3 and all(
        0 < len(p) <= 64 and p[0] not in "_.-" and set(p) <= _NAME_CHARS for p in parts
    )


class Failed(Exception):
    """confgend gave no usable answer; `timed_out` when it did not answer in time (down or frozen)."""

    def __init__(self, message: str, *, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out


def fetch(name: str, host: str, port: int, connect_timeout: float, timeout: float) -> bytes:
    return fetch_reply(name, host, port, connect_timeout, timeout)[0]


def fetch_reply(
    name: str, host: str, port: int, connect_timeout: float, timeout: float
) -> tuple[bytes, bool]:
    """The file, and whether it is fresh (False: confgend could not generate it, this is its last copy)."""
    deadline = time.monotonic() + timeout
    try:
        sock = _connect(host, port, connect_timeout)
    except TimeoutError:
        raise Failed(f"cannot connect to confgend at {host}:{port}: timed out after {connect_timeout:g} s",
                     timed_out=True) from None  # fmt: skip
    except OSError as exc:
        raise Failed(f"cannot connect to confgend at {host}:{port}: {exc}") from None
    chunks = []
    size = 0
    expected = None
    try:
        sock.sendall(name.encode("ascii") + b"\n")
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Failed(f"no complete answer within {timeout:g} s", timed_out=True)
            sock.settimeout(left)
            chunk = sock.recv(1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if (expected is None and b"\n" in chunk) or (size > 256 and expected is None):
                expected = _header_length(b"".join(chunks))
            if expected is not None and size >= expected:
                break
    except TimeoutError:
        raise Failed(f"no complete answer within {timeout:g} s", timed_out=True) from None
    except OSError as exc:
        raise Failed(f"reading from confgend: {exc}") from None
    finally:
        sock.close()
    data = b"".join(chunks)
    if expected is None:
        expected = _header_length(data)
    header_end = data.index(b"\n") + 1
    body = data[header_end:]
    if len(data) != expected:
        raise Failed(f"answer cut short: {len(body)} of {expected - header_end} bytes")
    return body, data[:header_end].endswith(b" fresh\n")


def _addresses(host: str, port: int) -> list[tuple[int, tuple]]:
    """A literal address as is; a name through getaddrinfo, which costs about 11 ms of CPU (glibc loads
    its NSS modules): most of this client's budget, so the default 127.0.0.1 never pays it."""
    for family, address in ((_socket.AF_INET, (host, port)), (_socket.AF_INET6, (host, port, 0, 0))):
        try:
            _socket.inet_pton(family, host)
        except OSError:
            continue
        return [(family, address)]
    return [(info[0], info[4]) for info in _socket.getaddrinfo(host, port, 0, _socket.SOCK_STREAM)]


def _connect(host: str, port: int, timeout: float) -> _socket.socket:
    error: OSError = OSError(f"no address for {host}")
    for family, address in _addresses(host, port):
        sock = _socket.socket(family, _socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            sock.connect(address)
            return sock
        except OSError as exc:
            sock.close()
            error = exc
    raise error


def _header_length(data: bytes) -> int:
    """Total expected length (header + body) from the first line; raises Failed on ERR or garbage."""
    end = data.find(b"\n")
    if end < 0:
        raise Failed("garbled answer from confgend")
    if data.startswith(b"ERR "):
        raise Failed("confgend: " + data[4:end].decode("utf-8", "replace"))
    fields = data[:end].split(b" ")
    if len(fields) != 3 or fields[0] != b"OK" or fields[2] not in (b"fresh", b"cached"):
        raise Failed("garbled answer from confgend")
    if not fields[1].isdigit() or len(fields[1]) > 10 or int(fields[1]) > MAX_SIZE:
        raise Failed("garbled answer from confgend")
    return end + 1 + int(fields[1])


def _save(path: str, data: bytes) -> None:
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o750, exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:  # noqa: SIM105 - contextlib would cost an import on every call
            os.unlink(tmp)
        except OSError:
            pass
        raise


SYSLOG_WARNING = 3 * 8 + 4  # facility daemon, severity warning
UNREACHABLE = ".unreachable"  # in the cache folder: when confgend last did not answer in time
PROBED = ".probed"  # in the cache folder: when a quick try (within the window) last failed


def _recent(path: str, seconds: float) -> bool:
    try:
        return 0 <= time.time() - os.stat(path).st_mtime < seconds
    except OSError:
        return False


def _touch(path: str) -> None:
    try:
        os.makedirs(os.path.dirname(path), mode=0o750, exist_ok=True)
        with open(path, "wb"):
            pass
        os.utime(path)
    except OSError:
        pass


def _warn(message: str) -> None:
    """On stderr, and to the journal through the syslog socket (as logging's SysLogHandler would write
    it, without importing logging): `<28>pbx-confgen[pid]: message` on /dev/log. No socket (a container,
    a test), or a full one: the warning is on stderr only."""
    sys.stderr.write(f"pbx-confgen: {message}\n")
    path = os.environ.get("PBX_CONFGEN_SYSLOG_SOCKET", "/dev/log")
    line = f"<{SYSLOG_WARNING}>pbx-confgen[{os.getpid()}]: {message}".encode("utf-8", "replace")[:2048]
    try:
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_DGRAM)
        try:
            sock.settimeout(0.2)
            sock.connect(path)
            sock.send(line)
        finally:
            sock.close()
    except OSError:
        pass


def _options(argv: list[str]) -> dict[str, str]:
    env = os.environ
    opts = {
        "host": env.get("PBX_CONFGEN_HOST", "127.0.0.1"),
        "port": env.get("PBX_CONFGEN_PORT", "8669"),
        "connect_timeout": env.get("PBX_CONFGEN_CONNECT_TIMEOUT", "1"),
        "timeout": env.get("PBX_CONFGEN_TIMEOUT", "5"),
        "quick_timeout": env.get("PBX_CONFGEN_QUICK_TIMEOUT", "0.2"),
        "retry_after": env.get("PBX_CONFGEN_RETRY_AFTER", "10"),
        "probe_interval": env.get("PBX_CONFGEN_PROBE_INTERVAL", "1"),
        "cache_dir": env.get("PBX_CONFGEN_CACHE_DIR", "/var/cache/pbx-confgen"),
        "name": "",
    }
    args = list(argv)
    while args:
        arg = args.pop(0)
        if arg in ("-h", "--help"):
            sys.stdout.write(__doc__ or "")
            raise SystemExit(0)
        if arg.startswith("--") and arg[2:].replace("-", "_") in opts and args:
            opts[arg[2:].replace("-", "_")] = args.pop(0)
        elif not opts["name"] and not arg.startswith("-"):
            opts["name"] = arg
        else:
            raise SystemExit(f"pbx-confgen: unexpected argument {arg!r} (see --help)")
    return opts


def main(argv: list[str] | None = None) -> int:
    opts = _options(sys.argv[1:] if argv is None else argv)
    name = opts["name"]
    if not valid_name(name):
        sys.stderr.write("usage: pbx-confgen asterisk/<file>\n")
        return 2
    try:
        port, connect_timeout, timeout, quick_timeout, retry_after, probe_interval = (
            int(opts["port"]),
            float(opts["connect_timeout"]),
            float(opts["timeout"]),
            float(opts["quick_timeout"]),
            float(opts["retry_after"]),
            float(opts["probe_interval"]),
        )
    except ValueError as exc:
        sys.stderr.write(f"pbx-confgen: bad setting: {exc}\n")
        return 2
    local = os.path.join(opts["cache_dir"], name)
    unreachable = os.path.join(opts["cache_dir"], UNREACHABLE)
    probed = os.path.join(opts["cache_dir"], PROBED)
    quick = _recent(unreachable, retry_after) and os.path.exists(local)
    if quick and _recent(probed, probe_interval):
        return _print_copy(name, local, f"confgend did not answer a try less than {probe_interval:g} s ago")
    if quick:
        connect_timeout = timeout = min(quick_timeout, timeout)
    try:
        data, fresh = fetch_reply(name, opts["host"], port, connect_timeout, timeout)
    except Failed as exc:
        if exc.timed_out:
            _touch(probed if quick else unreachable)
        return _print_copy(name, local, str(exc))
    sys.stdout.buffer.write(data)
    sys.stdout.flush()
    if not fresh:
        _warn(f"{name}: confgend could not generate it now and sent its last good copy (not fresh)")
    try:
        _save(local, data)
    except OSError as exc:
        _warn(f"{name}: cannot keep a local copy in {local}: {exc}")
    for note in (unreachable, probed):
        try:  # noqa: SIM105 - contextlib would cost an import on every call
            os.unlink(note)
        except OSError:
            pass
    return 0


def _print_copy(name: str, local: str, why: str) -> int:
    """The fallback: print the local copy (exit 0), or nothing (exit 1) when there is none; warn."""
    try:
        with open(local, "rb") as handle:
            data = handle.read()
    except OSError:
        _warn(f"{name}: {why}; no local copy, nothing printed")
        return 1
    _warn(f"{name}: {why}; printing the local copy {local}")
    sys.stdout.buffer.write(data)
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
