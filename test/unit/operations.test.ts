// The store's operations table and the wrappers built from it: every operation listed once (the compiler
// insists), and the guard, publishing and metrics each a plain object doing what the row says.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { UnavailableError } from "../../src/errors.js";
import { Metrics } from "../../src/server/metrics.js";
import type { StorageFaultEvent } from "../../src/store/guarded-store.js";
import { guardStore } from "../../src/store/guarded-store.js";
import type { Job } from "../../src/store/job.js";
import type { Operation, OperationTable } from "../../src/store/operations.js";
import { OPERATION_NAMES, OPERATIONS } from "../../src/store/operations.js";
import { SqlJobStore } from "../../src/store/sql-job-store.js";
import type { JobStore } from "../../src/store/store.js";
import { publishingStore } from "../../src/watch/publishing-store.js";
import { testJob } from "../helpers/job.js";

// --- what the compiler refuses (tsc checks these in `npm run lint` and `npm test`) ---

const { countTokens: _dropped, ...withoutCountTokens } = OPERATIONS;
// @ts-expect-error a store operation missing from the table does not compile
const missing: OperationTable = withoutCountTokens;
// @ts-expect-error only an operation that returns the job(s) it wrote may publish (countTokens returns a number)
const wrongPublish: OperationTable = { ...OPERATIONS, countTokens: { ...OPERATIONS.countTokens, publishes: true } };
// @ts-expect-error a row for something that is no store operation does not compile either
const extra: OperationTable = { ...OPERATIONS, countJobs: { retry: "read", publishes: false, metric: "countJobs" } };
void [missing, wrongPublish, extra];

/** A store whose every operation records its calls and answers with `answer(name)`. */
function stubStore(answer: (name: Operation, call: number) => Promise<unknown>): {
  store: JobStore;
  calls: Map<Operation, number>;
} {
  const calls = new Map<Operation, number>();
  const store = Object.fromEntries(
    OPERATION_NAMES.map((name) => [
      name,
      async () => {
        const n = (calls.get(name) ?? 0) + 1;
        calls.set(name, n);
        return answer(name, n);
      },
    ]),
  ) as unknown as JobStore;
  return { store, calls };
}

/** The error mysql2 gives for a connection that broke under a statement. */
const lost = (): Error => Object.assign(new Error("read ECONNRESET"), { code: "ECONNRESET" });

describe("store operations table", () => {
  test("lists exactly the methods SqlJobStore implements", () => {
    const methods = Object.getOwnPropertyNames(SqlJobStore.prototype).filter((name) => name !== "constructor");
    assert.deepEqual([...OPERATION_NAMES].sort(), methods.sort());
  });

  test("every wrapper is a plain object with every operation and nothing else: `in` tells the truth", () => {
    const { store } = stubStore(async () => undefined);
    const wrappers = {
      guard: guardStore(store).store,
      publishing: publishingStore(store, { publish: () => undefined }),
      metrics: new Metrics().instrumentStore(store),
    };
    for (const [kind, wrapped] of Object.entries(wrappers)) {
      assert.equal(Object.getPrototypeOf(wrapped), Object.prototype, kind);
      assert.deepEqual(Object.keys(wrapped).sort(), [...OPERATION_NAMES].sort(), kind);
      assert.ok("ping" in wrapped && !("onFault" in wrapped), kind);
    }
  });

  test("a Pick of a store gets a Pick back", async () => {
    const seen: Job[] = [];
    const job = testJob();
    const sweeps = publishingStore(
      { failStaleJobs: async (_before: number) => [job, job] },
      { publish: (j) => seen.push(j) },
    );
    assert.deepEqual(Object.keys(sweeps), ["failStaleJobs"]);
    await sweeps.failStaleJobs(0);
    assert.equal(seen.length, 2);
  });

  test("the guard retries a lost connection by each row's policy and tells onFault what failed", async () => {
    const { store, calls } = stubStore(async (_name, call) => {
      if (call === 1) throw lost();
      return "second try";
    });
    const guarded = guardStore(store);
    const faults: StorageFaultEvent[] = [];
    guarded.onFault((event) => faults.push(event));
    for (const name of OPERATION_NAMES) {
      const { retry } = OPERATIONS[name];
      const run = (guarded.store[name] as () => Promise<unknown>)();
      if (retry === "read" || retry === "idempotent") {
        // ping answers nothing of its own (it only throws or not).
        assert.equal(await run, name === "ping" ? undefined : "second try", name);
        assert.equal(calls.get(name), 2, `${name} is retried once`);
      } else if (retry === "once") {
        await assert.rejects(run, UnavailableError, name);
        assert.equal(calls.get(name), 1, `${name} is not repeated`);
        assert.equal(faults.at(-1)?.operation, name);
      } else {
        await assert.rejects(
          run,
          (error: Error) => !(error instanceof UnavailableError) && /ECONNRESET/.test(error.message),
        );
        assert.equal(calls.get(name), 1, name);
      }
    }
    assert.deepEqual(
      faults.map((f) => f.operation),
      OPERATION_NAMES.filter((name) => OPERATIONS[name].retry === "once"),
    );
  });

  test("publishing hands over what the rows that publish return, once they resolve, and nothing else", async () => {
    const job = testJob();
    const { store } = stubStore(async () => job);
    const published: Operation[] = [];
    let current: Operation = "ping";
    const wrapped = publishingStore(store, { publish: () => published.push(current) });
    for (const name of OPERATION_NAMES) {
      current = name;
      await (wrapped[name] as () => Promise<unknown>)();
    }
    assert.deepEqual(
      published,
      OPERATION_NAMES.filter((name) => OPERATIONS[name].publishes),
    );
  });

  test("metrics time every operation under the row's metric label and count what its meter says", async () => {
    const job = testJob();
    const { store } = stubStore(async (name) => (name === "deleteExpired" ? 3 : [job]));
    const metrics = new Metrics();
    const wrapped = metrics.instrumentStore(store);
    for (const name of OPERATION_NAMES) await (wrapped[name] as () => Promise<unknown>)();
    const text = await metrics.registry.metrics();
    for (const name of OPERATION_NAMES) {
      assert.match(
        text,
        new RegExp(`jobwatch_db_query_seconds_count\\{operation="${OPERATIONS[name].metric}"\\} 1\\n`),
      );
    }
    assert.match(text, /jobwatch_db_up 1\n/);
    assert.match(text, /jobwatch_change_feed_poll_seconds_count 2\n/);
    assert.match(text, /jobwatch_auth_token_reloads_total 1\n/);
    assert.match(text, /jobwatch_sweeper_jobs_total\{kind="stale"\} 1\n/);
    assert.match(text, /jobwatch_sweeper_jobs_total\{kind="cancel_grace"\} 1\n/);
    assert.match(text, /jobwatch_sweeper_jobs_total\{kind="retention"\} 3\n/);
  });
});
