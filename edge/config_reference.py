"""The node config reference (Markdown) and its JSON Schema, generated from the pydantic models.

:func:`reference_markdown` writes one section per model reachable from
:class:`~vigil.edge.config.NodeConfig` (the detector backends' configs included), in the order a
config file nests them, each with a table: field, type (with its bounds), default, unit,
description; a nested model's type links to its section. :func:`node_schema` is
``NodeConfig.model_json_schema()`` with ``$schema`` (draft 2020-12), ``$id``, a title, a
``unit`` keyword on every field that has one, and the detector union keyed on ``type`` (a
detector without ``type`` is the default backend). :func:`write_reference` writes both into
``docs/`` (:data:`MARKDOWN_NAME`, :data:`SCHEMA_NAME`); :func:`check_reference` tells which
committed files differ from what the models give (``vigil config reference --check``, and a
test, so the docs cannot drift).

A field's unit (:func:`unit_of`) is its ``json_schema_extra={"unit": ...}``, else its name's
suffix (``_m`` metres, ``_s`` seconds, ``_ms``, ``_days``, ``_px``, ...), else the convention of
its description (``(metres)``, ``(seconds)``, ``(s)``, ``pixels``, ``grey levels``, ...).
"""

from __future__ import annotations

import json
import re
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import annotated_types as at
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

__all__ = [
    "MARKDOWN_NAME",
    "SCHEMA_NAME",
    "SCHEMA_ID",
    "unit_of",
    "is_numeric",
    "config_models",
    "reference_markdown",
    "node_schema",
    "schema_text",
    "write_reference",
    "check_reference",
]

MARKDOWN_NAME = "config-reference.md"
SCHEMA_NAME = "vigil-node-config.schema.json"
SCHEMA_ID = "urn:vigil:node-config:1"
_DOCS = Path(__file__).resolve().parents[1] / "docs"

#: unit of a field by the end of its name (first match wins)
_SUFFIX_UNITS = (
    ("_m2_s3", "m²/s³"),
    ("_per_m2", "1/m²"),
    ("_ms", "ms"),
    ("_days", "days"),
    ("_px", "px"),
    ("_wpm", "words/min"),
    ("_s", "s"),
    ("_m", "m"),
)
_PREFIX_UNITS = (("m2_per_", "m²/person"),)
#: unit of a field by its description (first match wins)
_DESCRIPTION_UNITS = (
    (re.compile(r"\((?:metres|meters)[;)]|, metres\b|\bin metres\b|\bmetres;"), "m"),
    (re.compile(r"\((?:seconds|s)[;)]"), "s"),
    (re.compile(r"\(milliseconds\)"), "ms"),
    (re.compile(r"\(days[;)]"), "days"),
    (re.compile(r"\(grey levels\)"), "grey levels"),
    (re.compile(r"\bpixels\b|\bframe pixels\b|\bpx\b"), "px"),
)


def is_numeric(annotation: Any) -> bool:
    """True when a field holds numbers (``int``, ``float``, or lists/tuples/maps of them; not ``bool``)."""
    if annotation in (int, float):
        return True
    if typing.get_origin(annotation) is Literal:
        return False
    return any(is_numeric(a) for a in typing.get_args(annotation))


def unit_of(name: str, field: FieldInfo) -> str | None:
    """The unit of a numeric field (see the module docstring), or ``None`` (a count, a fraction,
    not a number...)."""
    extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
    if "unit" in extra:
        return str(extra["unit"]) or None
    if not is_numeric(field.annotation):
        return None
    for suffix, unit in _SUFFIX_UNITS:
        if name.endswith(suffix):
            return unit
    for prefix, unit in _PREFIX_UNITS:
        if name.startswith(prefix):
            return unit
    for pattern, unit in _DESCRIPTION_UNITS:
        if pattern.search(field.description or ""):
            return unit
    return None


# ------------------------------------------------------------------------------------ models
def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]


