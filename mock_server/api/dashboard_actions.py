"""The dashboard's buttons and forms: each POST does what the control API call of the same name does,
in the page's namespace, then sends the browser back to the overview saying what happened (303).

A refused action answers an HTML page with the reason, at the control API's status (400, 404); a body
that cannot be read as a form at all gets the control API's JSON error (400, 413).
"""

from __future__ import annotations

from aiohttp import web

from mock_server import scenario_library
from mock_server.api import control, parsing
from mock_server.api.dashboard import (
    CLOCK,
    DELETE_NAMESPACE,
    FLUSH_WEBHOOKS,
    INDEX,
    LOAD_SCENARIO,
    RESET,
    UNLOAD_SCENARIO,
    View,
    html_response,
    notice_page,
    view_of,
)
from mock_server.api.keys import CONFIG, sandbox_of, scenarios_of, webhooks_of
from mock_server.api.routing import add
from mock_server.domain.service import Sandbox
from mock_server.domain.tenancy import DEFAULT


def _back(request: web.Request, anchor: str, done: str, view: View | None = None) -> web.Response:
    location = (view or view_of(request)).url(INDEX + "/", done=done) + anchor
    return web.Response(status=303, headers={"Location": location}, text="303: See Other")


def _refused(request: web.Request, error: control.ControlError) -> web.Response:
    page = notice_page(request, "Not done", str(error))
    return html_response(page, status=error.http_status)


async def reset(request: web.Request) -> web.Response:
    """Reset the namespace, as ``POST /_mock/reset``."""
    sandbox_of(request).reset()
    return _back(request, "#controls", "The namespace was reset.")


async def move_clock(request: web.Request) -> web.Response:
    """Advance the clock by ``advance_s`` seconds or set it to ``set``, as ``POST /_mock/clock``."""
    fields = (await _form(request)).fields
    sandbox = sandbox_of(request)
    try:
        control.apply_clock_move(sandbox, {key: fields[key] for key in ("advance_s", "set") if key in fields})
    except control.ControlError as error:
        return _refused(request, error)
    return _back(request, "#clock", f"The clock now reads {_now(sandbox)}.")


async def load_scenario(request: web.Request) -> web.Response:
    """Load a scenario of the library (``library``) or an uploaded file (``file``), as ``POST /_mock/scenarios``."""
    form = await _form(request)
    upload = next((u for u in form.files if u.field == "file"), None)
    try:
        if upload is not None:
            text = upload.data.decode("utf-8", errors="replace")
            scenario = control.add_scenario(request, text, upload.filename, f"dashboard: file {upload.filename}")
        elif "library" in form.fields:
            name = form.fields["library"]
            try:
                text = scenario_library.read(name)
            except LookupError as missing:
                raise control.ControlError(404, str(missing.args[0])) from None
            scenario = control.add_scenario(request, text, name, f"dashboard: library {name}")
        else:
            raise control.ControlError(400, "give a scenario of the library (library) or a scenario file (file)")
    except control.ControlError as error:
        return _refused(request, error)
    return _back(request, "#scenarios", f"Scenario {scenario.name} loaded.")


async def unload_scenario(request: web.Request) -> web.Response:
    """Unload the scenario ``name``, as ``DELETE /_mock/scenarios/{name}``."""
    name = (await _form(request)).fields.get("name", "")
    try:
        scenarios_of(request).remove(name)
    except LookupError as missing:
        return _refused(request, control.ControlError(404, str(missing.args[0])))
    return _back(request, "#scenarios", f"Scenario {name} unloaded.")


async def flush_webhooks(request: web.Request) -> web.Response:
    """Deliver every pending webhook event now, as ``POST /_mock/webhooks/flush``."""
    pending = webhooks_of(request).flush()
    return _back(request, "#webhooks", f"Every delivery waiting for a retry goes now ({pending} event(s) pending).")


async def delete_namespace(request: web.Request) -> web.Response:
    """Delete the page's namespace, as ``DELETE /_mock/namespaces/{namespace}``, then show the default one."""
    namespace = view_of(request).namespace
    if namespace != DEFAULT and (await _form(request)).fields.get("confirm") != namespace:
        return _refused(request, control.ControlError(400, f"To delete namespace {namespace!r}, type its name."))
    try:
        held = await control.delete_namespace(request, namespace)
    except control.ControlError as error:
        return _refused(request, error)
    return _back(request, "#controls", f"Namespace {namespace} was deleted with its {held} request(s).",
                 view_of(request).with_namespace(DEFAULT))


async def _form(request: web.Request) -> parsing.Form:
    """The posted form (urlencoded or multipart, as a browser sends it; JSON too), files up to the
    upload limit."""
    return await parsing.read_form(request, request.app[CONFIG].max_file_bytes, "api.413.body_too_large")


def _now(sandbox: Sandbox) -> str:
    return sandbox.clock.now().isoformat(sep=" ", timespec="seconds")


def setup(app: web.Application) -> None:
    """Register the dashboard's actions (with the control API: same guard, same namespaces)."""
    add(app, "POST", RESET, reset)
    add(app, "POST", CLOCK, move_clock)
    add(app, "POST", LOAD_SCENARIO, load_scenario)
    add(app, "POST", UNLOAD_SCENARIO, unload_scenario)
    add(app, "POST", FLUSH_WEBHOOKS, flush_webhooks)
    add(app, "POST", DELETE_NAMESPACE, delete_namespace)
