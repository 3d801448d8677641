"""The scenario library the package ships, as ``mock_server.scenario_library``: ``--scenario NAME``."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

_HERE = resources.files(__name__)


def names() -> list[str]:
    """The scenarios shipped (``sms-outage``, ``errors/sign.403.invalid_otp``, ...)."""
    found = [entry.name for entry in _HERE.iterdir() if entry.name.endswith(".yaml")]
    found += [f"errors/{entry.name}" for entry in (_HERE / "errors").iterdir() if entry.name.endswith(".yaml")]
    return sorted(name.removesuffix(".yaml") for name in found)


def read(name: str) -> str:
    """The YAML of the shipped scenario ``name`` (one of :func:`names`)."""
    if name not in names():
        raise LookupError(f"the library has no scenario {name!r}")
    return (_HERE / f"{name}.yaml").read_text(encoding="utf-8")


def source(text: str) -> Path:
    """A ``--scenario`` argument as a file: the path given if it exists, else the shipped scenario of
    that name, else the path (which then fails to load, named)."""
    path = Path(text)
    shipped = _HERE / f"{text}.yaml"
    return Path(str(shipped)) if not path.exists() and shipped.is_file() else path
