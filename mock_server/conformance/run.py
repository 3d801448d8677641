"""A conformance run: an embedded sandbox on a free loopback port, the flows of one family on the
target and on it, one after the other, and the comparison.

Credentials go to the target in the calls that need them and nowhere else: nothing is stored or
logged, and the report redacts them.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from mock_server.conformance.compare import compare_steps
from mock_server.conformance.flows import (
    DEFAULT_PHONE,
    DIALECTS,
    FLOWS,
    FlowStopped,
    OtpSource,
    Target,
    asynchronous,
)
from mock_server.conformance.report import Report
from mock_server.domain.defaults import NAMIRIAL_TOKEN, default_tokens
from mock_server.server.app import create_app
from mock_server.server.config import Config
from mock_server.server.processes import free_port
from mock_server.server.serving import start
from mock_server.server.slow_clients import Deadlines

_CALL_TIMEOUT_S = 60


def _sandbox_credentials(family: str, rao: bool) -> dict[str, str]:
    """What the embedded sandbox signs in with: its built-in token of the family's documentation, or
    the RAO account behind it."""
    token = next(t for t in default_tokens() if t.uid == NAMIRIAL_TOKEN) if family == "new" else default_tokens()[0]
    if rao:
        return {"username": token.username, "password": token.password or "", "pin": token.pin or ""}
    return {"token": token.uid}


class TargetUnreachable(Exception):
    """Not one call reached the target: a wrong URL, or a service that is down."""


@dataclass(frozen=True)
class Options:
    """What ``oneshot-mock conformance`` was asked."""

    target: str
    family: str = "legacy"
    token: str | None = None
    rao: tuple[str, str, str] | None = None  # username, password, pin
    otp_from: str = "sandbox-control"  # where the target's OTP comes from: its control API, a prompt, or a code
    phone: str = DEFAULT_PHONE  # the signers' phone on the target


async def run(options: Options, prompt: Callable[[str], str] = input) -> Report:
    """Every flow of the family on the target, then on the embedded sandbox; the steps compared."""
    timeout = aiohttp.ClientTimeout(total=_CALL_TIMEOUT_S)
    async with (embedded_sandbox() as sandbox_url, callback_receiver() as callback,
                aiohttp.ClientSession(timeout=timeout) as session):
        target = Target(options.target.rstrip("/"), session, _credentials(options),
                        _otp_source(options.otp_from, prompt), callback if _is_loopback(options.target) else None,
                        options.phone)
        sandbox = Target(sandbox_url, session, _sandbox_credentials(options.family, options.rao is not None),
                         _control_otp, callback, options.phone)
        skipped = []
        for flow in FLOWS:
            if flow is asynchronous and target.callback is None:
                skipped.append("async: the target cannot deliver webhooks to this machine (its callback would be "
                               "a loopback address)")
                continue
            for server in (target, sandbox):
                with contextlib.suppress(FlowStopped):
                    await flow(server, DIALECTS[options.family])
            unanswered = [seen for seen in target.observations if seen.status is None]
            if unanswered and len(unanswered) == len(target.observations):
                raise TargetUnreachable(f"{options.target} does not answer: {unanswered[0].problem}")
    return Report(options.target, options.family, compare_steps(target.observations, sandbox.observations), skipped)


def _credentials(options: Options) -> dict[str, str]:
    if options.rao:
        username, password, pin = options.rao
        return {"username": username, "password": password, "pin": pin}
    if options.token:
        return {"token": options.token}
    return _sandbox_credentials(options.family, rao=False)  # the target is a sandbox too


async def _control_otp(target: Target, pk: int) -> str:
    """The newest OTP of request ``pk`` in a sandbox's SMS outbox."""
    async with target.session.get(f"{target.base}/_mock/sms", params={"request": str(pk)}) as answer:
        if answer.status != 200:
            raise FlowStopped(f"{target.base}/_mock/sms answered {answer.status}: use --otp-from prompt or a code")
        messages = (await answer.json())["messages"]
    if not messages:
        raise FlowStopped(f"no SMS for request {pk} in {target.base}/_mock/sms")
    return messages[-1]["otp"]


def _otp_source(otp_from: str, prompt: Callable[[str], str]) -> OtpSource:
    if otp_from == "sandbox-control":
        return _control_otp

    async def asked(target: Target, pk: int) -> str:
        return (await asyncio.to_thread(prompt, f"OTP sent for request {pk} on {target.base}: ")).strip()

    async def fixed(target: Target, pk: int) -> str:
        return otp_from

    return asked if otp_from == "prompt" else fixed


def _is_loopback(url: str) -> bool:
    """Whether ``url``'s host is this machine, so that a callback on 127.0.0.1 reaches it."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@contextlib.asynccontextmanager
async def embedded_sandbox() -> AsyncIterator[str]:
    """A sandbox as ``serve`` runs it out of the box, in this process, on a free loopback port; its URL."""
    port = free_port()
    config = Config(port=port)
    runner, _ = await start(create_app(config), Deadlines.of(config), host="127.0.0.1", port=port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def callback_receiver() -> AsyncIterator[str]:
    """A webhook receiver on a free loopback port that answers 200 to everything; its URL."""

    async def received(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/{tail:.*}", received)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    try:
        await web.TCPSite(runner, "127.0.0.1", port).start()
        yield f"http://127.0.0.1:{port}/conformance/callback"
    finally:
        await runner.cleanup()
