// The transport's limits, each set through its JOBWATCH_* variable on a real `jobwatch serve` and tripped as a client
// would trip it: streams per connection, keepalive enforcement (GOAWAY ENHANCE_YOUR_CALM), connection age with its
// grace (watchers resume with nothing lost), idle connections, HTTP/2 session memory, each rpc's largest request.
import assert from "node:assert/strict";
import { type ClientHttp2Session, connect, constants } from "node:http2";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import * as grpc from "@grpc/grpc-js";
import type { Job, JobwatchClient } from "../src/client/index.js";
import { createClient, JobStatus } from "../src/client/index.js";
import { GetJobDetailsRequest, JobServiceClient, WatchJobRequest } from "../src/gen/jobwatch/v1/job_service.js";
import { CompleteJobRequest, JobWorkerServiceClient } from "../src/gen/jobwatch/v1/job_worker_service.js";
import type { Replica, RunTokens } from "./guarantees/replicas.js";
import { prepareDatabase, spawnReplica } from "./guarantees/replicas.js";
import type { TestDatabase } from "./helpers/databases.js";
import { freshDatabase } from "./helpers/databases.js";

/** A `jobwatch serve` with `env`, on a new SQLite database, with a RUNNING job to watch. */
async function serverWith(env: Record<string, string>): Promise<{
  replica: Replica;
  tokens: RunTokens;
  client: JobwatchClient;
  job: Job;
  close(): Promise<void>;
}> {
  const database: TestDatabase = await freshDatabase("sqlite");
  const tokens = await prepareDatabase(database.url);
  const replica = await spawnReplica("transport", database.url, env);
  const client = createClient({ address: replica.address, token: tokens.admin });
  const job = await client.worker.startJob(
    (await client.worker.createJob({ operationType: "t", username: "alice" })).jobId,
  );
  return {
    replica,
    tokens,
    client,
    job,
    async close() {
      client.close();
      await replica.stop();
      await database.drop();
    },
  };
}

/** A raw HTTP/2 connection to the server, and what it was told: the GOAWAY (code, data) if any. */
async function rawSession(address: string): Promise<{
  session: ClientHttp2Session;
  goaway: Promise<{ code: number; data: string }>;
}> {
  const session = connect(`http://${address}`);
  session.on("error", () => undefined);
  const goaway = new Promise<{ code: number; data: string }>((resolve) =>
    session.once("goaway", (code: number, _last: number, data?: Buffer) =>
      resolve({ code, data: data?.toString() ?? "" }),
    ),
  );
  await new Promise<void>((resolve) => session.once("remoteSettings", () => resolve()));
  return { session, goaway };
}

function metadata(token: string): grpc.Metadata {
  const md = new grpc.Metadata();
  md.set("authorization", `Bearer ${token}`);
  return md;
}

