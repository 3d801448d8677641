"""The baseline of the hello comparison: a bare aiohttp app with one hello handler.

``python -m mock_server.bench.baseline --port N`` serves it on 127.0.0.1 as aiohttp does out
of the box (asyncio's event loop, no access log).
"""

from __future__ import annotations

import argparse

from aiohttp import web

_BODY = {"status": "200 OK", "details": "Hello"}


async def hello(request: web.Request) -> web.Response:
    return web.json_response(_BODY)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m mock_server.bench.baseline")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    app = web.Application()
    app.router.add_get("/api/v1/hello", hello)
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
