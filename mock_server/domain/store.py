"""The sandbox's state, in memory. A reset replaces it whole."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mock_server.domain import defaults
from mock_server.domain.model import Image, IssuedCertificate, Metadata, Rao, SignatureRequest, Token


@dataclass
class State:
    """Everything a client can create or change."""

    raos: dict[str, Rao] = field(default_factory=dict)
    tokens: dict[str, Token] = field(default_factory=dict)
    requests: dict[int, SignatureRequest] = field(default_factory=dict)
    images: dict[str, Image] = field(default_factory=dict)
    metadata: dict[str, Metadata] = field(default_factory=dict)
    certificates: dict[int, IssuedCertificate] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=defaults.default_settings)

    @classmethod
    def initial(cls) -> State:
        """The start state: default RAO accounts, tokens and settings."""
        state = cls()
        for rao in defaults.default_raos():
            state.raos[rao.username] = rao
        for token in defaults.default_tokens():
            state.tokens[token.uid] = token
        return state
