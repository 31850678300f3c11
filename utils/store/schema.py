"""Artifact contracts: `schemas/<name>.schema.json`, checked before anything is written.

A table contract is a JSON Schema for one row (`items`), so any row can be checked by
`jsonschema` itself; tables of 10^5 rows are checked column-wise here, because validating
them row by row with jsonschema takes minutes (see tests/test_schema.py for the agreement test).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema

_NUMERIC_KINDS = {"integer": "iu", "number": "iuf", "boolean": "b"}


class SchemaError(ValueError):
    """An artifact broke its contract; the message names the artifact, column and rule."""


@dataclass(frozen=True)
class Contract:
    name: str
    version: str
    kind: str  # "table" (parquet), "csv" (a table as CSV, for other tools), "json", or "file" (opaque bytes)
    body: dict[str, Any]

    @property
    def validator(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def suffix(self) -> str:
        return {"table": ".parquet", "csv": ".csv", "json": ".json"}.get(self.kind) or self.body.get("x-suffix", ".bin")


@lru_cache(maxsize=None)
def _load(path: Path) -> Contract:
    try:
        body = json.loads(path.read_text())
    except FileNotFoundError:
        raise SchemaError(f"{path}: no schema file for this artifact") from None
    except json.JSONDecodeError as exc:
        raise SchemaError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    except (OSError, UnicodeDecodeError, RecursionError) as exc:
        raise SchemaError(f"{path}: unreadable schema ({' '.join(str(exc).split())[:120]})") from None
    if not isinstance(body, dict):
        raise SchemaError(f"{path}: a schema is a JSON object, not {type(body).__name__}")
    for key in ("title", "schema_version", "x-artifact-kind"):
        if key not in body:
            raise SchemaError(f"{path}: missing '{key}'")
    try:
        jsonschema.Draft202012Validator.check_schema(body)
    except jsonschema.SchemaError as exc:
        raise SchemaError(f"{path}: not a valid JSON Schema ({exc.message[:120]})") from None
    return Contract(body["title"], str(body["schema_version"]), body["x-artifact-kind"], body)


ARTIFACT_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")  # a name is a file name: no '/', no '..'


def load_contract(schema_dir: Path, name: str) -> Contract:
    if not isinstance(name, str) or not ARTIFACT_NAME.fullmatch(name):
        raise SchemaError(f"'{str(name)[:80]}': not an artifact name (lower-case letters, digits, '_')")
    return _load((Path(schema_dir) / f"{name}.schema.json").resolve())


def _types(rule: dict[str, Any]) -> list[str]:
    kind = rule.get("type", [])
    return [kind] if isinstance(kind, str) else list(kind)


def _column_rules(contract: Contract, column: str) -> dict[str, Any] | None:
    items = contract.body["items"]
    if column in items.get("properties", {}):
        return items["properties"][column]
    for pattern, rule in items.get("patternProperties", {}).items():
        if re.search(pattern, column):
            return rule
    return None


def _check_column(contract: Contract, column: str, series, rule: dict[str, Any]) -> None:
    import pandas as pd

    where = f"{contract.name}: column '{column}'"
    types = _types(rule)
    nulls = series.isna()
    if nulls.any() and "null" not in types:
        row = int(nulls.to_numpy().nonzero()[0][0])
        raise SchemaError(f"{where} has {int(nulls.sum())} null(s) (first at row {row}); rule: not null")
    values = series[~nulls] if nulls.any() else series  # a column without nulls is not copied
    if values.empty:
        return
    kinds = [t for t in types if t != "null"]
    if rule.get("format") == "date" and kinds == ["string"]:
        if series.dtype.kind != "M":
            raise SchemaError(f"{where} has dtype {series.dtype}; rule: date")
    elif kinds == ["string"]:
        if not (pd.api.types.is_string_dtype(series) or series.dtype == object):
            raise SchemaError(f"{where} has dtype {series.dtype}; rule: type string")
        # A string dtype holds nothing else; an object column is inferred in C, and walked only if it fails.
        if not isinstance(series.dtype, pd.StringDtype) and pd.api.types.infer_dtype(values, skipna=True) != "string":
            bad = ~values.map(lambda v: isinstance(v, str))
            raise SchemaError(f"{where} holds a non-string value {values[bad].iloc[0]!r}; rule: type string")
    elif kinds:
        allowed = "".join(_NUMERIC_KINDS.get(k, "") for k in kinds)
        if series.dtype.kind not in allowed:
            raise SchemaError(f"{where} has dtype {series.dtype}; rule: type {'|'.join(kinds)}")
        if kinds == ["integer"] or (series.dtype.kind == "f" and "number" not in kinds):
            fractional = values != values.round()
            if fractional.any():
                raise SchemaError(f"{where} has non-integer value {values[fractional].iloc[0]}; rule: integer")
        if series.dtype.kind == "f":
            import numpy as np

            infinite = ~np.isfinite(values.to_numpy(dtype=float))
            if infinite.any():
                raise SchemaError(f"{where} has a non-finite value; rule: finite number")
    if "minimum" in rule and (values < rule["minimum"]).any():
        raise SchemaError(f"{where} has value {values.min()} below minimum {rule['minimum']}")
    if "maximum" in rule and (values > rule["maximum"]).any():
        raise SchemaError(f"{where} has value {values.max()} above maximum {rule['maximum']}")
    if "enum" in rule:
        bad = ~values.isin(rule["enum"])
        if bad.any():
            raise SchemaError(f"{where} has value {values[bad].iloc[0]!r} outside enum {rule['enum']}")
    if "pattern" in rule:
        import numpy as np

        search = re.compile(rule["pattern"]).search  # JSON Schema patterns are unanchored searches
        codes, distinct = pd.factorize(values.astype(str))  # each distinct value searched once
        matches = np.fromiter((search(v) is not None for v in distinct.tolist()), dtype=bool, count=len(distinct))
        bad = pd.Series(~matches[codes], index=values.index)
        if bad.any():
            raise SchemaError(f"{where} has value {values[bad].iloc[0]!r} not matching pattern {rule['pattern']}")


def validate_frame(contract: Contract, frame) -> None:
    """Raise SchemaError naming the column and rule at the first violation."""
    if contract.kind not in ("table", "csv"):
        raise SchemaError(f"{contract.name}: contract is for a JSON document, got a table")
    items = contract.body["items"]
    missing = [c for c in items.get("required", []) if c not in frame.columns]
    if missing:
        raise SchemaError(f"{contract.name}: missing required column(s) {missing}")
    for column in frame.columns:
        rule = _column_rules(contract, str(column))
        if rule is None:
            if items.get("additionalProperties", True) is False:
                raise SchemaError(f"{contract.name}: column '{column}' is not in the contract; "
                                  "rule: additionalProperties false")
            continue
        _check_column(contract, str(column), frame[column], rule)
    # a key column a table may lack (not required: an older file's) is one value for all its rows
    key = [k for k in contract.body.get("x-unique") or [] if k in frame.columns]
    if key and frame.duplicated(subset=key).any():
        dup = frame.loc[frame.duplicated(subset=key, keep=False), key].iloc[0].tolist()
        raise SchemaError(f"{contract.name}: duplicate key {dict(zip(key, dup))}; rule: x-unique {key}")
    bounds = contract.body.get("x-rows", {})
    if len(frame) < bounds.get("min", 0):
        raise SchemaError(f"{contract.name}: {len(frame)} rows; rule: at least {bounds['min']}")


def validate_document(contract: Contract, document: Any) -> None:
    if contract.kind != "json":
        raise SchemaError(f"{contract.name}: contract is for a table, got a JSON document")
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(contract.body).iter_errors(document))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(document)"
        raise SchemaError(f"{contract.name}: {where}: {error.message}")
