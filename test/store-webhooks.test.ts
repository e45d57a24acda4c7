// The webhook outbox's lease against real databases: an attempt answered after its lease ran out.

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { SqlJobStore } from "../src/store/sql-job-store.js";
import type { DeliveryAttempt } from "../src/store/webhooks.js";
import { DIALECTS } from "./helpers/databases.js";
import { jobIn, setup } from "./helpers/store.js";

const LEASE_MS = 1000;
const room = { perWebhook: 4, inFlight: new Map<string, number>() };

/** A webhook told of every user's completed jobs, and one completed job's delivery due now. */
async function oneDelivery(store: SqlJobStore): Promise<string> {
  const { webhookId } = await store.createWebhook({
    webhookId: "00000000-0000-4000-8000-000000000001",
    owner: "admin",
    url: "https://127.0.0.1:1/hook",
    operationTypes: [],
    statuses: ["completed"],
    allUsers: true,
    secret: "whsec_dGVzdA==",
  });
  await jobIn(store, "completed");
  return webhookId;
}

const answered = (at: number, httpStatus: number | null, error: string | null): DeliveryAttempt => ({
  at,
  httpStatus,
  error,
  latencyMs: 5,
});

for (const dialect of DIALECTS) {
  describe(`webhook outbox leases on ${dialect}`, () => {
    test("an answer after the lease ran out and another dispatcher claimed the delivery is not recorded", async (t) => {
      const { stores, clock } = await setup(t, dialect, 2);
      const [a, b] = [stores[0]!, stores[1]!];
      const webhookId = await oneDelivery(a);
      const [claimedByA] = await a.claimDeliveries("dispatcher-a", LEASE_MS, 10, room);
      assert.ok(claimedByA, "dispatcher a claims the delivery");
      assert.deepEqual(await b.claimDeliveries("dispatcher-b", LEASE_MS, 10, room), [], "leased to a");
      clock.advance(LEASE_MS + 1);
      const [claimedByB] = await b.claimDeliveries("dispatcher-b", LEASE_MS, 10, room);
      assert.equal(claimedByB?.deliverySeq, claimedByA.deliverySeq, "the lease ran out: b claims it");

      // a's receiver answers 200 now, too late: b's attempt (a 503) is the one that counts.
      assert.equal(
        await a.finishDelivery("dispatcher-a", claimedByA, answered(clock.t, 200, null), { state: "delivered" }),
        false,
      );
      const retryAt = clock.t + 5000;
      assert.equal(
        await b.finishDelivery("dispatcher-b", claimedByB, answered(clock.t, 503, "HTTP 503"), {
          state: "pending",
          retryAt,
        }),
        true,
      );
      const [delivery] = await a.listDeliveries(webhookId, { limit: 10 });
      assert.equal(delivery?.state, "pending");
      assert.equal(delivery?.attempts, 1);
      assert.equal(delivery?.nextAttemptAt, retryAt);
      assert.deepEqual(
        delivery?.attemptLog.map((x) => x.httpStatus),
        [503],
      );
      // Due again for anyone at its retry time, not held by a lease a's answer freed or left.
      clock.advance(5000);
      assert.equal((await a.claimDeliveries("dispatcher-a", LEASE_MS, 10, room)).length, 1);
    });

    test("an answer after the lease ran out, with no other claim in between, is still recorded", async (t) => {
      const { store, clock } = await setup(t, dialect);
      const webhookId = await oneDelivery(store);
      const [claimed] = await store.claimDeliveries("dispatcher-a", LEASE_MS, 10, room);
      assert.ok(claimed);
      clock.advance(LEASE_MS * 3);
      assert.equal(
        await store.finishDelivery("dispatcher-a", claimed, answered(clock.t, 204, null), { state: "delivered" }),
        true,
      );
      const [delivery] = await store.listDeliveries(webhookId, { limit: 10 });
      assert.equal(delivery?.state, "delivered");
      assert.deepEqual(
        delivery?.attemptLog.map((x) => x.httpStatus),
        [204],
      );
      assert.deepEqual(await store.claimDeliveries("dispatcher-b", LEASE_MS, 10, room), [], "nothing left to send");
    });
  });
}
