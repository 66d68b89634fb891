"""The `rem` command line: one click group whose subcommands come from installed packages."""
