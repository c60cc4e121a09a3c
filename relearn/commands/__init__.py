"""Subcommands of the `relearn` CLI, one module per area."""
