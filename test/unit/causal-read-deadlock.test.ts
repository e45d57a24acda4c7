// A causal read on Galera that a replicated writeset aborts (ER_LOCK_DEADLOCK) is asked again instead of failing
// the call with INTERNAL (test:guarantees found GetJob answering INTERNAL through a node catching up).
import assert from "node:assert/strict";
import { test } from "node:test";
import type { Kysely } from "kysely";
import { CompiledQuery } from "kysely";
import { AbortedError } from "../../src/errors.js";
import { causalReader } from "../../src/store/causal-read.js";
import type { Database } from "../../src/store/database.js";

/** A Kysely stand-in on a Galera node whose causal SELECTs fail `failures` times with the given error first. */
function galeraNode(failures: number, error: Error & { code?: string; errno?: number }) {
  const statements: string[] = [];
  let left = failures;
  const kysely = {
    async executeQuery(query: CompiledQuery) {
      statements.push(query.sql);
      if (query.sql.includes("@@wsrep_on")) return { rows: [{ on: 1, version: "10.11.19-MariaDB" }] };
      if (left-- > 0) throw error;
      return { rows: [{ id: "job-1" }] };
    },
  } as unknown as Kysely<Database>;
  return { kysely, statements };
}

const deadlock = () =>
  Object.assign(new Error("Deadlock found when trying to get lock; try restarting transaction"), {
    code: "ER_LOCK_DEADLOCK",
    errno: 1213,
  });
const select = { compile: () => CompiledQuery.raw("select id from jobs where id = ?", ["job-1"]) };

test("a causal read aborted as a deadlock is run again and returns its rows", async () => {
  const node = galeraNode(2, deadlock());
  const rows = await causalReader(node.kysely, "mysql").select(select);
  assert.deepEqual(rows, [{ id: "job-1" }]);
  const causal = node.statements.filter((sql) => sql.startsWith("SET STATEMENT wsrep_sync_wait=1 FOR"));
  assert.equal(causal.length, 3);
});

test("a causal read that keeps deadlocking gives up with ABORTED (try again), the database's error as its cause", async () => {
  const node = galeraNode(100, deadlock());
  await assert.rejects(causalReader(node.kysely, "mysql").select(select), (error: Error) => {
    assert.ok(error instanceof AbortedError, String(error));
    assert.match(error.message, /ER_LOCK_DEADLOCK.*try again/);
    assert.equal((error.cause as { code?: string }).code, "ER_LOCK_DEADLOCK");
    return true;
  });
  assert.equal(node.statements.filter((sql) => sql.startsWith("SET STATEMENT")).length, 6);
});

test("any other error of a causal read is not retried", async () => {
  const node = galeraNode(1, Object.assign(new Error("no such table"), { code: "ER_NO_SUCH_TABLE", errno: 1146 }));
  await assert.rejects(causalReader(node.kysely, "mysql").select(select), { code: "ER_NO_SUCH_TABLE" });
  assert.equal(node.statements.filter((sql) => sql.startsWith("SET STATEMENT")).length, 1);
});
