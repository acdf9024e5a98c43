/**
 * pg-tsworker: PostgreSQL background workers written in TypeScript.
 *
 * Worker modules import from here; inside the server, `pg-tsworker`
 * resolves to the installed runtime whatever directory the module is in.
 */
export { defineWorker } from './define';
export type {
  Cursor,
  CursorOptions,
  Json,
  Logger,
  RestartPolicy,
  PreparedStatement,
  QueryOptions,
  QueryResult,
  ResultOptions,
  Row,
  Transaction,
  TransactionOptions,
  SynchronousCommit,
  WaitOptions,
  WorkerContext,
  WorkerDefinition,
  WorkerEvents,
  WorkerStatus,
} from './define';
export type { Notification, NotificationHandler } from './listen';
export { PgError } from './errors';
export { Rows } from './results';
export type { PgErrorFields } from './errors';
export type { FieldInfo } from './addon';
export type { Param, ParamType } from './params';
export { Interval } from './interval';
export type {
  BoolSetting,
  EnumSetting,
  IntSetting,
  RealSetting,
  SettingSpec,
  SettingsSpec,
  SettingUnit,
  SettingValues,
  StringSetting,
} from './settings';