describe("transport limits", { timeout: 120_000 }, () => {
  describe("streams per connection and keepalive enforcement", () => {
    let s: Awaited<ReturnType<typeof serverWith>>;
    before(async () => {
      s = await serverWith({
        JOBWATCH_MAX_STREAMS_PER_CONNECTION: "2",
        JOBWATCH_KEEPALIVE_MIN_PING_INTERVAL: "200ms",
        JOBWATCH_KEEPALIVE_MAX_PING_STRIKES: "2",
      });
    });
    after(() => s.close());

    test("JOBWATCH_MAX_STREAMS_PER_CONNECTION=2: a third call on one connection waits until one of two ends", async () => {
      const { session } = await rawSession(s.replica.address);
      assert.equal(session.remoteSettings.maxConcurrentStreams, 2);
      session.close();
      const raw = new JobServiceClient(s.replica.address, grpc.credentials.createInsecure());
      try {
        const open = () => raw.watchJob(WatchJobRequest.fromPartial({ jobId: s.job.jobId }), metadata(s.tokens.admin));
        const first = (call: grpc.ClientReadableStream<unknown>) =>
          new Promise<void>((resolve) => call.once("data", () => resolve()));
        const calls = [open(), open(), open()];
        for (const c of calls) c.on("error", () => undefined);
        await Promise.all([first(calls[0]!), first(calls[1]!)]);
        const third = first(calls[2]!);
        assert.equal(await Promise.race([third.then(() => "served"), sleep(1000).then(() => "waiting")]), "waiting");
        calls[0]!.cancel();
        await third;
        for (const c of calls) c.cancel();
      } finally {
        raw.close();
      }
    });

    test("a client pinging more often than JOBWATCH_KEEPALIVE_MIN_PING_INTERVAL is told GOAWAY ENHANCE_YOUR_CALM too_many_pings", async () => {
      const { session, goaway } = await rawSession(s.replica.address);
      const pinging = setInterval(() => session.ping(() => undefined), 20);
      try {
        const told = await Promise.race([goaway, sleep(5000).then(() => undefined)]);
        assert.deepEqual(told, { code: constants.NGHTTP2_ENHANCE_YOUR_CALM, data: "too_many_pings" });
      } finally {
        clearInterval(pinging);
        session.destroy();
      }
    });

    test("a client pinging at the allowed pace is served as long as it likes", async () => {
      const { session, goaway } = await rawSession(s.replica.address);
      try {
        for (let i = 0; i < 6; i++) {
          await new Promise<void>((resolve, reject) => session.ping((error) => (error ? reject(error) : resolve())));
          await sleep(250);
        }
        assert.equal(await Promise.race([goaway.then(() => "goaway"), sleep(100).then(() => "served")]), "served");
      } finally {
        session.destroy();
      }
    });
  });

  describe("connection age with grace, and idle connections", () => {
    let s: Awaited<ReturnType<typeof serverWith>>;
    before(async () => {
      s = await serverWith({
        JOBWATCH_MAX_CONNECTION_AGE: "1s",
        JOBWATCH_MAX_CONNECTION_AGE_GRACE: "500ms",
        JOBWATCH_MAX_CONNECTION_IDLE: "700ms",
      });
    });
    after(() => s.close());

    test("JOBWATCH_MAX_CONNECTION_IDLE: a connection without calls is told GOAWAY", async () => {
      const { session, goaway } = await rawSession(s.replica.address);
      const started = Date.now();
      const told = await Promise.race([goaway, sleep(5000).then(() => undefined)]);
      assert.equal(told?.code, constants.NGHTTP2_NO_ERROR);
      assert.ok(Date.now() - started >= 500, `GOAWAY after ${Date.now() - started} ms`);
      session.destroy();
    });

    test("JOBWATCH_MAX_CONNECTION_AGE with its grace: a watch outlives many connections, resuming with nothing lost", async () => {
      let resumes = 0;
      const seen: Job[] = [];
      const watching = (async () => {
        for await (const j of s.client.watchJob(s.job.jobId, {
          onResume: () => resumes++,
          backoff: { maxDelayMs: 200 },
        })) {
          seen.push(j);
        }
      })();
      const acked: Job[] = [];
      for (let p = 1; p <= 40; p++) {
        acked.push(await s.client.worker.reportProgress(s.job.jobId, p));
        await sleep(100);
      }
      acked.push(await s.client.worker.completeJob(s.job.jobId, { ok: true }));
      await watching;
      // Every connection lasted 1 s (+ jitter) and 0.5 s of grace: the 4 s watch was cut and resumed.
      assert.ok(resumes >= 2, `${resumes} resumes`);
      assert.equal(seen.at(-1)?.status, JobStatus.JOB_STATUS_COMPLETED);
      const revisions = seen.map((j) => j.revision);
      assert.deepEqual(
        revisions,
        [...new Set(revisions)].sort((a, b) => a - b),
        "a revision twice or out of order",
      );
      // At one change per 100 ms the reader keeps up: every acknowledged revision arrives, none coalesced away.
      assert.deepEqual(
        acked.map((j) => j.revision).filter((r) => !revisions.includes(r)),
        [],
      );
    });
  });

  test("JOBWATCH_MAX_SESSION_MEMORY_MB: past it, new calls on the connection are refused RESOURCE_EXHAUSTED", async () => {
    const s = await serverWith({
      JOBWATCH_MAX_SESSION_MEMORY_MB: "1",
      JOBWATCH_MAX_STREAMS_PER_CONNECTION: "100000",
      JOBWATCH_MAX_WATCHES_PER_USER: "100000",
    });
    const raw = new JobServiceClient(s.replica.address, grpc.credentials.createInsecure());
    const refused = new Map<string, number>();
    const calls: grpc.ClientReadableStream<unknown>[] = [];
    try {
      for (let i = 0; i < 3000; i++) {
        const call = raw.watchJob(WatchJobRequest.fromPartial({ jobId: s.job.jobId }), metadata(s.tokens.admin));
        call.on("error", (e: grpc.ServiceError) => {
          const key = `${grpc.status[e.code]}: ${e.details}`;
          refused.set(key, (refused.get(key) ?? 0) + 1);
        });
        calls.push(call);
      }
      for (let i = 0; i < 50 && refused.size === 0; i++) await sleep(100);
      assert.ok(
        [...refused.keys()].some((k) => k === "RESOURCE_EXHAUSTED: Bandwidth exhausted or memory limit exceeded"),
        JSON.stringify([...refused]),
      );
    } finally {
      for (const c of calls) c.cancel();
      raw.close();
      await s.close();
    }
  });

  describe("each rpc's largest request", () => {
    let s: Awaited<ReturnType<typeof serverWith>>;
    before(async () => {
      s = await serverWith({ JOBWATCH_MAX_REQUEST_BYTES: "300000" });
    });
    after(() => s.close());

    const unary = (call: (cb: (error: grpc.ServiceError | null) => void) => void): Promise<grpc.ServiceError | null> =>
      new Promise((resolve) => call((error) => resolve(error)));

    test("GetJobDetails takes 64 KiB: a 70 KiB request is RESOURCE_EXHAUSTED naming the limit, before it is decoded", async () => {
      const raw = new JobServiceClient(s.replica.address, grpc.credentials.createInsecure());
      try {
        const error = await unary((cb) =>
          raw.getJobDetails(
            GetJobDetailsRequest.fromPartial({ jobId: "x".repeat(70 * 1024) }),
            metadata(s.tokens.admin),
            cb,
          ),
        );
        assert.equal(error?.code, grpc.status.RESOURCE_EXHAUSTED);
        assert.match(error!.details, /jobwatch\.v1\.JobService\/GetJobDetails takes at most 65536/);
      } finally {
        raw.close();
      }
    });

    test("CompleteJob takes more (a result): 100 KiB reaches the handler, which says what is wrong with the result", async () => {
      const raw = new JobWorkerServiceClient(s.replica.address, grpc.credentials.createInsecure());
      try {
        const big = { text: "r".repeat(100 * 1024) };
        const request = CompleteJobRequest.fromPartial({ jobId: s.job.jobId, result: big });
        const error = await unary((cb) => raw.completeJob(request, metadata(s.tokens.admin), cb));
        assert.equal(error?.code, grpc.status.INVALID_ARGUMENT, String(error?.details));
        assert.match(error!.details, /result/);
        // Over JOBWATCH_MAX_REQUEST_BYTES (300000 here), even CompleteJob's request is refused (by grpc-js itself).
        const huge = CompleteJobRequest.fromPartial({ jobId: s.job.jobId, result: { text: "r".repeat(400 * 1024) } });
        const refused = await unary((cb) => raw.completeJob(huge, metadata(s.tokens.admin), cb));
        assert.equal(refused?.code, grpc.status.RESOURCE_EXHAUSTED, String(refused?.details));
        assert.match(refused!.details, /larger than max \(\d+ vs 300000\)/);
      } finally {
        raw.close();
      }
    });
  });
});
