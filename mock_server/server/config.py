"""Every option of ``oneshot-mock serve`` in one dataclass."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path


@dataclass(frozen=True)
class Config:
    """How the sandbox runs. CLI flags map one to one onto these fields."""

    host: str = "127.0.0.1"
    port: int = 8080
    seed: int = 0
    otp: str | None = None
    otp_ttl_seconds: float = 300.0
    otp_resend_seconds: float = 60.0
    pki_dir: Path | None = None
    seed_file: Path | None = None
    log_format: str = "text"
    workers: int = max(os.cpu_count() or 1, 1)
    one_shot_key: str = "ec-p256"
    signing_priority: str = "normal"
    max_upload_mb: float = 20.0
    public_url: str | None = None
    ra_webhooks: tuple[tuple[str, str], ...] = ()
    webhook_format: str = "legacy"
    webhook_secret: str | None = None
    webhook_retry_scale: float = 1.0
    videoid_auto_complete: float | None = None
    clock_start: datetime | None = None
    scenarios: tuple[Path, ...] = ()
    max_log_entries: int = 10_000
    admin_token: str | None = None
    control_api: bool = True
    max_namespaces: int = 256
    data_dir: Path | None = None
    retain_requests: int | None = 1000
    retain_for: timedelta | None = None
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    body_deadline: float = 300.0
    # Above aiohttp's client pool expiry (15 s), so such clients drop an idle connection before we do.
    idle_timeout: float = 20.0

    @property
    def max_file_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def base_url(self) -> str:
        """Where clients reach the sandbox: ``public_url``, else the bound address."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.port}"

    @property
    def max_body_bytes(self) -> int:
        """Whole non-multipart bodies (JSON, forms): generous, they carry no files."""
        return self.max_file_bytes
