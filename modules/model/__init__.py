"""The model a trial and the Trainer build: the built-in head, a user's --hypermodel builder,
and the serving export."""
