"""Parts shared by the test suite and the benchmarks, not used by depot itself.

Real HTTP origins and servers on loopback, moto's S3, faulty origins and proxies, the
fixture builds, and the store contract every backend must pass.

May import: errors, layout, core, formats, storage, build, delta, client, publish, trust,
stats, service.
"""
