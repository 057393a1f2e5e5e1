#!/usr/bin/env python3
"""Generate docs/crd-reference.md from the CRD schemas in crds/ (the generated source of truth).

Usage: python3 docs/gen_crd_reference.py [--check]
  --check  exit 1 if docs/crd-reference.md differs from what crds/ generates (tests/chart runs it)
Needs PyYAML.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
CRDS = REPO / "crds"
OUTPUT = REPO / "docs" / "crd-reference.md"
ORDER = ["McpGateway", "McpServer", "AccessPolicy", "TrustProvider", "CredentialProvider"]
# Types whose inner fields are Kubernetes' own (documented upstream): summarised, not expanded.
OPAQUE_BELOW = ("resources.limits", "resources.requests")


def one_line(text: str | None, limit: int = 400) -> str:
    """First paragraph of a description, on one line, safe inside a Markdown table cell."""
    if not text:
        return ""
    para = text.strip().split("\n\n", 1)[0]
    out = " ".join(para.split()).replace("|", "\\|")
    if len(out) > limit:
        out = out[: limit - 1].rsplit(" ", 1)[0] + " …"
    return out


def type_of(schema: dict) -> str:
    if schema.get("x-kubernetes-int-or-string"):
        return "int or string"
    t = schema.get("type", "object" if "properties" in schema else "any")
    if t == "array":
        return f"[]{type_of(schema.get('items') or {})}"
    if t == "object" and "additionalProperties" in schema and "properties" not in schema:
        return f"map[string]{type_of(schema['additionalProperties'] or {})}"
    if t == "integer" and schema.get("format"):
        return schema["format"]
    return t


def constraints(schema: dict) -> str:
    parts = []
    if "enum" in schema:
        parts.append("one of " + ", ".join(f"`{v}`" for v in schema["enum"]))
    if "default" in schema:
        parts.append(f"default `{json.dumps(schema['default'])}`")
    for key, label in (("minimum", "≥"), ("maximum", "≤")):
        if key in schema:
            v = schema[key]
            parts.append(f"{label} {int(v) if float(v).is_integer() else v}")
    if "minLength" in schema:
        parts.append(f"length ≥ {schema['minLength']}")
    if "maxLength" in schema:
        parts.append(f"length ≤ {schema['maxLength']}")
    if "minItems" in schema:
        parts.append(f"≥ {schema['minItems']} item(s)")
    if "pattern" in schema:
        parts.append(f"pattern `{schema['pattern']}`")
    for rule in schema.get("x-kubernetes-validations") or []:
        parts.append("rule: " + one_line(rule.get("message") or rule["rule"]))
    return "; ".join(p.replace("|", "\\|") for p in parts)


def walk(schema: dict, path: str, required: bool, rows: list):
    if path:
        rows.append((path, type_of(schema), "yes" if required else "", one_line(schema.get("description")), constraints(schema)))
    if any(path.endswith(o) for o in OPAQUE_BELOW):
        return
    node = schema
    suffix = ""
    while node.get("type") == "array" and isinstance(node.get("items"), dict):
        node = node["items"]
        suffix += "[]"
    props = node.get("properties") or {}
    req = set(node.get("required") or [])
    for name in sorted(props):
        walk(props[name], f"{path}{suffix}.{name}" if path else name, name in req, rows)


def crd_section(crd: dict) -> str:
    names = crd["spec"]["names"]
    version = crd["spec"]["versions"][0]
    root = version["schema"]["openAPIV3Schema"]
    out = [f"## {names['kind']}\n"]
    out.append(f"`{crd['spec']['group']}/{version['name']}`, {crd['spec']['scope'].lower()}; "
               f"`kubectl get {names['plural']}`"
               + (f" (short: {', '.join(f'`{s}`' for s in names.get('shortNames', []))})" if names.get("shortNames") else "")
               + ".\n")
    out.append(one_line(root.get("description"), limit=2000) + "\n")
    cols = version.get("additionalPrinterColumns") or []
    if cols:
        out.append("`kubectl get` columns: " + ", ".join(f"{c['name']} (`{c['jsonPath']}`)" for c in cols) + ".\n")
    rules = root["properties"]["spec"].get("x-kubernetes-validations") or []
    if rules:
        out.append("Rules on the whole spec (checked by `kubectl apply` and by `gatehouse-gateway check`):\n")
        out.extend(f"- {one_line(r.get('message') or r['rule'])}" for r in rules)
        out.append("")
    for part in ("spec", "status"):
        schema = root["properties"].get(part)
        if not schema:
            continue
        rows: list = []
        walk(schema, "", False, rows)
        rows = [(f"{part}.{p}",) + r[1:] for (p, *rest) in rows for r in [(p, *rest)]]
        out.append(f"### {names['kind']} `.{part}`\n")
        out.append("| field | type | required | description | constraints |")
        out.append("|---|---|---|---|---|")
        out.extend(f"| `{p}` | {t} | {req} | {d} | {c} |" for p, t, req, d, c in rows)
        out.append("")
    return "\n".join(out)


def render() -> str:
    crds = {}
    for f in sorted(CRDS.glob("*.yaml")):
        for doc in yaml.safe_load_all(f.read_text()):
            if doc and doc.get("kind") == "CustomResourceDefinition":
                crds[doc["spec"]["names"]["kind"]] = doc
    kinds = [k for k in ORDER if k in crds] + sorted(set(crds) - set(ORDER))
    head = [
        "<!-- GENERATED by docs/gen_crd_reference.py from crds/*.yaml — do not edit by hand.",
        "     Regenerate: python3 docs/gen_crd_reference.py (tests/chart fails when this is stale). -->",
        "",
        "# Gatehouse CRD reference",
        "",
        "Every field of the five custom resources (`gatehouse.dev/v1alpha1`, all namespaced), generated",
        "from the CRD schemas in `crds/` — which are generated from the Rust types in `api/src`, so this",
        "page, `kubectl explain` and the API server's validation say the same thing. Status fields are",
        "written by the operator. Every resource's status carries the conditions `Accepted`,",
        "`ResolvedRefs`, `Programmed` and `Ready`, each with `observedGeneration`, `reason` and `message`.",
        "",
        "Kinds: " + ", ".join(f"[{k}](#{k.lower()})" for k in kinds) + ".",
        "",
    ]
    return "\n".join(head) + "\n" + "\n".join(crd_section(crds[k]) for k in kinds).rstrip("\n") + "\n"


def main() -> int:
    text = render()
    if "--check" in sys.argv[1:]:
        if not OUTPUT.exists() or OUTPUT.read_text() != text:
            print(f"{OUTPUT.relative_to(REPO)} is out of date: run python3 docs/gen_crd_reference.py", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text)
    print(f"wrote {OUTPUT.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
