// One guarantees run: workers drive jobs through random valid lifecycles via the client library on every replica, while
// WatchJob and WatchJobs watchers record everything they receive and a fault profile strikes; then the checker judges.
//
// API:
//   runProfile({ name, replicas, tokens, fault, writes? })  -> { stats, verdict, line, history }
//     fault(ctx) runs while the load does (ctx.sleep(ms) waits, cut short once the run is over); the load runs until
//     the fault is over and `writes` writes were acknowledged (JOBWATCH_GUARANTEES_WRITES, default 2500) or
//     JOBWATCH_GUARANTEES_SECONDS (default 45) went by, and in any case until MIN_TRANSITIONS status changes were
//     acknowledged (a slow machine takes longer rather than proving too little), at most
//     JOBWATCH_GUARANTEES_MAX_SECONDS (default 150); then 2 s more, every job is finished, each job's final state is
//     read through every replica, and every watcher is given time to catch up.
//   MIN_TRANSITIONS  the acknowledged status changes a run must have to count (JOBWATCH_GUARANTEES_MIN_TRANSITIONS, 200)
// Everything goes through the public gRPC API: the client library (workers, and watchers through its resumable
// streams), with a client interceptor that records every message each watch call received as the server sent it.
import { AsyncLocalStorage } from "node:async_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { InterceptingCall, type Interceptor } from "@grpc/grpc-js";
import type { JobsWatchEvent, JobwatchClient } from "../../src/client/index.js";
import { createClient, GrpcStatus, Job, JobStatus } from "../../src/client/index.js";
import type { WatchJobResponse, WatchJobsResponse } from "../../src/gen/jobwatch/v1/job_service.js";
import { WatchJobsEventType } from "../../src/gen/jobwatch/v1/job_service.js";
import type {
  Attempt,
  History,
  JobState,
  JobsWatcherLog,
  JobWatcherLog,
  RawMessage,
  Verdict,
  WatcherLog,
} from "./checker.js";
import { checkHistory, isTerminal } from "./checker.js";
import type { Replica, RunTokens } from "./replicas.js";

/** What a fault profile is handed. */
export interface FaultContext {
  replicas: readonly Replica[];
  /** Waits `ms` (resolves early once the run is stopping). */
  sleep(ms: number): Promise<void>;
  /** Notes what happened when, for the run's line. */
  note(text: string): void;
}

/** A run's settings. */
export interface RunOptions {
  name: string;
  replicas: readonly Replica[];
  tokens: RunTokens;
  fault?: (ctx: FaultContext) => Promise<void>;
  /** Acknowledged writes to wait for (the load also runs while the fault does). */
  writes?: number;
  /** Workers driving jobs at once (default 8). */
  workers?: number;
}

/** The counts a run prints. */
export interface RunStats {
  /** Transitions acknowledged to workers: every write (a new revision) a worker got an answer for. */
  writes: number;
  /** Of those, status changes (and cancel requests): the ones no watcher may miss. */
  transitions: number;
  jobs: number;
  /** Writes whose outcome the worker did not learn from the answer (a connection lost, UNAVAILABLE ...). */
  unknownOutcomes: number;
  eventsChecked: number;
  /** Watch calls after a watcher's first (reconnects by the client library, and forced disconnects). */
  resumes: number;
  forcedResumes: number;
  reads: number;
}

/** What runProfile returns. */
export interface RunResult {
  stats: RunStats;
  verdict: Verdict;
  /** The line to print. */
  line: string;
  /** Everything recorded, for a look at what went wrong. */
  history: History;
  /** Error lines the replicas logged. */
  replicaErrors: string[];
}

const WRITES = Number(process.env.JOBWATCH_GUARANTEES_WRITES ?? 2500);
const SECONDS = Number(process.env.JOBWATCH_GUARANTEES_SECONDS ?? 45);
const MAX_SECONDS = Number(process.env.JOBWATCH_GUARANTEES_MAX_SECONDS ?? 150);

/**
 * Fewer acknowledged status changes than this and the run proved too little to count (the load goes on until it
 * has them). Low on purpose: how many a run gets depends on the machine (a shared 2-core one at load 11 made 800
 * writes in 15 s, a quiet one 2,500 in 6).
 */
