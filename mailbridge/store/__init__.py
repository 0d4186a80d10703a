"""The SQLite store: schema and migrations, the write lock, and the record and query helpers."""
