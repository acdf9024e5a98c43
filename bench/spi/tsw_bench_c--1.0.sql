-- tsw_bench_c--1.0.sql
\echo Use "CREATE EXTENSION tsw_bench_c" to load this file. \quit

-- Runs one benchmark workload in a dynamic background worker connected to
-- the current database, as the current role, and returns the seconds the
-- worker measured around the workload. The worker also writes a row into
-- public.tsw_bench_results(system, workload, n, seconds, checksum, token, cpu_seconds),
-- which the caller must have created.
--
-- workload: select1 | insert | read | lookup; n: iterations (ignored by read);
-- read_only: SPI's read_only argument for select1, read and lookup (true:
-- lookup also passes count = 1), see tsw_bench_c.c
CREATE FUNCTION run(workload text, n int, read_only bool DEFAULT false)
RETURNS float8
AS 'MODULE_PATHNAME', 'tsw_bench_c_run'
LANGUAGE C STRICT VOLATILE;

REVOKE ALL ON FUNCTION run(text, int, bool) FROM PUBLIC;
