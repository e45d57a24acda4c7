// The lifecycle rules as pure functions: no database, a job row written by hand, a fixed clock.

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { FailedPreconditionError } from "../../src/errors.js";
import type { JobRow } from "../../src/store/database.js";
import type { JobStatus } from "../../src/store/job.js";
import { JOB_STATUSES } from "../../src/store/job.js";
import type { Change, Rule } from "../../src/store/lifecycle.js";
import {
  cancelRule,
  cancelUnconfirmedRule,
  completeRule,
  failRule,
  failStaleRule,
  HISTORY_PROGRESS_INTERVAL_MS,
  heartbeatRule,
  markCancelledRule,
  progressRule,
  startRule,
} from "../../src/store/lifecycle.js";
import { jobRowToJob } from "../../src/store/rows.js";

const NOW = Date.UTC(2030, 0, 1);
const JOB_ID = "11111111-2222-4333-8444-555555555555";

/** A jobs row in `status`, with any column overridden. */
function row(status: JobStatus, over: Partial<JobRow> = {}): JobRow {
  return {
    job_id: JOB_ID,
    operation_type: "index_repo",
    username: "alice",
    resource: null,
    request_id: null,
    active_key: status === "pending" || status === "running" ? "k" : null,
    status,
    progress: 0,
    phase: null,
    detail: null,
    result: null,
    error: null,
    cancel_requested: 0,
    cancel_reason: null,
    cancel_requested_at: null,
    revision: 2,
    created_at: NOW - 10_000,
    updated_at: NOW - 10_000,
    started_at: status === "pending" ? null : NOW - 9000,
    completed_at: status === "pending" || status === "running" ? null : NOW - 5000,
    last_heartbeat_at: status === "pending" ? null : NOW - 9000,
    history_at: null,
    rate_anchor_at: null,
    rate_anchor_progress: null,
    trace_context: null,
    ...over,
  };
}

/** What `rule` decides for `r` at NOW. */
function apply(rule: Rule, r: JobRow): Change | null {
  return rule(jobRowToJob(r), r, NOW);
}

/** The message of the FailedPreconditionError `rule` throws on `r` (type STATUS, subject the job id). */
function refusal(rule: Rule, r: JobRow): string {
  try {
    apply(rule, r);
  } catch (error) {
    assert.ok(error instanceof FailedPreconditionError, `expected FailedPreconditionError, got ${String(error)}`);
    assert.equal(error.type, "STATUS");
    assert.equal(error.subject, JOB_ID);
    return error.message;
  }
  assert.fail(`the rule allowed a change on a ${r.status} job`);
}

