// The watch checker on hand-made histories: a clean one passes, and each kind of violation is caught and named.
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  type Ack,
  type Attempt,
  CANCELLED,
  COMPLETED,
  checkHistory,
  type History,
  type JobState,
  type JobsWatcherLog,
  type JobWatcherLog,
  PENDING,
  RUNNING,
} from "../guarantees/checker.js";

const JOB = "job-1";

function state(revision: number, status: number, progress = 0, over: Partial<JobState> = {}): JobState {
  return { jobId: JOB, revision, status, cancelRequested: false, username: "alice", content: `p${progress}`, ...over };
}

/** The lifecycle every test starts from: created, started, two progress reports, completed (r1..r5). */
const LIFE: JobState[] = [
  state(1, PENDING),
  state(2, RUNNING),
  state(3, RUNNING, 40),
  state(4, RUNNING, 80),
  state(5, COMPLETED, 100),
];
const CALLS = ["CreateJob", "StartJob", "ReportProgress", "ReportProgress", "CompleteJob"];

function acks(states = LIFE): Ack[] {
  return states.map((s, i) => ({
    call: CALLS[i] ?? "ReportProgress",
    state: s,
    transition: CALLS[i] !== "ReportProgress",
    ...(i === 0 ? {} : { before: states[i - 1]!.status }),
    sentAt: 100 * (i + 1),
    ackedAt: 100 * (i + 1) + 10,
  }));
}

function attempt(states: JobState[], afterRevision?: number): Attempt {
  return {
    ...(afterRevision === undefined ? {} : { afterRevision }),
    messages: states.map((s, i) => ({ type: "job" as const, jobs: [s], at: i })),
  };
}

/** A WatchJob watcher whose calls received `calls` (and whose library yielded each new revision once). */
function jobWatcher(calls: { states: JobState[]; afterRevision?: number }[], startAfter = 0): JobWatcherLog {
  const seen: JobWatcherLog["seen"] = [];
  let last = startAfter;
  calls.forEach((c, a) => {
    for (const s of c.states) {
      if (s.revision > last) {
        seen.push({ state: s, attempt: a });
        last = s.revision;
      }
    }
  });
  return {
    kind: "job",
    id: "w1",
    jobId: JOB,
    startAfter,
    attempts: calls.map((c) => attempt(c.states, c.afterRevision)),
    seen,
  };
}

function history(over: Partial<History> = {}): History {
  return {
    acks: acks(),
    unsure: new Set(),
    finals: [{ replica: "r1", state: LIFE[4]! }],
    watchers: [jobWatcher([{ states: LIFE }])],
    reads: [],
    refusals: [],
    ...over,
  };
}

function kinds(h: History): string[] {
  return [...new Set(checkHistory(h).violations.map((v) => v.kind))].sort();
}

test("a clean history passes, progress coalesced included", () => {
  const coalesced = jobWatcher([{ states: [LIFE[0]!, LIFE[1]!, LIFE[3]!, LIFE[4]!] }]);
  const verdict = checkHistory(history({ watchers: [jobWatcher([{ states: LIFE }]), coalesced] }));
  assert.deepEqual(verdict.violations, []);
  assert.equal(verdict.eventsChecked, 9);
});

test("a resumed stream that yields exactly what it missed passes", () => {
  const resumed = jobWatcher([{ states: [LIFE[0]!, LIFE[1]!] }, { states: [LIFE[2]!, LIFE[4]!], afterRevision: 2 }]);
  assert.deepEqual(checkHistory(history({ watchers: [resumed] })).violations, []);
});

test("a duplicate on one stream is caught", () => {
  const w = jobWatcher([{ states: [LIFE[0]!, LIFE[1]!, LIFE[1]!, LIFE[2]!, LIFE[3]!, LIFE[4]!] }]);
  assert.deepEqual(kinds(history({ watchers: [w] })), ["duplicate"]);
});

test("time travel on one stream is caught", () => {
  const w = jobWatcher([{ states: [LIFE[0]!, LIFE[1]!, LIFE[3]!, LIFE[2]!, LIFE[4]!] }]);
  assert.deepEqual(kinds(history({ watchers: [w] })), ["time-travel"]);
});

test("a status change coalesced into the progress after it (same status) passes", () => {
  const w = jobWatcher([{ states: [LIFE[0]!, LIFE[2]!, LIFE[3]!, LIFE[4]!] }]);
  assert.deepEqual(checkHistory(history({ watchers: [w] })).violations, []);
});

