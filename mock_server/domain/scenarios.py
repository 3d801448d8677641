"""Scenario files: rules that make the sandbox misbehave on purpose, and their bookkeeping.

A rule matches a call (operation, method, path, body or request fields, request pk) and then
answers an error, a fault or a delay at the HTTP layer, or hands *effects* to the domain for
the duration of that call (SMS dropped, OTP refused, webhook delayed, broken artefact...).
Effects travel in a context variable, so background work started by the call sees them too.
"""

from __future__ import annotations

import contextvars
import difflib
import json
import random
import re
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, NamedTuple

import jsonschema
import yaml

from mock_server.domain.errors import CATALOGUE

SCHEMA: dict[str, Any] = json.loads((resources.files("mock_server") / "scenario.schema.json").read_text())
_VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)
HEADER = "X-Mock-Scenario"


class ScenarioError(ValueError):
    """A scenario that cannot be loaded, naming the source, the rule and the field."""


class Fired(NamedTuple):
    """A rule that fired on a call: the scenario it belongs to, and what it does."""

    scenario: str
    then: dict[str, Any]


@dataclass
class Rule:
    """One rule of a scenario, with how often it matched and fired."""

    index: int
    match: dict[str, Any]
    when: dict[str, Any]
    then: dict[str, Any]
    matches: int = 0
    hits: int = 0


@dataclass
class Scenario:
    """A loaded scenario file."""

    name: str
    description: str
    activation: str
    seed: int | None
    rules: list[Rule]
    source: str
    rng: random.Random = field(default_factory=random.Random)


@dataclass(frozen=True)
class Call:
    """What a rule can match on."""

    operation: str
    method: str
    path: str
    fields: dict[str, str]
    request_pk: int | None
    requested: frozenset[str]


@dataclass(frozen=True)
class Effects:
    """What the rules that fired ask of the domain during one call."""

    sms: Any = None
    otp_always_invalid: bool = False
    webhook: Any = None
    artefact: str | None = None
    transition: dict[str, Any] | None = None


NO_EFFECTS = Effects()
CURRENT_EFFECTS: contextvars.ContextVar[Effects | None] = contextvars.ContextVar("scenario_effects", default=None)


def current_effects() -> Effects:
    """The effects of the call being handled (none outside scenario calls)."""
    return CURRENT_EFFECTS.get() or NO_EFFECTS


