// Property test of the job state machine against a model: random rounds of worker and client calls,
// made concurrently by several clients through two replicas on one database, must leave every job
// exactly as the model predicts, with dense revisions, and every watcher's stream must equal the
// store's history of status (and cancel flag) changes.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { ServiceError } from "@grpc/grpc-js";
import * as grpc from "@grpc/grpc-js";
import fc from "fast-check";
import type { Job } from "../src/gen/jobwatch/v1/job.js";
import { JobStatus } from "../src/gen/jobwatch/v1/job.js";
import { DIALECTS } from "./helpers/databases.js";
import type { TestServer, Watch } from "./helpers/server.js";
import { startTestServer } from "./helpers/server.js";

const { PENDING, RUNNING, COMPLETED, FAILED, CANCELLED } = {
  PENDING: JobStatus.JOB_STATUS_PENDING,
  RUNNING: JobStatus.JOB_STATUS_RUNNING,
  COMPLETED: JobStatus.JOB_STATUS_COMPLETED,
  FAILED: JobStatus.JOB_STATUS_FAILED,
  CANCELLED: JobStatus.JOB_STATUS_CANCELLED,
};
const TERMINAL = new Set([COMPLETED, FAILED, CANCELLED]);
const OWNERS = ["alice", "bob"] as const;

/** What the model knows of one job. */
interface ModelJob {
  jobId: string;
  owner: 0 | 1;
  status: JobStatus;
  progress: number;
  phase: string | undefined;
  detail: string | undefined;
  error: string | undefined;
  result: Record<string, unknown> | undefined;
  cancelRequested: boolean;
  cancelReason: string | undefined;
  revision: number;
  /** operation_type \0 resource while it may hold the active key. */
  key: string | undefined;
  watch: Watch;
}

/** One call. `job` picks among the jobs made so far (modulo their number); `via` picks the replica. */
type Command =
  | { kind: "create"; owner: 0 | 1; op: 0 | 1; resource: number | null; via: 0 | 1 }
  | { kind: "start" | "heartbeat" | "markCancelled" | "race"; job: number; via: 0 | 1 }
  | { kind: "progress"; job: number; via: 0 | 1; progress: number; phase: string | null; detail: string | null }
  | { kind: "complete"; job: number; via: 0 | 1; result: Record<string, unknown> | null }
  | { kind: "fail"; job: number; via: 0 | 1; error: string }
  | { kind: "cancel"; job: number; via: 0 | 1; by: 0 | 1; reason: string | null };

const via = fc.constantFrom<0 | 1>(0, 1);
const job = fc.nat(40);
const text = fc.string({ minLength: 1, maxLength: 12 }).filter((t) => /^[\w .:/-]+$/.test(t) && t.trim() === t);
const command: fc.Arbitrary<Command> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant("create" as const),
      owner: via,
      op: via,
      resource: fc.option(fc.nat(3)),
      via,
    }),
  },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant("start" as const), job, via }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("heartbeat" as const), job, via }) },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant("progress" as const),
      job,
      via,
      progress: fc.integer({ min: 0, max: 100 }),
      phase: fc.option(text),
      detail: fc.option(text),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("complete" as const),
      job,
      via,
      result: fc.option(
        fc.dictionary(
          text.filter((k) => k !== "__proto__"),
          fc.oneof(fc.integer(), text, fc.boolean()),
          { maxKeys: 3, noNullPrototype: true },
        ),
      ),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("fail" as const), job, via, error: text }) },
  {
    weight: 2,
    arbitrary: fc.record({ kind: fc.constant("cancel" as const), job, via, by: via, reason: fc.option(text) }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("markCancelled" as const), job, via }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("race" as const), job, via }) },
);
/** A round: calls made at the same time, by different clients. */
const rounds = fc.array(fc.array(command, { minLength: 1, maxLength: 4 }), { minLength: 1, maxLength: 12 });

function codeOf(error: unknown): string {
  return grpc.status[(error as ServiceError).code] ?? String(error);
}

/** The call's outcome: the job it returned, or the gRPC code name it failed with. */
async function outcome(call: Promise<{ job?: Job | undefined }>): Promise<Job | string> {
  try {
    return (await call).job!;
  } catch (error) {
    if (typeof (error as ServiceError)?.code !== "number") throw error;
    return codeOf(error);
  }
}

/** (status, cancel flag) states in order, consecutive repeats collapsed. */
function transitions(states: { status: JobStatus; cancelRequested: boolean }[]): string[] {
  const out: string[] = [];
  for (const s of states) {
    const key = `${JobStatus[s.status]}${s.cancelRequested ? "+cancel" : ""}`;
    if (out.at(-1) !== key) out.push(key);
  }
  return out;
}

