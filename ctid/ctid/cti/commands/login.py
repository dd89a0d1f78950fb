"""``login``: rate limits by address and by account, then the password check in its thread pool."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from ctid.cti import PROTOCOL_VERSION
from ctid.cti.commands.base import Request
from ctid.cti.passwords import PasswordCheckBusy
from ctid.cti.ratelimit import AccountBackoff, LoginRateLimiter
from ctid.directory import User

log = Logger()


@dataclass(frozen=True)
class LoginEnv:
    limiter: LoginRateLimiter
    accounts: AccountBackoff
    user_by_login: Callable[[str], User | None]
    check_password: Callable[[str, str | None], Deferred]


def login(req: Request, env: LoginEnv) -> None:
    client, msg = req.client, req.msg
    if client.user is not None:
        return req.fail("already_logged_in", "this session is logged in already")
    if client.logging_in:
        return req.fail("busy", "a login is already being checked")
    version = msg.get("version", PROTOCOL_VERSION)
    if version != PROTOCOL_VERSION:
        return req.fail(
            "unsupported_version", f"this server speaks version {PROTOCOL_VERSION}, not {version}"
        )
    name = msg["login"]
    for wait, whose in (
        (env.limiter.retry_after(client.peer), "from this address"),
        (env.accounts.retry_after(name, client.peer), "for this account"),
    ):
        if wait > 0:
            return req.fail(
                "rate_limited",
                f"too many failed logins {whose}; retry in {math.ceil(wait)} s",
                retry_after=math.ceil(wait * 10) / 10,
            )
    user = env.user_by_login(name)
    encoded = user.cti_password_hash if user is not None and user.enabled else None
    env.accounts.attempted(name)
    client.logging_in = True

    def checked(ok: bool) -> None:
        client.logging_in = False
        if client.closed:
            return
        current = env.user_by_login(name)
        if not ok or current is None or not current.enabled or current.cti_password_hash != encoded:
            env.limiter.failed(client.peer)
            log.info("CTI: failed login {login!r} from {peer}", login=name[:64], peer=client.peer)
            req.fail("login_failed", "wrong login or password")
            return
        env.limiter.succeeded(client.peer)
        env.accounts.succeeded(name, client.peer)
        client.logged_in(current)
        req.ok(
            user={
                "id": current.id,
                "name": current.name,
                "login": name,
                "exten": current.exten,
                "lines": list(current.lines),
            }
        )

    def failed(failure: Failure) -> None:
        client.logging_in = False
        if failure.check(PasswordCheckBusy):
            req.fail("busy", "too many logins are being checked; retry shortly")
        else:
            log.failure("CTI: password check failed", failure)
            req.fail("busy", "the login could not be checked; retry shortly")

    env.check_password(msg["password"], encoded).addCallbacks(checked, failed)
