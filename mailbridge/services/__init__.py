"""What the commands do, built from config: sync, ingest, channel admin, queries, doctor, demo."""
