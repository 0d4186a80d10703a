"""Mail campaigns in pure code: the placeholders a campaign's text may use, the pace its mail
keeps to (Exchange Online's sending limits), and the header that lets a recipient leave."""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import quote

PLACEHOLDERS = ("name", "client")
UNSUBSCRIBE_SUBJECT = "unsubscribe"

# Exchange Online's sending limits for one mailbox ("Sending limits", Exchange Online limits,
# learn.microsoft.com/office365/servicedescriptions/exchange-online-service-description/
# exchange-online-limits): a message rate limit of 30 messages a minute and a recipient rate
# limit of 10,000 recipients a day. A campaign mail has one recipient.
EXCHANGE_PER_MINUTE, EXCHANGE_PER_DAY = 30, 10_000


@dataclass(frozen=True)
class Pace:
    """At most `per_minute` mails in any minute and `per_day` in any 24 hours from one
    mailbox."""

    per_minute: int = EXCHANGE_PER_MINUTE
    per_day: int = EXCHANGE_PER_DAY


def placeholders(text: str) -> list[str]:
    """The `{…}` fields of a campaign text, in order; `{{` and `}}` are literal braces.
    Raises ValueError for a malformed one (a lone brace)."""
    return [field for _, field, _, _ in string.Formatter().parse(text) if field is not None]


def unknown_placeholders(text: str) -> list[str]:
    """Fields other than {name} and {client} (or with a conversion or format), shown as
    written. Raises ValueError for a lone brace."""
    bad = []
    for _, field, spec, conversion in string.Formatter().parse(text):
        if field is not None and (field not in PLACEHOLDERS or spec or conversion):
            bad.append("{" + field + (f"!{conversion}" if conversion else "")
                       + (f":{spec}" if spec else "") + "}")
    return bad


def fill(text: str, values: Mapping[str, str]) -> str:
    """The text with each placeholder replaced (checked by `unknown_placeholders` first)."""
    return text.format_map({k: values.get(k, "") for k in PLACEHOLDERS})


def schedule(count: int, start: datetime, pace: Pace) -> list[datetime]:
    """When each of `count` mails may go at the earliest: `per_minute` of them each minute
    from `start`, and those past `per_day` the day after (and so on)."""
    per_day = min(pace.per_day, pace.per_minute * 24 * 60)
    return [start + timedelta(days=i // per_day, minutes=(i % per_day) // pace.per_minute)
            for i in range(count)]


def list_headers(mailbox: str) -> tuple[tuple[str, str], ...]:
    """RFC 2369 List-Unsubscribe as a mail to the sending mailbox. No one-click RFC 8058
    List-Unsubscribe-Post: that needs an https address which unsubscribes on a POST, and
    mailbridge serves none. No Precedence: RFC 2076 calls it non-standard and discouraged,
    and RFC 3834 (section 2) recommends no behaviour for it, while it lets a responder
    ignore mail with a List-* field, which this is. No Auto-Submitted: a person writes and
    sends a campaign."""
    target = f"mailto:{mailbox}?subject={quote(UNSUBSCRIBE_SUBJECT)}"
    return (("List-Unsubscribe", f"<{target}>"),)
