"""mailbridge: mailboxes into tickets, engagements and opportunities in a local SQLite store."""

__version__ = "0.1.0"
