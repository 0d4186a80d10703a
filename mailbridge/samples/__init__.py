"""Sample mail for `mailbridge demo` (written for mailbridge; MIT like the rest)."""