export const MIN_TRANSITIONS = Number(process.env.JOBWATCH_GUARANTEES_MIN_TRANSITIONS ?? 200);

/** Uniform integer in [0, n). */
const rnd = (n: number): number => Math.floor(Math.random() * n);
const chance = (p: number): boolean => Math.random() < p;

/** A job as the checker compares it: the fields one revision fixes. */
function stateOf(job: Job): JobState {
  const json = Job.toJSON(job) as Record<string, unknown>;
  const {
    estimatedCompletionAt: _e,
    estimateBasis: _b,
    jobId,
    revision,
    status,
    cancelRequested,
    username,
    ...rest
  } = json;
  return {
    jobId: job.jobId,
    revision: job.revision,
    status: job.status,
    cancelRequested: job.cancelRequested,
    username: job.username,
    content: JSON.stringify(rest),
  };
}

/** "CODE: message" of a client error, for the record. */
function failureOf(error: unknown): string {
  const code = codeOf(error);
  return `${code === undefined ? "" : `${GrpcStatus[code]}: `}${(error as Error).message}`;
}

function codeOf(error: unknown): number | undefined {
  return (error as { code?: number }).code;
}

/** The watcher a watch call belongs to (the interceptor reads it from the async context of the call). */
const current = new AsyncLocalStorage<WatcherLog>();

/** Records every message each watch call receives, into the attempt of the watcher running it. */
const recorder: Interceptor = (options, nextCall) => {
  const log = current.getStore();
  if (log === undefined) return new InterceptingCall(nextCall(options));
  const attempt: Attempt = { messages: [] };
  log.attempts.push(attempt);
  return new InterceptingCall(nextCall(options), {
    sendMessage(message: { afterRevision?: number; afterCursor?: string }, next) {
      if (message.afterRevision !== undefined && message.afterRevision > 0)
        attempt.afterRevision = message.afterRevision;
      if (message.afterCursor) attempt.afterCursor = message.afterCursor;
      next(message);
    },
    start(metadata, _listener, next) {
      next(metadata, {
        onReceiveMessage(message: WatchJobResponse | WatchJobsResponse, pass) {
          attempt.messages.push(rawOf(message));
          pass(message);
        },
      });
    },
  });
};

const EVENT: Record<number, RawMessage["type"]> = {
  [WatchJobsEventType.WATCH_JOBS_EVENT_TYPE_SNAPSHOT]: "snapshot",
  [WatchJobsEventType.WATCH_JOBS_EVENT_TYPE_SYNCED]: "synced",
  [WatchJobsEventType.WATCH_JOBS_EVENT_TYPE_CHANGED]: "changed",
  [WatchJobsEventType.WATCH_JOBS_EVENT_TYPE_REMOVED]: "removed",
  [WatchJobsEventType.WATCH_JOBS_EVENT_TYPE_BOOKMARK]: "bookmark",
};

function rawOf(message: WatchJobResponse | WatchJobsResponse): RawMessage {
  const at = Date.now();
  if ("jobs" in message) {
    return { type: EVENT[message.type] ?? "bookmark", jobs: message.jobs.map(stateOf), at, cursor: message.cursor };
  }
  return message.job === undefined
    ? { type: "bookmark", jobs: [], at }
    : { type: "job", jobs: [stateOf(message.job)], at };
}

