"""Microsoft 365 through Microsoft Graph: sign-in (auth), requests with throttling and retries
(http), incoming mail (fetch) and the mailbox access test (probe)."""
