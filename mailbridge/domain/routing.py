"""Queue routing: the first route whose keyword is a whole word of the subject wins."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence


def route_queue(subject: str, routes: Iterable[tuple[str, Sequence[str]]], default: str) -> str:
    for queue, keywords in routes:
        for word in keywords:
            if re.search(rf"(?<!\w){re.escape(word)}(?!\w)", subject or "", re.IGNORECASE):
                return queue
    return default
