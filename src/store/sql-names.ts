// Quoting SQL identifiers (table, column and database names) as each dialect does, in one place.
import type { Dialect } from "./connect.js";

/**
 * The quote of an identifier in the dialect, as Kysely writes it (a query log reads the same): a backtick on
 * MySQL, a double quote on SQLite. The hot-path statements put it around
 * names written in the code (every column is quoted: `at` is a keyword on MySQL).
 */
export const IDENTIFIER_QUOTE: Readonly<Record<Dialect, "`" | '"'>> = { mysql: "`", sqlite: '"' };

/** An identifier quoted for the dialect, its quote doubled inside it: safe for any name, e.g. a database's. */
export function quoteIdentifier(dialect: Dialect, name: string): string {
  const q = IDENTIFIER_QUOTE[dialect];
  return q + name.replaceAll(q, q + q) + q;
}
