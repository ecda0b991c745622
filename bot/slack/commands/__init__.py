"""The ``/patch`` slash command: a registry of subcommands and a pure parser."""
