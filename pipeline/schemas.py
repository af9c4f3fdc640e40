"""Canonical JSON for repository documents, checked against manifests/schema/ both ways."""

from __future__ import annotations

import functools
import json
from importlib import resources

import jsonschema

from .errors import ManifestInvalid


@functools.lru_cache(maxsize=None)
def _validator(name: str) -> jsonschema.protocols.Validator:
    text = resources.files("manifests").joinpath("schema", f"{name}.json").read_text()
    schema = json.loads(text)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def validate(doc: dict, schema: str, where: str) -> dict:
    error = jsonschema.exceptions.best_match(_validator(schema).iter_errors(doc))
    if error is not None:
        at = "/".join(str(p) for p in error.absolute_path) or "(top)"
        raise ManifestInvalid(f"{where}: not a valid {schema} document at {at}: {error.message}")
    return doc


def dumps(doc: dict, schema: str, where: str) -> bytes:
    """Validated, canonical bytes: the same document always gives the same bytes."""
    validate(doc, schema, where)
    return (json.dumps(doc, sort_keys=True, ensure_ascii=False, separators=(",", ":")) + "\n").encode()


def loads(data: bytes, schema: str, where: str) -> dict:
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestInvalid(f"{where}: not JSON ({exc})") from exc
    return validate(doc, schema, where)
