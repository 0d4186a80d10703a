"""Connections to mail sources and senders. They never touch the store."""
