// jobwatch replicas over a 3-node Galera cluster, one server per node (run by `npm run test:galera`, which starts the cluster).
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { CompiledQuery } from "kysely";
import { createConnection } from "mysql2/promise";
import { createToken } from "../../src/auth/token-admin.js";
import type { Job, JobwatchClient } from "../../src/client/index.js";
import { createClient, GrpcStatus, JobStatus } from "../../src/client/index.js";
import { openDatabase } from "../../src/store/connect.js";
import { createStoreDb } from "../../src/store/transaction.js";
import type { ClusterDatabase, NodeServer } from "../helpers/galera.js";
import {
  freshClusterDatabase,
  GALERA_NODES,
  isolateNode,
  killNode,
  recoverCluster,
  restartNode,
  startNodeServer,
} from "../helpers/galera.js";
import { waitForHealth } from "../helpers/health.js";

/** Runs `work` for 0..n-1 with at most `width` at a time. */
async function pool(n: number, width: number, work: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < n) await work(next++);
    }),
  );
}

/** The gRPC status name of a client error (or "OK"). */
function codeOf(error: unknown): string {
  const code = (error as { code?: number }).code;
  return code === undefined ? `not a gRPC error: ${String(error)}` : GrpcStatus[code]!;
}

/** Tallies outcomes by code name. */
function tally(into: Record<string, number>, code: string): void {
  into[code] = (into[code] ?? 0) + 1;
}

/** A status variable of node n (1-based), e.g. wsrep_cluster_size. */
async function nodeStatus(n: number, name: string): Promise<string> {
  const url = new URL(GALERA_NODES[n - 1]!);
  const c = await createConnection({ host: url.hostname, port: Number(url.port), user: "root" });
  try {
    const [rows] = await c.query("show status like ?", [name]);
    return (rows as { Value: string }[])[0]?.Value ?? "";
  } finally {
    await c.end();
  }
}

