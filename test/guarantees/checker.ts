// The watch guarantees as a model: checks every watcher's whole history against every write acknowledged to a worker.
//
// A run (test/guarantees/run.ts) records, through the public gRPC API only:
//   - every write a worker got an answer for (an Ack: the job as the server said it stored it, at a revision);
//   - every message each watch call received from the server, as it came (an Attempt: one WatchJob or WatchJobs
//     call, with the after_revision / after_cursor it resumed from), and what the client library then handed
//     to the watcher (seen / segments: the watcher's view across its resumes);
//   - each job's final state, read through every replica at the end.
// checkHistory() then verifies, per job and per watcher, and names each violation after the guarantee it breaks:
//   duplicate             a revision delivered twice on one stream
//   time-travel           a revision lower than one delivered before it on the same stream
//   resume-repeat         a resumed stream delivering a revision at or before the one it resumed after
//   missed-status-change  a status change (or cancel request) acknowledged while the watcher was subscribed, never
//                         delivered to it: neither its revision nor a later one before the job's next status change
//                         (progress-only changes may be coalesced, a status change into the progress after it, but
//                         no status change is skipped)
//   resume-miss           the same, when the change fell between the last message before a resume and the first after
//   gap                   a watcher that never reached the job's final state (a WatchJob not ending at it, a
//                         WatchJobs watcher whose last word on a job is older than the job's last change)
//   lost-ack              an acknowledged write not in the database's history: a later read or message at its
//                         revision shows something else, the job's revisions went back, or the final state is older
//   final-state           the final state, read through a replica, is not the last acknowledged write
//   divergent             two observations of one revision of a job that differ (replicas disagreeing)
//   wrong-event           a WatchJobs CHANGED event for a job outside the filter, or REMOVED for one inside it
//   visibility            a WatchJobs event for a job of a user the watcher may not see
//   watch-failed          a watch that ended with an error the client library does not resume from (INTERNAL ...)
//   stale-read            a GetJobDetails sent through any replica after a write was acknowledged, answering an older revision
//   read-your-writes      a valid next step of a job refused (FAILED_PRECONDITION, NOT_FOUND) by a replica that did not
//                         see the worker's acknowledged write before it
// The checker is pure (no I/O); test/unit/guarantees-checker.test.ts feeds it hand-made histories that must fail.

/** Statuses as the contract numbers them (jobwatch.v1.JobStatus). */
export const PENDING = 1;
export const RUNNING = 2;
export const COMPLETED = 3;
export const FAILED = 4;
export const CANCELLED = 5;

/** A job at one revision, reduced to what that revision fixes (no completion estimate: it is made per message). */
export interface JobState {
  jobId: string;
  revision: number;
  status: number;
  cancelRequested: boolean;
  username: string;
  /** Every other field a revision fixes (progress, phase, detail, error, result, timestamps), as one comparable string. */
  content: string;
}

/** A write a worker got an answer for. */
export interface Ack {
  /** The rpc, e.g. "StartJob". */
  call: string;
  /** The job as the answer carried it. */
  state: JobState;
  /** The write changed status or cancel_requested (CreateJob, StartJob, CompleteJob, FailJob, MarkCancelled, CancelJob). */
  transition: boolean;
  /** The job's status before the write (undefined for CreateJob). */
  before?: number;
  /** When the request was sent and the answer arrived (ms, one clock for the whole run). */
  sentAt: number;
  ackedAt: number;
}

/** One message of a watch call, as the server sent it. */
export interface RawMessage {
  /** "job" for WatchJob; a WatchJobs event type otherwise. */
  type: "job" | "bookmark" | "snapshot" | "synced" | "changed" | "removed";
  jobs: JobState[];
  at: number;
  /** WatchJobs: the message's cursor. */
  cursor?: string;
}

/** One WatchJob or WatchJobs call: the request's resume point and every message it received. */
export interface Attempt {
  afterRevision?: number;
  afterCursor?: string;
  messages: RawMessage[];
}

