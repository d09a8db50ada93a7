"""Keyset paging over the registry's in-memory lists (subscribers, SIMs, groups)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from aiohttp import web

from harvest.api.params import (
    LAST_EVALUATED_KEY,
    bad,
    choice_param,
    int_param,
    page,
    query_value,
)

T = TypeVar("T")


def keyset_page(
    request: web.Request,
    items: Sequence[T],
    key: Callable[[T], str],
    view: Callable[[T], dict[str, Any]],
    *,
    default_limit: int,
    max_limit: int,
) -> web.Response:
    """``items`` (sorted by ``key``) after ``last_evaluated_key``, at most ``limit`` of them."""
    limit = int_param(request, "limit", default=default_limit, minimum=1, maximum=max_limit)
    assert limit is not None
    after = query_value(request, LAST_EVALUATED_KEY)
    if after is not None:
        items = [item for item in items if key(item) > after]
    chunk = list(items[:limit])
    next_key = key(chunk[-1]) if len(items) > limit else None
    return page(request, [view(item) for item in chunk], next_key)


def tag_filter(request: web.Request) -> tuple[str, str | None, str] | None:
    """``tag_name``/``tag_value``/``tag_value_match_mode`` (OpenAPI ``listSubscribers``)."""
    name = query_value(request, "tag_name")
    value = query_value(request, "tag_value")
    mode = choice_param(request, "tag_value_match_mode", ("exact", "prefix"), "exact")
    if name is None:
        if value is not None:
            raise bad("'tag_value' needs 'tag_name'.")
        return None
    return name, value, mode


def matches_tag(tags: dict[str, str], wanted: tuple[str, str | None, str] | None) -> bool:
    if wanted is None:
        return True
    name, value, mode = wanted
    if name not in tags:
        return False
    if value is None:
        return True
    return tags[name].startswith(value) if mode == "prefix" else tags[name] == value
