-- tsw_bench_agg--1.0.sql
\echo Use "CREATE EXTENSION tsw_bench_agg" to load this file. \quit

-- Starts worker_spi's loop as a dynamic background worker for schema<index>
-- (it creates schema<index>.counted if missing, then every naptime_ms or
-- when its latch is set folds the 'delta' rows into the 'total' row) and
-- returns its pid once it has started. It connects to database (default:
-- the current one) as the calling role. Not restarted; stop it with
-- pg_terminate_backend(pid).
CREATE FUNCTION tsw_bench_agg_launch(index int, naptime_ms int DEFAULT 10000, database name DEFAULT NULL)
RETURNS int
AS 'MODULE_PATHNAME', 'tsw_bench_agg_launch'
LANGUAGE C CALLED ON NULL INPUT VOLATILE PARALLEL UNSAFE;

-- Sets the latch of the tsw_bench_agg worker with this pid, as
-- tsworker.wake() does for a pg_tsworker worker: its next pass starts now.
-- False if no such worker is running.
CREATE FUNCTION tsw_bench_agg_wake(pid int)
RETURNS boolean
AS 'MODULE_PATHNAME', 'tsw_bench_agg_wake'
LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE;

REVOKE ALL ON FUNCTION tsw_bench_agg_launch(int, int, name) FROM PUBLIC;
REVOKE ALL ON FUNCTION tsw_bench_agg_wake(int) FROM PUBLIC;