@dataclass
class _Section:
    model: type[BaseModel]
    paths: list[str]


def config_models(root: type[BaseModel] | None = None) -> list[_Section]:
    """Every model reachable from ``root`` (default :class:`NodeConfig`), depth first in field
    order (the order a config file nests them), each with the config paths where it appears
    (``cameras[].rules.distance``)."""
    if root is None:
        from vigil.edge.config import NodeConfig  # noqa: PLC0415 - the detector backends load with it

        root = NodeConfig
    sections: dict[type, _Section] = {root: _Section(root, ["(top level)"])}

    def visit(model: type[BaseModel], path: str) -> None:
        for name, f in model.model_fields.items():
            args = (f.annotation, *typing.get_args(f.annotation))
            is_list = any(typing.get_origin(a) is list for a in args)
            sub_path = (f"{path}.{name}" if path else name) + ("[]" if is_list else "")
            for sub in _models_in(f.annotation):
                if sub in sections:
                    if sub_path not in sections[sub].paths:
                        sections[sub].paths.append(sub_path)
                    continue
                sections[sub] = _Section(sub, [sub_path])
                visit(sub, sub_path)

    visit(root, "")
    return list(sections.values())


def _anchor(model: type) -> str:
    return model.__name__.lower()


def _type_text(annotation: Any) -> str:
    if annotation is type(None):
        return "null"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return f"[{annotation.__name__}](#{_anchor(annotation)})"
    if isinstance(annotation, type) and issubclass(annotation, Path):
        return "path"
    if isinstance(annotation, type):
        return {"str": "string", "float": "number", "int": "integer", "bool": "boolean"}.get(
            annotation.__name__, annotation.__name__
        )
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return _type_text(args[0])
    if origin is Literal:
        return " or ".join(json.dumps(a) for a in args)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return " or ".join(_type_text(a) for a in args)
    if origin is list:
        return f"list of {_type_text(args[0])}"
    if origin is tuple:
        return "[" + ", ".join(_type_text(a) for a in args) + "]"
    if origin is dict:
        return f"map of {_type_text(args[0])} to {_type_text(args[1])}"
    return str(annotation)


_BOUNDS = ((at.Gt, "gt", "> {}"), (at.Ge, "ge", "≥ {}"), (at.Lt, "lt", "< {}"), (at.Le, "le", "≤ {}"))


def _bounds_text(field: FieldInfo) -> str:
    parts = []
    for meta in field.metadata:
        for cls, attr, fmt in _BOUNDS:
            if isinstance(meta, cls):
                parts.append(fmt.format(_num(getattr(meta, attr))))
        if isinstance(meta, at.MinLen):
            parts.append(f"at least {meta.min_length} long")
        if isinstance(meta, at.MaxLen):
            parts.append(f"at most {meta.max_length} long")
    return ", ".join(parts)


