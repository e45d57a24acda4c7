// Webhooks from three `jobwatch serve` replicas over the 3-node Galera cluster, every dispatcher on: each
// delivery attempted by one replica at a time, once on the wire while none dies, in revision order per job;
// a replica killed (kill -9) mid-delivery and the receiver down for a minute: everything arrives once it is
// back, once per revision after dedup by webhook-id (run by `npm run test:galera`, which starts the cluster).
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import type { JobwatchClient } from "../../src/client/index.js";
import { createClient, JobStatus } from "../../src/client/index.js";
import type { Run } from "../helpers/cli.js";
import { cli, start } from "../helpers/cli.js";
import type { ClusterDatabase } from "../helpers/galera.js";
import { freshClusterDatabase, GALERA_NODES } from "../helpers/galera.js";
import type { Receiver } from "../helpers/webhook-receiver.js";
import { startReceiver } from "../helpers/webhook-receiver.js";

/** How long the receiver stays down after the kill: the minute unless JOBWATCH_TEST_WEBHOOK_DOWN_MS says. */
const DOWN_MS = Number(process.env.JOBWATCH_TEST_WEBHOOK_DOWN_MS ?? 60_000);

/** Short polls and leases, and a backoff that keeps a minute's outage to a few dozen attempts per delivery. */
const SETTINGS = {
  JOBWATCH_WEBHOOK_POLL: "50ms",
  JOBWATCH_WEBHOOK_TIMEOUT: "5s",
  JOBWATCH_WEBHOOK_MAX_BACKOFF: "2s",
  JOBWATCH_LOG_LEVEL: "warn",
};

/** The statuses each webhook is told of: two deliveries per job, whose order matters. */
const STATUSES = [JobStatus.JOB_STATUS_RUNNING, JobStatus.JOB_STATUS_COMPLETED, JobStatus.JOB_STATUS_FAILED];

interface Replica {
  run: Run;
  address: string;
  metrics: string;
}

/** `jobwatch serve` on one node's URL, with /metrics, once it serves. */
async function serve(url: string): Promise<Replica> {
  const run = start(["serve", "--listen", "127.0.0.1:0", "--log-level", "info"], {
    env: { JOBWATCH_DATABASE_URL: url, JOBWATCH_METRICS_LISTEN: "127.0.0.1:0", ...SETTINGS },
  });
  await run.waitFor(/jobwatch is serving/);
  const line = run.stdout.split("\n").find((l) => l.includes("jobwatch is serving"))!;
  return { run, address: /"address":"([^"]+)"/.exec(line)![1]!, metrics: /"metrics":"([^"]+)"/.exec(line)![1]! };
}