/** Runs one profile (see the file header). */
export async function runProfile(options: RunOptions): Promise<RunResult> {
  const { replicas, tokens } = options;
  const started = Date.now();
  // The run's own operation type: a database shared with earlier runs (Galera's) holds their jobs too.
  const OPERATION = `guarantees-${started.toString(36)}`;
  const clients: JobwatchClient[] = [];
  const make = (address: string, token: string, extra: Record<string, unknown> = {}): JobwatchClient => {
    const c = createClient({
      address,
      token,
      callTimeoutMs: 10_000,
      channelOptions: { interceptors: [recorder], ...extra },
    });
    clients.push(c);
    return c;
  };
  // One client per replica for the workers and the watchers, one for alice, and one over every replica (round robin).
  const admins = replicas.map((r) => make(r.address, tokens.admin));
  const alices = replicas.map((r) => make(r.address, tokens.alice));
  const everywhere = make(`ipv4:${replicas.map((r) => r.address).join(",")}`, tokens.admin, {
    "grpc.service_config": JSON.stringify({ loadBalancingConfig: [{ round_robin: {} }] }),
  });
  const anyAdmin = (): JobwatchClient => (chance(0.25) ? everywhere : admins[rnd(admins.length)]!);

  const history: History & { unsure: Set<string>; missing: NonNullable<History["missing"]> } = {
    acks: [],
    unsure: new Set(),
    finals: [],
    missing: [],
    watchers: [],
    reads: [],
    refusals: [],
  };
  let unknownOutcomes = 0;
  let forcedResumes = 0;
  let stopping = false;
  const stopped = new AbortController();
  const notes: string[] = [];
  const note = (text: string): void => {
    notes.push(`${((Date.now() - started) / 1000).toFixed(1)}s ${text}`);
  };
  const jobWatches: Promise<void>[] = [];

  // ---- watchers -------------------------------------------------------------------------------------------------
  /** A WatchJob watcher; with `forced`, it lets go after a few messages and resumes from its saved revision elsewhere. */
  const watchJob = (jobId: string, forced: number): void => {
    const log: JobWatcherLog = {
      kind: "job",
      id: `job-${history.watchers.length}`,
      jobId,
      startAfter: 0,
      attempts: [],
      seen: [],
    };
    history.watchers.push(log);
    const run = async (): Promise<void> => {
      let after = 0;
      for (let round = 0; ; round++) {
        const quit = new AbortController();
        const signal = AbortSignal.any([quit.signal, stopped.signal]);
        const letGoAfter = round < forced ? 1 + rnd(3) : Number.POSITIVE_INFINITY;
        let got = 0;
        try {
          for await (const job of anyAdmin().watchJob(jobId, {
            signal,
            afterRevision: after,
            backoff: { maxDelayMs: 1000 },
          })) {
            log.seen.push({ state: stateOf(job), attempt: log.attempts.length - 1 });
            after = job.revision;
            if (++got >= letGoAfter && !isTerminal(job.status)) quit.abort();
          }
          return;
        } catch (error) {
          if (stopped.signal.aborted) return;
          if (!quit.signal.aborted) {
            log.failure = failureOf(error);
            return;
          }
        }
        forcedResumes++;
        await sleep(50 + rnd(250));
      }
    };
    jobWatches.push(current.run(log, run));
  };

  /** A WatchJobs watcher; with `forcedEveryMs`, it lets go that often and resumes from its saved cursor elsewhere. */
  const watchJobs = (
    id: string,
    pick: () => JobwatchClient,
    filter: { statuses?: JobStatus[]; allUsers?: boolean },
    user: string | undefined,
    forcedEveryMs?: number,
  ): { log: JobsWatcherLog; synced: Promise<void>; done: Promise<void> } => {
    const log: JobsWatcherLog = {
      kind: "jobs",
      id,
      filter: { statuses: filter.statuses ?? [], ...(user === undefined ? {} : { username: user }) },
      attempts: [],
      segments: [{ events: [] }],
    };
    history.watchers.push(log);
    let onSynced!: () => void;
    const synced = new Promise<void>((resolve) => (onSynced = resolve));
    const run = async (): Promise<void> => {
      let cursor: string | undefined;
      for (let round = 0; ; round++) {
        // Without a saved cursor (let go before SYNCED), the stream starts again from a snapshot: a new segment.
        if (round > 0 && cursor === undefined) log.segments.push({ events: [] });
        const quit = new AbortController();
        const signal = AbortSignal.any([quit.signal, stopped.signal]);
        const timer =
          forcedEveryMs === undefined
            ? undefined
            : setTimeout(() => quit.abort(), forcedEveryMs / 2 + rnd(forcedEveryMs));
        try {
          const events: AsyncIterable<JobsWatchEvent> = pick().watchJobs(
            { ...filter, operationType: OPERATION },
            { signal, ...(cursor === undefined ? {} : { afterCursor: cursor }), backoff: { maxDelayMs: 1000 } },
          );
          for await (const e of events) {
            const segment = log.segments.at(-1)!;
            const attempt = log.attempts.length - 1;
            if (e.type === "reset") {
              log.segments.push({ events: [] });
              cursor = undefined;
            } else if (e.type === "synced") {
              segment.syncedAt = Date.now();
              onSynced();
            } else segment.events.push({ type: e.type, state: stateOf(e.job), attempt });
            if (e.type !== "reset" && e.type !== "snapshot") cursor = e.cursor;
          }
        } catch (error) {
          if (stopped.signal.aborted) return;
          if (!quit.signal.aborted) {
            log.failure = failureOf(error);
            onSynced();
            return;
          }
        } finally {
          clearTimeout(timer);
        }
        forcedResumes++;
        await sleep(50 + rnd(250));
      }
    };
    return { log, synced, done: current.run(log, run) };
  };

  const dashboards = [
    watchJobs("jobs-all-forced", () => admins[rnd(admins.length)]!, { allUsers: true }, undefined, 3000),
    watchJobs(
      "jobs-running",
      () => everywhere,
      { allUsers: true, statuses: [JobStatus.JOB_STATUS_RUNNING] },
      undefined,
    ),
    watchJobs("jobs-alice", () => alices[rnd(alices.length)]!, {}, "alice", 4000),
    watchJobs("jobs-all", () => everywhere, { allUsers: true }, undefined),
  ];
  await Promise.race([
    Promise.all(dashboards.map((d) => d.synced)),
    Promise.all(dashboards.map((d) => d.done)).then(() => {
      throw new Error("a WatchJobs watcher ended before it synced");
    }),
  ]);

  // ---- workers --------------------------------------------------------------------------------------------------
  /** The job as the worker last knew it, and whether a write of it had an outcome it never learned. */
  interface Driven {
    job: Job;
    unknown: boolean;
  }

  /**
   * Reads the job through any replica until one answers; undefined when it is still not found after 5 s (a replica
   * whose node lags may not show it at first): an acknowledged job gone, which the final reads report as lost, and
   * which ends the worker's driving of it instead of the run.
   */
  const readJob = async (jobId: string): Promise<Job | undefined> => {
    for (let notFound = 0; ; ) {
      try {
        const job = await anyAdmin().getJob(jobId);
        return job;
      } catch (error) {
        if (codeOf(error) === GrpcStatus.NOT_FOUND) {
          if (++notFound > 25) return undefined;
          await sleep(200);
          continue;
        }
        if (codeOf(error) !== GrpcStatus.UNAVAILABLE && codeOf(error) !== GrpcStatus.DEADLINE_EXCEEDED) throw error;
        await sleep(200);
      }
    }
  };

  /**
   * One write, through a random replica, repeated until its outcome is known: acknowledged (recorded), or found
   * applied by reading the job after an unknown outcome (not an ack). `applied` says whether a read job shows it.
   */
  const write = async (
    d: Driven,
    call: string,
    transition: boolean,
    send: (c: JobwatchClient) => Promise<Job>,
    applied: (job: Job) => boolean,
  ): Promise<void> => {
    const before = d.job.status;
    for (let attempt = 0; ; attempt++) {
      const sentAt = Date.now();
      try {
        const job = await send(anyAdmin());
        history.acks.push({ call, state: stateOf(job), transition, before, sentAt, ackedAt: Date.now() });
        d.job = job;
        d.unknown = false;
        history.unsure.delete(job.jobId);
        if (chance(0.2)) {
          // Read-your-writes: a read through any replica, sent after the answer, sees at least this revision.
          const readAt = Date.now();
          try {
            const seen = await admins[rnd(admins.length)]!.getJob(job.jobId);
            history.reads.push({ state: stateOf(seen), sentAt: readAt });
          } catch {
            // a fault; the read proves nothing either way
          }
        }
        return;
      } catch (error) {
        const code = codeOf(error);
        if (code === GrpcStatus.FAILED_PRECONDITION || code === GrpcStatus.NOT_FOUND) {
          if (!d.unknown) {
            history.refusals.push({
              jobId: d.job.jobId,
              call,
              detail: `${GrpcStatus[code]}: ${(error as Error).message}`,
              sentAt,
            });
          }
        } else if (attempt > 200) throw error;
        else unknownOutcomes++;
        d.unknown = true;
        await sleep(100 + rnd(200));
        const now = await readJob(d.job.jobId);
        if (now === undefined) return;
        if (now.revision > d.job.revision) d.job = now;
        if (applied(now)) {
          history.unsure.add(now.jobId);
          return;
        }
      }
    }
  };

  const status = JobStatus;
  const drive = async (w: number, n: number): Promise<void> => {
    const username = chance(0.5) ? "alice" : "bob";
    const requestId = crypto.randomUUID();
    const d: Driven = { job: undefined as unknown as Job, unknown: false };
    // CreateJob with a request id: repeated after an unknown outcome, it answers with the job made first.
    for (;;) {
      const sentAt = Date.now();
      try {
        const job = await anyAdmin().worker.createJob({
          operationType: OPERATION,
          username,
          requestId,
          resource: `w${w}-${n}`,
        });
        history.acks.push({ call: "CreateJob", state: stateOf(job), transition: true, sentAt, ackedAt: Date.now() });
        d.job = job;
        break;
      } catch (error) {
        unknownOutcomes++;
        if (stopped.signal.aborted) throw error;
        await sleep(100 + rnd(200));
      }
    }
    const id = d.job.jobId;
    watchJob(id, chance(0.5) ? 1 + rnd(2) : 0);
    const progress = (p: number): Promise<void> =>
      write(
        d,
        "ReportProgress",
        false,
        (c) => c.worker.reportProgress(id, p, { phase: `phase-${p % 3}`, detail: `${p}%` }),
        () => false,
      );
    const heartbeat = (): Promise<void> =>
      write(
        d,
        "Heartbeat",
        false,
        (c) => c.worker.heartbeat(id),
        () => false,
      );
    const cancel = (): Promise<void> =>
      write(
        d,
        "CancelJob",
        true,
        (c) => c.cancelJob(id, { reason: "checker" }),
        (j) => j.cancelRequested,
      );
    const finishWith = (target: JobStatus, call: string, send: (c: JobwatchClient) => Promise<Job>): Promise<void> =>
      write(d, call, true, send, (j) => j.status === target);
    const complete = (): Promise<void> =>
      finishWith(status.JOB_STATUS_COMPLETED, "CompleteJob", (c) => c.worker.completeJob(id, { n, by: "checker" }));
    const fail = (): Promise<void> =>
      finishWith(status.JOB_STATUS_FAILED, "FailJob", (c) => c.worker.failJob(id, `failed by the checker (${n})`));

    const first = Math.random();
    if (first < 0.06) return cancel(); // PENDING -> CANCELLED at once
    if (first < 0.09) return fail();
    if (first < 0.11) return complete();
    await finishWith(status.JOB_STATUS_RUNNING, "StartJob", (c) => c.worker.startJob(id));
    if (chance(0.3)) watchJob(id, 0); // a watcher that comes in mid-lifecycle
    const steps = 1 + rnd(7);
    for (let s = 1; s <= steps; s++) await (chance(0.15) ? heartbeat() : progress(Math.round((s * 99) / steps)));
    const end = Math.random();
    if (end < 0.6) return complete();
    if (end < 0.78) return fail();
    await cancel();
    for (let s = rnd(3); s > 0; s--) await progress(99);
    if (end < 0.95) {
      if (d.job.status !== status.JOB_STATUS_RUNNING) return;
      return finishWith(status.JOB_STATUS_CANCELLED, "MarkCancelled", (c) => c.worker.markCancelled(id));
    }
    return complete(); // cancel requested, finished anyway
  };

  let jobs = 0;
  const workers = Array.from({ length: options.workers ?? 12 }, async (_, w) => {
    for (let n = 0; !stopping; n++) {
      jobs++;
      await drive(w, n);
    }
  });

  // ---- the fault, then the end ----------------------------------------------------------------------------------
  const wake = new AbortController();
  const ctx: FaultContext = {
    replicas,
    sleep: (ms) => sleep(ms, undefined, { signal: wake.signal }).catch(() => undefined),
    note,
  };
  const fault = (options.fault ?? (() => Promise.resolve()))(ctx);
  const target = options.writes ?? WRITES;
  const enough = (async () => {
    const transitions = (): number => history.acks.reduce((n, a) => n + (a.transition ? 1 : 0), 0);
    for (;;) {
      const elapsed = Date.now() - started;
      if (elapsed >= MAX_SECONDS * 1000) break;
      if ((history.acks.length >= target || elapsed >= SECONDS * 1000) && transitions() >= MIN_TRANSITIONS) break;
      await sleep(100);
    }
  })();
  await Promise.all([fault, enough]);
  await sleep(2000);
  stopping = true;
  await Promise.all(workers);
  note("load stopped");

  // Each job's final state through every replica (each read retried until that replica answers).
  const finalJobs = new Map<string, Job>();
  for (const ack of history.acks) finalJobs.set(ack.state.jobId, Job.fromPartial({}));
  for (const [r, c] of admins.entries()) {
    for (const jobId of finalJobs.keys()) {
      for (let attempt = 0; ; attempt++) {
        try {
          const job = await c.getJob(jobId);
          history.finals.push({ replica: replicas[r]!.name, state: stateOf(job) });
          if (job.revision > (finalJobs.get(jobId)?.revision ?? 0)) finalJobs.set(jobId, job);
          break;
        } catch (error) {
          // Asked again for 5 s (a node that rejoined may still be applying), then recorded: a lost job.
          if (codeOf(error) === GrpcStatus.NOT_FOUND && attempt >= 25) {
            history.missing.push({ replica: replicas[r]!.name, jobId });
            break;
          }
          if (attempt > 100) throw error;
          await sleep(200);
        }
      }
    }
  }
  // Every watcher gets time to catch up: WatchJob ends by itself at the terminal state; a WatchJobs watcher once
  // its last word on each job it follows is that job's final state (or the REMOVED that took it out).
  const caughtUp = (d: (typeof dashboards)[number]): boolean => {
    const last = new Map<string, { type: string; revision: number; status: number }>();
    for (const e of d.log.segments.at(-1)!.events) last.set(e.state.jobId, { type: e.type, ...e.state });
    for (const [jobId, job] of finalJobs) {
      if (d.log.filter.username !== undefined && job.username !== d.log.filter.username) continue;
      const inFilter = d.log.filter.statuses.length === 0 || d.log.filter.statuses.includes(job.status);
      const l = last.get(jobId);
      if (inFilter ? l?.revision !== job.revision : l !== undefined && l.type !== "removed") return false;
    }
    return true;
  };
  const deadline = Date.now() + 20_000;
  const jobWatchesDone = Promise.all(jobWatches);
  let settled = false;
  void jobWatchesDone.then(() => (settled = true));
  while (Date.now() < deadline && !(settled && dashboards.every(caughtUp))) await sleep(100);
  stopped.abort();
  wake.abort();
  await Promise.all([jobWatchesDone, ...dashboards.map((d) => d.done)]);
  for (const c of clients) c.close();

  const verdict = checkHistory(history);
  const resumes = history.watchers.reduce((n, w) => n + Math.max(0, w.attempts.length - 1), 0);
  const stats: RunStats = {
    writes: history.acks.length,
    transitions: history.acks.filter((a) => a.transition).length,
    jobs,
    unknownOutcomes,
    eventsChecked: verdict.eventsChecked,
    resumes,
    forcedResumes,
    reads: history.reads.length,
  };
  const seconds_ = ((Date.now() - started) / 1000).toFixed(0);
  const line =
    `${options.name}: ${stats.writes} transitions acknowledged (${stats.transitions} status changes, ${stats.jobs} jobs, ` +
    `${stats.unknownOutcomes} outcomes unknown), ${stats.eventsChecked} events checked from ${history.watchers.length} watchers, ` +
    `${stats.resumes} resumes (${stats.forcedResumes} forced), ${stats.reads} reads across replicas, ` +
    `violations ${verdict.violations.length} [${seconds_} s; ${notes.join("; ")}]`;
  const replicaErrors = replicas.flatMap((r) => r.errors.map((e) => `${r.name}: ${e}`));
  return { stats, verdict, line, history, replicaErrors };
}
