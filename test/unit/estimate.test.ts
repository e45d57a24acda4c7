// The completion estimate as pure functions, with jobs driven by hand at known rates through the store's own anchor rule.

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { Estimate, TypicalRun } from "../../src/jobs/estimate.js";
import { estimateCompletion, typicalRun } from "../../src/jobs/estimate.js";
import type { FinishedRun, Job } from "../../src/store/job.js";
import { RATE_WINDOW_MS, rateAnchorAfter } from "../../src/store/lifecycle.js";
import { testJob } from "../helpers/job.js";

const T0 = Date.UTC(2030, 0, 1);
const MIN = 60_000;

function job(over: Partial<Job> = {}): Job {
  return testJob({
    jobId: "11111111-2222-4333-8444-555555555555",
    operationType: "index_repo",
    status: "running",
    createdAt: T0 - 5000,
    updatedAt: T0,
    startedAt: T0,
    lastHeartbeatAt: T0,
    revision: 2,
    ...over,
  });
}

/**
 * A RUNNING job reporting `progressAt(t)` (t: ms since start, rounded down to whole percent as workers
 * report) every `everyMs`, its rate anchor moved by the store's rule at each report; `read(t)` is the
 * job as stored after the last report at or before t.
 */
function driven(progressAt: (t: number) => number, everyMs: number) {
  let current = job();
  let reportedUntil = 0;
  return {
    read(t: number): Job {
      for (; reportedUntil + everyMs <= t; ) {
        reportedUntil += everyMs;
        const now = T0 + reportedUntil;
        const progress = Math.min(99, Math.floor(progressAt(reportedUntil)));
        const anchor = rateAnchorAfter(current.rateAnchor, current.startedAt, progress, now);
        current = { ...current, progress, updatedAt: now, ...(anchor ? { rateAnchor: anchor } : {}) };
      }
      return current;
    },
  };
}

function history(runMs: number, waitMs = 5000, runs = 10): TypicalRun {
  return { runMs, waitMs, runs };
}

function defined(estimate: Estimate | undefined): Estimate {
  assert.ok(estimate !== undefined, "expected an estimate");
  return estimate;
}

describe("steady rate", () => {
  for (const [name, typical] of [
    ["no history", undefined],
    ["history twice as long as this job", history(2 * 20 * MIN)],
    ["history half as long", history(10 * MIN)],
  ] as const) {
    test(`within 10% of the true end from 30% progress on (${name})`, () => {
      const duration = 20 * MIN;
      const worker = driven((t) => (100 * t) / duration, 5000);
      for (let t = 5000; t < duration; t += 5000) {
        const j = worker.read(t);
        if (j.progress < 30) continue;
        const e = defined(estimateCompletion(j, typical, T0 + t));
        const error = Math.abs(e.at - (T0 + duration));
        assert.ok(error <= 0.1 * duration, `at ${j.progress}%: off by ${error / 1000}s of ${duration / 1000}s`);
        assert.equal(e.basis, "progress_rate");
      }
    });
  }

  test("a job as fast as its history is estimated well from its first report", () => {
    const duration = 4 * MIN;
    const worker = driven((t) => (100 * t) / duration, 3000);
    for (let t = 3000; t < duration; t += 3000) {
      const j = worker.read(t);
      const e = defined(estimateCompletion(j, history(duration), T0 + t));
      assert.ok(Math.abs(e.at - (T0 + duration)) <= 0.1 * duration, `at ${j.progress}%`);
      assert.equal(e.basis, j.progress === 0 ? "history" : j.progress < 30 ? "progress_and_history" : "progress_rate");
    }
  });

  test("bursts are averaged over the window: progress in 1% jumps every 12 s, read every second", () => {
    const duration = 20 * MIN;
    const worker = driven((t) => Math.floor(t / 12_000), 1000);
    for (let t = 5 * MIN; t < duration - 2 * MIN; t += 1000) {
      const e = defined(estimateCompletion(worker.read(t), undefined, T0 + t));
      // The rate counts the quiet time since the last jump (it cannot tell it from a stall): 8 jumps or
      // more in the window keep that under 10%.
      assert.ok(Math.abs(e.at - (T0 + duration)) <= 0.1 * duration, `at t=${t / 1000}s: ${(e.at - T0) / 1000}s`);
    }
  });

  test("a job that speeds up is followed within the window", () => {
    // 1%/10s for 5 minutes, then 1%/4s.
    const progressAt = (t: number): number => (t <= 5 * MIN ? t / 10_000 : 30 + (t - 5 * MIN) / 4000);
    const trueEnd = 5 * MIN + 70 * 4000;
    const worker = driven(progressAt, 2000);
    const t = 5 * MIN + 2 * RATE_WINDOW_MS + 10_000;
    const e = defined(estimateCompletion(worker.read(t), undefined, T0 + t));
    assert.ok(Math.abs(e.at - (T0 + trueEnd)) <= 0.1 * trueEnd, `off by ${(e.at - T0 - trueEnd) / 1000}s`);
  });
});

