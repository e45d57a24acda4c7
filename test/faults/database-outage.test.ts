// Fault injection (`npm run test:faults`): the database goes away for a while under a steady load of reads, writes and
// 100 watchers; afterwards, counts of what clients saw. MySQL: a TCP proxy in front of it is stopped and started
// again; SQLite: the database refuses writes (read-only). Acknowledged writes lost must be 0, and no call INTERNAL.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { sql } from "kysely";
import type { Job, JobwatchClient } from "../../src/client/index.js";
import { createClient, GrpcStatus, JobStatus } from "../../src/client/index.js";
import type { TestDialect } from "../helpers/databases.js";
import { DIALECTS, TEST_MYSQL_URL } from "../helpers/databases.js";
import { healthCheck, waitForHealth } from "../helpers/health.js";
import type { TestServer } from "../helpers/server.js";
import { startTestServer } from "../helpers/server.js";
import type { TcpProxy } from "../helpers/tcp-proxy.js";
import { startProxy } from "../helpers/tcp-proxy.js";

/** How long the database is gone. */
const OUTAGE_MS = Number(process.env.JOBWATCH_FAULT_OUTAGE_MS ?? 10_000);
const WATCHERS = 100;
const WRITERS = 10;
const READERS = 10;

/** What the clients saw, by rpc and code. */
type Tally = Record<string, Record<string, number>>;

function count(tally: Tally, rpc: string, error?: unknown): void {
  const code = error === undefined ? "OK" : (GrpcStatus[(error as { code?: number }).code ?? -1] ?? String(error));
  tally[rpc] ??= {};
  tally[rpc][code] = (tally[rpc][code] ?? 0) + 1;
}

/** The database going away and coming back, per dialect. */
interface Outage {
  down(): Promise<void>;
  up(): Promise<void>;
  close(): Promise<void>;
}

async function serverWithOutage(dialect: TestDialect): Promise<{ s: TestServer; outage: Outage }> {
  if (dialect === "mysql") {
    const target = new URL(TEST_MYSQL_URL!);
    const proxy: TcpProxy = await startProxy(`${target.hostname}:${target.port || 3306}`);
    const s = await startTestServer({ dialect, healthIntervalMs: 500, connectVia: (url) => proxy.via(url) });
    return { s, outage: { down: () => proxy.down(), up: () => proxy.up(), close: () => proxy.close() } };
  }
  const s = await startTestServer({ dialect, healthIntervalMs: 500 });
  // The server's own connection refuses every write, as a read-only database file does (SQLITE_READONLY).
  const set = (on: boolean) => sql.raw(`pragma query_only = ${on ? "on" : "off"}`).execute(s.store.db);
  return {
    s,
    outage: {
      down: () => set(true).then(() => undefined),
      up: () => set(false).then(() => undefined),
      close: async () => undefined,
    },
  };
}

