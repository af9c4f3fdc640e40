"""The depot command's subcommands, one module per side: build, release, player, stats,
service. Each module lists its commands in ``COMMANDS``; cli.py names each command's
module and imports it only when the command runs. What they share is in ``shared``. No
module here imports cli.py, so each one imports on its own. Installed, this package is
``depot_app.commands``."""
