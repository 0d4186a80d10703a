"""Queue routing: the first route whose keyword is a whole word of the subject wins; it
names the new ticket's queue and priority."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from mailbridge.domain.workflow import DEFAULT_PRIORITY


@dataclass(frozen=True)
class Route:
    queue: str
    keywords: tuple[str, ...]
    priority: str = DEFAULT_PRIORITY


def first_route(subject: str, routes: Iterable[Route]) -> Route | None:
    for route in routes:
        for word in route.keywords:
            if re.search(rf"(?<!\w){re.escape(word)}(?!\w)", subject or "", re.IGNORECASE):
                return route
    return None
