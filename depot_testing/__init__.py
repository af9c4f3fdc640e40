"""Parts shared by the test suite and the benchmarks, not used by depot itself.

Real HTTP origins and servers on loopback, moto's S3, faulty origins and proxies, the
fixture builds, and the store contract every backend must pass.

It lives beside pipeline/, not in it, and is not installed: it needs pytest, moto and
apt-get. pytest finds it through its `pythonpath` setting; scripts/benchlib.py puts the
checkout on `sys.path`. It may import anything in pipeline/; pipeline/ never imports it.
"""
