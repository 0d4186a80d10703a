"""`tickets assign/unassign/pending/priority`: who works a ticket, whether it waits for the
customer, how urgent it is (close and reopen: cmd_tickets.py)."""

from __future__ import annotations

import typer

from mailbridge.cli.output import note
from mailbridge.cli.params import AGENT, ID, PRIORITY, acting_agent
from mailbridge.cli.state import state
from mailbridge.errors import UsageError
from mailbridge.services import triage

TICKETS = typer.Argument(..., parser=ID, metavar="TICKET", help="Ticket ids.")
AS = acting_agent("The agent you are")


def assign(
    ctx: typer.Context,
    tickets: list[int] = TICKETS,
    to: str = typer.Option(None, "--to", parser=AGENT,
                           help="The agent to take them (`me`: the acting agent)."),
    unassign: bool = typer.Option(False, "--unassign", help="Take them from whoever has them."),
    agent: str = AS,
) -> None:
    """Assign tickets to an agent (one `mailbridge agents add` knows), or with --unassign to
    nobody. A customer's reply keeps the assignee."""
    if (to is None) == (not unassign):
        raise UsageError("give either --to AGENT or --unassign",
                         "e.g. `mailbridge tickets assign 12 --to alice`")
    _assign(ctx, tickets, None if unassign else to, agent)


def unassign_cmd(ctx: typer.Context, tickets: list[int] = TICKETS) -> None:
    """Take tickets from whoever has them (as `tickets assign --unassign`)."""
    _assign(ctx, tickets, None, None)


def _assign(ctx: typer.Context, tickets: list[int], to: str | None, agent: str | None) -> None:
    who, changed = triage.assign(state(ctx).config(), tickets, to, agent)
    for ticket, previous in changed:
        note(f"ticket #{ticket}: {previous or 'nobody'} → {who or 'nobody'}")


def pending(ctx: typer.Context, tickets: list[int] = TICKETS) -> None:
    """Set tickets pending: waiting for the customer. The customer's next mail makes them
    open again (an auto-reply or a bounce does not); `tickets list` shows them with
    --status pending or all."""
    for ticket, previous in triage.set_status(state(ctx).config(), tickets, "pending"):
        note(f"ticket #{ticket}: {previous} → pending")


def priority(
    ctx: typer.Context,
    tickets: list[int] = TICKETS,
    level: str = typer.Argument(..., parser=PRIORITY, metavar="PRIORITY",
                                help="low, normal, high or urgent."),
) -> None:
    """Set tickets' priority (new tickets: normal, or their route's `priority`)."""
    for ticket, previous in triage.set_priority(state(ctx).config(), tickets, level):
        note(f"ticket #{ticket}: priority {previous} → {level}")
