// A write that loses a race (a deadlock, a lock timeout, a revision check) is retried with backoff, then ABORTED.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { sql } from "kysely";
import pino from "pino";
import { createClient } from "../src/client/index.js";
import { AbortedError } from "../src/errors.js";
import { errorToStatus } from "../src/server/error-status.js";
import { openDatabase } from "../src/store/connect.js";
import { createJob, getJob, MAX_TRANSITION_ATTEMPTS, transition } from "../src/store/jobs.js";
import { startRule } from "../src/store/lifecycle.js";
import { jitteredBackoff } from "../src/store/lost-race.js";
import { migrateToLatest } from "../src/store/migrations.js";
import type { JobStore } from "../src/store/store.js";
import type { StoreDb, TxBody } from "../src/store/transaction.js";
import { createStoreDb, MAX_TX_ATTEMPTS } from "../src/store/transaction.js";
import type { TestDialect } from "./helpers/databases.js";
import { DIALECTS, freshDatabase } from "./helpers/databases.js";
import type { TestServer } from "./helpers/server.js";
import { failure, startTestServer } from "./helpers/server.js";
import { afterEachStatement } from "./helpers/store.js";

/** An error shaped as the driver reports it: mysql2 sets code and errno, better-sqlite3 code. */
function driverError(code: string, errno?: number): Error {
  return Object.assign(new Error(`${code}: simulated`), { code, errno });
}

/** A migrated database of `dialect` and the StoreDb on it; closed and dropped after the test. */
async function storeDb(t: { after(fn: () => Promise<void>): void }, dialect: TestDialect) {
  const database = await freshDatabase(dialect);
  const open = openDatabase(database.url);
  t.after(async () => {
    await open.db.destroy();
    await database.drop();
  });
  await migrateToLatest(open);
  return { open, db: createStoreDb(open, Date.now) };
}

describe("jittered backoff", () => {
  test("stays within a ceiling that doubles from the base up to the cap, and varies", () => {
    const limits = { baseMs: 5, capMs: 100 };
    for (const [attempt, ceiling] of [
      [1, 5],
      [2, 10],
      [3, 20],
      [5, 80],
      [6, 100],
      [60, 100],
    ] as const) {
      const delays = Array.from({ length: 200 }, () => jitteredBackoff(attempt, limits));
      assert.ok(
        delays.every((d) => d >= 0 && d <= ceiling),
        `attempt ${attempt}: every delay within [0, ${ceiling}]`,
      );
      assert.ok(new Set(delays).size > 100, `attempt ${attempt}: delays are spread, not one value`);
    }
  });
});