for (const dialect of DIALECTS) {
  describe(`fault injection on ${dialect}`, { timeout: 180_000 }, () => {
    test(`the database gone for ${OUTAGE_MS / 1000} s under load: UNAVAILABLE while it is, then everything resumes, nothing acknowledged lost`, async (t) => {
      const { s, outage } = await serverWithOutage(dialect);
      const client: JobwatchClient = createClient({ address: s.address, token: s.tokens.admin });
      t.after(async () => {
        client.close();
        await outage.up();
        await s.stop();
        await outage.close();
      });
      const tally: Tally = {};
      /** The newest acknowledged state of every job, by id. */
      const acknowledged = new Map<string, Job>();
      const ack = (job: Job): void => {
        const had = acknowledged.get(job.jobId);
        if (had === undefined || job.revision > had.revision) acknowledged.set(job.jobId, job);
      };

      const watched: Job[] = [];
      for (let i = 0; i < WATCHERS; i++) {
        const job = await client.worker.createJob({ operationType: "faults", username: "alice", resource: `w${i}` });
        ack(await client.worker.startJob(job.jobId));
        watched.push(job);
      }
      const resumedWatchers = new Set<string>();
      const watchers = watched.map(async (job) => {
        const seen: Job[] = [];
        for await (const j of client.watchJob(job.jobId, {
          onResume: () => resumedWatchers.add(job.jobId),
          backoff: { maxDelayMs: 2000 },
        })) {
          seen.push(j);
        }
        return seen;
      });

      let running = true;
      let outageStart = 0;
      let back = 0;
      let firstWriteAfter = 0;
      const writers = Array.from({ length: WRITERS }, async (_, w) => {
        for (let round = 0; running; round++) {
          const job = watched[(w + round * WRITERS) % WATCHERS]!;
          try {
            ack(await client.worker.reportProgress(job.jobId, round % 100, { phase: "load" }));
            count(tally, "ReportProgress");
            if (back > 0 && firstWriteAfter === 0) firstWriteAfter = Date.now();
          } catch (error) {
            count(tally, "ReportProgress", error);
          }
          try {
            // A new job with a request id: a retry after an unknown outcome returns the same job.
            ack(
              await client.worker.createJob({
                operationType: "faults-new",
                username: "bob",
                requestId: crypto.randomUUID(),
              }),
            );
            count(tally, "CreateJob");
          } catch (error) {
            count(tally, "CreateJob", error);
          }
          await sleep(20);
        }
      });
      const readers = Array.from({ length: READERS }, async (_, r) => {
        for (let round = 0; running; round++) {
          try {
            await client.getJob(watched[(r * 7 + round) % WATCHERS]!.jobId);
            count(tally, "GetJobDetails");
          } catch (error) {
            count(tally, "GetJobDetails", error);
          }
          await sleep(20);
        }
      });

      await sleep(2000);
      assert.equal(await healthCheck(s.address), "SERVING");
      outageStart = Date.now();
      await outage.down();
      const notServingAfterMs = await waitForHealth(s.address, "NOT_SERVING", 10_000);
      await sleep(Math.max(0, OUTAGE_MS - (Date.now() - outageStart)));
      await outage.up();
      back = Date.now();
      const servingAfterMs = await waitForHealth(s.address, "SERVING", 30_000);
      await sleep(2000);
      running = false;
      await Promise.all([...writers, ...readers]);

      // Finish every watched job; the watchers must see it, wherever they reconnected.
      for (const job of watched) {
        for (let attempt = 0; ; attempt++) {
          try {
            ack(await client.worker.completeJob(job.jobId, { ok: true }));
            count(tally, "CompleteJob");
            break;
          } catch (error) {
            count(tally, "CompleteJob", error);
            assert.ok(attempt < 20, `CompleteJob kept failing: ${(error as Error).message}`);
            await sleep(200);
          }
        }
      }
      const streams = await Promise.all(watchers);
      for (const seen of streams) {
        assert.equal(seen.at(-1)?.status, JobStatus.JOB_STATUS_COMPLETED);
        const statuses = seen.map((j) => j.status).filter((st, k, all) => st !== all[k - 1]);
        assert.deepEqual(statuses, [JobStatus.JOB_STATUS_RUNNING, JobStatus.JOB_STATUS_COMPLETED]);
      }

      let lost = 0;
      for (const [jobId, job] of acknowledged) {
        const now = await client.getJob(jobId);
        if (now.revision < job.revision || (job.status !== JobStatus.JOB_STATUS_RUNNING && now.status !== job.status)) {
          lost++;
        }
      }
      const failed = Object.fromEntries(
        Object.entries(tally).map(([rpc, codes]) => [
          rpc,
          Object.fromEntries(Object.entries(codes).filter(([c]) => c !== "OK")),
        ]),
      );
      const calls = Object.values(tally).reduce((n, codes) => n + Object.values(codes).reduce((a, b) => a + b, 0), 0);
      console.log(
        `${dialect}: database gone ${OUTAGE_MS / 1000} s under ${WRITERS} writers, ${READERS} readers, ${WATCHERS} watchers: ` +
          `${calls} calls, failed ${JSON.stringify(failed)}; health NOT_SERVING after ${notServingAfterMs} ms, ` +
          `SERVING ${servingAfterMs} ms after the database returned, first write ${firstWriteAfter - back} ms after; ` +
          `watchers resumed ${resumedWatchers.size}/${WATCHERS}, all ${streams.length} saw COMPLETED; ` +
          `acknowledged writes ${acknowledged.size} jobs checked, lost ${lost}`,
      );
      assert.equal(lost, 0);
      for (const [rpc, codes] of Object.entries(failed)) {
        for (const code of Object.keys(codes)) assert.equal(code, "UNAVAILABLE", `${rpc} ended ${code}`);
      }
      assert.ok(firstWriteAfter > 0, "no write succeeded after the database returned");
    });
  });
}