/** What the client library handed a WatchJob watcher (one job). */
export interface JobWatcherLog {
  kind: "job";
  id: string;
  jobId: string;
  /** The revision the watcher's first call resumed after (a watcher that starts from a saved revision); 0 when none. */
  startAfter: number;
  attempts: Attempt[];
  /** Each job yielded, in order, across every reconnect and every forced disconnect, with the attempt it came from. */
  seen: { state: JobState; attempt: number }[];
  /** The error the watch ended with, when the client library gave up on it. */
  failure?: string;
}

/** A WatchJobs watcher's filter, as the checker needs it. */
export interface JobsFilter {
  /** Empty: every status. */
  statuses: number[];
  /** Only this user's jobs; undefined: every user's (all_users). */
  username?: string;
}

/** One WatchJobs event the client library yielded, with the attempt it came from. */
export interface JobsEvent {
  type: "snapshot" | "changed" | "removed";
  state: JobState;
  attempt: number;
}

/** The events between two resets (a stream that had to start again from a snapshot). */
export interface Segment {
  /** When SYNCED arrived (a resumed segment: when its first call started); undefined if it never did. */
  syncedAt?: number;
  events: JobsEvent[];
}

/** What the client library handed a WatchJobs watcher. */
export interface JobsWatcherLog {
  kind: "jobs";
  id: string;
  filter: JobsFilter;
  attempts: Attempt[];
  segments: Segment[];
  /** The error the watch ended with, when the client library gave up on it. */
  failure?: string;
}

/** A watcher's record. */
export type WatcherLog = JobWatcherLog | JobsWatcherLog;

/** A GetJobDetails answer, and when it was sent. */
export interface Read {
  state: JobState;
  sentAt: number;
}

/** A worker's valid next step that a replica refused, though the worker's every earlier write had been acknowledged. */
export interface Refusal {
  jobId: string;
  call: string;
  detail: string;
  sentAt: number;
}

/** Everything a run recorded. */
export interface History {
  /** In the order the answers arrived; each job is driven by one worker at a time. */
  acks: Ack[];
  /** Jobs whose last write ended with an unknown outcome (a lost connection): their final state may be newer than the last ack. */
  unsure: ReadonlySet<string>;
  /** Each job's state read at the end, through each replica. */
  finals: { replica: string; state: JobState }[];
  /** Acknowledged jobs that a replica's final read found no trace of (NOT_FOUND): lost, whatever else was seen. */
  missing?: { replica: string; jobId: string }[];
  watchers: WatcherLog[];
  reads: Read[];
  refusals: Refusal[];
}

/** Kinds of violation, each named after the guarantee it breaks (see the file header). */
export type ViolationKind =
  | "duplicate"
  | "time-travel"
  | "resume-repeat"
  | "missed-status-change"
  | "resume-miss"
  | "gap"
  | "lost-ack"
  | "final-state"
  | "divergent"
  | "wrong-event"
  | "visibility"
  | "watch-failed"
  | "stale-read"
  | "read-your-writes";

/** One broken guarantee, with enough to find it again. */
export interface Violation {
  kind: ViolationKind;
  jobId: string;
  watcher?: string;
  detail: string;
}

/** What checkHistory found. */
export interface Verdict {
  violations: Violation[];
  /** Job states received by watchers and checked. */
  eventsChecked: number;
}

const TERMINAL = new Set([COMPLETED, FAILED, CANCELLED]);

/** True for COMPLETED, FAILED and CANCELLED. */
export function isTerminal(status: number): boolean {
  return TERMINAL.has(status);
}

function describe(s: JobState): string {
  return `r${s.revision} status ${s.status}${s.cancelRequested ? " cancel-requested" : ""} ${s.content}`;
}

function sameState(a: JobState, b: JobState): boolean {
  return (
    a.status === b.status &&
    a.cancelRequested === b.cancelRequested &&
    a.username === b.username &&
    a.content === b.content
  );
}

/** True when a job in `status` matches the filter's statuses. */
function statusMatches(filter: JobsFilter, status: number): boolean {
  return filter.statuses.length === 0 || filter.statuses.includes(status);
}