for (const dialect of DIALECTS) {
  describe(`lost races on ${dialect}`, () => {
    for (const [code, errno] of [
      ["ER_LOCK_DEADLOCK", 1213],
      ["ER_LOCK_WAIT_TIMEOUT", 1205],
      ["SQLITE_BUSY", undefined],
    ] as const) {
      test(`a write that always hits ${code} is retried, then AbortedError, never the raw error`, async (t) => {
        const { db } = await storeDb(t, dialect);
        let runs = 0;
        const error = await db
          .write(function* () {
            runs++;
            yield sql`select 1`.compile(db.kysely);
            throw driverError(code, errno);
          })
          .then(
            () => assert.fail("the write succeeded"),
            (e: unknown) => e,
          );
        assert.equal(runs, MAX_TX_ATTEMPTS);
        assert.ok(error instanceof AbortedError, `expected AbortedError, got ${String(error)}`);
        assert.match(error.message, new RegExp(`conflict with other writers \\(${code}\\); nothing was written`));
        assert.equal((error.cause as { code?: string }).code, code);
      });
    }

    test("a deadlock that clears is retried until the write succeeds, and nothing of the lost runs stays", async (t) => {
      const { db } = await storeDb(t, dialect);
      const k = db.kysely;
      let runs = 0;
      const body: TxBody<string> = function* () {
        runs++;
        yield k
          .insertInto("tokens")
          .values({ token_id: `t${runs}`, username: "u", role: "admin", secret_hash: `h${runs}`, created_at: runs })
          .compile();
        if (runs < 3) throw driverError("ER_LOCK_DEADLOCK", 1213);
        return "done";
      };
      assert.equal(await db.write(body), "done");
      assert.equal(runs, 3);
      const ids = (await k.selectFrom("tokens").select("token_id").execute()).map((r) => r.token_id);
      assert.deepEqual(ids, ["t3"], "the two lost runs were rolled back");
    });

    test("other errors (a unique key) are thrown at once, as they are", async (t) => {
      const { db } = await storeDb(t, dialect);
      const k = db.kysely;
      let runs = 0;
      const row = { token_id: "t1", username: "u", role: "admin", secret_hash: "h", created_at: 1 };
      await db.write(function* () {
        yield k.insertInto("tokens").values(row).compile();
      });
      await assert.rejects(
        db.write(function* () {
          runs++;
          yield k.insertInto("tokens").values(row).compile();
        }),
        (e: unknown) => !(e instanceof AbortedError) && /UNIQUE|Duplicate/i.test((e as Error).message),
      );
      assert.equal(runs, 1);
    });

    test("a transition whose revision check always fails gives up with AbortedError, the job unchanged", async (t) => {
      const { db } = await storeDb(t, dialect);
      const job = await createJob(db, { operationType: "op", username: "u" });
      let writes = 0;
      // Another writer always gets there first: every conditional update matches no row.
      const losing: StoreDb = {
        ...db,
        write: async <T>(_body: TxBody<T>): Promise<T> => {
          writes++;
          return false as T;
        },
      };
      await assert.rejects(transition(losing, job.jobId, startRule()), {
        name: "AbortedError",
        message: `job ${job.jobId} is being changed by too many writers at once; try again`,
      });
      assert.equal(writes, MAX_TRANSITION_ATTEMPTS);
      assert.deepEqual(await getJob(db, job.jobId), job);
    });

    if (dialect === "mysql") {
      test("a real InnoDB deadlock between two writes: the victim is retried and both commit", async (t) => {
        const { open, db } = await storeDb(t, dialect);
        const k = db.kysely;
        for (const id of ["a", "b"]) {
          await k
            .insertInto("tokens")
            .values({ token_id: id, username: "u", role: "admin", secret_hash: id, created_at: 0 })
            .execute();
        }
        // Both transactions take their first row lock before either asks for its second: a deadlock.
        let firstLocks = 0;
        let bothLocked!: () => void;
        const barrier = new Promise<void>((resolve) => (bothLocked = resolve));
        afterEachStatement(open.db, async (query) => {
          if (!/^update/i.test(query.sql) || query.parameters[0] !== 1) return;
          if (++firstLocks === 2) bothLocked();
          if (firstLocks <= 2) await barrier;
        });
        let runs = 0;
        const crossing = (first: string, second: string): Promise<void> =>
          db.write(function* () {
            runs++;
            yield k.updateTable("tokens").set({ created_at: 1 }).where("token_id", "=", first).compile();
            yield k.updateTable("tokens").set({ revoked_at: 2 }).where("token_id", "=", second).compile();
          });
        await Promise.all([crossing("a", "b"), crossing("b", "a")]);
        assert.equal(runs, 3, "one of the two was chosen as the deadlock victim and ran again");
        const rows = await k.selectFrom("tokens").select(["created_at", "revoked_at"]).execute();
        assert.deepEqual(
          rows.map((r) => [Number(r.created_at), Number(r.revoked_at)]),
          [
            [1, 2],
            [1, 2],
          ],
        );
      });
    }
  });
}

