// Opening a store: database URLs, SQLite paths, and migrations racing, on SQLite and MySQL.

import assert from "node:assert/strict";
import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { describe, test } from "node:test";
import { openDatabase } from "../src/store/connect.js";
import { createStore } from "../src/store/open.js";
import { DIALECTS, freshDatabase } from "./helpers/databases.js";

describe("openDatabase", () => {
  test("an unknown scheme is one line naming the accepted forms", () => {
    assert.throws(
      () => openDatabase("postgres://u:secret@h/db"),
      (e: Error) => {
        assert.match(e.message, /sqlite:<path>, sqlite::memory: or mysql:\/\/user:pass@host:3306\/db/);
        assert.doesNotMatch(e.message, /secret/);
        assert.doesNotMatch(e.message, /\n/);
        return true;
      },
    );
  });

  test("a relative sqlite path is taken from the working directory and its folder is created", async (t) => {
    const dir = await mkdtemp(join(tmpdir(), "jobwatch-connect-"));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const file = join(dir, "nested", "deeper", "jobwatch.db");
    const store = createStore(`sqlite:${relative(process.cwd(), file)}`);
    await store.migrate();
    await store.createJob({ operationType: "op", username: "u" });
    await store.close();
    assert.ok((await stat(file)).isFile());
  });

  test("sqlite::memory: works", async () => {
    const store = createStore("sqlite::memory:");
    await store.migrate();
    const job = await store.createJob({ operationType: "op", username: "u" });
    assert.equal((await store.getJob(job.jobId))?.jobId, job.jobId);
    await store.close();
  });
});
for (const dialect of DIALECTS) {
  describe(`store migrate on ${dialect}`, () => {
    test("migrate is safe when two processes start at once, and again later", async (t) => {
      const database = await freshDatabase(dialect);
      const a = createStore(database.url);
      const b = createStore(database.url);
      t.after(async () => {
        await a.close();
        await b.close();
        await database.drop();
      });
      await Promise.all([a.migrate(), b.migrate()]);
      await a.migrate();
      const job = await a.createJob({ operationType: "op", username: "u" });
      assert.equal((await b.getJob(job.jobId))?.status, "pending");
    });
  });
}
