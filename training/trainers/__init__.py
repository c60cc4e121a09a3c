"""A team's own trainers (script, python plugin) beside the builtin MLP; one module per kind."""
