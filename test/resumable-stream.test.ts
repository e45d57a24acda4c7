// The client's one reconnect core: watchJob and watchJobs, given the very same options object, both resume
// after a dropped server without a change repeated or a status lost, and report it through the same callbacks.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, test } from "node:test";
import {
  createClient,
  type Job,
  JobStatus,
  type JobsWatchEvent,
  type ReconnectEvent,
  UnavailableError,
} from "../src/client/index.js";
import { DIALECTS } from "./helpers/databases.js";
import { startReplica } from "./helpers/replica.js";
import { startTestServer, type TestServer } from "./helpers/server.js";

/** What the shared callbacks saw, per call (told apart by the position each event carries). */
interface Seen {
  retries: ReconnectEvent<object>[];
  resumed: object[];
  connected: number;
}

/** One options object for both calls: only what the two have in common, as one set of options. */
function sharedOptions(signal: AbortSignal) {
  const seen = {
    job: { retries: [], resumed: [], connected: 0 } as Seen,
    jobs: { retries: [], resumed: [], connected: 0 } as Seen,
  };
  const of = (position: object): Seen => ("cursor" in position ? seen.jobs : seen.job);
  let connects = 0;
  const options = {
    signal,
    backoff: { initialDelayMs: 20, maxDelayMs: 200 },
    giveUpAfterMs: 60_000,
    onRetry: (event: ReconnectEvent<object>) => void of(event).retries.push(event),
    onResume: (position: object) => void of(position).resumed.push(position),
    onConnected: () => void connects++,
  };
  return { options, seen, connects: () => connects };
}

/** Revisions strictly increase: nothing handed over twice, nothing out of order. */
function assertIncreasing(revisions: number[], what: string): void {
  for (let i = 1; i < revisions.length; i++) {
    assert.ok(revisions[i]! > revisions[i - 1]!, `${what}: revision ${revisions[i]} after ${revisions[i - 1]}`);
  }
}

/** Resolves once `check` holds, polling (the watches run on their own). */
async function until(check: () => boolean, what: string): Promise<void> {
  const giveUp = Date.now() + 20_000;
  while (!check()) {
    if (Date.now() > giveUp) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

for (const dialect of DIALECTS) {
  describe(`the reconnect core: watchJob and watchJobs alike (${dialect})`, () => {
    let s: TestServer;
    before(async () => {
      s = await startTestServer({ dialect, pollMs: 20 });
    });
    after(async () => {
      await s?.stop();
    });

    test("one options object, a server killed and restarted on its port: both resume, nothing repeated or lost", async () => {
      const first = await startReplica(s);
      const port = first.address.split(":")[1]!;
      const client = createClient({ address: first.address, token: s.tokens.alice });
      const owner = s.as(s.tokens.worker).worker;
      const op = `core_${randomUUID().slice(0, 8)}`;
      const stop = new AbortController();
      const { options, seen, connects } = sharedOptions(stop.signal);
      try {
        const job = (await owner.createJob({ operationType: op, username: "alice" })).job!;
        const jobs: Job[] = [];
        const events: JobsWatchEvent[] = [];
        const single = (async () => {
          for await (const j of client.watchJob(job.jobId, options)) jobs.push(j);
        })();
        const set = (async () => {
          for await (const e of client.watchJobs({ operationType: op }, options)) events.push(e);
        })().catch((err: unknown) => {
          if (!stop.signal.aborted) throw err;
        });
        const changed = () => events.filter((e) => e.type === "changed" || e.type === "snapshot");
        await until(() => jobs.length >= 1 && events.some((e) => e.type === "synced"), "both watches to start");
        await owner.startJob({ jobId: job.jobId });
        await owner.reportProgress({ jobId: job.jobId, progress: 10 });
        await until(() => jobs.at(-1)?.progress === 10 && changed().at(-1)?.job.progress === 10, "progress 10");

        await first.stop({ kill: true });
        // While the watched server is gone the job moves on through another server on the database.
        await owner.reportProgress({ jobId: job.jobId, progress: 40, phase: "semantic" });
        await owner.reportProgress({ jobId: job.jobId, progress: 60 });
        const second = await startReplica(s, `127.0.0.1:${port}`);
        try {
          await until(() => jobs.at(-1)?.progress === 60 && changed().at(-1)?.job.progress === 60, "progress 60");
          await owner.completeJob({ jobId: job.jobId });
          await single;
          await until(() => changed().at(-1)?.job.status === JobStatus.JOB_STATUS_COMPLETED, "COMPLETED");
          stop.abort();
          await set;
        } finally {
          await second.stop();
        }

        assertIncreasing(
          jobs.map((j) => j.revision),
          "watchJob",
        );
        assertIncreasing(
          changed().map((e) => e.job.revision),
          "watchJobs",
        );
        assert.equal(jobs.at(-1)!.status, JobStatus.JOB_STATUS_COMPLETED);
        assert.equal(events.filter((e) => e.type === "reset").length, 0, "resumed from its cursor, no new snapshot");
        // The same callbacks heard both calls: each retried from where it was, and said so when back.
        assert.ok(seen.job.retries.length >= 1 && seen.jobs.retries.length >= 1, "both reconnected");
        for (const r of seen.job.retries) assert.ok((r as unknown as { lastRevision: number }).lastRevision >= 3);
        for (const r of seen.jobs.retries) assert.notEqual((r as unknown as { cursor: string }).cursor, "");
        assert.equal(seen.job.resumed.length, 1);
        assert.equal(seen.jobs.resumed.length, 1);
        assert.ok(connects() >= 4, `each call connected twice: ${connects()}`);
      } finally {
        stop.abort();
        client.close();
      }
    });

    test("giveUpAfterMs ends either watch of a server that stays away with UnavailableError", {
      timeout: 30_000,
    }, async () => {
      const client = createClient({ address: "127.0.0.1:1", token: s.tokens.alice });
      const options = { backoff: { initialDelayMs: 20, maxDelayMs: 50 }, giveUpAfterMs: 300 };
      try {
        const single = client.watchJob(randomUUID(), options).next();
        const set = client.watchJobs({}, options).next();
        // Both handled at once: awaiting one first left the other's rejection unhandled if it came sooner.
        await Promise.all(
          [single, set].map((watch) => assert.rejects(watch, (err: unknown) => err instanceof UnavailableError)),
        );
      } finally {
        client.close();
      }
    });
  });
}
