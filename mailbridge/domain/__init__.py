"""Mail domain logic: parsing, classification, threading and routing."""
