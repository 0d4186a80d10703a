"""Versioned schema, the same steps on every backend. Append new steps to STEPS; never edit
one that has shipped.

Steps are written in SQLite's column types (`Store.ddl` translates them for PostgreSQL). Each
runs in its own transaction together with its row in `mailbridge_migrations`, so a step is
applied exactly once even when two hosts start at the same moment (the PostgreSQL backend
holds a lock while it migrates). Stores made before this table existed recorded their steps
in sqlite-utils' `_sqlite_migrations`; the SQLite backend adopts those rows once."""

from __future__ import annotations

from collections.abc import Callable

from mailbridge.store.db import Store, now

TABLE = "mailbridge_migrations"


def m001_foundation(db: Store) -> None:
    db.ddl(
        """
        CREATE TABLE cursors (
            channel TEXT NOT NULL, mailbox TEXT NOT NULL, folder TEXT NOT NULL,
            state_json TEXT NOT NULL, updated_at TEXT NOT NULL,
            PRIMARY KEY (channel, mailbox, folder)
        );
        CREATE TABLE messages (
            id INTEGER PRIMARY KEY,
            channel TEXT NOT NULL,
            fingerprint TEXT NOT NULL,
            raw BLOB NOT NULL,
            size INTEGER NOT NULL,
            sha256 TEXT NOT NULL,
            message_id TEXT, in_reply_to TEXT, references_json TEXT NOT NULL DEFAULT '[]',
            subject TEXT NOT NULL DEFAULT '',
            from_name TEXT NOT NULL DEFAULT '', from_email TEXT NOT NULL DEFAULT '',
            to_json TEXT NOT NULL DEFAULT '[]', cc_json TEXT NOT NULL DEFAULT '[]',
            reply_to_json TEXT NOT NULL DEFAULT '[]',
            sent_at TEXT, headers_json TEXT NOT NULL DEFAULT '[]',
            text TEXT NOT NULL DEFAULT '', html TEXT,
            classification TEXT,
            defects_json TEXT NOT NULL DEFAULT '[]',
            parse_error TEXT,
            direction TEXT NOT NULL DEFAULT 'in',
            stored_at TEXT NOT NULL,
            UNIQUE (channel, fingerprint)
        );
        CREATE INDEX messages_message_id ON messages (channel, message_id);
        CREATE INDEX messages_parse_error ON messages (parse_error) WHERE parse_error IS NOT NULL;
        CREATE TABLE attachments (
            id INTEGER PRIMARY KEY,
            message INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
            position INTEGER NOT NULL,
            filename TEXT NOT NULL, content_type TEXT NOT NULL, size INTEGER NOT NULL,
            sha256 TEXT NOT NULL, content_id TEXT, inline INTEGER NOT NULL DEFAULT 0,
            UNIQUE (message, position)
        );
        CREATE TABLE ledger (
            channel TEXT NOT NULL, mailbox TEXT NOT NULL, folder TEXT NOT NULL,
            source_key TEXT NOT NULL,
            fingerprint TEXT NOT NULL,
            message INTEGER REFERENCES messages(id),
            status TEXT NOT NULL,
            stored_at TEXT NOT NULL,
            PRIMARY KEY (channel, mailbox, folder, source_key)
        );
        CREATE TABLE queues (name TEXT PRIMARY KEY, created_at TEXT NOT NULL);
        CREATE TABLE tickets (
            id INTEGER PRIMARY KEY,
            channel TEXT NOT NULL,
            queue TEXT NOT NULL REFERENCES queues(name),
            status TEXT NOT NULL DEFAULT 'open',
            kind TEXT NOT NULL DEFAULT 'human',
            subject TEXT NOT NULL,
            requester_name TEXT NOT NULL DEFAULT '', requester_email TEXT NOT NULL DEFAULT '',
            created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
            message_count INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX tickets_channel_status ON tickets (channel, status);
        CREATE INDEX tickets_queue ON tickets (queue, status);
        CREATE TABLE ticket_messages (
            ticket INTEGER NOT NULL REFERENCES tickets(id),
            message INTEGER NOT NULL REFERENCES messages(id),
            added_at TEXT NOT NULL,
            PRIMARY KEY (ticket, message)
        );
        CREATE INDEX ticket_messages_message ON ticket_messages (message);
        CREATE TABLE runs (
            id INTEGER PRIMARY KEY,
            channel TEXT NOT NULL,
            started_at TEXT NOT NULL, finished_at TEXT,
            status TEXT NOT NULL DEFAULT 'running',
            fetched INTEGER NOT NULL DEFAULT 0, stored INTEGER NOT NULL DEFAULT 0,
            duplicates INTEGER NOT NULL DEFAULT 0, failed INTEGER NOT NULL DEFAULT 0,
            error TEXT
        );
        CREATE INDEX runs_channel ON runs (channel, started_at);
        """
    )