test("a missed status change is caught (progress may coalesce, status changes never)", () => {
  const w = jobWatcher([{ states: [LIFE[0]!, LIFE[4]!] }]);
  const v = checkHistory(history({ watchers: [w] })).violations;
  assert.deepEqual(
    v.map((x) => x.kind),
    ["missed-status-change"],
  );
  assert.match(v[0]!.detail, /StartJob \(r2/);
});

test("a gap: a watch that never reaches the final state is caught", () => {
  const w = jobWatcher([{ states: [LIFE[0]!, LIFE[1]!, LIFE[2]!] }]);
  assert.deepEqual(kinds(history({ watchers: [w] })), ["gap"]);
});

test("a resumed stream that repeats what it had is caught", () => {
  const w = jobWatcher([
    { states: [LIFE[0]!, LIFE[1]!, LIFE[2]!] },
    { states: [LIFE[2]!, LIFE[3]!, LIFE[4]!], afterRevision: 3 },
  ]);
  assert.deepEqual(kinds(history({ watchers: [w] })), ["resume-repeat"]);
});

test("a resumed stream that misses a status change is caught", () => {
  // Resumed after r1 (PENDING), it sends the end, but never RUNNING (r2 to r4).
  const w = jobWatcher([{ states: [LIFE[0]!] }, { states: [LIFE[4]!], afterRevision: 1 }]);
  assert.deepEqual(kinds(history({ watchers: [w] })), ["resume-miss"]);
});

test("a watcher that resumes from a saved revision must get every status change after it", () => {
  const fine = jobWatcher([{ states: [LIFE[1]!, LIFE[4]!], afterRevision: 1 }], 1);
  assert.deepEqual(checkHistory(history({ watchers: [fine] })).violations, []);
  const missing = jobWatcher([{ states: [LIFE[4]!], afterRevision: 1 }], 1);
  assert.deepEqual(kinds(history({ watchers: [missing] })), ["missed-status-change"]);
});

test("a lost ack: the final state is older than an acknowledged write", () => {
  const h = history({
    finals: [{ replica: "r2", state: LIFE[3]! }],
    watchers: [jobWatcher([{ states: LIFE.slice(0, 4) }])],
  });
  assert.ok(kinds(h).includes("lost-ack"), kinds(h).join());
});

test("a lost ack: an acknowledged job that the final read does not find", () => {
  const h = history({ missing: [{ replica: "r2", jobId: JOB }] });
  assert.deepEqual(kinds(h), ["lost-ack"]);
});

test("a lost ack: the revision acknowledged is later seen holding another write", () => {
  // r3 was acknowledged as progress 40; the database lost it and gave r3 to the next report (progress 80).
  const other = state(3, RUNNING, 80);
  const w = jobWatcher([{ states: [LIFE[0]!, LIFE[1]!, other, LIFE[4]!] }]);
  assert.deepEqual(kinds(history({ watchers: [w] })), ["lost-ack"]);
});

test("a lost ack: two writes acknowledged with the same revision", () => {
  const twice = [...LIFE.slice(0, 3), state(3, RUNNING, 80), state(4, COMPLETED, 100)];
  const h = history({
    acks: acks(twice),
    finals: [{ replica: "r1", state: twice[4]! }],
    watchers: [jobWatcher([{ states: [twice[0]!, twice[1]!, twice[3]!, twice[4]!] }])],
  });
  assert.ok(kinds(h).includes("lost-ack"), kinds(h).join());
});

test("a final state other than the last acknowledged write is caught, unless its last outcome was unknown", () => {
  const newer = state(6, COMPLETED, 100);
  const finals = [{ replica: "r1", state: newer }];
  const watchers = [jobWatcher([{ states: [...LIFE.slice(0, 4), newer] }])];
  assert.ok(kinds(history({ finals, watchers })).includes("final-state"));
  assert.ok(!kinds(history({ finals, watchers, unsure: new Set([JOB]) })).includes("final-state"));
});

test("two replicas showing different things for the same unacknowledged revision is caught", () => {
  const a = state(6, CANCELLED);
  const b = state(6, COMPLETED);
  const h = history({
    acks: acks().slice(0, 4),
    unsure: new Set([JOB]),
    finals: [
      { replica: "r1", state: a },
      { replica: "r2", state: b },
    ],
    watchers: [],
  });
  assert.deepEqual(kinds(h), ["divergent"]);
});

/** A WatchJobs watcher with one segment synced at time 50 (before every write). */
function jobsWatcher(
  events: { type: "snapshot" | "changed" | "removed"; state: JobState; attempt?: number }[],
  filter: JobsWatcherLog["filter"] = { statuses: [] },
  attempts: Attempt[] = [],
): JobsWatcherLog {
  return {
    kind: "jobs",
    id: "j1",
    filter,
    attempts,
    segments: [{ syncedAt: 50, events: events.map((e) => ({ attempt: 0, ...e })) }],
  };
}

test("WatchJobs: every change of a job created after SYNCED, REMOVED when it leaves the filter", () => {
  const all = jobsWatcher(LIFE.map((s) => ({ type: "changed" as const, state: s })));
  const running = jobsWatcher(
    [
      { type: "changed", state: LIFE[1]! },
      { type: "changed", state: LIFE[3]! },
      { type: "removed", state: LIFE[4]! },
    ],
    { statuses: [RUNNING] },
  );
  assert.deepEqual(checkHistory(history({ watchers: [all, running] })).violations, []);
});

test("WatchJobs: a missed creation, a missed REMOVED, a wrong event type and another user's job are caught", () => {
  // Synced before the job was created, it never heard of it.
  const noCreate = jobsWatcher([]);
  assert.deepEqual(kinds(history({ watchers: [noCreate] })), ["missed-status-change"]);
  const noStart = jobsWatcher([LIFE[0]!, LIFE[4]!].map((s) => ({ type: "changed" as const, state: s })));
  assert.deepEqual(kinds(history({ watchers: [noStart] })), ["missed-status-change"]);
  const noRemoved = jobsWatcher(
    [
      { type: "changed", state: LIFE[1]! },
      { type: "changed", state: LIFE[3]! },
    ],
    { statuses: [RUNNING] },
  );
  assert.deepEqual(kinds(history({ watchers: [noRemoved] })), ["gap", "missed-status-change"]);
  const wrongType = jobsWatcher(
    [
      { type: "changed", state: LIFE[1]! },
      { type: "changed", state: LIFE[4]! },
    ],
    { statuses: [RUNNING] },
  );
  assert.ok(kinds(history({ watchers: [wrongType] })).includes("wrong-event"));
  const bobs = jobsWatcher(
    LIFE.map((s) => ({ type: "changed" as const, state: s })),
    { statuses: [], username: "bob" },
  );
  assert.deepEqual(kinds(history({ watchers: [bobs] })), ["visibility"]);
});

test("WatchJobs: a resume from a cursor that repeats or misses a change is caught", () => {
  const repeat = jobsWatcher([
    ...LIFE.slice(0, 3).map((s) => ({ type: "changed" as const, state: s })),
    ...LIFE.slice(2).map((s) => ({ type: "changed" as const, state: s, attempt: 1 })),
  ]);
  assert.deepEqual(kinds(history({ watchers: [repeat] })), ["resume-repeat"]);
  const miss = jobsWatcher([
    ...LIFE.slice(0, 1).map((s) => ({ type: "changed" as const, state: s })),
    ...LIFE.slice(4).map((s) => ({ type: "changed" as const, state: s, attempt: 1 })),
  ]);
  assert.deepEqual(kinds(history({ watchers: [miss] })), ["resume-miss"]);
});

test("WatchJobs: a duplicate inside one call is caught from the raw messages", () => {
  const raw: Attempt = {
    messages: [LIFE[0]!, LIFE[1]!, LIFE[1]!].map((s, i) => ({ type: "changed" as const, jobs: [s], at: i })),
  };
  const w = jobsWatcher(
    LIFE.map((s) => ({ type: "changed" as const, state: s })),
    { statuses: [] },
    [raw],
  );
  assert.deepEqual(kinds(history({ watchers: [w] })), ["duplicate"]);
});

test("a read through another replica older than an acknowledged write, and a valid step refused, are caught", () => {
  const fresh = { state: LIFE[2]!, sentAt: 350 };
  assert.deepEqual(checkHistory(history({ reads: [fresh] })).violations, []);
  // Sent at 450, after StartJob (r2) and both reports (r3 at 310, r4 at 410) were acknowledged, it answered r3.
  const stale = { state: LIFE[2]!, sentAt: 450 };
  assert.deepEqual(kinds(history({ reads: [stale] })), ["stale-read"]);
  const refused = { jobId: JOB, call: "CompleteJob", detail: "FAILED_PRECONDITION: job is PENDING", sentAt: 500 };
  assert.deepEqual(kinds(history({ refusals: [refused] })), ["read-your-writes"]);
});

test("a watch ended by an error the client does not resume from is caught", () => {
  const w = { ...jobWatcher([{ states: LIFE }]), failure: "INTERNAL: internal error (see server log)" };
  assert.deepEqual(kinds(history({ watchers: [w] })), ["watch-failed"]);
});
