// withHeartbeats: a quiet source gets heartbeats between its values; nothing is lost, reordered or read twice.
import assert from "node:assert/strict";
import { test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { withHeartbeats } from "../../src/server/heartbeats.js";

test("heartbeats while the source is quiet, values in order, each read once", async () => {
  let reads = 0;
  async function* source(): AsyncGenerator<number> {
    reads++;
    yield 1;
    await sleep(120);
    reads++;
    yield 2;
  }
  const out: (number | string)[] = [];
  for await (const v of withHeartbeats(source(), 50, () => "beat")) out.push(v);
  assert.deepEqual(
    out.filter((v) => v !== "beat"),
    [1, 2],
  );
  assert.ok(out.filter((v) => v === "beat").length >= 1, `expected a heartbeat between 1 and 2: ${out.join(",")}`);
  assert.equal(out[0], 1);
  assert.equal(out.at(-1), 2);
  assert.equal(reads, 2);
});

test("returning the wrapper returns the source (its finally runs)", async () => {
  let cleaned = false;
  async function* source(): AsyncGenerator<number> {
    try {
      yield 1;
      yield 2;
    } finally {
      cleaned = true;
    }
  }
  for await (const v of withHeartbeats(source(), 1000, () => 0)) {
    if (v === 1) break;
  }
  await sleep(10);
  assert.equal(cleaned, true);
});
