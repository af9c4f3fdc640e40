"""Parts shared by the test suite and the benchmarks: real HTTP origins on loopback and
the store contract every backend must pass. Not used by depot itself."""