def parse_scenario(text: str, source: str) -> dict[str, Any]:
    """YAML or JSON text to a checked scenario document."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as fault:
        raise ScenarioError(f"{source}: not YAML or JSON ({fault})") from None
    except RecursionError:
        raise ScenarioError(f"{source}: nested too deeply") from None
    check_scenario(document, source)
    return document


def check_scenario(document: Any, source: str) -> None:
    """Schema first (unknown keys, types, enums), then what a schema cannot say."""
    errors = sorted(_VALIDATOR.iter_errors(document), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        raise ScenarioError(f"{source}: {_where(first.absolute_path)}: {first.message}")
    for index, rule in enumerate(document["rules"]):
        then, match = rule["then"], rule.get("match", {})
        if "error" in then and then["error"] not in CATALOGUE:
            raise ScenarioError(f"{source}: rules[{index}].then.error: unknown catalogue key {then['error']!r} "
                                "(GET /_mock/errors lists them)")
        delay = then.get("delay_ms")
        if isinstance(delay, list) and delay[0] > delay[1]:
            raise ScenarioError(f"{source}: rules[{index}].then.delay_ms: [min, max] with min <= max")
        if delay is not None:  # JSON's integers include 300.0, which the seeded draw refuses
            then["delay_ms"] = [int(bound) for bound in delay] if isinstance(delay, list) else int(delay)
        patterns = [("match.path", match.get("path"))] + [
            (f"match.body.{k}", v) for k, v in match.get("body", {}).items()
        ]
        for name, pattern in patterns:
            if pattern is None:
                continue
            try:
                re.compile(pattern)
            except re.error as fault:
                raise ScenarioError(f"{source}: rules[{index}].{name}: bad regular expression ({fault})") from None


def check_operations(document: dict[str, Any], source: str, known: frozenset[str]) -> None:
    """Refuse a rule naming an operation no route has (``sing`` would never fire), with the closest names."""
    for index, rule in enumerate(document["rules"]):
        operation = rule.get("match", {}).get("operation", "*")
        if operation == "*" or operation in known:
            continue
        close = difflib.get_close_matches(operation, sorted(known), n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else " (the operationIds of GET /openapi.json)"
        raise ScenarioError(f"{source}: rules[{index}].match.operation: no operation {operation!r}{hint}")


def _where(path: Any) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text.lstrip(".") or "(top level)"


class ScenarioBook:
    """The loaded scenarios: the start set (files, magic values) plus those loaded at runtime."""

    def __init__(self, seed: int, start: list[tuple[dict[str, Any], str]]) -> None:
        self._seed = seed
        self._start = start
        self.scenarios: dict[str, Scenario] = {}
        # Counts every change to the scenarios, their counters and draws: the data dir saves them again
        # only when it moved.
        self.revision = 0
        self.reset()

    def reset(self) -> None:
        """Back to the start set, counts at zero, random draws replayed."""
        self.revision += 1
        self.scenarios = {}
        for document, source in self._start:
            self.add(document, source)

    def add(self, document: dict[str, Any], source: str) -> Scenario:
        """Load a checked document, replacing a scenario of the same name."""
        scenario = Scenario(
            name=document["name"],
            description=document.get("description", ""),
            activation=document.get("activation", "always"),
            seed=document.get("seed"),
            rules=[Rule(i, r.get("match", {}), r.get("when", {}), r["then"]) for i, r in enumerate(document["rules"])],
            source=source,
        )
        scenario.rng.seed(scenario.seed if scenario.seed is not None else self._seed)
        self.scenarios[scenario.name] = scenario
        self.revision += 1
        return scenario

    def remove(self, name: str) -> None:
        if self.scenarios.pop(name, None) is None:
            raise LookupError(f"no scenario named {name!r}")
        self.revision += 1

    def fire(self, call: Call) -> list[Fired]:
        """Every rule that matches ``call`` and whose ``when`` allows it now: its scenario and ``then``."""
        fired = []
        for scenario in self.scenarios.values():
            if scenario.activation == "header" and scenario.name not in call.requested:
                continue
            for rule in scenario.rules:
                if not _matches(rule.match, call):
                    continue
                rule.matches += 1
                self.revision += 1
                when = rule.when
                if rule.matches <= when.get("after", 0):
                    continue
                if "times" in when and rule.hits >= when["times"]:
                    continue
                if scenario.rng.random() >= when.get("probability", 1.0):
                    continue
                rule.hits += 1
                fired.append(Fired(scenario.name, rule.then))
        return fired

    def may_fire(self, operation: str, requested: str) -> bool:
        """A cheap first look: whether a rule of an active scenario names ``operation`` (or any).
        ``requested`` is the raw scenario header; a False here means :meth:`fire` would fire nothing."""
        return any(
            rule.match.get("operation", "*") in ("*", operation)
            for scenario in self.scenarios.values()
            if scenario.activation != "header" or scenario.name in requested
            for rule in scenario.rules
        )

    def wants_body(self) -> bool:
        """Whether any rule looks at bodies (reading them costs; most calls need not)."""
        return any("body" in rule.match for s in self.scenarios.values() for rule in s.rules)


def _matches(match: dict[str, Any], call: Call) -> bool:
    if match.get("operation", "*") not in ("*", call.operation):
        return False
    if "method" in match and match["method"] != call.method:
        return False
    if "path" in match and not re.search(match["path"], call.path):
        return False
    if "request_pk" in match and match["request_pk"] != call.request_pk:
        return False
    return all(re.search(pattern, call.fields.get(name, "")) for name, pattern in match.get("body", {}).items())


def effects_of(fired: list[dict[str, Any]]) -> Effects:
    """The domain effects among the actions that fired (later rules win)."""
    merged: dict[str, Any] = {}
    for then in fired:
        merged.update({k: v for k, v in then.items() if k in ("sms", "webhook", "artefact", "transition")})
    return Effects(
        sms=merged.get("sms"),
        otp_always_invalid=any(then.get("otp") == "always_invalid" for then in fired),
        webhook=merged.get("webhook"),
        artefact=merged.get("artefact"),
        transition=merged.get("transition"),
    )


def error_scenario(key: str) -> dict[str, Any]:
    """A ready scenario answering catalogue entry ``key`` once, to calls that ask for it by header."""
    spec = CATALOGUE[key]
    operation = key.split(".")[0]
    # Transport-level and control-side entries have no vendor operation: any call will do.
    operation = "*" if operation in ("api", "identify") else operation
    return {
        "name": "error-" + key.replace(".", "-").replace("_", "-"),
        "description": f"{operation} answers {spec.http_status} (catalogue key {key}) once",
        "activation": "header",
        "rules": [{"match": {"operation": operation}, "when": {"times": 1}, "then": {"error": key}}],
    }


def magic_values() -> tuple[dict[str, Any], str]:
    """The built-in scenario behind the magic values (docs/scenarios.md)."""
    text = (resources.files("mock_server") / "magic.yaml").read_text()
    return parse_scenario(text, "magic.yaml"), "magic.yaml (built in)"