def m002_operations(db: Store) -> None:
    db.ddl(
        """
        CREATE INDEX messages_channel_stored ON messages (channel, stored_at);
        CREATE TABLE alerts (
            id INTEGER PRIMARY KEY,
            channel TEXT NOT NULL,
            kind TEXT NOT NULL,
            detail TEXT NOT NULL,
            raised_at TEXT NOT NULL,
            cleared_at TEXT
        );
        CREATE UNIQUE INDEX alerts_open ON alerts (channel, kind) WHERE cleared_at IS NULL;
        """
    )


def m003_outgoing(db: Store) -> None:
    db.ddl(
        """
        CREATE TABLE agents (
            name TEXT PRIMARY KEY,
            email TEXT NOT NULL,
            signature TEXT NOT NULL DEFAULT '',
            notify_no_messages INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL
        );
        CREATE TABLE outbox (
            id INTEGER PRIMARY KEY,
            channel TEXT NOT NULL,
            ticket INTEGER REFERENCES tickets(id),
            message INTEGER REFERENCES messages(id),
            kind TEXT NOT NULL,
            envelope_from TEXT NOT NULL,
            recipients_json TEXT NOT NULL,
            raw BLOB NOT NULL,
            state TEXT NOT NULL DEFAULT 'pending',
            attempts INTEGER NOT NULL DEFAULT 0,
            last_error TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            sent_at TEXT
        );
        CREATE INDEX outbox_state ON outbox (state, id);
        """
    )


def m004_engagements(db: Store) -> None:
    db.ddl(
        """
        CREATE TABLE clients (
            name TEXT PRIMARY KEY,
            created_at TEXT NOT NULL
        );
        CREATE TABLE contacts (
            email TEXT PRIMARY KEY COLLATE NOCASE,
            name TEXT NOT NULL DEFAULT '',
            client TEXT NOT NULL REFERENCES clients(name),
            created_at TEXT NOT NULL
        );
        CREATE INDEX contacts_client ON contacts (client);
        CREATE TABLE engagements (
            id INTEGER PRIMARY KEY,
            channel TEXT NOT NULL,
            message INTEGER NOT NULL UNIQUE REFERENCES messages(id),
            direction TEXT NOT NULL,
            owner TEXT NOT NULL,
            occurred_at TEXT,
            created_at TEXT NOT NULL
        );
        CREATE TABLE engagement_contacts (
            engagement INTEGER NOT NULL REFERENCES engagements(id),
            contact TEXT NOT NULL COLLATE NOCASE,
            client TEXT NOT NULL,
            PRIMARY KEY (engagement, contact)
        );
        CREATE INDEX engagement_contacts_client ON engagement_contacts (client);
        """
    )


def m005_sales(db: Store) -> None:
    db.ddl(
        """
        CREATE TABLE opportunity_types (
            name TEXT PRIMARY KEY,
            exclude_from_matching INTEGER NOT NULL DEFAULT 0
        );
        CREATE TABLE opportunities (
            id INTEGER PRIMARY KEY,
            summary TEXT NOT NULL,
            contact_email TEXT NOT NULL COLLATE NOCASE,
            client TEXT NOT NULL DEFAULT '',
            type TEXT NOT NULL DEFAULT '',
            project INTEGER NOT NULL DEFAULT 0,
            status TEXT NOT NULL DEFAULT 'open',
            agent TEXT NOT NULL DEFAULT '',
            details TEXT NOT NULL DEFAULT '',
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE INDEX opportunities_open ON opportunities (status, project);
        CREATE TABLE opportunity_messages (
            opportunity INTEGER NOT NULL REFERENCES opportunities(id),
            message INTEGER NOT NULL REFERENCES messages(id),
            text TEXT NOT NULL,
            how TEXT NOT NULL,
            note TEXT NOT NULL DEFAULT '',
            added_at TEXT NOT NULL,
            PRIMARY KEY (opportunity, message)
        );
        CREATE TABLE inbox_items (
            id INTEGER PRIMARY KEY,
            channel TEXT NOT NULL,
            agent TEXT NOT NULL,
            message INTEGER NOT NULL UNIQUE REFERENCES messages(id),
            state TEXT NOT NULL DEFAULT 'new',
            handled TEXT NOT NULL DEFAULT '',
            created_at TEXT NOT NULL
        );
        CREATE TABLE crm_notes (
            id INTEGER PRIMARY KEY,
            client TEXT NOT NULL,
            message INTEGER NOT NULL REFERENCES messages(id),
            created_at TEXT NOT NULL
        );
        """
    )


