"""The depot command's subcommands, by side; cli.py holds the group and the error handler."""
