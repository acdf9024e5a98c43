/*
 * conninfo.test.ts — the libpq conninfo rules of src/workers/promoter/conninfo.ts
 * (used by the promoter, walarchive and cluster mode): every keyword that
 * libpq 15 to 18 knows is accepted, what node-postgres cannot honour is
 * refused with a reason, and — the kind of fault this guards — the
 * primary_conninfo that the server's own `pg_basebackup -R` writes (it lists
 * its libpq's defaults, such as 16's sslcertmode=allow and 17's
 * sslnegotiation=postgres) is accepted by whichever PostgreSQL is under test.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, describe, test } from 'node:test';

import { parseConninfo } from '../src/workers/promoter/conninfo';
import { Cluster } from './harness/cluster';

describe('conninfo', () => {
  test('keywords of libpq 16, 17 and 18 with their defaults are accepted', () => {
    const c = parseConninfo(
      "user=postgres passfile='/x/.pgpass' channel_binding=disable host=/tmp port=5432 sslmode=disable " +
        'sslnegotiation=postgres sslcompression=0 sslcertmode=allow sslsni=1 ssl_min_protocol_version=TLSv1.2 ' +
        'gssencmode=disable krbsrvname=postgres gssdelegation=0 target_session_attrs=any load_balance_hosts=disable ' +
        "min_protocol_version=3.0 max_protocol_version=latest require_auth='' oauth_issuer='' sslkeylogfile=''",
    );
    assert.equal(c.sslcertmode, 'allow');
    assert.equal(c.sslnegotiation, 'postgres');
    assert.equal(c.load_balance_hosts, 'disable');
  });

  test('values node-postgres cannot honour are refused with the reason; unknown keywords and bad values as libpq', () => {
    const refused: Array<[string, RegExp]> = [
      ['host=h sslnegotiation=direct', /direct SSL negotiation is not supported/],
      ['host=h sslcertmode=require', /sslcertmode=require is not supported/],
      ['host=h sslcertmode=maybe', /invalid value for connection option "sslcertmode": "maybe"/],
      ['host=h require_auth=scram-sha-256', /require_auth is not supported/],
      ['host=h min_protocol_version=3.2', /min_protocol_version=3.2 is not supported/],
      ['host=h load_balance_hosts=random', /load_balance_hosts=random is not supported/],
      ['host=h oauth_issuer=https://issuer', /oauth_issuer is not supported/],
      ['host=h gssdelegation=2', /invalid value for connection option "gssdelegation"/],
      ['host=h sslmdoe=require', /invalid connection option "sslmdoe"/],
      ['postgresql://archiver@127.0.0.1:5432/?passfile=/p', /a connection URI \(postgresql:\/\/\.\.\.\) is not supported here: write the keyword=value form/],
      [' postgres://h/db', /a connection URI .* is not supported/],
    ];
    for (const [conninfo, re] of refused) assert.throws(() => parseConninfo(conninfo), re, conninfo);
  });

  test("the primary_conninfo the server's own pg_basebackup -R writes is accepted", async () => {
    const primary = await Cluster.create('ci_primary', { allowStreaming: true });
    after(() => primary.cleanup());
    const standby = await Cluster.createStandby(primary, 'ci_standby', { start: false });
    after(() => standby.cleanup());
    const auto = fs.readFileSync(path.join(standby.dataDir, 'postgresql.auto.conf'), 'utf8');
    const m = /^primary_conninfo = '((?:[^']|'')*)'$/m.exec(auto);
    assert.ok(m, `no primary_conninfo in postgresql.auto.conf:\n${auto}`);
    const conninfo = m[1].replace(/''/g, "'");
    const c = parseConninfo(conninfo);
    assert.equal(c.port, String(primary.port));
  });
});
