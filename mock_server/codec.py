"""The domain's dataclasses as JSON values and back, guided by their type hints.

What the data dir stores is plain JSON that the ``sqlite3`` shell shows as text, never a pickle:
reading a data dir someone hands you runs no code from it. Bytes become base64 text, or, from
:data:`BLOB_MIN_BYTES` up, the name of a content-addressed blob (``blob:<sha256>``) that the
caller stores beside the rows.
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


class CodecError(ValueError):
    """A stored value does not fit the type it is read as."""


def encode(value: Any, hint: Any, put_blob: PutBlob) -> Any:
    """``value`` (of type ``hint``) as a JSON value; large bytes go to ``put_blob``."""
    if value is None:
        return None
    origin = typing.get_origin(hint)
    if hint is Any or hint is dict or hint is list:
        return value
    if origin in (typing.Union, types.UnionType):
        return encode(value, _non_none(hint), put_blob)
    if hint is bytes:
        if len(value) >= BLOB_MIN_BYTES:
            return _BLOB + put_blob(value)
        return base64.b64encode(value).decode("ascii")
    if hint is datetime:
        return value.isoformat()
    if hint is timedelta:
        return value.total_seconds()
    if hint is random.Random:
        return _rng_state(value)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return value.value
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return {name: encode(getattr(value, name), field_hint, put_blob)
                for name, field_hint in fields(type(value) if isinstance(value, hint) else hint).items()}
    if origin in (list, tuple):
        args = typing.get_args(hint)
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            return [encode(item, item_hint, put_blob) for item, item_hint in zip(value, args, strict=True)]
        return [encode(item, args[0], put_blob) for item in value]
    if origin is dict:
        value_hint = typing.get_args(hint)[1]
        return {str(key): encode(item, value_hint, put_blob) for key, item in value.items()}
    if hint in (str, int, float, bool):
        return value
    raise TypeError(f"no JSON form for {hint!r}")


def decode(data: Any, hint: Any, get_blob: GetBlob) -> Any:
    """The value of type ``hint`` that :func:`encode` turned into ``data``."""
    if data is None:
        return None
    origin = typing.get_origin(hint)
    if hint is Any or hint is dict or hint is list:
        return data
    if origin in (typing.Union, types.UnionType):
        return decode(data, _non_none(hint), get_blob)
    try:
        if hint is bytes:
            return get_blob(data[len(_BLOB):]) if data.startswith(_BLOB) else base64.b64decode(data, validate=True)
        if hint is datetime:
            return datetime.fromisoformat(data)
        if hint is timedelta:
            return timedelta(seconds=data)
        if hint is random.Random:
            rng = random.Random()
            rng.setstate((data[0], tuple(data[1]), data[2]))
            return rng
        if isinstance(hint, type) and issubclass(hint, enum.Enum):
            return hint(data)
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            hints = fields(hint)
            return hint(**{name: decode(data[name], hints[name], get_blob) for name in hints if name in data})
        if origin in (list, tuple):
            args = typing.get_args(hint)
            if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
                return tuple(decode(item, item_hint, get_blob) for item, item_hint in zip(data, args, strict=True))
            items = [decode(item, args[0], get_blob) for item in data]
            return tuple(items) if origin is tuple else items
        if origin is dict:
            key_hint, value_hint = typing.get_args(hint)
            return {key_hint(key): decode(item, value_hint, get_blob) for key, item in data.items()}
    except (KeyError, TypeError, ValueError, AttributeError) as fault:
        raise CodecError(f"cannot read {data!r:.80} as {hint!r}: {fault}") from None
    if hint in (str, int, float, bool):
        if not isinstance(data, hint):
            raise CodecError(f"cannot read {data!r:.80} as {hint.__name__}")
        return data
    raise TypeError(f"no JSON form for {hint!r}")


@functools.cache
def fields(cls: type) -> dict[str, Any]:
    """A dataclass's fields and their resolved type hints."""
    hints = typing.get_type_hints(cls)
    return {field.name: hints[field.name] for field in dataclasses.fields(cls)}


def _non_none(hint: Any) -> Any:
    options = [arg for arg in typing.get_args(hint) if arg is not type(None)]
    if len(options) != 1:
        raise TypeError(f"only optional unions have a JSON form, not {hint!r}")
    return options[0]


def _rng_state(rng: random.Random) -> list[Any]:
    version, internal, gauss = rng.getstate()
    return [version, list(internal), gauss]
