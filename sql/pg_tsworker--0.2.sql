/* pg_tsworker--0.2.sql: status and control of pg_tsworker workers */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION pg_tsworker" to load this file. \quit

-- Members of tsworker_admin may launch, stop and wake workers and read
-- their status.  (Role names starting with "pg_" are reserved, so it cannot
-- be pg_tsworker_admin.)  Roles are cluster-wide: it survives DROP EXTENSION.
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'tsworker_admin') THEN
    CREATE ROLE tsworker_admin NOLOGIN;
  END IF;
END
$$;

CREATE FUNCTION tsworker.worker_status(
    OUT name text,
    OUT pid integer,
    OUT module text,
    OUT database text,
    OUT state text,
    OUT started_at timestamptz,
    OUT last_activity timestamptz,
    OUT loops bigint,
    OUT restarts integer,
    OUT last_error text,
    OUT last_error_at timestamptz,
    OUT status jsonb,
    OUT dynamic boolean,
    OUT disabled boolean,
    OUT rss_bytes bigint,
    OUT heap_used_bytes bigint,
    OUT heap_limit_bytes bigint)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'tsworker_worker_status'
LANGUAGE C STRICT VOLATILE PARALLEL RESTRICTED;
COMMENT ON FUNCTION tsworker.worker_status() IS
  'One row per pg_tsworker worker slot; the tsworker.workers view reads it';

CREATE VIEW tsworker.stat_workers AS
  SELECT * FROM tsworker.worker_status();
COMMENT ON VIEW tsworker.stat_workers IS
  'pg_tsworker workers: state, pid, activity, restarts, last error and the status each worker publishes';

CREATE VIEW tsworker.workers AS
  SELECT * FROM tsworker.worker_status();
COMMENT ON VIEW tsworker.workers IS
  'Deprecated name of tsworker.stat_workers (removed in version 0.3)';

CREATE FUNCTION tsworker.launch(name text, module text, settings jsonb DEFAULT '{}', database name DEFAULT NULL)
RETURNS integer
AS 'MODULE_PATHNAME', 'tsworker_launch'
LANGUAGE C CALLED ON NULL INPUT VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION tsworker.launch(text, text, jsonb, name) IS
  'Starts a worker running module (a built-in name, an absolute path, or a path relative to tsworker.module_path) as the calling role; returns its pid';

CREATE FUNCTION tsworker.stop(name text)
RETURNS boolean
AS 'MODULE_PATHNAME', 'tsworker_stop'
LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION tsworker.stop(text) IS
  'Asks a worker to stop and not to be restarted; true if it was running';

CREATE FUNCTION tsworker.wake(name text)
RETURNS boolean
AS 'MODULE_PATHNAME', 'tsworker_wake'
LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION tsworker.wake(text) IS
  'Sets the latch of a worker, or of its instances (name followed by a number), when the transaction commits; true if one runs';

CREATE FUNCTION tsworker.wake(name text, at_commit boolean)
RETURNS boolean
AS 'MODULE_PATHNAME', 'tsworker_wake'
LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION tsworker.wake(text, boolean) IS
  'tsworker.wake(name), at commit (true) or at once (false)';

CREATE FUNCTION tsworker.restart(name text)
RETURNS integer
AS 'MODULE_PATHNAME', 'tsworker_restart'
LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION tsworker.restart(text) IS
  'Stops a worker and starts it again, so that it loads its module anew; returns its new pid';

CREATE FUNCTION tsworker.start(name text DEFAULT NULL)
RETURNS integer
AS 'MODULE_PATHNAME', 'tsworker_start'
LANGUAGE C CALLED ON NULL INPUT VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION tsworker.start(text) IS
  'Starts again the worker name (every worker when NULL) that is stopped, finished or disabled after repeated failures; returns how many';

CREATE FUNCTION tsworker.reload()
RETURNS integer
AS 'MODULE_PATHNAME', 'tsworker_reload'
LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION tsworker.reload() IS
  'Deprecated name of tsworker.start() (removed in version 0.3)';

