/**
 * `Interval`: PostgreSQL's interval type in JavaScript.
 *
 * PostgreSQL keeps an interval as months, days and microseconds, each with
 * its own sign (`1 mon -2 days +03:00:00`); so does this class, and it
 * shows them as years, months, days, hours, minutes, seconds and
 * milliseconds, like node-postgres's `postgres-interval`.
 */

const US_PER_MS = 1000n;
const US_PER_S = 1_000_000n;
const US_PER_MIN = 60n * US_PER_S;
const US_PER_H = 60n * US_PER_MIN;

export class Interval {
  /** Whole years of the month part. */
  readonly years: number;
  /** Months of the month part beyond whole years (same sign as `years`). */
  readonly months: number;
  /** Days (not converted to months or hours, as in PostgreSQL). */
  readonly days: number;
  /** Hours of the time part (not wrapped at 24). */
  readonly hours: number;
  /** Minutes of the time part, 0 to ±59. */
  readonly minutes: number;
  /** Seconds of the time part, 0 to ±59. */
  readonly seconds: number;
  /** Milliseconds of the time part, with microseconds as the fraction. */
  readonly milliseconds: number;
  /** The month part, whole: `years * 12 + months`. */
  readonly totalMonths: number;
  /** The time part, whole, in microseconds. */
  readonly totalMicroseconds: bigint;

  constructor(totalMonths: number, days: number, totalMicroseconds: bigint) {
    if (!Number.isInteger(totalMonths) || !Number.isInteger(days) || typeof totalMicroseconds !== 'bigint') {
      throw new TypeError('new Interval(months, days, microseconds): integers, the last a bigint');
    }
    this.totalMonths = totalMonths;
    this.years = Math.trunc(totalMonths / 12);
    this.months = totalMonths % 12 || 0;
    this.days = days;
    this.totalMicroseconds = totalMicroseconds;
    const us = totalMicroseconds;
    this.hours = Number(us / US_PER_H);
    this.minutes = Number((us % US_PER_H) / US_PER_MIN);
    this.seconds = Number((us % US_PER_MIN) / US_PER_S);
    this.milliseconds = Number(us % US_PER_S) / Number(US_PER_MS);
    Object.freeze(this);
  }

  /** An interval from parts; every part is optional and may be negative. */
  static of(parts: {
    years?: number;
    months?: number;
    days?: number;
    hours?: number;
    minutes?: number;
    seconds?: number;
    milliseconds?: number;
  }): Interval {
    const { years = 0, months = 0, days = 0, hours = 0, minutes = 0, seconds = 0, milliseconds = 0 } = parts;
    const us =
      BigInt(Math.trunc(hours)) * US_PER_H +
      BigInt(Math.trunc(minutes)) * US_PER_MIN +
      BigInt(Math.round(seconds * 1e6)) +
      BigInt(Math.round(milliseconds * 1e3));
    return new Interval(Math.trunc(years) * 12 + Math.trunc(months), Math.trunc(days), us);
  }

  /** ISO 8601 form PostgreSQL reads back exactly, e.g. `P1Y2M3DT4H5M6.007S`. */
  toPostgres(): string {
    const us = this.totalMicroseconds;
    const neg = us < 0n;
    const abs = neg ? -us : us;
    const whole = abs / US_PER_S;
    const frac = abs % US_PER_S;
    const secs = (neg ? '-' : '') + whole.toString() + (frac ? '.' + frac.toString().padStart(6, '0') : '');
    return `P${this.totalMonths}M${this.days}DT${secs}S`;
  }

  toString(): string {
    return this.toPostgres();
  }

  toJSON(): string {
    return this.toPostgres();
  }
}