def m006_reply_lookup(db: Store) -> None:
    # threading a message that arrives after its own reply (tickets.Threads)
    db.ddl("CREATE INDEX messages_in_reply_to ON messages (channel, in_reply_to) "
               "WHERE in_reply_to IS NOT NULL")


def m007_leases(db: Store) -> None:
    # Several hosts sharing one store (store/leases.py); times are the database's clock in
    # seconds since the epoch.
    db.ddl(
        """
        CREATE TABLE leases (
            channel TEXT NOT NULL,
            mailbox TEXT NOT NULL DEFAULT '',
            owner TEXT,
            fence INTEGER NOT NULL DEFAULT 0,
            lease_until REAL,
            next_due REAL,
            claimed_at REAL,
            released_at REAL,
            PRIMARY KEY (channel, mailbox)
        );
        CREATE INDEX leases_due ON leases (next_due);
        CREATE TABLE lease_events (
            id INTEGER PRIMARY KEY,
            channel TEXT NOT NULL, mailbox TEXT NOT NULL, owner TEXT, fence INTEGER,
            event TEXT NOT NULL, at REAL NOT NULL
        );
        CREATE TABLE hosts (
            owner TEXT PRIMARY KEY,
            host TEXT NOT NULL, pid INTEGER NOT NULL,
            started_at REAL NOT NULL, heartbeat_at REAL NOT NULL
        );
        ALTER TABLE outbox ADD COLUMN claimed_by TEXT;
        """
    )


def m008_ticket_comments(db: Store) -> None:
    # internal comments on tickets (Usedesk's comment field); never sent to the client
    db.ddl(
        """
        CREATE TABLE ticket_comments (
            id INTEGER PRIMARY KEY,
            ticket INTEGER NOT NULL REFERENCES tickets(id),
            author TEXT NOT NULL DEFAULT '',
            text TEXT NOT NULL,
            created_at TEXT NOT NULL
        );
        CREATE INDEX ticket_comments_ticket ON ticket_comments (ticket, id);
        """
    )


def m009_token_caches(db: Store) -> None:
    # A delegated Microsoft 365 app's MSAL token cache, encrypted (services/token_caches.py),
    # for every host of the store; `version` goes up with each write.
    db.ddl(
        """
        CREATE TABLE token_caches (
            app TEXT PRIMARY KEY,
            version INTEGER NOT NULL,
            salt TEXT NOT NULL,
            data TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        """
    )


def m010_search_index(db: Store) -> None:
    # `tickets search` (store/fulltext.py: FTS5 on SQLite, a GIN-indexed tsvector on
    # PostgreSQL), filled here with every message already stored
    db.fulltext.create()


def m011_ticket_workflow(db: Store) -> None:
    """Who works a ticket and how urgent it is; existing tickets are unassigned, normal."""
    db.ddl(
        """
        ALTER TABLE tickets ADD COLUMN assignee TEXT;
        ALTER TABLE tickets ADD COLUMN priority TEXT NOT NULL DEFAULT 'normal';
        CREATE INDEX tickets_assignee ON tickets (assignee, status);
        """
    )


def m012_events(db: Store) -> None:
    # The event stream (store/events.py): `id` is the readers' cursor. `hook_state` is each
    # [[hook]]'s place in it (services/hooks.py): the last event it ran for, and its failures.
    db.ddl(
        """
        CREATE TABLE events (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL,
            channel TEXT,
            ticket INTEGER,
            engagement INTEGER,
            opportunity INTEGER,
            payload TEXT NOT NULL DEFAULT '{}',
            created_at TEXT NOT NULL
        );
        CREATE INDEX events_kind ON events (kind, id);
        CREATE TABLE hook_state (
            name TEXT PRIMARY KEY,
            cursor INTEGER NOT NULL,
            failures INTEGER NOT NULL DEFAULT 0,
            last_error TEXT,
            failed_at TEXT,
            next_try REAL,
            updated_at TEXT NOT NULL
        );
        """
    )


def m013_client_domains(db: Store) -> None:
    # The mail domains of a client (`clients add/set --domain`): My Inbox suggests the client
    # for mail from them, and domain matching takes the client's opportunities. A domain is
    # one client's, so neither is ever a guess between two.
    db.ddl(
        """
        CREATE TABLE client_domains (
            domain TEXT PRIMARY KEY,
            client TEXT NOT NULL REFERENCES clients(name),
            created_at TEXT NOT NULL
        );
        CREATE INDEX client_domains_client ON client_domains (client);
        CREATE INDEX crm_notes_client ON crm_notes (client, created_at);
        """
    )


