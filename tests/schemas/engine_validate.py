#!/usr/bin/env python3
"""engine_validate.py SPEC.yaml WHAT < response.json: exit 0 if the JSON matches, else print why.

WHAT is a definition name ("ContainerSummary", "Volume") optionally followed by "[]" for a
list of them, or "METHOD /path STATUS" for a response schema declared inline in a path
("GET /containers/{id}/json 200"). Swagger's `x-nullable: true` allows null.
"""
import json
import sys

import jsonschema
import yaml

spec = yaml.safe_load(open(sys.argv[1]))
what = sys.argv[2]

# Where dockerd itself answers null although the spec does not say x-nullable (Go's nil
# slices), and clients rely on it: docker-py's integration suite asserts that an endpoint
# without aliases has `"Aliases": null` (API 1.45). Only these are relaxed.
DOCKERD_NULLS = {("EndpointSettings", "Aliases"), ("EndpointSettings", "Links")}
for d, field in DOCKERD_NULLS:
    spec["definitions"][d]["properties"][field]["x-nullable"] = True


def nullable(node):
    if isinstance(node, dict):
        node = {k: nullable(v) for k, v in node.items()}
        if node.get("x-nullable"):
            return {"anyOf": [node, {"type": "null"}]}
        return node
    if isinstance(node, list):
        return [nullable(v) for v in node]
    return node


defs = nullable(spec["definitions"])
if " " in what:
    method, path, status = what.split(" ")
    responses = spec["paths"][path][method.lower()]["responses"]
    schema = responses[int(status) if int(status) in responses else status]["schema"]
elif what.endswith("[]"):
    schema = {"type": "array", "items": {"$ref": "#/definitions/" + what[:-2]}}
else:
    schema = {"$ref": "#/definitions/" + what}
schema = nullable(schema)
schema["definitions"] = defs
validator = jsonschema.Draft4Validator(schema)
errors = sorted(validator.iter_errors(json.load(sys.stdin)), key=lambda e: list(e.path))
for e in errors[:30]:
    print(f"{'/'.join(map(str, e.path)) or '<root>'}: {e.message[:300]}")
sys.exit(1 if errors else 0)
