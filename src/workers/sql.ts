/**
 * Quoting for SQL text that built-in workers build themselves. Everything a
 * user or a spec supplies goes through one of these, never into SQL as is.
 */

/** An SQL identifier, always quoted: `a"b` → `"a""b"`. */
export function quoteIdent(name: string): string {
  return '"' + name.replace(/"/g, '""') + '"';
}

/**
 * An SQL string literal, as PostgreSQL's `quote_literal()`: `'it''s'`, and
 * `E'...'` with doubled backslashes when the text holds a backslash (right
 * whatever `standard_conforming_strings` says).
 */
export function quoteLiteral(text: string): string {
  const body = text.replace(/'/g, "''");
  return text.includes('\\') ? `E'${body.replace(/\\/g, '\\\\')}'` : `'${body}'`;
}

/**
 * A dollar-quoted string (`$x$text$x$`) whose tag does not occur in `text`,
 * with an outer tag (one `x` longer) free for an enclosing DO block, as
 * compute_ctl's `pg_quote_dollar()`.
 */
export function dollarQuote(text: string): { quoted: string; outerTag: string } {
  let tag = 'x';
  while (text.includes(tag)) tag += 'x';
  return { quoted: `$${tag}$${text}$${tag}$`, outerTag: tag + 'x' };
}
