"""How a ticket is worked: its states, its priorities and the orders a list can be sorted
in. The config (a route's priority), the command line and the store share these names."""

from __future__ import annotations

# open: an agent's turn; pending: waiting for the customer (their next mail, not an
# auto-reply, makes it open again); closed: done (a customer's mail reopens it).
STATUSES = ("open", "pending", "closed")
# A customer's own mail moves a ticket in these states back to open.
WOKEN_BY_CUSTOMER = ("pending", "closed")
# Our own reply reopens a closed ticket; a pending one still waits for the customer.
WOKEN_BY_AGENT = ("closed",)

PRIORITIES = ("low", "normal", "high", "urgent")  # least urgent first
DEFAULT_PRIORITY = "normal"

# `tickets list --sort`: id (the default: oldest first), created and updated (newest
# first), priority (most urgent first, then the latest update).
SORTS = ("id", "created", "updated", "priority")
