/**
 * Prepared statements: plans kept across transactions (SPI_keepplan).
 */
import type { Addon, RawPrepared } from './addon';
import { cursorBatch, PortalCursor } from './cursor';
import type { Cursor, CursorOptions, PreparedStatement, QueryOptions, Row } from './define';
import type { Param, ParamType } from './params';
import { checkParams, resultFlags, runStatement, timeoutArg, type Rows } from './results';

export class KeptStatement<R extends Row> implements PreparedStatement<R> {
  readonly params: readonly ParamType[];
  private handle: object | undefined;

  constructor(
    private readonly addon: Addon,
    readonly sql: string,
    raw: RawPrepared,
  ) {
    this.handle = raw.handle;
    this.params = Object.freeze(raw.params);
  }

  private live(what: string): object {
    if (!this.handle) throw new Error(`statement.${what}(): the statement has been freed`);
    return this.handle;
  }

  query(params?: readonly Param[], options?: QueryOptions): Rows<R> {
    const handle = this.live('query');
    const result = this.addon.constants.result;
    return runStatement<R, object>(
      this.addon.execute,
      handle,
      checkParams(params, 'statement.query()'),
      timeoutArg(options?.timeout, 'statement.query()'),
      resultFlags(options, 'statement.query()', result),
      result.paramsArray,
    );
  }

  cursor(params?: readonly Param[], options?: CursorOptions): Cursor<R> {
    const handle = this.live('cursor');
    const batch = cursorBatch(options);
    const name = this.addon.openCursor(handle, checkParams(params, 'statement.cursor()'));
    return new PortalCursor<R>(this.addon, name, batch, options);
  }

  free(): void {
    if (!this.handle) return;
    const handle = this.handle;
    this.handle = undefined;
    this.addon.freePlan(handle);
  }
}
