"""Serving the sandbox application on a :class:`~mock_server.server.slow_clients.SandboxSite`.

:func:`start` is what every host of the sandbox uses (``serve``, the pytest plugin, conformance's
embedded sandbox, the test suite); :func:`run` is ``serve``'s loop, as ``web.run_app`` runs one, whose
own sites would serve the application without the sandbox's connection deadlines.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable
from typing import Any

from aiohttp import web

from mock_server.server.slow_clients import Deadlines, SandboxSite


async def start(app: web.Application, deadlines: Deadlines, *, host: str | None = None, port: int | None = None,
                sock: socket.socket | None = None, **runner_options: Any) -> tuple[web.AppRunner, SandboxSite]:
    """``app`` listening on ``host`` and ``port`` (or ``sock``); ``runner.cleanup()`` stops it.
    ``runner_options`` go to ``web.AppRunner``."""
    runner = web.AppRunner(app, **runner_options)
    await runner.setup()
    try:
        site = SandboxSite(runner, deadlines, host=host, port=port, sock=sock)
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner, site


def run(app: web.Application, deadlines: Deadlines, host: str, port: int, listening: Callable[[], None],
        loop: asyncio.AbstractEventLoop) -> None:
    """Serve ``app`` on ``loop`` until SIGINT or SIGTERM, then shut it down gracefully and close the
    loop; ``listening`` is called once the socket is bound. ``OSError`` if it cannot be."""

    async def serve() -> None:
        runner, _ = await start(app, deadlines, host=host, port=port, handle_signals=True)
        try:
            listening()
            await asyncio.Event().wait()  # a signal ends it, raising GracefulExit out of the loop
        finally:
            await runner.cleanup()

    asyncio.set_event_loop(loop)
    main = loop.create_task(serve())
    try:
        loop.run_until_complete(main)
    except (web.GracefulExit, KeyboardInterrupt):
        pass
    finally:
        main.cancel()  # cancelled while it waits: its cleanup runs now
        with contextlib.suppress(asyncio.CancelledError):
            loop.run_until_complete(main)
        _cancel_remaining(loop)
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


def _cancel_remaining(loop: asyncio.AbstractEventLoop) -> None:
    tasks = asyncio.all_tasks(loop)
    for task in tasks:
        task.cancel()
    loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
