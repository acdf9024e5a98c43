/* pg_tsworker--0.1--0.2.sql: names that match PostgreSQL's vocabulary */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION pg_tsworker UPDATE TO '0.2'" to load this file. \quit

-- The view had the name of the tsworker.workers setting; it is a statistics
-- view, as pg_stat_activity is.  The old name stays for this version.
CREATE VIEW tsworker.stat_workers AS
  SELECT * FROM tsworker.worker_status();
COMMENT ON VIEW tsworker.stat_workers IS
  'pg_tsworker workers: state, pid, activity, restarts, last error and the status each worker publishes';
COMMENT ON VIEW tsworker.workers IS
  'Deprecated name of tsworker.stat_workers (removed in version 0.3)';
REVOKE ALL ON tsworker.stat_workers FROM PUBLIC;
GRANT SELECT ON tsworker.stat_workers TO tsworker_admin;

-- "reload" means SIGHUP everywhere else; this starts stopped workers.
CREATE FUNCTION tsworker.start(name text DEFAULT NULL)
RETURNS integer
AS 'MODULE_PATHNAME', 'tsworker_start'
LANGUAGE C CALLED ON NULL INPUT VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION tsworker.start(text) IS
  'Starts again the worker name (every worker when NULL) that is stopped, finished or disabled after repeated failures; returns how many';
REVOKE ALL ON FUNCTION tsworker.start(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tsworker.start(text) TO tsworker_admin;
COMMENT ON FUNCTION tsworker.reload() IS
  'Deprecated name of tsworker.start() (removed in version 0.3)';
