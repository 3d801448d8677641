"""RAO accounts and tokens: creating tokens and resolving the credentials a call carries."""

from __future__ import annotations

from collections.abc import Mapping

from mock_server.domain.errors import vendor_error
from mock_server.domain.ids import RandomSource
from mock_server.domain.model import Rao, Token
from mock_server.domain.store import State


def create_token(state: State, rng: RandomSource, fields: Mapping[str, str]) -> Token:
    """Store RAO credentials under a new token uid."""
    username = fields.get("username", "").strip()
    if not username:
        raise vendor_error("create_token.400.missing_parameters")
    password, pin = fields.get("password") or None, fields.get("pin") or None
    rao = state.raos.get(username)
    if rao is None or (password and password != rao.password) or (pin and pin != rao.pin):
        raise vendor_error("create_token.404.rao_not_found")
    # The built-in tokens hold the sandbox credentials: clients must still be able to make their own.
    for token in state.tokens.values():
        if not token.builtin and (token.username, token.password, token.pin) == (username, password, pin):
            raise vendor_error("create_token.400.token_exists")
    token = Token(rng.hex_uid(), username, password, pin)
    state.tokens[token.uid] = token
    return token


def get_token(state: State, uid: str) -> Token:
    token = state.tokens.get(uid)
    if token is None:
        raise vendor_error("get_token.404.not_found", uid=uid)
    return token


def delete_token(state: State, uid: str) -> None:
    token = state.tokens.get(uid)
    if token is None:
        raise vendor_error("delete_token.404.not_found")
    if token.protected:
        raise vendor_error("delete_token.403.protected", uid=uid)
    del state.tokens[uid]


def resolve_rao(state: State, fields: Mapping[str, str], operation: str = "create_request") -> Rao:
    """The RAO a call acts as, from its ``token`` or ``username``/``password``/``pin``.

    A valid token wins over credentials sent beside it (the vendor's VideoID samples send a token
    with placeholder credentials); the call's password and PIN only fill what the token left out.
    Create request answers wrong credentials with the vendor's 404 and an unknown token with
    403; the VideoID decisions answer both with 403.
    """
    wrong = "create_request.404.rao_not_found" if operation == "create_request" else f"{operation}.403.invalid_rao"
    token_uid = fields.get("token", "").strip()
    username = fields.get("username", "").strip()
    password = fields.get("password", "").strip()
    pin = fields.get("pin", "").strip()
    if token_uid:
        token = state.tokens.get(token_uid)
        if token is None:
            raise vendor_error(f"{operation}.403.invalid_rao")
        username = token.username
        password = token.password or password
        pin = token.pin or pin
    if not (username and password and pin):
        raise vendor_error(f"{operation}.400.missing_credentials")
    rao = state.raos.get(username)
    if rao is None or rao.password != password or rao.pin != pin:
        raise vendor_error(wrong)
    rao_id = fields.get("rao", "").strip()
    if rao_id and rao_id != str(rao.pk):
        raise vendor_error(f"{operation}.403.invalid_rao")
    return rao