def _num(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _default_text(field: FieldInfo) -> str:
    if field.default_factory is not None:
        value = field.default_factory()
        if isinstance(value, BaseModel):
            return f"the [{type(value).__name__}](#{_anchor(type(value))}) defaults"
    elif field.default is PydanticUndefined:
        return "**required**"
    else:
        value = field.default
    if isinstance(value, Path):
        return f"`{value.as_posix()}`"
    return f"`{json.dumps(value, ensure_ascii=False, default=str)}`"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _first_paragraph(doc: str | None) -> str:
    if not doc:
        return ""
    return " ".join(doc.strip().split("\n\n")[0].split())


def reference_markdown() -> str:
    """The whole reference (Markdown), deterministic for a given set of models."""
    sections = config_models()
    out = [
        "# Node config reference",
        "",
        "<!-- Generated by `vigil config reference` from the pydantic models (vigil.edge.config_reference);",
        "     do not edit: `vigil config reference --check` (and a test) fails when this file drifts. -->",
        "",
        "Every field of a Vigil node config (YAML, one file per node; `vigil check-config FILE` validates",
        "one), by section: its type and bounds, default, unit and meaning. Unknown keys are refused.",
        "Relative paths of video files, calibrations, models and watch lists resolve against the folder",
        "of the YAML file; output folders against the working directory.",
        "",
        f"Editors: the JSON Schema [`{SCHEMA_NAME}`]({SCHEMA_NAME}) describes the same fields (YAML",
        "language server, e.g. VS Code's YAML extension: put this first line in a node config):",
        "",
        "```yaml",
        f"# yaml-language-server: $schema=<path to docs>/{SCHEMA_NAME}",
        "```",
        "",
        "## Sections",
        "",
    ]
    out += [f"- [{s.model.__name__}](#{_anchor(s.model)}): `{s.paths[0]}`" for s in sections]
    for s in sections:
        out += ["", f"## {s.model.__name__}", ""]
        doc = _first_paragraph(s.model.__doc__)
        if doc:
            out += [doc, ""]
        out += ["At: " + ", ".join(f"`{p}`" for p in s.paths), ""]
        out += ["| Field | Type | Default | Unit | Description |", "|---|---|---|---|---|"]
        for name, f in s.model.model_fields.items():
            type_text = _type_text(f.annotation)
            bounds = _bounds_text(f)
            if bounds:
                type_text += f"; {bounds}"
            row = (f"`{name}`", type_text, _default_text(f), unit_of(name, f) or "", f.description or "")
            out.append("| " + " | ".join(_cell(c) for c in row) + " |")
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------------------------ schema
def node_schema() -> dict:
    """The JSON Schema of a node config (draft 2020-12; see the module docstring)."""
    from vigil.detectors.registry import BACKENDS, DEFAULT_TYPE  # noqa: PLC0415
    from vigil.edge.config import NodeConfig  # noqa: PLC0415

    schema = NodeConfig.model_json_schema()
    defs = schema.get("$defs", {})
    for s in config_models():
        target = schema if s.model is NodeConfig else defs.get(s.model.__name__)
        if target is None:
            continue
        for name, f in s.model.model_fields.items():
            unit = unit_of(name, f)
            prop = target.get("properties", {}).get(name)
            if unit and prop is not None:
                prop["unit"] = unit
    detector = schema["properties"]["detector"]
    members = detector.pop("oneOf", None) or detector.pop("anyOf", [])
    by_name = {b.config.__name__: name for name, b in BACKENDS.items()}
    branches = []
    for m in members:
        ref = m.get("$ref", "")
        backend = by_name.get(ref.rsplit("/", 1)[-1])
        # a detector without `type` is the default backend: the others need it spelled out
        branches.append(m if backend == DEFAULT_TYPE else {**m, "required": ["type"]})
    detector["oneOf"] = branches
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        **{k: v for k, v in schema.items() if k not in ("title", "description")},
        "title": "Vigil node configuration",
        "description": (schema.get("description") or "")
        + f" Generated from the pydantic models; see docs/{MARKDOWN_NAME}.",
    }


def schema_text() -> str:
    return json.dumps(node_schema(), indent=2, ensure_ascii=False) + "\n"


def _outputs(docs: Path) -> dict[Path, str]:
    return {docs / MARKDOWN_NAME: reference_markdown(), docs / SCHEMA_NAME: schema_text()}


def write_reference(docs: str | Path | None = None) -> list[Path]:
    """Write the reference and the schema into ``docs`` (default: the repository's ``docs/``)."""
    docs = Path(docs) if docs is not None else _DOCS
    docs.mkdir(parents=True, exist_ok=True)
    written = []
    for path, text in _outputs(docs).items():
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def check_reference(docs: str | Path | None = None) -> list[Path]:
    """The files of ``docs`` that are missing or differ from what the models generate."""
    docs = Path(docs) if docs is not None else _DOCS
    stale = []
    for path, text in _outputs(docs).items():
        try:
            current = path.read_text(encoding="utf-8")
        except OSError:
            current = None
        if current != text:
            stale.append(path)
    return stale
