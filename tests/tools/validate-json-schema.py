#!/usr/bin/env python3
"""Validate JSON documents against a JSON Schema (draft 2020-12) with python3-jsonschema.

usage: validate-json-schema.py [--invalid] SCHEMA FILE... ('-' reads one document from stdin)
Exit 0 if every document is valid, 1 if any is not (each error printed), 2 on usage errors.
With --invalid, the opposite: exit 0 only if every document is rejected (negative tests).
"""
import json
import sys

try:
    from jsonschema import Draft202012Validator
except ImportError:
    print("validate-json-schema: python3-jsonschema is missing (scripts/deps)", file=sys.stderr)
    sys.exit(2)


def main(argv):
    expect_invalid = len(argv) > 1 and argv[1] == "--invalid"
    if expect_invalid:
        argv = argv[:1] + argv[2:]
    if len(argv) < 3:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8") as f:
        schema = json.load(f)
    Draft202012Validator.check_schema(schema)
    validator = Draft202012Validator(schema)
    bad = 0
    for path in argv[2:]:
        if path == "-":
            doc = json.load(sys.stdin)
        else:
            with open(path, encoding="utf-8") as f:
                doc = json.load(f)
        errors = sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
        if expect_invalid:
            if not errors:
                print(f"{path}: valid, but expected to be rejected", file=sys.stderr)
                bad += 1
            continue
        for e in errors[:20]:
            where = "/".join(str(p) for p in e.absolute_path) or "(root)"
            print(f"{path}: {where}: {e.message[:300]}", file=sys.stderr)
        if errors:
            bad += 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
