"""The Typer command line: thin commands over services, one error boundary in app.py."""
