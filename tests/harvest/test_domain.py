"""Pure helpers of harvest.domain."""

from __future__ import annotations

import pytest

from harvest.domain import content_keys


@pytest.mark.parametrize(
    ("content_type", "content", "keys"),
    [
        ("application/json", '{"b":1,"a":{"c":2}}', ("b", "a")),
        ("application/json", "[1,2]", ()),
        ("application/json", "{broken", ()),
        # stored as sent (setting invalid_json): too deep to parse raises RecursionError
        ("application/json", "[" * 5000, ()),
        ("text/plain", '{"a":1}', ()),
    ],
)
def test_content_keys_are_an_objects_top_level_keys_or_none(
    content_type: str, content: str, keys: tuple[str, ...]
) -> None:
    assert content_keys(content_type, content) == keys