describe("a stalled job", () => {
  for (const [name, everyMs] of [
    ["that stops reporting", Number.POSITIVE_INFINITY],
    ["that keeps reporting the same progress", 5000],
  ] as const) {
    test(`its estimate moves out (${name})`, () => {
      const duration = 10 * MIN;
      const stallAt = 4 * MIN;
      const worker = driven((t) => (100 * Math.min(t, stallAt)) / duration, 5000);
      const stalled = worker.read(stallAt);
      assert.equal(stalled.progress, 40);
      let previous = defined(estimateCompletion(stalled, history(duration), T0 + stallAt)).at;
      assert.ok(Math.abs(previous - (T0 + duration)) <= 0.1 * duration);
      for (let t = stallAt + 30_000; t <= stallAt + 10 * MIN; t += 30_000) {
        const j = Number.isFinite(everyMs) ? worker.read(t) : stalled;
        const e = estimateCompletion(j, history(duration), T0 + t);
        // It may end with no estimate at all (no progress in the window), never with one that stays put.
        if (e === undefined) break;
        assert.ok(e.at > previous + 30_000, `at +${(t - stallAt) / 1000}s: ${e.at - previous} ms later only`);
        previous = e.at;
      }
    });
  }
});

describe("history alone", () => {
  test("a new operation type with no history gets no estimate at 0%, RUNNING or PENDING", () => {
    assert.equal(estimateCompletion(job(), undefined, T0 + 1000), undefined);
    assert.equal(estimateCompletion(job({ status: "pending", startedAt: null }), undefined, T0), undefined);
    // Two runs are not a history.
    assert.equal(estimateCompletion(job(), history(MIN, 1000, 2), T0 + 1000), undefined);
  });

  test("a PENDING job of a type with history: created + median wait + median run", () => {
    const pending = job({ status: "pending", startedAt: null, createdAt: T0 });
    assert.deepEqual(estimateCompletion(pending, history(MIN, 5000), T0 + 1000), {
      at: T0 + 5000 + MIN,
      basis: "history",
    });
    // Waiting longer than usual: it can start at the earliest now.
    assert.deepEqual(estimateCompletion(pending, history(MIN, 5000), T0 + 20_000), {
      at: T0 + 20_000 + MIN,
      basis: "history",
    });
  });

  test("RUNNING at 0%: started + median run, never in the past", () => {
    assert.deepEqual(estimateCompletion(job(), history(MIN), T0 + 1000), { at: T0 + MIN, basis: "history" });
    assert.deepEqual(estimateCompletion(job(), history(MIN), T0 + 5 * MIN), {
      at: T0 + 5 * MIN + 1000,
      basis: "history",
    });
  });

  test("finished jobs have none", () => {
    for (const status of ["completed", "failed", "cancelled"] as const) {
      assert.equal(
        estimateCompletion(job({ status, progress: 50, completedAt: T0 + 1 }), history(MIN), T0 + 2),
        undefined,
      );
    }
  });

  test("never in the past: a job at 99% racing ahead is at least a second away", () => {
    const e = defined(estimateCompletion(job({ progress: 99 }), history(MIN), T0 + 100));
    assert.equal(e.at, T0 + 100 + 1000);
  });
});

describe("typicalRun", () => {
  const run = (runMs: number, waitMs: number, resource: string | null = null): FinishedRun => ({
    resource,
    createdAt: T0,
    startedAt: T0 + waitMs,
    completedAt: T0 + waitMs + runMs,
  });

  test("medians of run time and queue wait; fewer than 3 runs are none", () => {
    assert.deepEqual(typicalRun([run(10, 1), run(30, 3), run(20, 2)], null), { runMs: 20, waitMs: 2, runs: 3 });
    assert.deepEqual(typicalRun([run(10, 1), run(30, 3), run(20, 2), run(1000, 4)], null), {
      runMs: 25,
      waitMs: 2.5,
      runs: 4,
    });
    assert.equal(typicalRun([run(10, 1), run(30, 3)], null), undefined);
  });

  test("the resource's own runs when it has 3 or more, else the type's", () => {
    const small = [run(5, 0, "a"), run(5, 0, "b"), run(5, 0, "c"), run(5, 0, "d")];
    const runs = [run(100, 0, "big"), ...small, run(100, 0, "big"), run(100, 0, "big")];
    assert.equal(typicalRun(runs, "big")?.runMs, 100);
    assert.equal(typicalRun(runs, "a")?.runMs, 5, "a has one run: the type's median");
    assert.equal(typicalRun(runs.slice(1), "big")?.runMs, 5, "big has two runs: the type's median");
  });

  test("only the newest 50 runs count", () => {
    const runs = [...Array.from({ length: 50 }, () => run(10, 0)), ...Array.from({ length: 100 }, () => run(99, 0))];
    assert.deepEqual(typicalRun(runs, null), { runMs: 10, waitMs: 0, runs: 50 });
  });
});

describe("rateAnchorAfter", () => {
  test("stays while younger than two windows, then moves one window back without changing the rate", () => {
    assert.equal(rateAnchorAfter(undefined, T0, 10, T0 + 2 * RATE_WINDOW_MS), undefined);
    const now = T0 + 2 * RATE_WINDOW_MS + 1;
    const moved = rateAnchorAfter(undefined, T0, 50, now);
    assert.ok(moved !== undefined);
    assert.equal(moved.at, now - RATE_WINDOW_MS);
    const before = 50 / (now - T0);
    const after = (50 - moved.progress) / (now - moved.at);
    assert.ok(Math.abs(before - after) < 1e-12);
  });
});
