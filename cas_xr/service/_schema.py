"""JSON Schema (as pydantic writes it) to OpenAPI 3.0 schema objects.

OpenAPI 3.0 has no ``null`` type, no ``const``, no ``prefixItems`` and numeric
``exclusiveMinimum``; it marks optional values with ``nullable``. Process descriptions
inline every ``$defs`` reference (a description stands alone); the OpenAPI document
keeps its ``#/components/schemas`` references.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, TypeAdapter

__all__ = ["openapi30_document", "to_openapi30", "type_schema"]

_DROPPED = frozenset({"$schema", "$id", "$defs", "propertyNames", "$comment"})
_REF_PREFIX = "#/$defs/"


def _nullable(options: list[Any]) -> tuple[list[Any], bool]:
    kept = [o for o in options if not (isinstance(o, dict) and o.get("type") == "null")]
    return kept, len(kept) != len(options)


def _convert(node: Any, defs: dict[str, Any] | None) -> Any:
    """Convert one schema node; ``defs`` set means inline ``#/$defs/`` references."""
    if isinstance(node, list):
        return [_convert(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    # first what the node refers to or chooses between, then its own keys on top
    out: dict[str, Any] = {}
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith(_REF_PREFIX):
        if defs is not None:
            out.update(_convert(defs[ref.removeprefix(_REF_PREFIX)], defs))
        else:
            out["$ref"] = ref.replace(_REF_PREFIX, "#/components/schemas/")
    elif isinstance(ref, str):
        out["$ref"] = ref
    for key in ("anyOf", "oneOf"):
        if key in node:
            kept, nullable = _nullable(node[key])
            if nullable:
                out["nullable"] = True
            if len(kept) == 1:
                only = _convert(kept[0], defs)
                out.update({"allOf": [only]} if "$ref" in only else only)
            elif kept:
                out[key] = _convert(kept, defs)
    for key, value in node.items():
        if key in _DROPPED or key in ("$ref", "anyOf", "oneOf"):
            continue
        if key == "type" and isinstance(value, list):
            kept, nullable = _nullable([{"type": t} for t in value])
            if nullable:
                out["nullable"] = True
            if len(kept) == 1:
                out["type"] = kept[0]["type"]
            else:
                out["anyOf"] = kept
        elif key == "const":
            out["enum"] = [value]
        elif key == "prefixItems":
            items = _convert(value, defs)
            unique = [i for n, i in enumerate(items) if i not in items[:n]]
            out["items"] = unique[0] if len(unique) == 1 else {"anyOf": unique}
            out.setdefault("minItems", len(items))
            out.setdefault("maxItems", len(items))
        elif key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
            out["minimum" if key == "exclusiveMinimum" else "maximum"] = value
            out[key] = True
        elif key == "examples" and isinstance(value, list):
            if value:
                out["example"] = value[0]
        elif key in ("properties", "patternProperties"):
            out[key] = {name: _convert(sub, defs) for name, sub in value.items()}
        else:
            out[key] = _convert(value, defs)
    if "$ref" in out and len(out) > 1:  # OpenAPI 3.0 ignores the siblings of a $ref
        out["allOf"] = [{"$ref": out.pop("$ref")}]
    return out


def to_openapi30(schema: dict[str, Any], *, inline: bool = True) -> dict[str, Any]:
    """Convert a JSON Schema (draft 2020-12, as pydantic emits it) to OpenAPI 3.0.

    Parameters
    ----------
    schema
        The JSON schema; not modified.
    inline
        Replace each ``#/$defs/...`` reference by the definition it points to (the
        definitions must not be recursive); otherwise point references at
        ``#/components/schemas/``.

    Returns
    -------
    dict
        An OpenAPI 3.0 schema object: ``nullable`` instead of a ``null`` type, no
        ``$defs``, ``const`` or ``prefixItems``.

    Examples
    --------
    >>> to_openapi30({"anyOf": [{"type": "integer"}, {"type": "null"}], "default": None})
    {'nullable': True, 'type': 'integer', 'default': None}
    """
    defs = schema.get("$defs", {}) if inline else None
    converted: dict[str, Any] = _convert(schema, defs)
    return converted


def type_schema(annotation: Any) -> dict[str, Any]:
    """The OpenAPI 3.0 schema of a type or pydantic model, references inlined.

    Parameters
    ----------
    annotation
        A pydantic model class or any type pydantic can describe (``list[Dataset]``...).
    """
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        raw = annotation.model_json_schema()
    else:
        raw = TypeAdapter(annotation).json_schema()
    return to_openapi30(raw)


def _convert_media(content: dict[str, Any]) -> None:
    for media in content.values():
        if "schema" in media:
            media["schema"] = to_openapi30(media["schema"], inline=False)


def openapi30_document(document: dict[str, Any]) -> dict[str, Any]:
    """Rewrite the schemas of an OpenAPI document generated by FastAPI as OpenAPI 3.0.

    Parameters
    ----------
    document
        The document from :func:`fastapi.openapi.utils.get_openapi`; changed in place.

    Returns
    -------
    dict
        The same document, with ``openapi`` set to ``3.0.3``.
    """
    document["openapi"] = "3.0.3"
    schemas = document.get("components", {}).get("schemas", {})
    for name, schema in schemas.items():
        schemas[name] = to_openapi30(schema, inline=False)
    for path_item in document.get("paths", {}).values():
        for operation in path_item.values():
            for parameter in operation.get("parameters", []):
                parameter["schema"] = to_openapi30(parameter.get("schema", {}), inline=False)
            _convert_media(operation.get("requestBody", {}).get("content", {}))
            for response in operation.get("responses", {}).values():
                _convert_media(response.get("content", {}))
    return document
