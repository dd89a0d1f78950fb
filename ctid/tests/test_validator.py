"""Schema look-up by a client's class name (nothing of an unknown name is kept: memory stays bounded),
and the refusals: each names the field and why."""

from __future__ import annotations

import tracemalloc

import pytest

from ctid.cti.validator import SchemaError, check_schema, load, names, validate


def test_unknown_class_names_are_not_kept() -> None:
    assert load("client", "ping") is not None and "ping" in names("client")
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        for i in range(1000):  # what clients may send as "class", each 10 kB
            assert load("client", f"{i:010d}" * 1000) is None
            assert load("client", "x" * (i % 40 + 1)) is None
        grown = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    assert grown < 1_000_000, f"{grown} bytes kept"


@pytest.mark.parametrize("direction", ["client", "server"])
def test_every_schema_loads_and_holds_its_examples(direction: str) -> None:
    for name in names(direction):
        schema = load(direction, name)
        assert schema is not None
        for example in schema.get("examples", ()):
            validate(example, schema)


@pytest.mark.parametrize(
    ("msg", "expected"),
    [
        ({"class": "dial", "number": "1002; Action: Hangup"}, "$.number: does not match "),
        ({"class": "dial", "number": 1002}, "$.number: must be of type string"),
        ({"class": "dial"}, "$: missing required property 'number'"),
        ({"class": "dial", "number": "1002", "extra": 1}, "$: unknown property 'extra'"),
        ({"class": "dial", "number": "1002", "id": 1.0}, "$.id: must be of type string or integer or null"),
        ({"class": "dial", "number": "1002", "id": True}, "$.id: must be of type string or integer or null"),
        ({"class": "dial", "number": "1002", "id": "x" * 65}, "$.id: longer than 64 characters"),
        ({"class": "login", "login": "a", "password": "b", "version": 0}, "$.version: must be >= 1"),
        ({"class": "subscribe", "topics": ["weather"]}, "$.topics[0]: must be one of "),
    ],
)
def test_a_refusal_names_the_field_and_why(msg: dict, expected: str) -> None:
    schema = load("client", msg["class"])
    assert schema is not None
    with pytest.raises(SchemaError) as info:
        validate(msg, schema)
    assert str(info.value).startswith(expected), str(info.value)


def test_references_resolve_in_server_schemas() -> None:
    schema = load("server", "presence")
    assert schema is not None
    with pytest.raises(SchemaError, match=r"^\$\.users\[0\]: missing required property"):
        validate({"class": "presence", "users": [{"user_id": 1}]}, schema)


def test_a_keyword_the_draft_does_not_define_is_refused() -> None:
    base = {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object"}
    check_schema({**base, "properties": {"a": {"type": "string", "maxLength": 3}}})
    with pytest.raises(ValueError, match=r"#/properties/a: unsupported keyword\(s\) \['maxlength'\]"):
        check_schema({**base, "properties": {"a": {"type": "string", "maxlength": 3}}})
    with pytest.raises(ValueError, match="invalid schema"):
        check_schema({**base, "maxLength": -1})
