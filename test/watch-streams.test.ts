// Open WatchJob streams as a resource: a revoked token ends them, a cancelled or reset stream releases its
// watcher at once (also under rapid open/cancel churn), their number is capped per user and per process,
// and many slow readers make no warning.
import assert from "node:assert/strict";
import { after, afterEach, before, describe, test } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { createToken } from "../src/auth/token-admin.js";
import { QuotaFailure } from "../src/gen/google/rpc/error_details.js";
import { JobServiceClient, WatchJobRequest } from "../src/gen/jobwatch/v1/job_service.js";
import { DIALECTS } from "./helpers/databases.js";
import type { TestServer } from "./helpers/server.js";
import { richStatusOf, startTestServer } from "./helpers/server.js";

/** Resolves when `check` holds, polling every 10 ms; rejects with `what` after `ms`. */
async function eventually(check: () => boolean, what: () => string, ms = 5000): Promise<void> {
  const until = Date.now() + ms;
  while (!check()) {
    if (Date.now() > until) throw new Error(what());
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** The google.rpc.QuotaFailure of a failed call, if any. */
function quotaFailureOf(error: grpc.ServiceError): QuotaFailure | undefined {
  const any = richStatusOf(error)?.details.find((d) => d.typeUrl === "type.googleapis.com/google.rpc.QuotaFailure");
  return any === undefined ? undefined : QuotaFailure.decode(any.value);
}

for (const dialect of DIALECTS) {
  describe(`WatchJob streams (${dialect})`, () => {
    let s: TestServer;
    /** A second server on the same database, with small caps. */
    let capped: TestServer;
    before(async () => {
      // Room for the churn test's many streams; the caps are tested on `capped`.
      s = await startTestServer({ dialect, maxWatchesPerUser: 10_000 });
      capped = await startTestServer({ sharing: s, maxWatches: 60, maxWatchesPerUser: 25 });
    });
    after(async () => {
      await capped?.stop();
      await s?.stop();
    });
    afterEach(async () => {
      for (const server of [s, capped]) {
        await eventually(
          () => server.hub.watcherCount === 0,
          () => `${server.hub.watcherCount} watchers left over`,
        );
      }
    });
    const running = async (username = "alice"): Promise<string> => {
      const worker = s.as(s.tokens.worker).worker;
      const { job } = await worker.createJob({ operationType: "stream_test", username });
      await worker.startJob({ jobId: job!.jobId });
      return job!.jobId;
    };

    test("a watch whose token is revoked ends UNAUTHENTICATED; one on another token goes on", async () => {
      const jobId = await running();
      const made = await createToken(s.store, { user: "alice", role: "normal_user" });
      const doomed = s.watch(made.token, { jobId }, { deadline: Date.now() + 20_000 });
      const kept = s.watch(s.tokens.alice, { jobId });
      await Promise.all([doomed.received(1), kept.received(1)]);
      await s.store.revokeToken(made.tokenId);
      const end = await doomed.done;
      assert.equal(grpc.status[end.code], "UNAUTHENTICATED", end.details);
      assert.match(end.details, /token .*revoked/);
      await s.as(s.tokens.worker).worker.reportProgress({ jobId, progress: 50 });
      await kept.received(2);
      kept.cancel();
      await kept.done;
    });

    test("900 watches opened and cancelled on one channel: every watcher released, the count exact", async () => {
      const jobId = await running();
      const client = new JobServiceClient(s.address, grpc.credentials.createInsecure());
      const metadata = new grpc.Metadata();
      metadata.set("authorization", `Bearer ${s.tokens.admin}`);
      const codes = new Map<string, number>();
      const open = (): Promise<grpc.ClientReadableStream<unknown>> =>
        new Promise((resolve) => {
          const call = client.watchJob(WatchJobRequest.fromPartial({ jobId }), metadata);
          call.on("status", (status: grpc.StatusObject) => {
            const name = grpc.status[status.code]!;
            codes.set(name, (codes.get(name) ?? 0) + 1);
          });
          call.on("error", () => undefined);
          call.once("data", () => resolve(call));
          call.once("status", () => resolve(call));
        });
      try {
        // Opened, registered (the first message came), then cancelled, a hundred at a time.
        // (Past 1,000 resets in a burst the HTTP/2 layer closes the connection: the next test.)
        for (let round = 0; round < 9; round++) {
          const calls = await Promise.all(Array.from({ length: 100 }, open));
          for (const call of calls) call.cancel();
        }
        await eventually(
          () => [...codes.values()].reduce((a, b) => a + b, 0) === 900,
          () => `statuses seen: ${JSON.stringify([...codes])}`,
          30_000,
        );
        assert.deepEqual([...codes], [["CANCELLED", 900]]);
        // With the channel still open, nothing is left registered.
        await eventually(
          () => s.hub.watcherCount === 0,
          () => `${s.hub.watcherCount} watchers still registered`,
          2000,
        );
        const last = await open();
        assert.equal(s.hub.watcherCount, 1);
        last.cancel();
      } finally {
        client.close();
      }
    });

    test("5,000 watches opened and cancelled at once on one channel: past the reset limit every watcher is still released", async () => {
      const jobId = await running();
      const client = new JobServiceClient(s.address, grpc.credentials.createInsecure());
      const metadata = new grpc.Metadata();
      metadata.set("authorization", `Bearer ${s.tokens.admin}`);
      const codes = new Map<string, number>();
      let ended = 0;
      try {
        // Half cancelled before the server answers, half after their first message. More than 1,000
        // resets in a burst trip Node's HTTP/2 rapid-reset protection (CVE-2023-44487): the server closes
        // the connection and the calls still open on it end INTERNAL on the client (see the README).
        await new Promise<void>((resolve) => {
          for (let i = 0; i < 5000; i++) {
            const call = client.watchJob(WatchJobRequest.fromPartial({ jobId }), metadata);
            call.on("error", () => undefined);
            call.on("status", (status: grpc.StatusObject) => {
              const name = grpc.status[status.code]!;
              codes.set(name, (codes.get(name) ?? 0) + 1);
              if (++ended === 5000) resolve();
            });
            if (i % 2 === 0) call.cancel();
            else call.once("data", () => call.cancel());
          }
        });
        assert.deepEqual(
          [...codes.keys()].filter((code) => code !== "CANCELLED" && code !== "INTERNAL"),
          [],
          JSON.stringify([...codes]),
        );
        // However each stream ended (cancelled, reset, or its connection closed), nothing stays registered.
        await eventually(
          () => s.hub.watcherCount === 0,
          () => `${s.hub.watcherCount} watchers still registered`,
          2000,
        );
        // The channel reconnects and the server goes on serving it.
        const call = client.watchJob(WatchJobRequest.fromPartial({ jobId }), metadata);
        call.on("error", () => undefined);
        await new Promise((resolve) => call.once("data", resolve));
        assert.equal(s.hub.watcherCount, 1);
        call.cancel();
      } finally {
        client.close();
      }
    });

    test("a user's watches are capped by JOBWATCH_MAX_WATCHES_PER_USER: RESOURCE_EXHAUSTED with a QuotaFailure", async () => {
      const jobId = await running();
      const watches = Array.from({ length: 25 }, () => capped.watch(s.tokens.alice, { jobId }));
      await Promise.all(watches.map((w) => w.received(1)));
      const refused = capped.watch(s.tokens.alice, { jobId });
      const end = await refused.done;
      assert.equal(grpc.status[end.code], "RESOURCE_EXHAUSTED", end.details);
      assert.match(end.details, /JOBWATCH_MAX_WATCHES_PER_USER/);
      assert.match(end.details, /25/);
      const quota = quotaFailureOf(end.error!);
      assert.equal(quota?.violations[0]?.subject, "user:alice");
      // Another user is not affected, and a closed watch frees a place.
      const bob = capped.watch(s.tokens.bob, { jobId: await running("bob") });
      await bob.received(1);
      watches[0]!.cancel();
      await watches[0]!.done;
      await eventually(
        () => capped.hub.watcherCount === 25,
        () => `${capped.hub.watcherCount} watchers`,
      );
      const again = capped.watch(s.tokens.alice, { jobId });
      await again.received(1);
      for (const w of [...watches, bob, again]) w.cancel();
      await Promise.all([...watches, bob, again].map((w) => w.done));
    });

    test("the process's watches are capped by JOBWATCH_MAX_WATCHES: RESOURCE_EXHAUSTED naming it", async () => {
      const users = ["u1", "u2", "u3"];
      const tokens = await Promise.all(
        users.map(async (user) => (await createToken(s.store, { user, role: "normal_user" })).token),
      );
      const watches = [];
      for (const [i, user] of users.entries()) {
        const jobId = await running(user);
        for (let n = 0; n < 20; n++) watches.push(capped.watch(tokens[i]!, { jobId }));
      }
      await Promise.all(watches.map((w) => w.received(1)));
      assert.equal(capped.hub.watcherCount, 60);
      const refused = capped.watch(s.tokens.bob, { jobId: await running("bob") });
      const end = await refused.done;
      assert.equal(grpc.status[end.code], "RESOURCE_EXHAUSTED", end.details);
      assert.match(end.details, /JOBWATCH_MAX_WATCHES\b/);
      assert.equal(quotaFailureOf(end.error!)?.violations[0]?.subject, "server");
      for (const w of watches) w.cancel();
      await Promise.all(watches.map((w) => w.done));
    });

    test("more than 10 slow readers: no MaxListenersExceededWarning", async () => {
      const warnings: Error[] = [];
      const onWarning = (warning: Error) => warnings.push(warning);
      process.on("warning", onWarning);
      try {
        const jobId = await running();
        // Paused streams: once their buffers are full, each waits for 'drain' (and for shutdown).
        const watches = Array.from({ length: 20 }, () => s.watch(s.tokens.admin, { jobId }));
        await Promise.all(watches.map((w) => w.received(1)));
        for (const w of watches) w.stream.pause();
        const detail = "x".repeat(1000);
        const worker = s.as(s.tokens.worker).worker;
        for (let i = 0; i < 300; i++) {
          await worker.reportProgress({ jobId, progress: i % 100, phase: `p${i}`, detail });
        }
        await new Promise((resolve) => setTimeout(resolve, 200));
        for (const w of watches) {
          w.cancel();
          w.stream.resume();
        }
        await Promise.all(watches.map((w) => w.done));
        assert.deepEqual(
          warnings.filter((w) => w.name === "MaxListenersExceededWarning").map((w) => w.message),
          [],
        );
      } finally {
        process.off("warning", onWarning);
      }
    });
  });
}
