"""Versioned schema. Append new migrations; never edit one that has shipped."""

from __future__ import annotations

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

migrations = Migrations("mailbridge")


@migrations()
def m001_foundation(db: Database) -> None:
    db.executescript(
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