/** One sample of a replica's /metrics (NaN when absent). */
async function sample(replica: Replica, series: string): Promise<number> {
  const text = await (await fetch(`http://${replica.metrics}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return Number(line?.slice(series.length + 1) ?? Number.NaN);
}

/** A replica's successful webhook attempts. */
const successes = (replica: Replica): Promise<number> =>
  sample(replica, 'jobwatch_webhook_attempts_total{outcome="success"}');

/** Runs `work` for 0..n-1 with at most `width` at a time. */
async function pool(n: number, width: number, work: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < n) await work(next++);
    }),
  );
}

/** "<job>@<revision>" of every delivery the receiver was sent, duplicates included. */
const keys = (r: Receiver): string[] => r.requests.map((q) => `${q.body.data.jobId}@${q.body.data.revision}`);

/**
 * What every receiver must show: each expected (job, revision) with exactly one webhook-id and each id one
 * (job, revision); no two requests of one id open at once; each job's revisions in order on the wire.
 */
function assertDelivered(r: Receiver, expected: Map<string, string[]>): void {
  const ids = new Map<string, Set<string>>();
  for (const q of r.requests) {
    const key = `${q.body.data.jobId}@${q.body.data.revision}`;
    ids.set(key, (ids.get(key) ?? new Set()).add(q.id));
    assert.ok(q.verified, `${q.id}: the signature verifies`);
  }
  for (const [key, set] of ids) assert.equal(set.size, 1, `${key}: one webhook-id, got ${[...set].join(", ")}`);
  assert.equal(new Set(r.requests.map((q) => q.id)).size, ids.size, "one (job, revision) per webhook-id");
  assert.deepEqual(r.overlaps, [], "a delivery attempted by two replicas at once");
  for (const [jobId, types] of expected) {
    const seen = r.unique().filter((q) => q.body.data.jobId === jobId);
    assert.deepEqual(
      seen.map((q) => q.body.type),
      types,
      `job ${jobId}: each transition once`,
    );
    const order = r.requests.filter((q) => q.body.data.jobId === jobId).map((q) => q.body.data.revision);
    assert.deepEqual(
      order,
      [...order].sort((a, b) => a - b),
      `job ${jobId}: revisions in order on the wire`,
    );
  }
}

describe("galera: webhooks from three replicas, every dispatcher on", () => {
  let database: ClusterDatabase;
  const replicas: Replica[] = [];
  const clients: JobwatchClient[] = [];
  const receivers: Receiver[] = [];
  let token = "";

  /** Creates, starts and ends a job with each step through another replica; returns its id. */
  const drive = async (i: number, operationType: string): Promise<string> => {
    const at = (k: number): JobwatchClient => clients[(i + k) % clients.length]!;
    const job = await at(0).worker.createJob({ operationType, username: `user${i % 4}` });
    await at(1).worker.startJob(job.jobId);
    await at(2).worker.reportProgress(job.jobId, 50);
    if (i % 3 === 2) await at(0).worker.failJob(job.jobId, "disk full");
    else await at(0).worker.completeJob(job.jobId, { i });
    return job.jobId;
  };
  const ending = (i: number): string => (i % 3 === 2 ? "job.failed" : "job.completed");

  before(async () => {
    assert.equal(GALERA_NODES.length, 3, "run with `npm run test:galera`: it starts the cluster");
    database = await freshClusterDatabase();
    // The first migrates; the others find the schema in place.
    replicas.push(await serve(database.urls[0]!));
    replicas.push(...(await Promise.all(database.urls.slice(1).map(serve))));
    const made = await cli(["token", "create", "--user", "root", "--role", "admin"], {
      env: { JOBWATCH_DATABASE_URL: database.urls[0] },
    });
    assert.equal(made.code, 0, made.stderr);
    token = made.stdout.trim();
    for (const r of replicas) clients.push(createClient({ address: r.address, token }));
    for (let i = 0; i < 2; i++) receivers.push(await startReceiver());
  });

  after(async () => {
    for (const c of clients) c.close();
    for (const r of replicas) if (r.run.child.exitCode === null) r.run.child.kill("SIGTERM");
    await Promise.all(replicas.map((r) => r.run.exited));
    for (const r of receivers) await r.close();
    await database?.drop();
  });

  test("each delivery attempted by one replica at a time: once on the wire, one webhook-id per revision, in order", async () => {
    for (const [i, r] of receivers.entries()) {
      // Answers take a while, so two replicas attempting one delivery would overlap at the receiver.
      r.answerDelayMs = 100;
      const made = await clients[i]!.webhooks.create({
        url: r.url,
        allUsers: true,
        operationTypes: ["galera_hooks"],
        statuses: STATUSES,
      });
      r.setSecret(made.secret);
    }
    const expected = new Map<string, string[]>();
    await pool(24, 8, async (i) => {
      expected.set(await drive(i, "galera_hooks"), ["job.running", ending(i)]);
    });
    for (const r of receivers) await r.waitFor((x) => x.unique().length === 2 * expected.size, 60_000);
    for (const r of receivers) {
      assertDelivered(r, expected);
      assert.equal(r.requests.length, r.unique().length, `no delivery twice on the wire: ${keys(r).join(" ")}`);
    }
    // Every replica's dispatcher competed for the outbox: their successes add up to the deliveries, each once
    // (counted when the answer is in, after the receiver has the request).
    let split = await Promise.all(replicas.map(successes));
    for (let i = 0; i < 50 && split.reduce((a, b) => a + b, 0) < 4 * expected.size; i++) {
      await sleep(100);
      split = await Promise.all(replicas.map(successes));
    }
    assert.equal(
      split.reduce((a, b) => a + b, 0),
      4 * expected.size,
    );
    assert.ok(split.filter((n) => n > 0).length >= 2, `deliveries per replica: ${split.join(", ")}`);
    console.log(`${4 * expected.size} deliveries, by replica: ${split.join(", ")}; none twice on the wire`);
  });

  test("a replica killed mid-delivery, the receiver down a minute: everything once it is back, duplicates only of the dead replica's", async () => {
    const [r] = receivers as [Receiver];
    for (const x of receivers) x.answerDelayMs = 0;
    r.mode = "hold";
    const before = new Set(r.requests.map((q) => q.id));
    const expected = new Map<string, string[]>();
    await pool(12, 8, async (i) => {
      expected.set(await drive(i, "galera_hooks"), ["job.running", ending(i)]);
    });
    // Each replica holds up to 4 of this webhook's deliveries at the receiver; the one with most dies with them.
    await r.waitFor((x) => x.held.length >= 6, 30_000);
    const inFlight = await Promise.all(replicas.map((x) => sample(x, "jobwatch_webhook_deliveries_in_flight")));
    const k = inFlight.indexOf(Math.max(...inFlight));
    const victim = replicas[k]!;
    victim.run.child.kill("SIGKILL");
    await victim.run.exited;
    // Its connections close with it; the receiver notices each.
    for (let i = 0; i < 100 && !r.held.some((res) => res.destroyed); i++) await sleep(20);
    await sleep(200);
    const dead = new Set(r.abandoned);
    assert.ok(dead.size >= 1, "the killed replica had deliveries in flight");
    // The survivors' attempts are answered; then the receiver is down, and stays down.
    for (const res of r.held.splice(0)) if (!res.destroyed) res.writeHead(200).end();
    r.mode = "down";
    const downAt = Date.now();
    // The killed replica comes back during the outage (its dispatcher too).
    clients[k]!.close();
    replicas[k] = await serve(database.urls[k]!);
    clients[k] = createClient({ address: replicas[k].address, token });
    await sleep(Math.max(0, DOWN_MS - (Date.now() - downAt)));
    r.mode = "ok";
    const ends = (x: Receiver): number =>
      x.unique().filter((q) => !before.has(q.id) && (q.body.type === "job.completed" || q.body.type === "job.failed"))
        .length;
    await r.waitFor((x) => ends(x) === expected.size, 60_000);
    assertDelivered(r, expected);
    const again = r.requests.filter((q, k) => r.requests.findIndex((p) => p.id === q.id) !== k).map((q) => q.id);
    assert.deepEqual(
      again.filter((id) => !dead.has(id)),
      [],
      "sent twice although no replica sending it died",
    );
    console.log(
      `kill -9 of replica ${k + 1} with ${dead.size} deliveries in flight (in flight per replica: ${inFlight.join(", ")}), receiver down ${Math.round((Date.now() - downAt) / 1000)} s ` +
        `until everything arrived: ${again.length} sent again (all of them the victim's), ${expected.size * 2} delivered once each`,
    );
  });
});
