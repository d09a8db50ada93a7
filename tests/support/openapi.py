"""Validates management API responses against SORACOM's own OpenAPI document.

Statuses the document declares are checked against their schema. Error statuses it does not
declare must still carry SORACOM's ``APICallErrorMessage`` body ``{"code","message"}``.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from openapi_core import OpenAPI
from openapi_core.templating.paths.exceptions import OperationNotFound, PathNotFound
from openapi_core.templating.responses.exceptions import ResponseNotFound
from openapi_core.testing import MockRequest, MockResponse
from openapi_schema_validator import OAS30Validator
from referencing import Registry, Resource

ROOT = Path(__file__).resolve().parents[2]


def shared_dir() -> Path:
    """``../shared`` beside the checkout (CI clones with shared/ beside it)."""
    configured = os.environ.get("HARVEST_SHARED_DIR")
    return Path(configured) if configured else ROOT.parent / "shared"


SPEC_PATH = shared_dir() / "spec" / "openapi" / "harvest-subset.yaml"
# A copy kept in the repository, so the tests run where ../shared is absent.
VENDORED_SPEC = ROOT / "tests" / "support" / "harvest-subset.yaml"

ERROR_SCHEMA = {
    "type": "object",
    "required": ["code", "message"],
    "properties": {
        "code": {"type": "string", "pattern": "^[A-Z]{3}[0-9]{4}$"},
        "message": {"type": "string", "minLength": 1},
    },
}


@functools.cache
def spec_dict() -> dict[str, Any]:
    path = SPEC_PATH if SPEC_PATH.exists() else VENDORED_SPEC
    with path.open(encoding="utf-8") as handle:
        loaded: dict[str, Any] = yaml.safe_load(handle)
    return loaded


@functools.cache
def openapi() -> OpenAPI:
    return OpenAPI.from_dict(spec_dict())


def declared_paths() -> set[str]:
    return {"/v1" + path for path in spec_dict()["paths"]}


def validate_schema(name: str, value: Any) -> None:
    """Validate ``value`` against one component schema of the document."""
    document = spec_dict()
    registry: Registry[Any] = Registry().with_resource(
        "urn:harvest-subset", Resource.opaque(document)
    )
    schema = {"$ref": f"urn:harvest-subset#/components/schemas/{name}"}
    try:
        OAS30Validator(schema, registry=registry).validate(value)
    except Exception as error:
        raise ContractError(f"not a valid {name}: {error}") from error


class ContractError(AssertionError):
    """A response does not match SORACOM's OpenAPI document."""


def validate(
    method: str,
    path: str,
    query: dict[str, str],
    status: int,
    content_type: str,
    body: bytes,
) -> None:
    """Raise :class:`ContractError` unless the response fits the document."""
    request = MockRequest("https://api.soracom.io", method.lower(), path, args=dict(query))
    response = MockResponse(body, status_code=status, content_type=content_type or "")
    try:
        openapi().validate_response(request, response)
    except (PathNotFound, OperationNotFound):
        pass  # SORACOM operations outside the Harvest subset: only the error shape is checked
    except ResponseNotFound:
        if status < 400:
            raise ContractError(f"{method} {path}: status {status} is not declared") from None
    except Exception as error:
        raise ContractError(f"{method} {path} -> {status}: {error}") from error
    # A HEAD answer has no body (RFC 9110 section 9.3.2): its status is all there is to check.
    if status >= 400 and method.upper() != "HEAD":
        try:
            jsonschema.validate(json.loads(body), ERROR_SCHEMA)
        except (ValueError, jsonschema.ValidationError) as error:
            raise ContractError(f"{method} {path} -> {status}: bad error body {body!r}") from error