describe("galera: three replicas, one per node", () => {
  let database: ClusterDatabase;
  let nodes: NodeServer[] = [];
  let admin: string;
  /** One client per replica, retries off: every answer is seen as the replica gave it. */
  let direct: JobwatchClient[] = [];
  const clients: JobwatchClient[] = [];
  const client = (address: string, token: string, retries = 1): JobwatchClient => {
    const c = createClient({ address, token, retry: { maxAttempts: retries } });
    clients.push(c);
    return c;
  };

  before(async () => {
    assert.equal(GALERA_NODES.length, 3, "run with `npm run test:galera`: it starts the cluster");
    database = await freshClusterDatabase();
  });
  after(async () => {
    for (const c of clients) c.close();
    await Promise.all(nodes.map((n) => n.stop()));
    await database?.drop();
  });

  test("replicas started at once on an empty database all migrate and serve (GET_LOCK is node-local)", async () => {
    const started = await Promise.allSettled(
      database.urls.map((url) => startNodeServer(url, { healthIntervalMs: 250 })),
    );
    nodes = started.flatMap((s) => (s.status === "fulfilled" ? [s.value] : []));
    assert.deepEqual(
      started.map((s) => (s.status === "fulfilled" ? "ok" : (s.reason as Error).message)),
      ["ok", "ok", "ok"],
    );
    admin = (await createToken(nodes[0]!.raw, { user: "admin", role: "admin" })).token;
    direct = nodes.map((n) => client(n.address, admin));
    for (const n of nodes) assert.equal((await waitForHealth(n.address, "SERVING", 10_000)) >= 0, true);
  });

  test("store: a write through one node is seen at once by the next call through another (300 chains)", async () => {
    const misses: Record<string, number> = {};
    await pool(300, 10, async (i) => {
      const [a, b, c] = [nodes[i % 3]!.raw, nodes[(i + 1) % 3]!.raw, nodes[(i + 2) % 3]!.raw];
      const job = await a.createJob({ operationType: "ryw-store", username: "alice" });
      if ((await b.getJob(job.jobId)) === undefined) tally(misses, "getJob: not found");
      try {
        await c.startJob(job.jobId);
        await a.reportProgress(job.jobId, 5);
      } catch (error) {
        tally(misses, `${(error as Error).name}: ${(error as Error).message.replace(job.jobId, "<id>")}`);
      }
    });
    assert.deepEqual(misses, {});
  });

  test("read-your-writes across replicas: each step through another replica sees the one before", async () => {
    const failures: Record<string, number> = {};
    await pool(150, 15, async (i) => {
      const [a, b, c] = [direct[i % 3]!, direct[(i + 1) % 3]!, direct[(i + 2) % 3]!];
      try {
        const job = await a.worker.createJob({ operationType: "ryw", username: "alice", requestId: undefined });
        const started = await b.worker.startJob(job.jobId);
        const seen = await c.getJob(job.jobId);
        assert.ok(seen.revision >= started.revision, `replica saw revision ${seen.revision} < ${started.revision}`);
        await a.worker.reportProgress(job.jobId, 50);
        for await (const j of b.watchJob(job.jobId)) {
          assert.ok(j.revision >= 3);
          break;
        }
        await c.worker.completeJob(job.jobId, {});
      } catch (error) {
        tally(failures, codeOf(error) === "OK" ? String(error) : `${codeOf(error)}: ${(error as Error).message}`);
      }
    });
    assert.deepEqual(failures, {});
  });

  test("racing writers on one job through three replicas: distinct revisions, one terminal winner, no INTERNAL", async () => {
    const job = await direct[0]!.worker.createJob({ operationType: "race", username: "alice" });
    await direct[1]!.worker.startJob(job.jobId);
    const outcomes: Record<string, number> = {};
    const revisions: number[] = [];
    await pool(180, 60, async (i) => {
      try {
        revisions.push((await direct[i % 3]!.worker.reportProgress(job.jobId, i % 100)).revision);
        tally(outcomes, "OK");
      } catch (error) {
        tally(outcomes, codeOf(error));
      }
    });
    assert.deepEqual(
      Object.keys(outcomes).filter((c) => c !== "OK" && c !== "ABORTED"),
      [],
      JSON.stringify(outcomes),
    );
    assert.equal(new Set(revisions).size, revisions.length, "two writers were given the same revision");
    console.log(`180 ReportProgress on one job, 60 at a time through 3 replicas: ${JSON.stringify(outcomes)}`);
    const winners: string[] = [];
    const finishers = [
      () => direct[0]!.worker.completeJob(job.jobId, { by: "complete" }),
      () => direct[1]!.worker.failJob(job.jobId, "fail"),
      () => direct[2]!.cancelJob(job.jobId),
    ];
    const results = await Promise.allSettled([...finishers, ...finishers].map((f) => f()));
    for (const r of results) {
      if (r.status === "fulfilled") {
        if (r.value.status !== JobStatus.JOB_STATUS_RUNNING) winners.push(JobStatus[r.value.status]);
      } else assert.ok(["FAILED_PRECONDITION", "ABORTED"].includes(codeOf(r.reason)), codeOf(r.reason));
    }
    const final = await direct[2]!.getJob(job.jobId);
    // A cancel of a RUNNING job only asks the worker: it is no terminal winner.
    const terminal = winners.filter((w) => w !== "JOB_STATUS_CANCELLED");
    assert.ok(terminal.length <= 1, `several terminal winners: ${winners.join(", ")}`);
    if (terminal.length === 1) assert.equal(JobStatus[final.status], terminal[0]);
  });

  test("watchers on every replica see every status change of jobs driven through the others", async () => {
    const jobs = await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        direct[i % 3]!.worker.createJob({ operationType: "watched", username: "alice" }),
      ),
    );
    const streams = jobs.flatMap((job) =>
      direct.map(async (c) => {
        const seen: Job[] = [];
        for await (const j of c.watchJob(job.jobId)) seen.push(j);
        return seen;
      }),
    );
    await sleep(300);
    await Promise.all(
      jobs.map(async (job, i) => {
        await direct[(i + 1) % 3]!.worker.startJob(job.jobId);
        for (let p = 10; p <= 90; p += 20) await direct[(i + p / 10) % 3]!.worker.reportProgress(job.jobId, p);
        await direct[(i + 2) % 3]!.worker.completeJob(job.jobId, { i });
      }),
    );
    for (const seen of await Promise.all(streams)) {
      const statuses = seen.map((j) => JobStatus[j.status]).filter((s, k, all) => s !== all[k - 1]);
      assert.deepEqual(statuses, ["JOB_STATUS_PENDING", "JOB_STATUS_RUNNING", "JOB_STATUS_COMPLETED"]);
      const revisions = seen.map((j) => j.revision);
      assert.deepEqual(
        revisions,
        [...revisions].sort((x, y) => x - y),
        "out of order",
      );
      assert.equal(new Set(revisions).size, revisions.length, "a revision twice");
    }
  });

  test("a node outside the primary component: its replica NOT_SERVING, calls UNAVAILABLE; SERVING again once it rejoins", async (t) => {
    const job = await direct[0]!.worker.createJob({ operationType: "isolated", username: "alice" });
    assert.equal((await direct[2]!.getJob(job.jobId)).jobId, job.jobId);
    await isolateNode(3, true);
    let rejoined = false;
    t.after(() => (rejoined ? undefined : isolateNode(3, false)));
    // `select 1` still answers there; every table read fails with ER_UNKNOWN_COM_ERROR 1047.
    const notServingMs = await waitForHealth(nodes[2]!.address, "NOT_SERVING", 15_000);
    await assert.rejects(direct[2]!.getJob(job.jobId), (error: Error & { code?: number }) => {
      assert.equal(codeOf(error), "UNAVAILABLE", error.message);
      assert.match(
        error.message,
        /database unavailable: the database node is not part of its cluster's primary component/,
      );
      return true;
    });
    await direct[0]!.worker.startJob(job.jobId);
    await isolateNode(3, false);
    rejoined = true;
    const servingMs = await waitForHealth(nodes[2]!.address, "SERVING", 30_000);
    assert.equal((await direct[2]!.getJob(job.jobId)).status, JobStatus.JOB_STATUS_RUNNING);
    console.log(
      `node 3 isolated: replica NOT_SERVING after ${notServingMs} ms; SERVING ${servingMs} ms after it rejoined`,
    );
  });

  test("a write cut off by its node leaving the primary component is rolled back, not committed by the connection's next use", async (t) => {
    // One pool on node 3, as a replica has; a scratch table, so no job row is involved.
    const open = openDatabase(database.urls[2]!);
    const db = createStoreDb(open, Date.now);
    t.after(async () => {
      await db.query(CompiledQuery.raw("drop table if exists cut_off"));
      await open.db.destroy();
    });
    await db.query(CompiledQuery.raw("create table cut_off (id int primary key)"));
    // Row 1, then a pause long enough for the node to leave the primary component, then row 2: refused (1047), and
    // so is the ROLLBACK after it.
    const cut = db.write(function* () {
      yield CompiledQuery.raw("insert into cut_off values (1)");
      yield CompiledQuery.raw("select sleep(6)");
      yield CompiledQuery.raw("insert into cut_off values (2)");
    });
    await sleep(500);
    await isolateNode(3, true);
    let rejoined = false;
    t.after(() => (rejoined ? undefined : isolateNode(3, false)));
    await assert.rejects(cut, /WSREP has not yet prepared node for application use/);
    await isolateNode(3, false);
    rejoined = true;
    for (let i = 0; (await nodeStatus(3, "wsrep_local_state_comment")) !== "Synced"; i++) {
      assert.ok(i < 120, "node 3 did not rejoin within 30 s");
      await sleep(250);
    }
    // The pool's next transaction (before: on the same connection, whose BEGIN committed row 1 with it).
    await db.write(function* () {
      yield CompiledQuery.raw("insert into cut_off values (3)");
    });
    const check = await createConnection(GALERA_NODES[0]!);
    t.after(() => check.end());
    const [rows] = await check.query(
      `select id from ${new URL(database.urls[0]!).pathname.slice(1)}.cut_off order by id`,
    );
    assert.deepEqual(
      (rows as { id: number }[]).map((r) => r.id),
      [3],
    );
  });

  test("a node killed under load: its replica NOT_SERVING, its watches resume elsewhere, no acknowledged write lost; back by itself", async (t) => {
    // The client library over all three replicas, round robin: a resumed watch or a retried call lands elsewhere.
    const everywhere = createClient({
      address: `ipv4:${nodes.map((n) => n.address).join(",")}`,
      token: admin,
      channelOptions: { "grpc.service_config": JSON.stringify({ loadBalancingConfig: [{ round_robin: {} }] }) },
    });
    clients.push(everywhere);
    const acknowledged = new Map<string, Job>();
    const failed: Record<string, number> = {};
    const jobs = await Promise.all(
      Array.from({ length: 30 }, () => everywhere.worker.createJob({ operationType: "load", username: "alice" })),
    );
    for (const job of jobs) acknowledged.set(job.jobId, job);
    await Promise.all(jobs.map((j) => everywhere.worker.startJob(j.jobId).then((s) => acknowledged.set(j.jobId, s))));
    let resumed = 0;
    const watchers = jobs.map(async (job) => {
      const seen: Job[] = [];
      for await (const j of everywhere.watchJob(job.jobId, { onResume: () => resumed++ })) seen.push(j);
      return seen;
    });
    let stop = false;
    const load = (async () => {
      for (let round = 1; !stop; round++) {
        await Promise.all(
          jobs.map(async (job) => {
            try {
              const j = await everywhere.worker.reportProgress(job.jobId, round % 100);
              if (j.revision > acknowledged.get(job.jobId)!.revision) acknowledged.set(job.jobId, j);
            } catch (error) {
              tally(failed, codeOf(error));
            }
          }),
        );
      }
    })();
    await sleep(1500);
    const watchersBefore = nodes[1]!.hub.watcherCount;
    assert.ok(watchersBefore > 0, "no watch landed on replica 2");
    await killNode(2);
    let restarted = false;
    t.after(() => (restarted ? undefined : restartNode(2)));
    const notServingMs = await waitForHealth(nodes[1]!.address, "NOT_SERVING", 10_000);
    // Its change feed is lost: within the bound (5 s) its watches end UNAVAILABLE and resume elsewhere.
    for (let i = 0; i < 100 && nodes[1]!.hub.watcherCount > 0; i++) await sleep(100);
    assert.equal(nodes[1]!.hub.watcherCount, 0, "replica 2 still holds watches");
    await sleep(1500);
    stop = true;
    await load;
    // Every job finished through the replicas left: the watchers must see it, wherever they are now.
    await Promise.all(
      jobs.map(async (job, i) =>
        acknowledged.set(job.jobId, await direct[i % 2 === 0 ? 0 : 2]!.worker.completeJob(job.jobId, {})),
      ),
    );
    const streams = await Promise.all(watchers);
    for (const seen of streams) assert.equal(JobStatus[seen.at(-1)!.status], "JOB_STATUS_COMPLETED");
    assert.ok(resumed >= watchersBefore, `${resumed} watches resumed, ${watchersBefore} were on replica 2`);
    assert.deepEqual(
      Object.keys(failed).filter((c) => c !== "UNAVAILABLE" && c !== "ABORTED"),
      [],
      JSON.stringify(failed),
    );

    await restartNode(2);
    restarted = true;
    const servingMs = await waitForHealth(nodes[1]!.address, "SERVING", 30_000);
    // No acknowledged write lost, as read through every replica, the restarted one included.
    for (const c of direct) {
      for (const [jobId, ack] of acknowledged) {
        const now = await c.getJob(jobId);
        assert.equal(now.status, ack.status, jobId);
        assert.ok(now.revision >= ack.revision, `${jobId}: revision ${now.revision} < acknowledged ${ack.revision}`);
      }
    }
    console.log(
      `node 2 killed: replica NOT_SERVING after ${notServingMs} ms; ${watchersBefore} watches on it, ${resumed} resumes; ` +
        `progress calls failed: ${JSON.stringify(failed)}; SERVING again ${servingMs} ms after the node was Synced`,
    );
  });

  test("the majority lost with the survivor behind: recover starts from the most advanced node, nothing acknowledged lost", async (t) => {
    const job = await direct[0]!.worker.createJob({ operationType: "majority-lost", username: "alice" });
    // Node 1 cut off: nodes 2 and 3 go on as the primary component, and commit what node 1 never gets.
    await isolateNode(1, true);
    let recovered = false;
    t.after(async () => {
      if (recovered) return;
      await isolateNode(1, false).catch(() => undefined);
      await recoverCluster();
    });
    await waitForHealth(nodes[0]!.address, "NOT_SERVING", 15_000);
    for (let i = 0; (await nodeStatus(2, "wsrep_cluster_size")) !== "2"; i++) {
      assert.ok(i < 100, "nodes 2 and 3 did not form a component of two");
      await sleep(200);
    }
    await direct[1]!.worker.startJob(job.jobId);
    const done = await direct[2]!.worker.completeJob(job.jobId, { by: "node 3" });
    await killNode(2);
    await sleep(500);
    await killNode(3);
    await isolateNode(1, false);
    // Node 1 alone, non-Primary and behind: `SET GLOBAL wsrep_provider_options='pc.bootstrap=YES'` on it would make
    // the job PENDING again (and nodes 2 and 3 would rejoin by IST from positions it no longer means).
    const steps: string[] = [];
    await recoverCluster((line) => steps.push(line));
    recovered = true;
    assert.match(steps.join("\n"), /node[23] \(at \d+, the most advanced\) started as the primary component/);
    for (const n of nodes) await waitForHealth(n.address, "SERVING", 60_000);
    for (const c of direct) {
      const now = await c.getJob(job.jobId);
      assert.equal(JobStatus[now.status], "JOB_STATUS_COMPLETED");
      assert.equal(now.revision, done.revision);
    }
    console.log(`majority lost: ${steps.join("; ")}`);
  });
});
