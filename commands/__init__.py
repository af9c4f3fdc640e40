"""The depot command's subcommands, one module per side: build, release, player, stats,
service. Each module lists its commands in ``COMMANDS``; cli.py adds them to the group.
What they share is in ``shared``. No module here imports cli.py, so each one imports on
its own."""
