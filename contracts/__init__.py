"""Event contracts shared by every relearn service: topics, event models, validation. Imports no service."""
