#!/usr/bin/env python3
"""validate.py SCHEMA_DIR SCHEMA_NAME < instance.json: exit 0 if valid, else print why."""
import json
import pathlib
import sys

import jsonschema

d = pathlib.Path(sys.argv[1]).resolve()
schema = json.loads((d / sys.argv[2]).read_text())
schema["id"] = (d / sys.argv[2]).as_uri()
try:
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT4

    def retrieve(uri):
        path = pathlib.Path(uri.removeprefix("file://"))
        return Resource.from_contents(json.loads(path.read_text()), default_specification=DRAFT4)

    validator = jsonschema.Draft4Validator(schema, registry=Registry(retrieve=retrieve))
except ImportError:  # jsonschema < 4.18 (Debian's python3-jsonschema)
    validator = jsonschema.Draft4Validator(
        schema, resolver=jsonschema.RefResolver(base_uri=schema["id"], referrer=schema)
    )
errors = sorted(validator.iter_errors(json.load(sys.stdin)), key=lambda e: list(e.path))
for e in errors:
    print(f"{'/'.join(map(str, e.path)) or '<root>'}: {e.message}")
sys.exit(1 if errors else 0)