REVOKE ALL ON FUNCTION tsworker.worker_status() FROM PUBLIC;
REVOKE ALL ON FUNCTION tsworker.launch(text, text, jsonb, name) FROM PUBLIC;
REVOKE ALL ON FUNCTION tsworker.stop(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION tsworker.wake(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION tsworker.wake(text, boolean) FROM PUBLIC;
REVOKE ALL ON FUNCTION tsworker.restart(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION tsworker.reload() FROM PUBLIC;
REVOKE ALL ON FUNCTION tsworker.start(text) FROM PUBLIC;
REVOKE ALL ON tsworker.workers FROM PUBLIC;
REVOKE ALL ON tsworker.stat_workers FROM PUBLIC;

GRANT USAGE ON SCHEMA tsworker TO tsworker_admin;
GRANT SELECT ON tsworker.workers TO tsworker_admin;
GRANT SELECT ON tsworker.stat_workers TO tsworker_admin;
GRANT EXECUTE ON FUNCTION tsworker.worker_status() TO tsworker_admin;
GRANT EXECUTE ON FUNCTION tsworker.launch(text, text, jsonb, name) TO tsworker_admin;
GRANT EXECUTE ON FUNCTION tsworker.stop(text) TO tsworker_admin;
GRANT EXECUTE ON FUNCTION tsworker.wake(text) TO tsworker_admin;
GRANT EXECUTE ON FUNCTION tsworker.wake(text, boolean) TO tsworker_admin;
GRANT EXECUTE ON FUNCTION tsworker.restart(text) TO tsworker_admin;
GRANT EXECUTE ON FUNCTION tsworker.reload() TO tsworker_admin;
GRANT EXECUTE ON FUNCTION tsworker.start(text) TO tsworker_admin;

-- Decisions of the built-in promoter worker (checks failing, vetoes,
-- promotions, errors), stored once this server is a primary.
CREATE TABLE tsworker.events (
    id bigserial PRIMARY KEY,
    at timestamptz NOT NULL,
    worker text NOT NULL,
    kind text NOT NULL,
    detail jsonb NOT NULL DEFAULT '{}'
);
COMMENT ON TABLE tsworker.events IS
  'Events of pg_tsworker workers (the promoter stores its decisions here after a promotion; each is also sent with NOTIFY tsworker_events)';
REVOKE ALL ON tsworker.events FROM PUBLIC;
GRANT SELECT ON tsworker.events TO tsworker_admin;

-- Cluster mode's planned operations (docs/failover.md): each asks etcd and
-- the members through a child process of the calling backend; a call's
-- timeout counts from the call (docs/sql.md says what it bounds) and a
-- call can be cancelled.
CREATE FUNCTION tsworker.switchover(candidate text DEFAULT NULL, timeout interval DEFAULT '60s', leader text DEFAULT NULL)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'tsworker_switchover'
LANGUAGE C CALLED ON NULL INPUT VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION tsworker.switchover(text, interval, text) IS
  'Cluster mode: the leader stops writes, hands the leader key to candidate (default: the most advanced eligible standby) once it holds every commit, and shuts down; returns when the new leader accepts writes; with leader, refused unless that member leads';

CREATE FUNCTION tsworker.failover(candidate text, force boolean DEFAULT false, timeout interval DEFAULT '60s')
RETURNS jsonb
AS 'MODULE_PATHNAME', 'tsworker_failover'
LANGUAGE C CALLED ON NULL INPUT VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION tsworker.failover(text, boolean, interval) IS
  'Cluster mode, no leader: candidate takes over; refused when another member holds more WAL (the error says how much) unless force';

CREATE FUNCTION tsworker.pause()
RETURNS boolean
AS 'MODULE_PATHNAME', 'tsworker_pause'
LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION tsworker.pause() IS
  'Cluster mode: maintenance mode on (no automatic failover, no fencing for lack of etcd); true if it was off';

CREATE FUNCTION tsworker.resume()
RETURNS boolean
AS 'MODULE_PATHNAME', 'tsworker_resume'
LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION tsworker.resume() IS
  'Cluster mode: maintenance mode off; true if it was on';

REVOKE ALL ON FUNCTION tsworker.switchover(text, interval, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION tsworker.failover(text, boolean, interval) FROM PUBLIC;
REVOKE ALL ON FUNCTION tsworker.pause() FROM PUBLIC;
REVOKE ALL ON FUNCTION tsworker.resume() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tsworker.switchover(text, interval, text) TO tsworker_admin;
GRANT EXECUTE ON FUNCTION tsworker.failover(text, boolean, interval) TO tsworker_admin;
GRANT EXECUTE ON FUNCTION tsworker.pause() TO tsworker_admin;
GRANT EXECUTE ON FUNCTION tsworker.resume() TO tsworker_admin;
