// Identifier quoting: the same text Kysely writes for the same name, on both dialects, any name.
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  DummyDriver,
  Kysely,
  MysqlAdapter,
  MysqlIntrospector,
  MysqlQueryCompiler,
  SqliteAdapter,
  SqliteIntrospector,
  SqliteQueryCompiler,
} from "kysely";
import { quoteIdentifier } from "../../src/store/sql-names.js";

// biome-ignore lint/suspicious/noExplicitAny: a query builder over no schema, only to compile table names
const builders: Record<"mysql" | "sqlite", Kysely<any>> = {
  mysql: new Kysely({
    dialect: {
      createAdapter: () => new MysqlAdapter(),
      createDriver: () => new DummyDriver(),
      createIntrospector: (db) => new MysqlIntrospector(db),
      createQueryCompiler: () => new MysqlQueryCompiler(),
    },
  }),
  sqlite: new Kysely({
    dialect: {
      createAdapter: () => new SqliteAdapter(),
      createDriver: () => new DummyDriver(),
      createIntrospector: (db) => new SqliteIntrospector(db),
      createQueryCompiler: () => new SqliteQueryCompiler(),
    },
  }),
};

for (const dialect of ["mysql", "sqlite"] as const) {
  test(`${dialect}: an identifier is quoted as Kysely quotes it, a quote inside it doubled`, () => {
    for (const name of ["jobs", "at", "jobwatch_t_0a1b", "a`b", 'a"b', 'a``b""c']) {
      const compiled = builders[dialect].selectFrom(name).selectAll().compile().sql;
      assert.equal(`select * from ${quoteIdentifier(dialect, name)}`, compiled, name);
    }
  });
}
