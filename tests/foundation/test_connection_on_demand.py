"""`ConnectionOnDemand`: a connection of the pool only once a statement runs (api.fastscan)."""

from __future__ import annotations

import pytest

from foundation.connections import ConnectionOnDemand, connect_postgres


async def test_taken_at_the_first_statement_and_given_back(settings, conn):
    pool = await connect_postgres(settings, min_size=0, max_size=1)
    try:
        idle = ConnectionOnDemand(pool)
        assert not idle.taken
        await idle.release()  # nothing taken: nothing to give back
        assert pool.get_size() == 0

        used = ConnectionOnDemand(pool)
        assert await used.fetchval("SELECT 1 + $1::int", 1) == 2
        assert used.taken and pool.get_idle_size() == 0
        assert [tuple(row) for row in await used.fetch("SELECT generate_series(1, 2)")] == [(1,), (2,)]
        assert tuple(await used.fetchrow("SELECT 3, 4")) == (3, 4)
        await used.release()
        assert not used.taken and pool.get_idle_size() == 1

        class Undone(Exception):
            pass

        writer = ConnectionOnDemand(pool)
        with pytest.raises(Undone):
            async with writer.transaction():
                await writer.execute("CREATE TEMPORARY TABLE on_demand (n int)")
                raise Undone
        async with writer.transaction():  # the same connection, the table rolled back with its transaction
            assert await writer.fetchval("SELECT to_regclass('pg_temp.on_demand')") is None
        await writer.release()
    finally:
        await pool.close()
