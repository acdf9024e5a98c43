/**
 * Built-in worker `aggregate`: PostgreSQL's worker_spi, in TypeScript.
 *
 * Worker N keeps table `schemaN.counted (type, value)`: clients insert
 * 'delta' rows, and each pass folds them into the single 'total' row in one
 * statement, logs the new total, then waits `naptime` or until woken (a
 * reload, `tsworker.wake()`). Configured instances are numbered
 * 1..total_workers; `tsworker.launch('aggregate4', 'aggregate', '{"index": 4}')`
 * starts another one, like `worker_spi_launch(4)`.
 *
 *   shared_preload_libraries = 'pg_tsworker'
 *   tsworker.workers = 'aggregate'
 *   tsworker_aggregate.total_workers = 2      # aggregate1, aggregate2
 *   tsworker_aggregate.naptime = 10s
 */
import { defineWorker, type Transaction } from '../runtime/index';
import { quoteIdent } from './sql';

export { quoteIdent };

/** The schema and table a worker of index `index` serves. */
export function tableOf(schemaPrefix: string, table: string, index: number): { schema: string; table: string } {
  return { schema: `${schemaPrefix}${index}`, table };
}

/** Create the schema, the table and the unique index on the 'total' row if the schema is missing (one transaction). */
function initialize(tx: Transaction, schema: string, table: string): boolean {
  const exists = tx.query<{ n: bigint }>('SELECT count(*) AS n FROM pg_namespace WHERE nspname = $1', [schema])[0].n > 0n;
  if (exists) return false;
  const s = quoteIdent(schema);
  const t = quoteIdent(table);
  tx.query(
    `CREATE SCHEMA ${s} ` +
      `CREATE TABLE ${t} (type text CHECK (type IN ('total', 'delta')), value integer) ` +
      `CREATE UNIQUE INDEX ${quoteIdent(`${table}_unique_total`)} ON ${t} (type) WHERE type = 'total'`,
  );
  return true;
}

/** The statement of one pass: fold every 'delta' row into the 'total' row. */
export function foldStatement(schema: string, table: string): string {
  const qualified = `${quoteIdent(schema)}.${quoteIdent(table)}`;
  return (
    `WITH deleted AS (DELETE FROM ${qualified} WHERE type = 'delta' RETURNING value), ` +
    `total AS (SELECT coalesce(sum(value), 0) AS sum FROM deleted) ` +
    `UPDATE ${qualified} SET value = ${quoteIdent(table)}.value + total.sum ` +
    `FROM total WHERE type = 'total' RETURNING ${quoteIdent(table)}.value`
  );
}

export default defineWorker({
  name: 'aggregate',
  instances: 'total_workers',
  settings: {
    naptime: { type: 'int', default: 10, min: 1, unit: 's', description: 'Duration between each pass of the aggregate workers.' },
    total_workers: {
      type: 'int',
      default: 2,
      min: 0,
      max: 100,
      context: 'postmaster',
      description: 'Number of aggregate workers started with the server (aggregate1 ... aggregateN).',
    },
    database: { type: 'string', default: '', context: 'postmaster', description: 'Database the aggregate workers connect to (default: tsworker.database).' },
    role: { type: 'string', default: '', context: 'postmaster', description: 'Role the aggregate workers connect as (default: tsworker.role).' },
    schema: { type: 'string', default: 'schema', description: 'Schema name prefix; worker N serves <schema>N.<table> (read at start).' },
    table: { type: 'string', default: 'counted', description: 'Table each aggregate worker serves (read at start).' },
  },
  async main(w) {
    const index = w.index ?? 1;
    const { schema, table } = tableOf(w.settings.schema, w.settings.table, index);
    const created = w.transaction((tx) => initialize(tx, schema, table));
    w.log.log(`${created ? 'created' : 'serving'} ${schema}.${table}`);
    w.status.set({ schema, table, total: null, passes: 0 });

    // Planned once; the schema and table are those of the start (a
    // reload changes the naptime, as in worker_spi).
    const fold = w.transaction((tx) => tx.prepare<{ value: number | null }>(foldStatement(schema, table)));
    let passes = 0;

    while (await w.wait({ timeout: w.settings.naptime * 1000 })) {
      // one statement: no savepoint needed around it
      const rows = w.transaction(() => fold.query(), { statementSavepoints: false });
      passes++;
      if (rows.length > 0 && rows[0].value !== null) {
        w.log.log(`count in ${schema}.${table} is now ${rows[0].value}`);
        w.status.set({ schema, table, total: rows[0].value, passes });
      } else {
        w.status.update({ passes });
      }
    }
  },
});
