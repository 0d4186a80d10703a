"""Examples shown at the end of every command's help, as gh shows them. They are kept in one
table, by command path ("" is `mailbridge` itself), so that one test can check that every
command has some and that each one parses as its command reads it."""

from __future__ import annotations

EXAMPLES: dict[str, tuple[str, ...]] = {
    "": (
        "mailbridge demo",
        "mailbridge add-channel",
        "mailbridge sync --quiet                  # for cron",
        "mailbridge tickets list --queue billing",
    ),
    "init": ("mailbridge init", "mailbridge init --example > config.toml",
             "mailbridge --config ./test.toml init --force"),
    "add-channel": (
        "mailbridge add-channel                   # the wizard, on a terminal",
        "mailbridge add-channel --name help --email help@gmail.com",
        "mailbridge add-channel --no-input --name desk --incoming imap --host imap.example.com "
        "--username desk@example.com --password env:DESK_PASSWORD",
        "mailbridge add-channel --no-input --name drop --main-email support@example.com "
        '--route "billing:invoice,refund"',
    ),
    "demo": ("mailbridge demo", "mailbridge demo --dir /tmp/mb-demo"),
    "sync": ("mailbridge sync", "mailbridge sync support sales --no-send",
             "mailbridge sync --quiet --wait 60     # cron: quiet unless something failed"),
    "ingest": ("mailbridge ingest support < message.eml",
               'support: "|mailbridge ingest support"   # in /etc/aliases'),
    "reprocess": ("mailbridge reprocess", "mailbridge reprocess --all --format json"),
    "run": ("mailbridge run", "systemctl enable --now mailbridge   # contrib/mailbridge.service"),
    "events": ("mailbridge events --after 120",
               "mailbridge events --follow --kind ticket.created,message.added | my-notifier",
               "mailbridge events --follow --after 120 --format table"),
    "status": ("mailbridge status", "mailbridge status --format json | jq '.[].health'"),
    "doctor": ("mailbridge doctor", "mailbridge doctor --offline"),
    "messages": ("mailbridge messages list --unparsed", "mailbridge messages show 12 --raw"),
    "messages list": ("mailbridge messages list --unparsed",
                      "mailbridge messages list --channel support --all --format jsonl"),
    "messages show": ("mailbridge messages show 12", "mailbridge messages show 12 --raw > m.eml"),
    "channels": ("mailbridge channels list", "mailbridge channels test support"),
    "channels list": ("mailbridge channels list", "mailbridge channels list --format json"),
    "channels show": ("mailbridge channels show support",),
    "channels test": ("mailbridge channels test support",
                      "mailbridge channels test support --send-test-to me@example.com"),
    "channels enable": ("mailbridge channels enable support",
                        "mailbridge channels enable o365 --mailbox sales@contoso.com"),
    "channels disable": ("mailbridge channels disable support",
                         "mailbridge channels disable o365 --mailbox sales@contoso.com"),
    "channels remove": ("mailbridge channels remove old-desk --yes",),
    "channels remove-mailbox": ("mailbridge channels remove-mailbox o365 sales@contoso.com",),
    "channels set": (
        'mailbridge channels set support outgoing.from_name "Acme Support"',
        "mailbridge channels set support schedule 15m no_messages_hours 24",
        "mailbridge channels set desk incoming.password env:DESK_PASSWORD",
    ),
    "channels unset": ("mailbridge channels unset support schedule",),
    "queues": ("mailbridge queues list",),
    "queues list": ("mailbridge queues list", "mailbridge queues list --format csv"),
    "tickets": ("mailbridge tickets list", "mailbridge tickets reply 12"),
    "tickets list": ("mailbridge tickets list --queue billing",
                     "mailbridge tickets list --assignee me --sort priority",
                     "mailbridge tickets list --assignee none --status all",
                     "mailbridge tickets list --status all --format jsonl | jq .subject"),
    "tickets search": ("mailbridge tickets search printer toner",
                       """mailbridge tickets search '"paper jam"' --status open --queue billing""",
                       "mailbridge tickets search 'invoice*' --since 7d --format jsonl"),
    "tickets show": ("mailbridge tickets show 12", "mailbridge tickets show 12 --raw > t12.mbox",
                     "mailbridge tickets show 12 --html > t12.html"),
    "tickets assign": ("mailbridge tickets assign 12 13 --to alice",
                       "MAILBRIDGE_AGENT=alice mailbridge tickets assign 12 --to me",
                       "mailbridge tickets assign 12 --unassign"),
    "tickets unassign": ("mailbridge tickets unassign 12",),
    "tickets pending": ("mailbridge tickets pending 12 13",),
    "tickets priority": ("mailbridge tickets priority 12 13 urgent",),
    "tickets attachments": ("mailbridge tickets attachments 12",
                            "mailbridge tickets attachments 12 --save ~/Downloads/t12",
                            "mailbridge tickets attachments 12 --save . --only invoice.pdf "
                            "--force"),
    "tickets comment": ('mailbridge tickets comment 12 -m "Waiting for the vendor." --as alice',
                        "mailbridge tickets comment 12          # in the editor"),
    "tickets move": ("mailbridge tickets move 12 --queue billing",
                     "mailbridge tickets move 12 --queue vip --create"),
    "tickets close": ("mailbridge tickets close 12 13",),
    "tickets reopen": ("mailbridge tickets reopen 12",),
    "tickets reply": (
        "mailbridge tickets reply 12            # in the editor",
        'mailbridge tickets reply 12 -m "Fixed, see attached." --attach fix.pdf --as alice',
        "mailbridge tickets reply 12 --file answer.txt --drop dave@customer.example",
    ),
    "tickets forward": ('mailbridge tickets forward 12 --to vendor@example.org '
                        '-m "Can you look?"',),
    "outbox": ("mailbridge outbox list --state failed", "mailbridge outbox retry 7"),
    "outbox list": ("mailbridge outbox list", "mailbridge outbox list --state failed "
                    "--state unknown"),
    "outbox retry": ("mailbridge outbox retry 7 8",),
    "outbox cancel": ("mailbridge outbox cancel 7",),
    "agents": ("mailbridge agents list",),
    "agents add": ('mailbridge agents add alice --email alice@example.com --signature '
                   '"**Alice**, support" --notify-no-messages',
                   "mailbridge agents add bob --email bob@example.com --admin"),
    "agents set": ("mailbridge agents set alice --admin", "mailbridge agents set bob --no-admin"),
    "agents list": ("mailbridge agents list",),
    "agents remove": ("mailbridge agents remove alice",),
    "clients": ("mailbridge clients add ACME --domain acme.com", "mailbridge clients show ACME"),
    "clients add": ('mailbridge clients add "Acme Corp"',
                    "mailbridge clients add ACME --domain acme.com --domain acme.co.uk"),
    "clients set": ("mailbridge clients set ACME --domain acme.de",
                    "mailbridge clients set ACME --no-domain acme.co.uk",
                    "mailbridge clients set ACME --quotation-mailbox sales@example.com"),
    "clients list": ("mailbridge clients list",),
    "clients show": ("mailbridge clients show ACME",),
    "contacts": ("mailbridge contacts import contacts.csv",),
    "contacts add": ('mailbridge contacts add bob@acme.example --client ACME --name "Bob"',
                     "mailbridge contacts add eve@beta.example --client Beta --create"),
    "contacts import": ("mailbridge contacts import contacts.csv   # email,name,client",),
    "contacts list": ("mailbridge contacts list --client ACME",),
    "contacts remove": ("mailbridge contacts remove bob@acme.example",),
    "engagements": ("mailbridge engagements list --client ACME --since 7d",),
    "engagements list": ("mailbridge engagements list --client ACME --since 7d",
                         "mailbridge engagements list --contact bob@acme.example --limit 20"),
    "engagements search": ("mailbridge engagements search renewal --client ACME",
                           """mailbridge engagements search '"price list"' --since 30d"""),
    "engagements show": ("mailbridge engagements show 3",),
    "campaigns": ("mailbridge campaigns send --subject 'Spring offer' --body-file offer.txt "
                  "--client ACME --as alice", "mailbridge campaigns list"),
    "campaigns send": (
        "mailbridge campaigns send --subject 'Spring offer' --body-file offer.txt "
        "--client ACME --as alice --dry-run",
        "mailbridge campaigns send --subject 'Spring offer' --body-file offer.txt "
        "--contacts leads.csv --name spring-2027",
    ),
    "campaigns list": ("mailbridge campaigns list", "mailbridge campaigns list --format json"),
    "campaigns show": ("mailbridge campaigns show 1",
                       "mailbridge campaigns show 1 --format csv > results.csv"),
    "opportunities": ("mailbridge opportunities list", "mailbridge opportunities show 1"),
    "opportunities add": ('mailbridge opportunities add --summary "Printer fleet renewal" '
                          "--contact bob@acme.example --client ACME",),
    "opportunities list": ("mailbridge opportunities list --status all --projects",),
    "opportunities search": ("mailbridge opportunities search 'quot*' --status open",),
    "opportunities show": ("mailbridge opportunities show 1",),
    "opportunities reply": (
        'mailbridge opportunities reply 7 -m "The quote is attached." --attach quote.pdf '
        "--as alice",
        "mailbridge opportunities reply 7              # the editor, from $MAILBRIDGE_AGENT's "
        "mailbox",
    ),
    "opportunities mail": (
        'mailbridge opportunities mail 7 --subject "Our offer" --file offer.txt --as alice',
        "mailbridge opportunities mail 7 --to dan@acme.example --cc eve@acme.example "
        '-m "Shall we meet on Friday?"',
    ),
    "opportunities quote": (
        "mailbridge opportunities quote 7 --file quote.pdf --dry-run   # which mailbox, and why",
        'mailbridge opportunities quote 7 --file quote.pdf -m "Our offer, as discussed." '
        "--as alice",
        "mailbridge opportunities quote 7 --file quote.pdf --from sales@example.com",
    ),
    "opportunities close": ("mailbridge opportunities close 1",),
    "opportunities reopen": ("mailbridge opportunities reopen 1",),
    "opportunities import": ("mailbridge opportunities import deals.csv   # summary,contact,…",),
    "opportunities types": ("mailbridge opportunities types list",),
    "opportunities types add": ("mailbridge opportunities types add internal "
                                "--exclude-from-matching",),
    "opportunities types list": ("mailbridge opportunities types list",),
    "inbox": ("mailbridge inbox list --agent Anna", "mailbridge inbox show 7",
              "mailbridge inbox assign 7 --opportunity 1"),
    "inbox list": ("mailbridge inbox list --agent Anna",),
    "inbox show": ("mailbridge inbox show 7", "mailbridge inbox show 7 --format json"),
    "inbox assign": ("mailbridge inbox assign 7 --opportunity 1",),
    "inbox new-opportunity": ("mailbridge inbox new-opportunity 7 --project",),
    "inbox note": ("mailbridge inbox note 7                # the client `inbox show` suggests",
                   "mailbridge inbox note 7 --client ACME",
                   'mailbridge inbox note 7 --client "Beta Ltd" --create-client'),
    "notes": ("mailbridge notes list --client ACME", "mailbridge notes show 3"),
    "notes show": ("mailbridge notes show 3", "mailbridge notes show 3 --format json"),
    "notes list": ("mailbridge notes list --client ACME --since 7d",
                   "mailbridge notes list --format csv > notes.csv"),
    "inbox delete": ("mailbridge inbox delete 7 --as alice   # alice: an administrator",),
    "secrets": ("mailbridge secrets set mailbridge/support", "mailbridge secrets check"),
    "secrets set": ("mailbridge secrets set mailbridge/support",
                    "pass show mail/support | mailbridge secrets set mailbridge/support"),
    "secrets check": ("mailbridge secrets check",),
    "auth": ("mailbridge auth login contoso", "mailbridge auth status"),
    "auth login": ("mailbridge auth login contoso",
                   "mailbridge auth login contoso --mailbox anna@contoso.com"),
    "auth status": ("mailbridge auth status --format json",),
    "store": ("mailbridge store info",),
    "store info": ("mailbridge store info", "mailbridge store info --format json | jq .rows"),
    "store migrate": ("mailbridge store migrate --to postgresql://mailbridge@db.example/mailbridge"
                      " --password env:PGPASSWORD", "mailbridge store migrate --to "
                      "postgresql://mailbridge@db.example/mailbridge --resume"),
    "leases": ("mailbridge leases list", "mailbridge leases hosts"),
    "leases list": ("mailbridge leases list",),
    "leases hosts": ("mailbridge leases hosts --format json",),
    "leases release": ("mailbridge leases release support",
                       "mailbridge leases release o365 --mailbox sales@contoso.com"),
}


def epilog(path: str) -> str | None:
    """The examples of a command as its help's last paragraph."""
    found = EXAMPLES.get(path)
    if not found:
        return None
    return "Examples:\n" + "\n".join(f"$ {line}" for line in found)
