"""The error catalogue: every error example of the vendor's OpenAPI file has an entry, served by /_mock/errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from mock_server.domain.errors import CATALOGUE, markdown_table

SPEC = Path(__file__).resolve().parents[2] / "shared" / "reference" / "legacy-oneshot-videoid-v1.openapi.yaml"
# Placeholders the vendor's examples use where a real value would go.
_PLACEHOLDERS = re.compile(r"x{4,5}|\bX\b|\b[0-9]{4,}\b|[0-9a-f]{5,}(?:-[0-9a-f]+)+")


def _error_examples() -> list[tuple[str, int, str, object]]:
    if not SPEC.is_file():
        pytest.skip(f"vendor OpenAPI file not found at {SPEC}")
    spec = yaml.safe_load(SPEC.read_text())
    found = []
    for path_item in spec["paths"].values():
        for operation in path_item.values():
            for code, response in operation.get("responses", {}).items():
                if int(code) < 400:
                    continue
                content = response.get("content", {}).get("application/json", {})
                examples = [content["example"]] if "example" in content else [
                    e["value"] for e in content.get("examples", {}).values()
                ]
                for example in examples:
                    found.append((operation["operationId"], int(code), example["status"], example["details"]))
    return found


def _normalise(value: object) -> str:
    text = _PLACEHOLDERS.sub("…", str(value)).replace("\u2013", "-")
    return re.sub(r":\s*", ": ", text)


def _matches(entry_details: object, example_details: object) -> bool:
    if isinstance(entry_details, dict) and not entry_details:
        return isinstance(example_details, dict)  # per-document details, keyed by uid
    pattern = re.escape(_normalise(entry_details)).replace(re.escape("…"), ".*")
    pattern = re.sub(r"\\\{[a-z_]+\\\}", ".*", pattern)
    return re.fullmatch(pattern, _normalise(example_details), re.DOTALL) is not None


def test_every_documented_error_has_a_catalogue_entry():
    missing = []
    for operation, _code, status, details in _error_examples():
        entries = [e for e in CATALOGUE.values() if e.key.startswith(operation + ".")]
        status_code = int(status.split()[0]) if status[:3].isdigit() else 400
        if not any(
            e.http_status == status_code
            and (e.status_text or "").lower() in ("", status.lower())
            and _matches(e.details, details)
            for e in entries
        ):
            missing.append(f"{operation}: {status} {details!r}")
    assert not missing, "documented errors without a catalogue entry:\n" + "\n".join(missing)


async def test_catalogue_is_served(sandbox):
    answer = await sandbox.call("GET", "/_mock/errors")
    served = {e["key"]: e for e in answer.body["errors"]}
    assert served.keys() == CATALOGUE.keys()
    assert served["sign.403.invalid_otp"] == {
        "key": "sign.403.invalid_otp", "http_status": 403, "status": "403 Forbidden",
        "details": "Confirmation Code invalid",
    }
    assert served["update_settings.400.invalid_json"]["status"] == "Invalid JSON"


def test_the_documented_table_is_the_catalogue():
    page = (Path(__file__).resolve().parents[1] / "docs" / "scenarios.md").read_text()
    table = page.split("<!-- error-table:start -->\n")[1].split("\n<!-- error-table:end -->")[0]
    assert table == markdown_table(), \
        "regenerate docs/scenarios.md's table from mock_server.domain.errors.markdown_table()"
