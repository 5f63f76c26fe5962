"""The PostgreSQL history on the process's connection pool: a bounded number of server connections, shared with the
limits, each given back clean, and replaced when the server drops it."""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Iterator

import psycopg
import pytest

from core.errors import StorageError
from core.history.postgres import POOL_SIZE, PostgresStore
from core.shared import close_pools, shared_database
from tests import pgserver
from tests.test_store import BACKEND, FAILED, OK, REQUEST

CALLS = 60


@pytest.fixture
def url(postgres_url: str) -> Iterator[str]:
    """A new database, and no pool left open to it after the test."""
    yield pgserver.new_database(postgres_url)
    close_pools()


def sessions_opened(probe: psycopg.Connection) -> int:
    """How many connections the server has accepted to the probe's database since it started."""
    return probe.execute("SELECT sessions FROM pg_stat_database WHERE datname = current_database()").fetchone()[0]


def other_backends(probe: psycopg.Connection) -> list[str]:
    """The state of every connection to the probe's database but the probe's own."""
    return [state for (state,) in probe.execute("SELECT state FROM pg_stat_activity WHERE datname = current_database() "
                                                "AND pid <> pg_backend_pid() AND backend_type = 'client backend'")]


def store_calls(store: PostgresStore, count: int) -> None:
    """`count` store calls from eight threads at once, a quarter each of create, add_runs, get and list."""
    def call(_: int) -> None:
        experiment_id = store.create(REQUEST, BACKEND, 1)
        store.add_runs([(experiment_id, OK)], finished=[experiment_id])
        assert store.get(experiment_id).runs == (OK,)
        store.list(limit=5)

    with concurrent.futures.ThreadPoolExecutor(8) as threads:
        list(threads.map(call, range(count // 4)))


def test_many_store_calls_open_no_more_server_connections_than_the_pool_holds(url):
    store = PostgresStore(url)
    with psycopg.connect(url, autocommit=True) as probe:
        before = sessions_opened(probe)
        store_calls(store, CALLS)
        time.sleep(0.1)  # a backend counts its session as it exits, a moment after its client hung up
        opened = sessions_opened(probe) - before
        assert opened <= POOL_SIZE + 1  # the pool's, and perhaps the probe's own
        assert 1 <= len(other_backends(probe)) <= POOL_SIZE


def test_a_connection_given_back_holds_no_transaction_even_after_a_refused_write(url):
    store = PostgresStore(url)
    experiment_id = store.create(REQUEST, BACKEND, 2)
    with pytest.raises(StorageError, match="The history database at .* failed"):
        store.add_runs([(experiment_id, OK), ("no-such-experiment", FAILED)])
    store.add_runs([(experiment_id, OK)])
    with psycopg.connect(url, autocommit=True) as probe:
        assert set(other_backends(probe)) == {"idle"}
    assert store.get(experiment_id).runs == (OK,)


def test_the_store_works_on_after_the_server_drops_its_connections(url):
    store = PostgresStore(url)
    store_calls(store, 8)
    with psycopg.connect(url, autocommit=True) as probe:
        dropped = probe.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                "WHERE datname = current_database() AND pid <> pg_backend_pid()").fetchone()[0]
    assert dropped >= 1
    experiment_id = store.create(REQUEST, BACKEND, 1)
    store.add_runs([(experiment_id, OK)], finished=[experiment_id])
    assert store.get(experiment_id).complete


def test_the_history_and_the_shared_limits_draw_on_one_pool_per_database(url):
    store, limits = PostgresStore(url), shared_database(url)
    limits.pool.pop_stats()
    store_calls(store, 8)
    assert limits.pool.get_stats()["requests_num"] >= 8  # each of the store's calls borrowed from the limits' pool
    with psycopg.connect(url, autocommit=True) as probe:
        assert len(other_backends(probe)) <= POOL_SIZE


def test_a_store_outlives_the_pools_being_closed(url):
    store = PostgresStore(url)
    experiment_id = store.create(REQUEST, BACKEND, 1)
    close_pools()
    store.add_runs([(experiment_id, OK)])
    assert store.get(experiment_id).runs == (OK,)