/** Checks a run's history against the model; see the file header for what each violation means. */
export function checkHistory(history: History): Verdict {
  const violations: Violation[] = [];
  const report = (kind: ViolationKind, jobId: string, detail: string, watcher?: string): void => {
    violations.push(watcher === undefined ? { kind, jobId, detail } : { kind, jobId, watcher, detail });
  };

  // Acknowledged writes per job, in the order they were answered (one worker at a time drives a job).
  const acksByJob = new Map<string, Ack[]>();
  for (const ack of history.acks) {
    const list = acksByJob.get(ack.state.jobId) ?? [];
    list.push(ack);
    acksByJob.set(ack.state.jobId, list);
  }
  const acked = new Map<string, Ack>();
  for (const [jobId, list] of acksByJob) {
    for (let i = 0; i < list.length; i++) {
      const ack = list[i]!;
      const prev = list[i - 1];
      if (prev !== undefined && ack.state.revision <= prev.state.revision) {
        report(
          "lost-ack",
          jobId,
          `${ack.call} was answered with r${ack.state.revision} after ${prev.call} had been answered with r${prev.state.revision}: the earlier write was lost`,
        );
      }
      acked.set(`${jobId}@${ack.state.revision}`, ack);
    }
  }

  // Every observation of a revision must match its ack, and every other observation of it.
  const observed = new Map<string, { state: JobState; by: string }>();
  let eventsChecked = 0;
  const observe = (state: JobState, by: string, watcher?: string): void => {
    const key = `${state.jobId}@${state.revision}`;
    const ack = acked.get(key);
    if (ack !== undefined && !sameState(ack.state, state)) {
      report(
        "lost-ack",
        state.jobId,
        `${ack.call} was acknowledged as ${describe(ack.state)}; ${by} shows ${describe(state)}`,
        watcher,
      );
      return;
    }
    const other = observed.get(key);
    if (other === undefined) observed.set(key, { state, by });
    else if (ack === undefined && !sameState(other.state, state)) {
      report(
        "divergent",
        state.jobId,
        `${other.by} shows ${describe(other.state)}; ${by} shows ${describe(state)}`,
        watcher,
      );
    }
  };

  // The final state, through every replica: nothing acknowledged lost, and the last acknowledged write is what stays.
  const finals = new Map<string, JobState>();
  for (const { replica, state } of history.finals) {
    observe(state, `the final read through ${replica}`);
    const list = acksByJob.get(state.jobId) ?? [];
    const last = list.at(-1);
    if (last !== undefined) {
      if (state.revision < last.state.revision) {
        report(
          "lost-ack",
          state.jobId,
          `${last.call} was acknowledged at r${last.state.revision}; the final read through ${replica} is r${state.revision}`,
        );
      } else if (!history.unsure.has(state.jobId) && state.revision !== last.state.revision) {
        report(
          "final-state",
          state.jobId,
          `the last acknowledged write is ${last.call} at r${last.state.revision}; the final read through ${replica} is r${state.revision}`,
        );
      }
    }
    const had = finals.get(state.jobId);
    if (had === undefined || state.revision > had.revision) finals.set(state.jobId, state);
  }

  for (const { replica, jobId } of history.missing ?? []) {
    const last = acksByJob.get(jobId)?.at(-1);
    if (last !== undefined) {
      report(
        "lost-ack",
        jobId,
        `${last.call} was acknowledged at r${last.state.revision}; the final read through ${replica} found no such job`,
      );
    }
  }

  for (const read of history.reads) {
    observe(read.state, "a read");
    const newest = (acksByJob.get(read.state.jobId) ?? []).filter((a) => a.ackedAt < read.sentAt).at(-1);
    if (newest !== undefined && read.state.revision < newest.state.revision) {
      report(
        "stale-read",
        read.state.jobId,
        `a read sent after ${newest.call} was acknowledged at r${newest.state.revision} answered r${read.state.revision}`,
      );
    }
  }
  for (const refusal of history.refusals) {
    report("read-your-writes", refusal.jobId, `${refusal.call} was refused: ${refusal.detail}`);
  }

  for (const watcher of history.watchers) {
    if (watcher.failure !== undefined) {
      report("watch-failed", watcher.kind === "job" ? watcher.jobId : "", watcher.failure, watcher.id);
    }
    // Each call as the server answered it: increasing revisions per job, nothing at or before its resume point.
    for (const [a, attempt] of watcher.attempts.entries()) {
      const last = new Map<string, number>();
      for (const message of attempt.messages) {
        for (const state of message.jobs) {
          eventsChecked++;
          observe(state, `watcher ${watcher.id} (call ${a + 1})`, watcher.id);
          const before = last.get(state.jobId);
          if (before !== undefined && state.revision === before) {
            report("duplicate", state.jobId, `call ${a + 1} delivered r${state.revision} twice`, watcher.id);
          } else if (before !== undefined && state.revision < before) {
            report(
              "time-travel",
              state.jobId,
              `call ${a + 1} delivered r${state.revision} after r${before}`,
              watcher.id,
            );
          } else if (
            before === undefined &&
            attempt.afterRevision !== undefined &&
            state.revision <= attempt.afterRevision
          ) {
            report(
              "resume-repeat",
              state.jobId,
              `call ${a + 1} resumed after r${attempt.afterRevision} and delivered r${state.revision}`,
              watcher.id,
            );
          }
          last.set(state.jobId, state.revision);
        }
      }
    }
    if (watcher.kind === "job") checkJobWatcher(watcher, acksByJob.get(watcher.jobId) ?? [], finals, report);
    else checkJobsWatcher(watcher, acksByJob, finals, report);
  }
  return { violations, eventsChecked };
}

