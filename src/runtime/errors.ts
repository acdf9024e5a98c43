/**
 * Errors raised by the runtime.
 *
 * `PgError` has the shape of node-postgres's `DatabaseError`, so code that
 * already handles errors from `pg` handles these too.
 */

/** Fields PostgreSQL reports with an error (all optional but `code`). */
export interface PgErrorFields {
  /** SQLSTATE, e.g. `23505` for a unique violation. */
  code: string;
  /** `ERROR`, `FATAL` or `PANIC`. */
  severity?: string;
  detail?: string;
  hint?: string;
  /** 1-based character position in the statement, as a string (as in `pg`). */
  position?: string;
  internalPosition?: string;
  internalQuery?: string;
  /** The error's context lines (PostgreSQL's CONTEXT). */
  where?: string;
  schema?: string;
  table?: string;
  column?: string;
  dataType?: string;
  constraint?: string;
  /** Source file of the server's code that raised the error, e.g. `nbtinsert.c`. */
  file?: string;
  /** Its line, as a string (as in `pg`). */
  line?: string;
  /** Its function, e.g. `_bt_check_unique`. */
  routine?: string;
}

/** An error raised by PostgreSQL while running a statement for a worker. */
export class PgError extends Error implements PgErrorFields {
  code: string;
  severity?: string;
  detail?: string;
  hint?: string;
  position?: string;
  internalPosition?: string;
  internalQuery?: string;
  where?: string;
  schema?: string;
  table?: string;
  column?: string;
  dataType?: string;
  constraint?: string;
  file?: string;
  line?: string;
  routine?: string;

  constructor(message: string, fields: PgErrorFields) {
    super(message);
    this.name = 'PgError';
    this.code = fields.code;
    Object.assign(this, fields);
  }
}
