"""The domain's dataclasses as JSON values and back, guided by their type hints.

What the data dir stores is plain JSON that the ``sqlite3`` shell shows as text, never a pickle:
reading a data dir someone hands you runs no code from it. Bytes become base64 text, or, from
:data:`BLOB_MIN_BYTES` up, the name of a content-addressed blob (``blob:<sha256>``) that the
caller stores beside the rows.

Each type hint is turned into an encoder and a decoder once (a restart reads tens of thousands of
rows, every write encodes the requests it touched): the hint is inspected when the function is
made, not for every value.
"""

from __future__ import annotations

import base64
import dataclasses
import enum
import functools
import random
import types
import typing
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

# Smaller bytes (certificates, webhook bodies, keys) stay inside their row.
BLOB_MIN_BYTES = 1024
_BLOB = "blob:"

PutBlob = Callable[[bytes], str]  # stores bytes, returns their sha256 hex digest
GetBlob = Callable[[str], bytes]
_Encoder = Callable[[Any, PutBlob], Any]
_Decoder = Callable[[Any, GetBlob], Any]


class CodecError(ValueError):
    """A stored value does not fit the type it is read as."""


def encode(value: Any, hint: Any, put_blob: PutBlob) -> Any:
    """``value`` (of type ``hint``) as a JSON value; large bytes go to ``put_blob``."""
    return None if value is None else _encoder(hint)(value, put_blob)


def decode(data: Any, hint: Any, get_blob: GetBlob) -> Any:
    """The value of type ``hint`` that :func:`encode` turned into ``data``."""
    if data is None:
        return None
    try:
        return _decoder(hint)(data, get_blob)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as fault:
        if isinstance(fault, CodecError):
            raise
        raise CodecError(f"cannot read {data!r:.80} as {hint!r}: {type(fault).__name__}: {fault}") from None


@functools.cache
def fields(cls: type) -> dict[str, Any]:
    """A dataclass's fields and their resolved type hints."""
    hints = typing.get_type_hints(cls)
    return {field.name: hints[field.name] for field in dataclasses.fields(cls)}


def _same(value: Any, _: Any) -> Any:
    return value


@functools.cache
def _encoder(hint: Any) -> _Encoder:
    origin = typing.get_origin(hint)
    if hint is Any or hint is dict or hint is list or hint in (str, int, float, bool):
        return _same
    if origin in (typing.Union, types.UnionType):
        return _encoder(_non_none(hint))
    if hint is bytes:
        return _encode_bytes
    if hint is datetime:
        return lambda value, _: value.isoformat()
    if hint is timedelta:
        return lambda value, _: value.total_seconds()
    if hint is random.Random:
        return lambda value, _: _rng_state(value)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return lambda value, _: value.value
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _dataclass_encoder(hint)
    if origin in (list, tuple):
        args = typing.get_args(hint)
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            items = [_encoder(arg) for arg in args]
            return lambda value, put: [_or_none(item, encode_item, put) for item, encode_item in zip(value, items,
                                                                                                     strict=True)]
        encode_item = _encoder(args[0])
        return lambda value, put: [_or_none(item, encode_item, put) for item in value]
    if origin is dict:
        encode_value = _encoder(typing.get_args(hint)[1])
        return lambda value, put: {str(key): _or_none(item, encode_value, put) for key, item in value.items()}
    raise TypeError(f"no JSON form for {hint!r}")


def _dataclass_encoder(cls: type) -> _Encoder:
    plan = [(name, _encoder(hint)) for name, hint in fields(cls).items()]

    def encode_dataclass(value: Any, put: PutBlob) -> dict[str, Any]:
        if type(value) is not cls:  # a subclass (Identity for SignerIdentity) keeps its own fields
            return _encoder(type(value))(value, put)
        return {name: _or_none(getattr(value, name), encode_field, put) for name, encode_field in plan}

    return encode_dataclass


def _or_none(value: Any, coder: Callable[[Any, Any], Any], blobs: Any) -> Any:
    return None if value is None else coder(value, blobs)


def _encode_bytes(value: bytes, put: PutBlob) -> str:
    if len(value) >= BLOB_MIN_BYTES:
        return _BLOB + put(value)
    return base64.b64encode(value).decode("ascii")


@functools.cache
def _decoder(hint: Any) -> _Decoder:
    origin = typing.get_origin(hint)
    if hint is Any or hint is dict or hint is list:
        return _same
    if hint in (str, int, float, bool):
        return _primitive_decoder(hint)
    if origin in (typing.Union, types.UnionType):
        return _decoder(_non_none(hint))
    if hint is bytes:
        return _decode_bytes
    if hint is datetime:
        return lambda data, _: datetime.fromisoformat(data)
    if hint is timedelta:
        return lambda data, _: timedelta(seconds=data)
    if hint is random.Random:
        return lambda data, _: _rng(data)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return lambda data, _: hint(data)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _dataclass_decoder(hint)
    if origin in (list, tuple):
        args = typing.get_args(hint)
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            items = [_decoder(arg) for arg in args]
            return lambda data, get: tuple(_or_none(item, decode_item, get)
                                           for item, decode_item in zip(data, items, strict=True))
        decode_item = _decoder(args[0])
        if origin is tuple:
            return lambda data, get: tuple(_or_none(item, decode_item, get) for item in data)
        return lambda data, get: [_or_none(item, decode_item, get) for item in data]
    if origin is dict:
        key_hint, value_hint = typing.get_args(hint)
        decode_value = _decoder(value_hint)
        return lambda data, get: {key_hint(key): _or_none(item, decode_value, get) for key, item in data.items()}
    raise TypeError(f"no JSON form for {hint!r}")


def _dataclass_decoder(cls: type) -> _Decoder:
    # A restart decodes hundreds of thousands of fields: a value already of its field's plain type
    # (or None) is taken as it is, without a call.
    plan = [(name, _decoder(hint), _plain(hint)) for name, hint in fields(cls).items()]

    def decode_dataclass(data: Any, get: GetBlob) -> Any:
        values = {}
        for name, decode_field, plain in plan:
            if name in data:
                item = data[name]
                values[name] = item if item is None or type(item) is plain else decode_field(item, get)
        return cls(**values)

    return decode_dataclass


def _plain(hint: Any) -> type | None:
    """The JSON type that a field of ``hint`` holds as it is (str, int, float, bool), if any."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        hint = _non_none(hint)
    return hint if hint in (str, int, float, bool) else None


def _primitive_decoder(hint: type) -> _Decoder:
    def decode_primitive(data: Any, _: GetBlob) -> Any:
        if not isinstance(data, hint):
            raise CodecError(f"cannot read {data!r:.80} as {hint.__name__}")
        return data

    return decode_primitive


def _decode_bytes(data: str, get: GetBlob) -> bytes:
    return get(data[len(_BLOB):]) if data.startswith(_BLOB) else base64.b64decode(data, validate=True)


def _non_none(hint: Any) -> Any:
    options = [arg for arg in typing.get_args(hint) if arg is not type(None)]
    if len(options) != 1:
        raise TypeError(f"only optional unions have a JSON form, not {hint!r}")
    return options[0]


def _rng_state(rng: random.Random) -> list[Any]:
    version, internal, gauss = rng.getstate()
    return [version, list(internal), gauss]


def _rng(data: list[Any]) -> random.Random:
    rng = random.Random()
    rng.setstate((data[0], tuple(data[1]), data[2]))
    return rng
