"""Where the sandbox's answer to a step differs from the target's, and which differences are expected.

Compared: the HTTP status, the media type, the JSON structure (keys, value types, list shapes) and
every text (status strings, messages, errors). Values that are ids, times, digests or certificate
bytes differ by nature between two servers: their *format* is compared instead (a uuid stays a
uuid, a pk a number of the same kind, a time an ISO time), and the report lists them as expected.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from mock_server.conformance.flows import Observation

# Formats of values that differ between two servers by nature; anything else is text, compared as is.
_FORMATS = (
    ("uuid", re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)),
    ("time", re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:?\d\d)?")),
    ("time", re.compile(r"\d\d/\d\d/\d{4} \d\d:\d\d(:\d\d)?")),
    ("date", re.compile(r"\d{4}-\d\d-\d\d|\d\d/\d\d/\d{4}")),
    ("hex", re.compile(r"[0-9a-f]{10,}", re.I)),
    ("digits", re.compile(r"\d{5,}")),
    ("base64", re.compile(r"[A-Za-z0-9+/=_-]{40,}")),
    ("url", re.compile(r"https?://\S+")),
    ("pem", re.compile(r"-----BEGIN [A-Z ]+-----.*", re.S)),
)
# Ids inside a text ("Request created with pk 35253"): the text around them must be the same.
_IDS_IN_TEXT = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|\b[0-9a-f]{16,}\b|\b\d{5,}\b",
                          re.I)
# What differs between any two servers and is not an id: the facts of the machine that answers.
_SERVER_FACTS = {"body.details.info": "the server's machine", "body.details.sandbox": "the sandbox's own version"}
# Integers from here up are ids (pks, serials); smaller ones (counts, codes) must be equal.
_ID_FROM = 10_000


@dataclass
class StepResult:
    """One step compared: ``same`` (nothing differs, bar what is listed as expected) or ``differs``."""

    flow: str
    step: str
    differences: list[str] = field(default_factory=list)
    expected: list[str] = field(default_factory=list)
    target: Observation | None = None
    sandbox: Observation | None = None

    @property
    def verdict(self) -> str:
        return "differs" if self.differences else "same"

    def line(self) -> str:
        """The step's line of the run's output."""
        head = f"{self.flow:<10} {self.step:<24} "
        if self.differences:
            return head + "differs: " + "; ".join(self.differences)
        return head + "same" + (f" (expected: {', '.join(sorted(set(self.expected)))})" if self.expected else "")


def compare_steps(target: list[Observation], sandbox: list[Observation]) -> list[StepResult]:
    """Each step of a flow's run on the target against the same step on the sandbox, in the target's
    order, then any step only the sandbox reached."""
    theirs = {(seen.flow, seen.step): seen for seen in sandbox}
    results = []
    for seen in target:
        other = theirs.pop((seen.flow, seen.step), None)
        result = StepResult(seen.flow, seen.step, target=seen, sandbox=other)
        if other is None:
            result.differences.append("the sandbox's flow ended before this step")
        else:
            _compare(seen, other, result)
        results.append(result)
    for other in theirs.values():
        results.append(StepResult(other.flow, other.step, ["the target's flow ended before this step"],
                                  sandbox=other))
    return results


def _compare(target: Observation, sandbox: Observation, result: StepResult) -> None:
    if target.status != sandbox.status:
        result.differences.append(f"HTTP {_status(target)} on the target, {_status(sandbox)} in the sandbox")
        return  # two different answers: their bodies differ as a matter of course
    if target.media_type != sandbox.media_type:
        result.differences.append(f"content type {target.media_type or 'none'} on the target, "
                                  f"{sandbox.media_type or 'none'} in the sandbox")
        return
    if target.body is None and sandbox.body is None:
        if (target.size == 0) != (sandbox.size == 0):
            result.differences.append(f"{target.size} bytes on the target, {sandbox.size} in the sandbox")
        elif target.size != sandbox.size:
            result.expected.append("binary content")
        return
    _walk("body", target.body, sandbox.body, result)


def _status(seen: Observation) -> str:
    return str(seen.status) if seen.status is not None else f"no answer ({seen.problem})"


def _walk(where: str, target: Any, sandbox: Any, result: StepResult) -> None:
    if where in _SERVER_FACTS:
        result.expected.append(_SERVER_FACTS[where])
        return
    kind, other_kind = _kind(target), _kind(sandbox)
    if kind != other_kind:
        result.differences.append(f"{where}: {kind} on the target, {other_kind} in the sandbox")
    elif kind == "object":
        _walk_object(where, target, sandbox, result)
    elif kind == "array":
        if bool(target) != bool(sandbox):
            result.differences.append(f"{where}: {len(target)} items on the target, {len(sandbox)} in the sandbox")
        elif target:  # the shape of an item: how many there are depends on what each server holds
            _walk(f"{where}[0]", target[0], sandbox[0], result)
    elif kind == "string":
        _walk_text(where, target, sandbox, result)
    elif target != sandbox:
        if kind == "integer" and min(target, sandbox) >= _ID_FROM:
            result.expected.append("ids")
        else:
            result.differences.append(f"{where}: {target!r} on the target, {sandbox!r} in the sandbox")


def _walk_object(where: str, target: dict[str, Any], sandbox: dict[str, Any], result: StepResult) -> None:
    if target and sandbox and all(_format(key) for key in [*target, *sandbox]):
        # Keyed by ids (a listing by uid): the keys differ by nature, compare what one entry holds.
        result.expected.append("ids")
        _walk(f"{where}[<id>]", next(iter(target.values())), next(iter(sandbox.values())), result)
        return
    for key in [*target, *sandbox]:
        if (key in target) != (key in sandbox) and f"{where}.{key}" in _SERVER_FACTS:
            result.expected.append(_SERVER_FACTS[f"{where}.{key}"])
    only_target = [key for key in target if key not in sandbox and f"{where}.{key}" not in _SERVER_FACTS]
    only_sandbox = [key for key in sandbox if key not in target and f"{where}.{key}" not in _SERVER_FACTS]
    if only_target:
        result.differences.append(f"{where}: key {', '.join(map(repr, only_target))} only on the target")
    if only_sandbox:
        result.differences.append(f"{where}: key {', '.join(map(repr, only_sandbox))} only in the sandbox")
    for key in target:
        if key in sandbox:
            _walk(f"{where}.{key}", target[key], sandbox[key], result)


def _walk_text(where: str, target: str, sandbox: str, result: StepResult) -> None:
    if target == sandbox:
        return
    shape, other_shape = _format(target), _format(sandbox)
    if shape is not None and shape == other_shape:
        result.expected.append({"uuid": "ids", "hex": "ids", "digits": "ids", "base64": "certificate contents",
                                "pem": "certificate contents"}.get(shape, shape + "s"))
    elif shape != other_shape and (shape or other_shape):
        result.differences.append(f"{where}: {shape or 'text'} {_short(target)} on the target, "
                                  f"{other_shape or 'text'} {_short(sandbox)} in the sandbox")
    elif _IDS_IN_TEXT.sub("<id>", target) == _IDS_IN_TEXT.sub("<id>", sandbox):
        result.expected.append("ids")
    else:
        result.differences.append(f"{where}: {_short(target)} on the target, {_short(sandbox)} in the sandbox")


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    return {int: "integer", float: "number", str: "string", list: "array", dict: "object"}.get(type(value), "value")


def _format(text: str) -> str | None:
    return next((name for name, pattern in _FORMATS if pattern.fullmatch(text)), None)


def _short(text: str) -> str:
    return repr(text if len(text) <= 80 else text[:77] + "...")
