"""The player's side, the reference client: fetch from origins with failover, install,
update, verify and repair a game directory, and cat one file. It proves that what the
pipeline publishes is right and usable."""
