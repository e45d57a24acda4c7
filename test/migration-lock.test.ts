// The MySQL migration lock row: one migrating process at a time on any engine, a dead holder's lock taken over.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { sql } from "kysely";
import { withMigrationLock } from "../src/store/migrations.js";
import { createStore } from "../src/store/open.js";
import { freshDatabase, TEST_MYSQL_URL } from "./helpers/databases.js";

describe("mysql: migration lock", { skip: TEST_MYSQL_URL ? false : "JOBWATCH_TEST_MYSQL_URL is not set" }, () => {
  test("bodies under the lock never overlap, whichever connection runs them", async (t) => {
    const database = await freshDatabase("mysql");
    const stores = [createStore(database.url), createStore(database.url), createStore(database.url)];
    t.after(async () => {
      await Promise.all(stores.map((s) => s.close()));
      await database.drop();
    });
    let inside = 0;
    let most = 0;
    await Promise.all(
      stores.map((s) =>
        withMigrationLock(s.db, async () => {
          inside++;
          most = Math.max(most, inside);
          await new Promise((resolve) => setTimeout(resolve, 100));
          inside--;
        }),
      ),
    );
    assert.equal(most, 1);
    const rows = await sql`select count(*) as n from jobwatch_migration_lock`.execute(stores[0]!.db);
    assert.equal(Number((rows.rows[0] as { n: number }).n), 0, "the lock row is removed after use");
  });

  test("a lock left by a process that died (not renewed) is taken over, and migrate completes", async (t) => {
    const database = await freshDatabase("mysql");
    const store = createStore(database.url);
    t.after(async () => {
      await store.close();
      await database.drop();
    });
    await sql`create table jobwatch_migration_lock (id integer not null primary key, owner varchar(64) not null, expires_at bigint not null)`.execute(
      store.db,
    );
    await sql`insert into jobwatch_migration_lock values (1, 'dead', ${Date.now() - 1000})`.execute(store.db);
    await store.migrate();
    await store.createJob({ operationType: "op", username: "u" });
  });
});
