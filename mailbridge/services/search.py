"""`tickets search`, `engagements search` and `opportunities search`: the query parsed once
(domain/search.py), the filters checked as the list commands check them, the hits read
ranked from the store's full-text index (store/search.py)."""

from __future__ import annotations

from mailbridge.config.model import Config
from mailbridge.domain.search import Query, parse
from mailbridge.errors import UsageError
from mailbridge.services.engagements import engagement_filters, since_cutoff
from mailbridge.services.listing import Listing, listed
from mailbridge.services.queries import ticket_filter
from mailbridge.store import search
from mailbridge.store.session import exists

TICKET_COLUMNS = (*search.TICKET_COLUMNS, "snippet")
ENGAGEMENT_COLUMNS = (*search.ENGAGEMENT_COLUMNS, "snippet")
OPPORTUNITY_COLUMNS = (*search.OPPORTUNITY_COLUMNS, "snippet")


def parsed(text: str) -> Query:
    """The query, or a usage error when it has no word to look for (`*`, `""`, `--`)."""
    query = parse(text)
    if not query.terms:
        raise UsageError(f"search: {text.strip()!r} has no word to search for",
                         'give words, a "phrase in quotes" or a prefix like toner*')
    return query


def search_tickets(config: Config, text: str, channel: str | None = None,
                   queue: str | None = None, status: str | None = None,
                   since: str | None = None, limit: int | None = None,
                   assignee: str | None = None, priority: str | None = None,
                   agent: str | None = None) -> Listing:
    """Tickets whose subject, message text, sender or attachment names match, best first;
    the filters are those of `tickets list` (queries.ticket_filter) and `since`."""
    query, cutoff = parsed(text), since_cutoff(since)
    only = ticket_filter(config, channel, queue, status, priority, assignee, agent)
    return listed(config.store, lambda db: search.search_tickets(db, query, only, cutoff),
                  limit)


def search_engagements(config: Config, text: str, client: str | None = None,
                       contact: str | None = None, since: str | None = None,
                       limit: int | None = None) -> Listing:
    query, cutoff = parsed(text), since_cutoff(since)
    if not exists(config.store):
        return Listing(())
    client, contact = engagement_filters(config, client, contact)
    return listed(config.store, lambda db: search.search_engagements(
        db, query, client, contact, cutoff), limit)


def search_opportunities(config: Config, text: str, status: str | None = None,
                         projects: bool | None = None, limit: int | None = None) -> Listing:
    query = parsed(text)
    return listed(config.store, lambda db: search.search_opportunities(
        db, query, status, projects), limit)
