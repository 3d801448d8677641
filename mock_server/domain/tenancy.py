"""Namespaces: independent sandboxes in one server, so parallel test workers need no global reset.

Each namespace has its own requests, pks, SMS outbox, webhooks, scenarios, journal and clock; the
PKI, the key pool and the signing workers are shared.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol

from mock_server.domain.journal import Journal
from mock_server.domain.ports import NamespaceSandbox
from mock_server.domain.scenarios import ScenarioBook
from mock_server.domain.webhooks import WebhookDispatcher

HEADER = "X-Mock-Namespace"
DEFAULT = ""
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class NamespaceRefused(ValueError):
    """A namespace name that is malformed, or one too many; the default namespace's deletion."""


class NamespaceStore(Protocol):
    """Where namespaces are kept beyond memory (a data dir)."""

    def writing(self) -> AbstractAsyncContextManager[object]:
        """Hold off every write while namespaces are added to or taken from the store."""
        ...

    async def forget(self, namespace: str) -> None:
        """Remove what is stored of ``namespace`` (inside :meth:`writing`)."""
        ...


@dataclass
class Tenant:
    """One namespace's sandbox and what hangs off it."""

    namespace: str
    sandbox: NamespaceSandbox  # the namespace's Sandbox: the API adapters and the store use all of it
    webhooks: WebhookDispatcher
    scenarios: ScenarioBook
    journal: Journal


def namespace_seed(seed: int, namespace: str) -> int:
    """The seed of a namespace: the server's for the default one, a stable derivative otherwise.

    Derived seeds keep each namespace reproducible while giving namespaces distinct pks, uids
    and certificate serials.
    """
    if namespace == DEFAULT:
        return seed
    digest = hashlib.sha256(f"{seed}/{namespace}".encode()).digest()
    return int.from_bytes(digest[:6], "big")


def check_name(namespace: str) -> str:
    """``namespace`` if it is a valid name (letters, digits, ``.``, ``_``, ``-``; 64 at most)."""
    if namespace != DEFAULT and not _NAME.fullmatch(namespace):
        raise NamespaceRefused(
            f"invalid {HEADER} {namespace[:80]!r}: use 1-64 letters, digits, '.', '_' or '-'"
        )
    return namespace


class Tenants:
    """The namespaces that exist, created on first use."""

    def __init__(self, build: Callable[[str], Tenant], limit: int, store: NamespaceStore | None = None) -> None:
        self._build = build
        self._limit = limit
        self._store = store
        # The default namespace is built at once, so a broken seed file fails the start.
        self._tenants: dict[str, Tenant] = {DEFAULT: build(DEFAULT)}

    async def start(self) -> None:
        """Start webhook delivery (a seed file's webhooks go out at once) and resume restored signings."""
        for tenant in self._tenants.values():
            await tenant.webhooks.start()
            tenant.sandbox.resume()

    def restore(self, namespace: str) -> Tenant:
        """The tenant a data dir brings back, built (not started) whatever the limit."""
        if namespace not in self._tenants:
            self._tenants[namespace] = self._build(namespace)
        return self._tenants[namespace]

    async def get(self, namespace: str) -> Tenant:
        """The tenant of ``namespace``, created (and started) on first use."""
        found = self._tenants.get(check_name(namespace))
        if found is not None:
            return found
        if len(self._tenants) >= self._limit:
            raise NamespaceRefused(f"too many namespaces (limit {self._limit}); reuse one or raise --max-namespaces")
        tenant = self._tenants[namespace] = self._build(namespace)
        await tenant.webhooks.start()
        return tenant

    async def delete(self, namespace: str) -> Tenant:
        """Remove ``namespace`` with all it holds, stored too, and stop its background work (async
        signings, VideoID completions, webhook deliveries and retries); the name can then be used
        again, for a namespace as new. ``LookupError`` when there is none of that name."""
        if namespace == DEFAULT:
            raise NamespaceRefused("the default namespace cannot be deleted: reset it instead")
        # Inside the store's write barrier, no flush takes the namespace's changes while its rows go.
        async with self._store.writing() if self._store else contextlib.nullcontext():
            tenant = self._tenants.get(namespace)
            if tenant is None:
                raise LookupError(f"namespace {namespace!r} does not exist")
            if self._store is not None:
                await self._store.forget(namespace)
            del self._tenants[namespace]
        await tenant.webhooks.stop()
        await tenant.sandbox.stop()
        return tenant

    def existing(self) -> list[Tenant]:
        """Every tenant created so far, the default one first."""
        return sorted(self._tenants.values(), key=lambda tenant: tenant.namespace)

    def find(self, namespace: str) -> Tenant | None:
        """The tenant of ``namespace`` if it exists."""
        return self._tenants.get(namespace)

    async def close(self) -> None:
        """Let background work finish and stop every tenant's webhook delivery."""
        for tenant in self._tenants.values():
            await tenant.sandbox.close()
            await tenant.webhooks.close()
