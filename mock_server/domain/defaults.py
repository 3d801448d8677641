"""The sandbox's start state: RAO accounts, tokens and settings that exist out of the box."""

from __future__ import annotations

import copy
from typing import Any

from mock_server.domain.model import Rao, Token

SANDBOX_PASSWORD = "oneshot-mock"
SANDBOX_PIN = "123456"
DEFAULT_RA = 9999
# The sandbox token of the newer (Namirial) documentation: /oneshot/api/v1 calls without credentials use it.
NAMIRIAL_TOKEN = "3bf8d8eb-d96c-41ea-83ad-d78a7016c7da"


def default_raos() -> list[Rao]:
    """The RAO accounts behind the vendor's documented sandbox tokens."""
    return [
        Rao(972, "9001800", SANDBOX_PASSWORD, SANDBOX_PIN, DEFAULT_RA),
        Rao(973, "1125824", SANDBOX_PASSWORD, SANDBOX_PIN, DEFAULT_RA),
        Rao(974, "7000001", SANDBOX_PASSWORD, SANDBOX_PIN, DEFAULT_RA),
    ]


def default_tokens() -> list[Token]:
    """The three tokens the vendor's documentation uses."""
    return [
        Token("6d1cae4d55be4cdf9cac50ee36f73406", "9001800", SANDBOX_PASSWORD, SANDBOX_PIN, builtin=True),
        Token("fd6a21e6fb7d43b9893a520d67d6ff60", "1125824", SANDBOX_PASSWORD, SANDBOX_PIN,
              builtin=True, protected=True),
        Token(NAMIRIAL_TOKEN, "7000001", SANDBOX_PASSWORD, SANDBOX_PIN,
              builtin=True, protected=True),
    ]


_SETTINGS: dict[str, Any] = {
    "tsa": {"tsa_url": "https://tsa.sandbox.uanataca.com/tsa/tss01"},
    "request": {"default_profile": "PFnubeQAFCiudadano", "default_ra": str(DEFAULT_RA)},
    "billing": {"billing_username": "user@uanataca.com", "billing_password": "UGVyb2xpdG8xLg=="},
    "general": {
        "environment": "sandbox",
        "rootstore": "uanataca",
        "configuration": "default",
        "usepdfclean": False,
    },
    # The RA catalogue: VideoID mode (eidas, external, disabled), optional two-step approval and webhook.
    "registration_authorities": {
        str(DEFAULT_RA): {"videoid_mode": "eidas"},
        "9998": {"videoid_mode": "external"},
        "9997": {"videoid_mode": "disabled"},
    },
}


def default_settings() -> dict[str, Any]:
    """The settings.ini content of the vendor's example."""
    return copy.deepcopy(_SETTINGS)
