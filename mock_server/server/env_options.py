"""``ONESHOT_MOCK_*`` environment variables: one per option of ``oneshot-mock serve``.

An option's variable is the prefix and the option's name in capitals, dashes as underscores
(``--max-upload-mb`` → ``ONESHOT_MOCK_MAX_UPLOAD_MB``), computed from the argparse definitions so the
two can never drift apart. A variable that is set becomes its option's default, so a flag still wins,
and its value goes through the option's own type and choices.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

PREFIX = "ONESHOT_MOCK_"
_SWITCH_WORDS = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}


class Repeatable(argparse.Action):
    """``action="append"``, except that the first flag replaces the default instead of adding to it.

    The default may hold values from the environment, and flags win over their variable.
    """

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: str | Sequence[Any] | None, option_string: str | None = None) -> None:
        earlier = getattr(namespace, self.dest)
        setattr(namespace, self.dest, [*(() if earlier is self.default else earlier), values])


def variable(action: argparse.Action) -> str:
    """The environment variable of an option: ``--max-upload-mb`` → ``ONESHOT_MOCK_MAX_UPLOAD_MB``."""
    return PREFIX + action.option_strings[-1].removeprefix("--").replace("-", "_").upper()


def options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """The options of ``parser`` that variables mirror: every one but ``--help`` (whose default is SUPPRESS)."""
    return [action for action in parser._actions
            if action.option_strings and action.default is not argparse.SUPPRESS]


def _separator(action: argparse.Action) -> str | None:
    # URLs never contain raw whitespace but may contain ',' and ';'; file paths may contain spaces,
    # so lists of paths use the platform's PATH separator instead.
    return os.pathsep if action.type is Path else None


def document(parser: argparse.ArgumentParser) -> None:
    """Name each option's variable in its help line, and explain the rule below the options."""
    for action in options(parser):
        action.help = " ".join(filter(None, [action.help, f"[env {variable(action)}]"]))
    parser.epilog = (
        f"Every option can also be set with an environment variable, named as shown: {PREFIX} and the "
        "option's name in capitals, dashes as underscores. A flag wins over its variable; an empty variable "
        "counts as unset. Switches take 1/0, true/false or yes/no. Repeatable options take several values "
        f"separated by whitespace (file paths: separated by '{os.pathsep}', as in PATH)."
    )


def apply(parser: argparse.ArgumentParser, environ: Mapping[str, str]) -> bool:
    """Make each variable set in ``environ`` the default of its option; return whether any was set.

    A value the option would refuse as a flag ends the program, through ``parser.error``, naming the
    variable. Surrounding whitespace is ignored.
    """
    found = False
    for action in options(parser):
        name = variable(action)
        raw = environ.get(name, "").strip()
        if not raw:
            continue
        if isinstance(action, Repeatable):
            value = [_convert(parser, action, name, part.strip())
                     for part in raw.split(_separator(action)) if part.strip()]
        elif action.nargs == 0:
            value = _switch(parser, action, name, raw)
        else:
            value = _convert(parser, action, name, raw)
        action.default = value
        found = True
    return found


def _switch(parser: argparse.ArgumentParser, action: argparse.Action, name: str, raw: str) -> Any:
    on = _SWITCH_WORDS.get(raw.lower())
    if on is None:
        parser.error(f"environment variable {name}: expected 1/0, true/false or yes/no, got {raw!r}")
    return action.const if on else action.default


def _convert(parser: argparse.ArgumentParser, action: argparse.Action, name: str, raw: str) -> Any:
    """``raw`` through the option's type and choices, as argparse checks a flag's value."""
    try:
        value = action.type(raw) if callable(action.type) else raw
    except argparse.ArgumentTypeError as fault:
        parser.error(f"environment variable {name}: {fault}")
    except (TypeError, ValueError):
        kind = getattr(action.type, "__name__", repr(action.type))
        parser.error(f"environment variable {name}: invalid {kind} value: {raw!r}")
    if action.choices is not None and value not in action.choices:
        choices = ", ".join(map(repr, action.choices))
        parser.error(f"environment variable {name}: invalid choice: {raw!r} (choose from {choices})")
    return value
