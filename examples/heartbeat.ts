// examples/heartbeat.ts — a sample pg_tsworker worker.
//
// Every `naptime` seconds (or when woken) it records how many client
// sessions are connected, in one transaction, and logs the count.
//
//   tsworker.workers = '/path/to/heartbeat.ts'
//   tsworker_heartbeat.naptime = 5s
import { defineWorker } from 'pg-tsworker';

export default defineWorker({
  name: 'heartbeat',
  settings: {
    naptime: { type: 'int', default: 2, min: 1, max: 3600, unit: 's', description: 'Seconds between heartbeats.' },
  },
  async main(w) {
    w.query(`CREATE TABLE IF NOT EXISTS tsworker_heartbeat (
               at timestamptz NOT NULL DEFAULT now(),
               clients int NOT NULL)`);
    w.on('reload', () => w.log.info(`naptime is now ${w.settings.naptime} s`));

    do {
      const [beat] = w.transaction((tx) =>
        tx.query<{ clients: number }>(
          `INSERT INTO tsworker_heartbeat(clients)
           SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'
           RETURNING clients`,
        ),
      );
      w.log.info(`heartbeat: ${beat.clients} client session(s)`);
    } while (await w.wait({ timeout: w.settings.naptime * 1000 }));
  },
});
