"""What a configuration entry may hold: well-formed keys and values JSON stores exactly."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from domain.models import SystemConfig
from repositories.errors import ValidationError

__all__ = [
    "KEY_MAX_LENGTH",
    "KEY_PATTERN",
    "check_key",
    "check_version",
    "json_value",
    "prepare_entry",
    "well_formed",
]

KEY_PATTERN = re.compile(r"[A-Za-z0-9_.:-]+")
KEY_MAX_LENGTH = SystemConfig._meta.get_field("key").max_length or 128


def well_formed(key: str) -> bool:
    return len(key) <= KEY_MAX_LENGTH and KEY_PATTERN.fullmatch(key) is not None


def check_key(key: object) -> None:
    if not isinstance(key, str) or not well_formed(key):
        raise ValidationError(
            {
                "key": [
                    f"Enter 1 to {KEY_MAX_LENGTH} characters from letters, digits and "
                    "'_', '.', ':', '-'."
                ]
            }
        )


def check_version(version: object) -> None:
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValidationError({"expected_version": ["Enter a whole number of at least 1."]})


def json_value(value: Any, path: str = "value") -> Any:
    """Return `value` as JSON will store it (tuples become lists), or raise ValidationError.

    Only what round-trips unchanged is accepted: no NaN or infinities, no non-string
    object keys, no dates, decimals, sets or other Python objects.
    """
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValidationError({"value": [f"{path}: NaN and infinities are not JSON."]})
        return value
    if isinstance(value, list | tuple):
        return [json_value(item, f"{path}[{index}]") for index, item in enumerate(value)]
    if isinstance(value, dict):
        result: dict[str, Any] = {}
        for name, item in value.items():
            if not isinstance(name, str):
                raise ValidationError({"value": [f"{path}: object keys must be strings."]})
            result[name] = json_value(item, f"{path}.{name}")
        return result
    raise ValidationError(
        {
            "value": [
                f"{path}: a {type(value).__name__} is not a JSON value; use "
                "null, booleans, numbers, strings, lists and objects."
            ]
        }
    )


def prepare_entry(data: Any, *, renaming_refused: bool = False) -> Any:
    if not isinstance(data, Mapping):
        return data  # the base class refuses it
    prepared = dict(data)
    if "key" in prepared:
        if renaming_refused:
            raise ValidationError(
                {"key": ["Keys cannot be renamed: set() the new key and delete() the old."]}
            )
        check_key(prepared["key"])
    if "value" in prepared:
        prepared["value"] = json_value(prepared["value"])
    return prepared
