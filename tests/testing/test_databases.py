"""The test servers are real: PostgreSQL answers SQL in its own fresh databases, Redis
answers commands and its pub/sub, and both are gone after."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
import redis


def test_postgres_databases_are_fresh_and_separate(postgres_url, postgres_server):
    with psycopg.connect(postgres_url) as conn:
        conn.execute("CREATE TABLE t (n integer)")
        conn.execute("INSERT INTO t VALUES (41), (1)")
        assert conn.execute("SELECT sum(n), current_setting('server_version_num')::int / 10000 FROM t").fetchone() \
            == (42, 15)
    with psycopg.connect(postgres_server) as conn:
        assert conn.execute("SELECT count(*) FROM pg_tables WHERE tablename = 't'").fetchone() == (0,)


def test_redis_answers_and_publishes(redis_url):
    with redis.Redis.from_url(redis_url) as r:
        assert r.dbsize() == 0
        sub = r.pubsub()
        sub.subscribe("depot-test")
        assert sub.get_message(timeout=5)["type"] == "subscribe"
        assert r.publish("depot-test", b"hello") == 1
        assert sub.get_message(timeout=5)["data"] == b"hello"
        r.set("k", "v")
        assert r.get("k") == b"v"
        sub.close()


def test_servers_stop_and_leave_nothing():
    from depot_testing.databases import postgres, redis_server

    with postgres() as pg, redis_server() as rs:
        conn = psycopg.connect(pg)  # a client still connected does not hold up the stop
        data = Path(conn.execute("SHOW data_directory").fetchone()[0])
        assert data.is_dir()
    conn.close()
    assert not data.exists()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(pg, connect_timeout=2)
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(rs, socket_connect_timeout=2).ping()
