-- bench/spi/plpgsql.sql — the PL/pgSQL side of the SPI benchmark: the same
-- loops as worker.ts and tsw_bench_c.c, where PL/pgSQL can express them.
-- Each function times its loop with clock_timestamp() and returns
-- (seconds, checksum). A function call is one transaction: the caller's
-- commit is not part of the time (it is for the C and TypeScript workers;
-- with fsync = off it costs next to nothing).
--
-- select1 cannot run one transaction per SELECT in a function: bench_pl_select1
-- runs its n SELECT 1 inside the one transaction of the call, and the runner
-- labels the result "(1 txn)". It is not comparable to the other systems'
-- select1, which pay n commits.

CREATE OR REPLACE FUNCTION bench_pl_select1(n int, OUT seconds float8, OUT checksum int8)
LANGUAGE plpgsql AS $$
DECLARE
  t0 timestamptz;
  v int;
  s int8 := 0;
BEGIN
  t0 := clock_timestamp();
  FOR i IN 1..n LOOP
    SELECT 1 INTO v;
    s := s + v;
  END LOOP;
  seconds := extract(epoch FROM clock_timestamp() - t0);
  checksum := s;
END
$$;

CREATE OR REPLACE FUNCTION bench_pl_insert(n int, OUT seconds float8, OUT checksum int8)
LANGUAGE plpgsql AS $$
DECLARE
  t0 timestamptz;
  k int8;
  v text;
  cnt int8 := 0;
  got int8;
BEGIN
  t0 := clock_timestamp();
  FOR i IN 1..n LOOP
    k := i;
    v := 'v' || i;
    INSERT INTO bench_ins(id, v) VALUES (k, v);
    GET DIAGNOSTICS got = ROW_COUNT;
    cnt := cnt + got;
  END LOOP;
  seconds := extract(epoch FROM clock_timestamp() - t0);
  checksum := cnt;
END
$$;

-- A FOR loop over a query reads through a cursor (PL/pgSQL fetches 10 rows
-- at a time). Using each column makes PL/pgSQL look at every value; the
-- ::text casts run the same output functions the C worker calls.
CREATE OR REPLACE FUNCTION bench_pl_read(OUT seconds float8, OUT checksum int8)
LANGUAGE plpgsql AS $$
DECLARE
  t0 timestamptz;
  r bench_read%ROWTYPE;
  rows int8 := 0;
  len int8 := 0;
  idsum int8 := 0;
  fsum float8 := 0;
BEGIN
  t0 := clock_timestamp();
  FOR r IN SELECT id, n, f, t, ts, b FROM bench_read LOOP
    idsum := idsum + r.id;
    len := len + length(r.n::text) + length(r.t) + length(r.ts::text) + CASE WHEN r.b THEN 1 ELSE 0 END;
    fsum := fsum + r.f;
    rows := rows + 1;
  END LOOP;
  seconds := extract(epoch FROM clock_timestamp() - t0);
  checksum := rows;
END
$$;

-- Static SQL in PL/pgSQL is prepared once per session (SPI_prepare +
-- SPI_keepplan) and executed with the variable as a parameter.
CREATE OR REPLACE FUNCTION bench_pl_lookup(n int, OUT seconds float8, OUT checksum int8)
LANGUAGE plpgsql AS $$
DECLARE
  t0 timestamptz;
  maxid int8;
  x int8 := 42;
  k int8;
  s text;
  total int8 := 0;
BEGIN
  SELECT max(id) INTO maxid FROM bench_read;
  t0 := clock_timestamp();
  FOR i IN 1..n LOOP
    x := (x * 1103515245 + 12345) % 2147483648;
    k := 1 + x % maxid;
    SELECT t INTO s FROM bench_read WHERE id = k;
    IF FOUND THEN
      total := total + length(s);
    END IF;
  END LOOP;
  seconds := extract(epoch FROM clock_timestamp() - t0);
  checksum := total;
END
$$;
