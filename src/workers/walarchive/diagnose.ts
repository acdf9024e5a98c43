/**
 * Errors of the source turned into what an operator needs to read: what
 * happened, in the field's words, and what to do about it.
 */

/** An error of the archive with a hint; `code` is the source's SQLSTATE when it has one. */
export class ArchiveError extends Error {
  constructor(
    message: string,
    readonly hint?: string,
    readonly code?: string,
  ) {
    super(message);
    this.name = 'ArchiveError';
  }
}

/** The source's system identifier is not the one of the WAL in the archive. */
export function systemIdMismatch(sourceId: string, archiveId: string, file: string): ArchiveError {
  return new ArchiveError(
    `the source's system identifier ${sourceId} is not the archive's ${archiveId} (read from ${file})`,
    'The conninfo points at another cluster, or the directory holds another cluster\'s WAL: fix the conninfo, or give this cluster a directory of its own.',
  );
}

/** Explain an error of a replication command or of the stream. */
export function explain(err: unknown, ctx: { slot: string | null; at: string }): ArchiveError {
  if (err instanceof ArchiveError) return err;
  const e = err as { message?: string; code?: string; hint?: string };
  const msg = e?.message ?? String(err);
  const code = e?.code;
  if (code === '42704' && ctx.slot && /replication slot/.test(msg)) {
    return new ArchiveError(
      `replication slot "${ctx.slot}" does not exist on the source`,
      `Create it on the source (SELECT pg_create_physical_replication_slot('${ctx.slot}')), or set tsworker_walarchive.create_slot = on.`,
      code,
    );
  }
  if (/has already been removed/.test(msg)) {
    return new ArchiveError(
      `the source has already removed WAL the archive needs (streaming from ${ctx.at}): ${msg}`,
      ctx.slot
        ? 'The slot no longer holds that WAL (max_slot_wal_keep_size?). The archive has a gap: take a new base backup, and move the directory\'s content away to start again from the source\'s current position.'
        : 'Use a replication slot (tsworker_walarchive.slot) so that the source keeps WAL until it is archived. The archive has a gap: take a new base backup, and move the directory\'s content away to start again.',
      code,
    );
  }
  if (/is ahead of the WAL flush position/.test(msg)) {
    return new ArchiveError(
      `the archive is ahead of the source (streaming from ${ctx.at}): ${msg}`,
      'The source is not the server this archive was made from, or it lost WAL (restored from a backup?). Check the conninfo; move the directory\'s content away to start again.',
      code,
    );
  }
  if (code && /^28/.test(code)) {
    return new ArchiveError(`the source refused the connection (SQLSTATE ${code}): ${msg}`, 'Allow a replication connection for this user in the source\'s pg_hba.conf, with a password if it needs one.', code);
  }
  if (code === '42501') {
    return new ArchiveError(`the source refused (SQLSTATE ${code}): ${msg}`, 'The user needs the REPLICATION attribute.', code);
  }
  if (code === '53300') {
    return new ArchiveError(`the source has no free WAL sender or connection (SQLSTATE ${code}): ${msg}`, 'Raise max_wal_senders on the source.', code);
  }
  return new ArchiveError(code ? `${msg} (${code})` : msg, e?.hint, code);
}