type Report = (kind: ViolationKind, jobId: string, detail: string, watcher?: string) => void;

/**
 * Whether the change acknowledged at `ack` reached a watcher that saw `revisions`: at its own revision, or at a
 * later one before the job's next status change (coalesced with the progress after it, same status).
 */
function delivered(ack: Ack, acks: Ack[], revisions: ReadonlySet<number>): boolean {
  const r = ack.state.revision;
  const next = acks.find((a) => a.transition && a.state.revision > r)?.state.revision ?? Number.POSITIVE_INFINITY;
  for (const seen of revisions) if (seen >= r && seen < next) return true;
  return false;
}

/** WatchJob: one job, every status change after the first message, ending at the final state. */
function checkJobWatcher(w: JobWatcherLog, acks: Ack[], finals: Map<string, JobState>, report: Report): void {
  const seen = w.seen;
  for (let i = 1; i < seen.length; i++) {
    const [a, b] = [seen[i - 1]!, seen[i]!];
    if (b.state.revision <= a.state.revision) {
      const kind =
        b.attempt !== a.attempt ? "resume-repeat" : b.state.revision === a.state.revision ? "duplicate" : "time-travel";
      report(kind, w.jobId, `r${b.state.revision} handed over after r${a.state.revision}`, w.id);
    }
  }
  const first = seen[0];
  // Subscribed from the saved revision it resumed after, or else from the current state it was sent first.
  const from = w.startAfter > 0 || first === undefined ? w.startAfter : first.state.revision;
  const upTo = seen.at(-1)?.state.revision ?? w.startAfter;
  const revisions = new Set(seen.map((s) => s.state.revision));
  for (const ack of acks) {
    const r = ack.state.revision;
    if (!ack.transition || r <= from || r > upTo || delivered(ack, acks, revisions)) continue;
    const before = seen.filter((s) => s.state.revision < r).at(-1);
    const after = seen.find((s) => s.state.revision > r);
    const resumed = before !== undefined && after !== undefined && before.attempt !== after.attempt;
    report(
      resumed ? "resume-miss" : "missed-status-change",
      w.jobId,
      `${ack.call} (r${r}, status ${ack.state.status}) was never delivered: r${before?.state.revision ?? from} then r${after?.state.revision ?? "-"}`,
      w.id,
    );
  }
  const final = finals.get(w.jobId);
  const end = seen.at(-1)?.state;
  if (final !== undefined && (end === undefined ? w.startAfter < final.revision : end.revision < final.revision)) {
    report(
      "gap",
      w.jobId,
      `the watch ended at r${end?.revision ?? w.startAfter}; the job ended at r${final.revision}`,
      w.id,
    );
  }
}