describe("lifecycle rules", () => {
  test("each transition is allowed exactly in its statuses, and a refusal names the current status", () => {
    const rules: Record<string, { rule: Rule; legal: JobStatus[] }> = {
      start: { rule: startRule(), legal: ["pending"] },
      progress: { rule: progressRule(10), legal: ["running"] },
      heartbeat: { rule: heartbeatRule(), legal: ["running"] },
      complete: { rule: completeRule(null), legal: ["pending", "running"] },
      fail: { rule: failRule("x"), legal: ["pending", "running"] },
      cancel: { rule: cancelRule(), legal: ["pending", "running", "cancelled"] },
    };
    for (const [name, { rule, legal }] of Object.entries(rules)) {
      for (const status of JOB_STATUSES) {
        if (legal.includes(status)) {
          assert.doesNotThrow(() => apply(rule, row(status)), `${name} on ${status}`);
        } else {
          assert.match(refusal(rule, row(status)), new RegExp(`\\b${status.toUpperCase()}\\b`), `${name} on ${status}`);
        }
      }
    }
  });

  test("refusals say what state forbids what, and a finished job is 'already finished'", () => {
    assert.equal(refusal(startRule(), row("running")), "cannot start a job in RUNNING status; it was already started");
    assert.equal(
      refusal(completeRule(null), row("failed")),
      "cannot complete a job in FAILED status; the job has already finished",
    );
    assert.equal(
      refusal(heartbeatRule(), row("completed")),
      "cannot record a heartbeat for a job in COMPLETED status; the job has already finished",
    );
    assert.equal(refusal(cancelRule(), row("failed")), "cannot cancel a job in FAILED status");
  });

  test("start sets RUNNING, the start and heartbeat times, and enters the history", () => {
    assert.deepEqual(apply(startRule(), row("pending")), {
      set: { status: "running", started_at: NOW, last_heartbeat_at: NOW },
      recorded: true,
    });
  });

  test("progress: a new phase is always history; progress within a phase at most once per interval", () => {
    const recent = row("running", { phase: "fts", progress: 10, history_at: NOW - HISTORY_PROGRESS_INTERVAL_MS + 1 });
    assert.deepEqual(apply(progressRule(11), recent), {
      set: { progress: 11, last_heartbeat_at: NOW },
      recorded: false,
    });
    assert.deepEqual(apply(progressRule(11, "semantic", "1/2"), recent), {
      set: { progress: 11, phase: "semantic", detail: "1/2", last_heartbeat_at: NOW, history_at: NOW },
      recorded: true,
    });
    const due = row("running", { phase: "fts", progress: 10, history_at: NOW - HISTORY_PROGRESS_INTERVAL_MS });
    assert.equal(apply(progressRule(11), due)?.recorded, true);
    // Nothing a person reads changed: a heartbeat in effect, never history.
    assert.equal(apply(progressRule(10, "fts"), due)?.recorded, false);
    assert.equal(apply(progressRule(1), row("running"))?.recorded, true, "the first progress is history");
  });

  test("a heartbeat moves only last_heartbeat_at and never enters the history", () => {
    assert.deepEqual(apply(heartbeatRule(), row("running")), { set: { last_heartbeat_at: NOW }, recorded: false });
  });

  test("complete and fail end the job and free its resource", () => {
    assert.deepEqual(apply(completeRule('{"files":3}'), row("running")), {
      set: { status: "completed", progress: 100, result: '{"files":3}', completed_at: NOW, active_key: null },
      recorded: true,
    });
    assert.deepEqual(apply(failRule("disk full"), row("pending")), {
      set: { status: "failed", error: "disk full", completed_at: NOW, active_key: null },
      recorded: true,
    });
  });

  test("cancel: PENDING at once, RUNNING by request, a second request or a CANCELLED job unchanged", () => {
    assert.deepEqual(apply(cancelRule("not needed"), row("pending")), {
      set: {
        status: "cancelled",
        completed_at: NOW,
        active_key: null,
        cancel_requested: 1,
        cancel_reason: "not needed",
        cancel_requested_at: NOW,
      },
      recorded: true,
    });
    assert.deepEqual(apply(cancelRule(""), row("running")), {
      set: { cancel_requested: 1, cancel_reason: null, cancel_requested_at: NOW },
      recorded: true,
    });
    assert.equal(apply(cancelRule("again"), row("running", { cancel_requested: 1 })), null);
    assert.equal(apply(cancelRule(), row("cancelled")), null);
  });

  test("markCancelled needs a RUNNING job whose cancellation was requested", () => {
    assert.deepEqual(apply(markCancelledRule(), row("running", { cancel_requested: 1 })), {
      set: { status: "cancelled", completed_at: NOW, active_key: null },
      recorded: true,
    });
    assert.match(refusal(markCancelledRule(), row("running")), /RUNNING.*no cancellation was requested/);
    assert.match(refusal(markCancelledRule(), row("pending")), /PENDING.*only a RUNNING job whose cancellation/);
    assert.match(refusal(markCancelledRule(), row("completed")), /COMPLETED.*already finished/);
  });

  test("a refusal another call could have prevented names the missing step, never an rpc", () => {
    const cases: [Rule, JobRow, string, string][] = [
      [progressRule(5), row("pending"), "start", "cannot report progress on a job in PENDING status"],
      [heartbeatRule(), row("pending"), "start", "cannot record a heartbeat for a job in PENDING status"],
      [markCancelledRule(), row("pending"), "request_cancellation", "cannot mark a job in PENDING status as cancelled"],
      [markCancelledRule(), row("running"), "request_cancellation", "cannot mark a job in RUNNING status as cancelled"],
    ];
    for (const [rule, r, missing, refused] of cases) {
      assert.throws(
        () => apply(rule, r),
        (e: unknown) => {
          assert.ok(e instanceof FailedPreconditionError);
          assert.deepEqual(e.refusal, { refused, status: r.status.toUpperCase(), missing });
          assert.ok(e.message.startsWith(`${refused}; `));
          assert.doesNotMatch(e.message, /StartJob|CancelJob|MarkCancelled/);
          return true;
        },
      );
    }
    // Nothing to advise once the job has finished, or when no other call helps.
    for (const [rule, r] of [
      [heartbeatRule(), row("completed")],
      [startRule(), row("running")],
      [cancelRule(), row("failed")],
    ] as const) {
      assert.throws(
        () => apply(rule, r),
        (e: unknown) => e instanceof FailedPreconditionError && e.refusal === undefined,
      );
    }
  });

  test("the stale sweep fails only a RUNNING job still silent, naming when it was last heard", () => {
    const staleBefore = NOW - 60_000;
    const heard = NOW - 120_000;
    assert.deepEqual(apply(failStaleRule(staleBefore), row("running", { last_heartbeat_at: heard })), {
      set: {
        status: "failed",
        error: `worker stopped reporting: no heartbeat since ${new Date(heard).toISOString()}`,
        completed_at: NOW,
        active_key: null,
      },
      recorded: true,
    });
    // The worker spoke up, or another replica moved it, since the sweep picked it.
    assert.equal(apply(failStaleRule(staleBefore), row("running", { last_heartbeat_at: staleBefore })), null);
    assert.equal(apply(failStaleRule(staleBefore), row("failed", { last_heartbeat_at: heard })), null);
  });

  test("the cancel grace sweep cancels only a RUNNING job whose old request was never confirmed", () => {
    const before = NOW - 300_000;
    const asked = { cancel_requested: 1, cancel_requested_at: before - 1 };
    assert.deepEqual(apply(cancelUnconfirmedRule(before), row("running", asked)), {
      set: {
        status: "cancelled",
        error: "cancelled: the worker never confirmed the cancellation within the grace period",
        completed_at: NOW,
        active_key: null,
      },
      recorded: true,
    });
    assert.equal(apply(cancelUnconfirmedRule(before), row("running", { ...asked, cancel_requested_at: before })), null);
    assert.equal(apply(cancelUnconfirmedRule(before), row("cancelled", asked)), null);
    assert.equal(apply(cancelUnconfirmedRule(before), row("running")), null);
  });
});