def m014_agent_roles(db: Store) -> None:
    """An agent's role: administrators may delete from My Inbox; existing agents are not."""
    db.ddl("ALTER TABLE agents ADD COLUMN admin INTEGER NOT NULL DEFAULT 0")


def m015_opportunity_mail(db: Store) -> None:
    # Mail sent on an opportunity (`opportunities reply`): its outbox rows name it, as a
    # ticket reply's name the ticket.
    db.ddl("ALTER TABLE outbox ADD COLUMN opportunity INTEGER")


def m016_quotation_mailbox(db: Store) -> None:
    # A client's "Mailbox override for Quotation emails" (`clients set --quotation-mailbox`):
    # the mailbox that sends its opportunities' quotations; NULL: the [sales] settings decide.
    db.ddl("ALTER TABLE clients ADD COLUMN quotation_mailbox TEXT")


def m017_campaigns(db: Store) -> None:
    # Mail campaigns (`campaigns send`): one row per (campaign, recipient), its key the guard
    # that a rerun never mails a contact twice; written in the same transaction as the
    # recipient's outbox row. An outbox row may wait until `not_before` (a campaign's pace);
    # the pace counts what each mailbox sent in the last day (outbox_sent_at).
    db.ddl(
        """
        CREATE TABLE campaigns (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            agent TEXT NOT NULL,
            channel TEXT NOT NULL,
            sent_from TEXT NOT NULL,
            subject TEXT NOT NULL,
            body TEXT NOT NULL,
            created_at TEXT NOT NULL
        );
        CREATE TABLE campaign_recipients (
            campaign INTEGER NOT NULL REFERENCES campaigns(id),
            email TEXT NOT NULL,
            name TEXT NOT NULL DEFAULT '',
            client TEXT NOT NULL DEFAULT '',
            outbox INTEGER REFERENCES outbox(id),
            queued_at TEXT NOT NULL,
            PRIMARY KEY (campaign, email)
        );
        ALTER TABLE outbox ADD COLUMN campaign INTEGER REFERENCES campaigns(id);
        ALTER TABLE outbox ADD COLUMN not_before TEXT;
        CREATE INDEX outbox_campaign ON outbox (campaign, not_before);
        CREATE INDEX outbox_sent_at ON outbox (sent_at);
        """
    )


def m018_large_raws(db: Store) -> None:
    # The raw bytes of a large message (store/messages.LARGE_RAW_BYTES) live in a table of
    # their own, as its last column: only there can SQLite write a blob in place a chunk at a
    # time (store/sqlite.py); as a parameter of a row it copies the blob twice in memory.
    db.ddl(
        """
        CREATE TABLE message_raws (
            message INTEGER PRIMARY KEY REFERENCES messages(id),
            raw BLOB NOT NULL
        );
        """
    )


STEPS: tuple[Callable[[Store], None], ...] = (
    m001_foundation, m002_operations, m003_outgoing, m004_engagements, m005_sales,
    m006_reply_lookup, m007_leases, m008_ticket_comments, m009_token_caches,
    m010_search_index, m011_ticket_workflow, m012_events, m013_client_domains,
    m014_agent_roles, m015_opportunity_mail, m016_quotation_mailbox, m017_campaigns,
    m018_large_raws)


def applied(db: Store) -> list[str]:
    if TABLE not in db.tables():
        return []
    return [row[0] for row in db.execute(f"SELECT name FROM {TABLE} ORDER BY applied_order")]


def pending(db: Store) -> list[str]:
    done = set(applied(db))
    return [step.__name__ for step in STEPS if step.__name__ not in done]


def apply(db: Store) -> list[str]:
    """Apply what is pending, each step in its own transaction; returns the names applied."""
    if not pending(db):
        return []
    with db.atomic():
        create_table(db)
    done = []
    for step in STEPS:
        with db.atomic():
            if step.__name__ in applied(db):
                continue  # another process applied it meanwhile
            step(db)
            record(db, [step.__name__])
            done.append(step.__name__)
    return done


def create_table(db: Store) -> None:
    db.ddl(f"CREATE TABLE IF NOT EXISTS {TABLE} (name TEXT PRIMARY KEY, "
           "applied_order INTEGER NOT NULL, applied_at TEXT NOT NULL)")


def record(db: Store, names: list[str]) -> None:
    """Note steps as applied (by a step just run, or adopted from an older table)."""
    for name in names:
        db.execute(f"INSERT INTO {TABLE} (name, applied_order, applied_at) VALUES "
                   f"(?, (SELECT coalesce(max(applied_order), 0) + 1 FROM {TABLE}), ?)",
                   [name, now()])