describe("ABORTED on the wire", () => {
  let s: TestServer;
  let lose = 0;
  before(async () => {
    // The store loses `lose` races in a row on startJob, as it would against many writers. Decided at
    // call time: whatever wraps the store may keep the method it got.
    const losing = (store: JobStore): JobStore =>
      new Proxy(store, {
        get(target, property) {
          const value = Reflect.get(target, property, target) as unknown;
          if (typeof value !== "function") return value;
          const method = (value as (...a: unknown[]) => unknown).bind(target);
          if (property !== "startJob") return method;
          return async (jobId: string) => {
            if (lose > 0) {
              lose--;
              throw new AbortedError(`job ${jobId} is being changed by too many writers at once; try again`);
            }
            return method(jobId);
          };
        },
      });
    s = await startTestServer({ wrapStore: losing });
  });
  after(() => s.stop());

  test("a lost race is ABORTED (not UNAVAILABLE) with the store's message", async () => {
    const status = errorToStatus(new AbortedError("lost"), pino({ level: "silent" }));
    assert.equal(grpc.status[status.code], "ABORTED");
    const { job } = await s.as(s.tokens.worker).worker.createJob({ operationType: "op", username: "alice" });
    lose = 1;
    const error = await failure(s.as(s.tokens.worker).worker.startJob({ jobId: job!.jobId }));
    assert.equal(grpc.status[error.code], "ABORTED");
    assert.equal(error.details, `job ${job!.jobId} is being changed by too many writers at once; try again`);
  });

  test("the client library retries ABORTED even for a call it would not repeat after UNAVAILABLE", async () => {
    const client = createClient({ address: s.address, token: s.tokens.worker, retry: { maxAttempts: 3 } });
    try {
      const { job } = await s.as(s.tokens.worker).worker.createJob({ operationType: "op", username: "alice" });
      lose = 2;
      const started = await client.worker.startJob(job!.jobId);
      assert.equal(started.revision, 2);
      assert.equal(lose, 0, "both lost races were retried");
    } finally {
      client.close();
    }
  });
});

describe("SQLite group commit: the writes of one turn share a transaction", () => {
  const token = (n: number, hash = `h${n}`) => ({
    token_id: `t${n}`,
    username: "u",
    role: "admin",
    secret_hash: hash,
    created_at: n,
  });

  test("a write that fails (a unique key) is rolled back alone; the others of its group commit", async (t) => {
    const { db } = await storeDb(t, "sqlite");
    const k = db.kysely;
    const outcomes = await Promise.allSettled(
      [token(1), token(2), token(3, "h1"), token(4)].map((row) =>
        db.write(function* () {
          yield k.insertInto("tokens").values(row).compile();
          return row.token_id;
        }),
      ),
    );
    assert.deepEqual(
      outcomes.map((o) => o.status),
      ["fulfilled", "fulfilled", "rejected", "fulfilled"],
    );
    assert.match(String((outcomes[2] as PromiseRejectedResult).reason), /UNIQUE/);
    const ids = (await k.selectFrom("tokens").select("token_id").orderBy("token_id").execute()).map((r) => r.token_id);
    assert.deepEqual(ids, ["t1", "t2", "t4"]);
  });

  test("a lost race (SQLITE_BUSY) in one write runs the whole group again, nothing applied twice", async (t) => {
    const { db } = await storeDb(t, "sqlite");
    const k = db.kysely;
    let busy = true;
    const runs: string[] = [];
    const results = await Promise.all(
      [token(1), token(2), token(3)].map((row) =>
        db.write(function* () {
          runs.push(row.token_id);
          yield k.insertInto("tokens").values(row).compile();
          if (row.token_id === "t2" && busy) {
            busy = false;
            throw driverError("SQLITE_BUSY");
          }
          return row.token_id;
        }),
      ),
    );
    assert.deepEqual(results, ["t1", "t2", "t3"]);
    // The first run of the group stopped at t2 and was rolled back whole; the second ran all three.
    assert.deepEqual(runs, ["t1", "t2", "t1", "t2", "t3"]);
    const ids = (await k.selectFrom("tokens").select("token_id").orderBy("token_id").execute()).map((r) => r.token_id);
    assert.deepEqual(ids, ["t1", "t2", "t3"]);
  });
});