for (const dialect of DIALECTS) {
  describe(`job state machine against a model (${dialect})`, () => {
    let a: TestServer;
    let b: TestServer;
    before(async () => {
      a = await startTestServer({ dialect });
      b = await startTestServer({ sharing: a });
    });
    after(async () => {
      await b?.stop();
      await a?.stop();
    });

    test("random concurrent calls through two replicas leave the store exactly as the model predicts", async () => {
      let run = 0;
      await fc.assert(
        fc.asyncProperty(rounds, async (plan) => {
          run++;
          const replicas = [a, b] as const;
          const tokens = (s: TestServer) => [s.tokens.alice, s.tokens.bob] as const;
          const worker = (v: 0 | 1) => replicas[v].as(a.tokens.worker).worker;
          const jobs: ModelJob[] = [];
          const pick = (n: number): ModelJob | undefined => (jobs.length === 0 ? undefined : jobs[n % jobs.length]);
          /** Applies a successful transition's returned job to the model, after checking it. */
          const accept = (m: ModelJob, got: Job | string, expected: Partial<ModelJob> | string): void => {
            if (typeof expected === "string") {
              assert.equal(got, expected, `${m.jobId} in ${JobStatus[m.status]}`);
              return;
            }
            assert.equal(typeof got, "object", `${m.jobId} in ${JobStatus[m.status]}: got ${String(got)}`);
            Object.assign(m, expected);
            const j = got as Job;
            assert.equal(j.revision, m.revision, "revision");
            assert.equal(j.status, m.status, "status");
          };
          const active = (m: ModelJob) => m.status === PENDING || m.status === RUNNING;

          for (const round of plan) {
            // One call per job per round (creates: one per key), so the model's order within a round does not matter.
            const busy = new Set<ModelJob>();
            const keys = new Set<string>();
            const calls: Promise<void>[] = [];
            for (const cmd of round) {
              if (cmd.kind === "create") {
                const key = cmd.resource === null ? undefined : `op${cmd.op}\0r${run}-${cmd.resource}`;
                if (key !== undefined && keys.has(key)) continue;
                if (key !== undefined) keys.add(key);
                const holder = key === undefined ? undefined : jobs.find((m) => m.key === key && active(m));
                // The holder must not change while the create runs, or either answer would be right.
                if (holder && busy.has(holder)) continue;
                if (holder) busy.add(holder);
                calls.push(
                  (async () => {
                    const got = await outcome(
                      worker(cmd.via).createJob({
                        operationType: `op${cmd.op}`,
                        username: OWNERS[cmd.owner],
                        ...(cmd.resource === null ? {} : { resource: `r${run}-${cmd.resource}` }),
                      }),
                    );
                    if (holder) {
                      assert.equal(got, "ALREADY_EXISTS");
                      return;
                    }
                    assert.equal(typeof got, "object", String(got));
                    const j = got as Job;
                    assert.equal(j.revision, 1);
                    const watch = replicas[cmd.via].watch(tokens(replicas[cmd.via])[cmd.owner], { jobId: j.jobId });
                    // The watch starts from the state it finds: wait for it, so it has seen every later change.
                    await watch.received(1);
                    jobs.push({
                      jobId: j.jobId,
                      owner: cmd.owner,
                      status: PENDING,
                      progress: 0,
                      phase: undefined,
                      detail: undefined,
                      error: undefined,
                      result: undefined,
                      cancelRequested: false,
                      cancelReason: undefined,
                      revision: 1,
                      key,
                      watch,
                    });
                  })(),
                );
                continue;
              }
              const m = pick(cmd.job);
              if (!m || busy.has(m)) continue;
              busy.add(m);
              const w = worker(cmd.via);
              const jobId = m.jobId;
              const next = m.revision + 1;
              calls.push(
                (async () => {
                  switch (cmd.kind) {
                    case "start":
                      accept(
                        m,
                        await outcome(w.startJob({ jobId })),
                        m.status === PENDING ? { status: RUNNING, revision: next } : "FAILED_PRECONDITION",
                      );
                      break;
                    case "heartbeat":
                      accept(
                        m,
                        await outcome(w.heartbeat({ jobId })),
                        m.status === RUNNING ? { revision: next } : "FAILED_PRECONDITION",
                      );
                      break;
                    case "progress": {
                      const request = {
                        jobId,
                        progress: cmd.progress,
                        ...(cmd.phase === null ? {} : { phase: cmd.phase }),
                        ...(cmd.detail === null ? {} : { detail: cmd.detail }),
                      };
                      accept(
                        m,
                        await outcome(w.reportProgress(request)),
                        m.status === RUNNING
                          ? {
                              revision: next,
                              progress: cmd.progress,
                              phase: cmd.phase ?? m.phase,
                              detail: cmd.detail ?? m.detail,
                            }
                          : "FAILED_PRECONDITION",
                      );
                      break;
                    }
                    case "complete":
                      accept(
                        m,
                        await outcome(w.completeJob({ jobId, ...(cmd.result === null ? {} : { result: cmd.result }) })),
                        active(m)
                          ? { status: COMPLETED, revision: next, progress: 100, result: cmd.result ?? undefined }
                          : "FAILED_PRECONDITION",
                      );
                      break;
                    case "fail":
                      accept(
                        m,
                        await outcome(w.failJob({ jobId, error: cmd.error })),
                        active(m) ? { status: FAILED, revision: next, error: cmd.error } : "FAILED_PRECONDITION",
                      );
                      break;
                    case "markCancelled":
                      accept(
                        m,
                        await outcome(w.markCancelled({ jobId })),
                        m.status === RUNNING && m.cancelRequested
                          ? { status: CANCELLED, revision: next }
                          : "FAILED_PRECONDITION",
                      );
                      break;
                    case "cancel": {
                      const s = replicas[cmd.via];
                      const got = await outcome(
                        s
                          .as(tokens(s)[cmd.by])
                          .jobs.cancelJob({ jobId, ...(cmd.reason === null ? {} : { reason: cmd.reason }) }),
                      );
                      const reason = cmd.reason ?? undefined;
                      if (cmd.by !== m.owner) accept(m, got, "NOT_FOUND");
                      else if (m.status === PENDING)
                        accept(m, got, {
                          status: CANCELLED,
                          revision: next,
                          cancelRequested: true,
                          cancelReason: reason,
                        });
                      else if (m.status === RUNNING && !m.cancelRequested)
                        accept(m, got, { revision: next, cancelRequested: true, cancelReason: reason });
                      else if (m.status === RUNNING || m.status === CANCELLED) accept(m, got, {});
                      else accept(m, got, "FAILED_PRECONDITION");
                      break;
                    }
                    case "race": {
                      // Two terminal calls at once through both replicas: exactly one wins.
                      const [done, failed] = await Promise.all([
                        outcome(worker(0).completeJob({ jobId })),
                        outcome(worker(1).failJob({ jobId, error: "raced" })),
                      ]);
                      if (!active(m)) {
                        assert.deepEqual([done, failed], ["FAILED_PRECONDITION", "FAILED_PRECONDITION"]);
                        break;
                      }
                      const winners = [done, failed].filter((o) => typeof o === "object");
                      assert.equal(winners.length, 1, `outcomes ${String(done)} / ${String(failed)}`);
                      if (typeof done === "object") {
                        assert.equal(failed, "FAILED_PRECONDITION");
                        accept(m, done, { status: COMPLETED, revision: next, progress: 100, result: undefined });
                      } else {
                        assert.equal(done, "FAILED_PRECONDITION");
                        accept(m, failed, { status: FAILED, revision: next, error: "raced" });
                      }
                      break;
                    }
                  }
                })(),
              );
            }
            await Promise.all(calls);
          }

          // Every job as the model has it, read through either replica.
          for (const m of jobs) {
            const s = replicas[m.revision % 2]!;
            const { job: j } = await s.as(s.tokens.admin).jobs.getJobDetails({ jobId: m.jobId });
            assert.deepEqual(
              {
                status: j!.status,
                progress: j!.progress,
                phase: j!.phase,
                detail: j!.detail,
                error: j!.error,
                result: j!.result,
                cancelRequested: j!.cancelRequested,
                cancelReason: j!.cancelReason,
                revision: j!.revision,
                username: j!.username,
              },
              {
                status: m.status,
                progress: m.progress,
                // The contract's view of a finished job: COMPLETED has no phase or detail (the row keeps them).
                phase: m.status === COMPLETED ? undefined : m.phase,
                detail: m.status === COMPLETED ? undefined : m.detail,
                error: m.error,
                result: m.result,
                cancelRequested: m.cancelRequested,
                cancelReason: m.cancelReason,
                revision: m.revision,
                username: OWNERS[m.owner],
              },
            );
          }

          // Finish the rest, so every watch ends; then compare streams with the stored history.
          for (const m of jobs) {
            if (TERMINAL.has(m.status)) continue;
            const { job: j } = await worker(0).failJob({ jobId: m.jobId, error: "end of run" });
            m.status = FAILED;
            m.revision++;
            assert.equal(j!.revision, m.revision);
          }
          for (const m of jobs) {
            const end = await m.watch.done;
            assert.equal(grpc.status[end.code], "OK", end.details);
            const rows = await a.store.db
              .selectFrom("job_events")
              .select(["revision", "status", "cancel_requested"])
              .where("job_id", "=", m.jobId)
              .orderBy("revision")
              .execute();
            assert.deepEqual(
              rows.map((r) => Number(r.revision)),
              Array.from({ length: m.revision }, (_, i) => i + 1),
              "revisions 1..n, dense",
            );
            const first = m.watch.jobs[0]!.revision;
            const history = rows
              .filter((r) => Number(r.revision) >= first)
              .map((r) => ({
                status: JobStatus[`JOB_STATUS_${r.status.toUpperCase()}` as keyof typeof JobStatus] as JobStatus,
                cancelRequested: Number(r.cancel_requested) === 1,
              }));
            assert.deepEqual(transitions(m.watch.jobs), transitions(history), `watch of ${m.jobId}`);
            for (let i = 1; i < m.watch.jobs.length; i++) {
              assert.ok(m.watch.jobs[i]!.revision > m.watch.jobs[i - 1]!.revision, "watch in revision order");
            }
          }
        }),
        { numRuns: Number(process.env.JOBWATCH_MODEL_RUNS ?? 40), includeErrorInReport: true },
      );
    });
  });
}
