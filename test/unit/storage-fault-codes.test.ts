// Driver errors that mean "the database cannot serve right now" become UNAVAILABLE, never INTERNAL.
import assert from "node:assert/strict";
import { test } from "node:test";
import { classifyStorageError, databaseUnavailable } from "../../src/store/storage-faults.js";

test("a Galera causal read that timed out waiting for the node to catch up (ER_LOCK_WAIT_TIMEOUT) is UNAVAILABLE", () => {
  // What mysql2 throws when SET STATEMENT wsrep_sync_wait=1 FOR SELECT ... waits past innodb_lock_wait_timeout.
  const error = Object.assign(new Error("Lock wait timeout exceeded; try restarting transaction"), {
    code: "ER_LOCK_WAIT_TIMEOUT",
    errno: 1205,
  });
  const fault = classifyStorageError(error);
  assert.equal(fault?.kind, "not-ready");
  assert.equal(
    databaseUnavailable(fault!).message,
    "database unavailable: the database node is still catching up with its cluster (ER_LOCK_WAIT_TIMEOUT); try again later",
  );
});