/** WatchJobs: per job of each segment, the same rules, within the filter and the watcher's visibility. */
function checkJobsWatcher(
  w: JobsWatcherLog,
  acksByJob: Map<string, Ack[]>,
  finals: Map<string, JobState>,
  report: Report,
): void {
  const { filter } = w;
  for (const [s, segment] of w.segments.entries()) {
    const byJob = new Map<string, JobsEvent[]>();
    for (const e of segment.events) {
      if (filter.username !== undefined && e.state.username !== filter.username) {
        report(
          "visibility",
          e.state.jobId,
          `a job of ${e.state.username} sent to a watcher of ${filter.username}'s`,
          w.id,
        );
      }
      const matches = statusMatches(filter, e.state.status);
      if ((e.type === "removed") === matches) {
        report("wrong-event", e.state.jobId, `${e.type.toUpperCase()} for a job in status ${e.state.status}`, w.id);
      }
      const list = byJob.get(e.state.jobId) ?? [];
      list.push(e);
      byJob.set(e.state.jobId, list);
    }
    const lastSegment = s === w.segments.length - 1;
    const jobIds = new Set([...byJob.keys(), ...acksByJob.keys()]);
    for (const jobId of jobIds) {
      const events = byJob.get(jobId) ?? [];
      for (let i = 1; i < events.length; i++) {
        const [a, b] = [events[i - 1]!, events[i]!];
        if (b.state.revision <= a.state.revision) {
          const kind =
            b.attempt !== a.attempt
              ? "resume-repeat"
              : b.state.revision === a.state.revision
                ? "duplicate"
                : "time-travel";
          report(kind, jobId, `r${b.state.revision} handed over after r${a.state.revision}`, w.id);
        }
      }
      const acks = acksByJob.get(jobId) ?? [];
      const owner = acks[0]?.state.username ?? events[0]?.state.username;
      if (filter.username !== undefined && owner !== filter.username) continue;
      const from = events[0]?.state.revision ?? Number.POSITIVE_INFINITY;
      const revisions = new Set(events.map((e) => e.state.revision));
      for (const ack of acks) {
        const r = ack.state.revision;
        const inFilter =
          statusMatches(filter, ack.state.status) || (ack.before !== undefined && statusMatches(filter, ack.before));
        const subscribed = r > from || (segment.syncedAt !== undefined && ack.sentAt > segment.syncedAt);
        if (!ack.transition || !inFilter || !subscribed || delivered(ack, acks, revisions)) continue;
        const before = events.filter((e) => e.state.revision < r).at(-1);
        const after = events.find((e) => e.state.revision > r);
        if (after === undefined && !lastSegment) continue; // the segment was cut short by a reset
        const resumed = before !== undefined && after !== undefined && before.attempt !== after.attempt;
        report(
          resumed ? "resume-miss" : "missed-status-change",
          jobId,
          `${ack.call} (r${r}, status ${ack.state.status}) was never delivered: r${before?.state.revision ?? "-"} then r${after?.state.revision ?? "-"}`,
          w.id,
        );
      }
      const final = finals.get(jobId);
      const end = events.at(-1);
      if (!lastSegment || final === undefined || end === undefined) continue;
      // The watcher's last word on the job: its final state, or the REMOVED that took it out of the filter.
      const caughtUp = statusMatches(filter, final.status)
        ? end.state.revision === final.revision
        : end.type === "removed";
      if (!caughtUp) {
        report(
          "gap",
          jobId,
          `the last event was ${end.type} r${end.state.revision}; the job ended at r${final.revision}`,
          w.id,
        );
      }
    }
  }
}
