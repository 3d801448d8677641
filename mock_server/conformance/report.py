"""What a conformance run found: one line per step, a JSON report with both answers of every step
(credentials redacted) and an HTML page of the same."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2

from mock_server import __version__
from mock_server.conformance.compare import StepResult
from mock_server.domain.journal import redact

_TEMPLATES = jinja2.Environment(loader=jinja2.PackageLoader("mock_server.conformance", "templates"),
                                autoescape=True, undefined=jinja2.StrictUndefined)


@dataclass
class Report:
    """The run: the target, its family, each step compared, and the flows that could not run."""

    target: str
    family: str
    results: list[StepResult]
    skipped: list[str] = field(default_factory=list)
    when: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    @property
    def differing(self) -> int:
        """How many steps differ."""
        return sum(result.verdict == "differs" for result in self.results)

    def lines(self) -> list[str]:
        """One line per step, then the verdict."""
        lines = [result.line() for result in self.results]
        lines += [f"{'(not run)':<10} {reason}" for reason in self.skipped]
        lines.append(f"{self.differing} of {len(self.results)} steps differ" if self.differing
                     else f"all {len(self.results)} steps the same")
        return lines

    def as_json(self) -> dict[str, Any]:
        """The report as its JSON file holds it."""
        return {
            "target": self.target, "family": self.family, "sandbox_version": __version__, "when": self.when,
            "differing_steps": self.differing, "skipped": self.skipped,
            "steps": [{"flow": r.flow, "step": r.step, "verdict": r.verdict, "differences": r.differences,
                       "expected": sorted(set(r.expected)),
                       "target": _shown(r.target), "sandbox": _shown(r.sandbox)} for r in self.results],
        }

    def write(self, path: Path) -> tuple[Path, Path]:
        """The JSON report at ``path`` and the HTML page beside it (same name, ``.html``)."""
        page = path.with_suffix(".html")
        path.write_text(json.dumps(self.as_json(), indent=2, ensure_ascii=False) + "\n")
        page.write_text(_TEMPLATES.get_template("report.html").render(
            target=self.target, family=self.family, version=__version__, when=self.when, results=self.results,
            differing=self.differing, skipped=self.skipped))
        return path, page


def _shown(seen: Any) -> dict[str, Any] | None:
    return None if seen is None else redact(seen.as_json())
