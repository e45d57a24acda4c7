// When will a job finish: the completion estimate from its own progress rate and the history of its kind, as pure functions.
import type { FinishedRun, Job } from "../store/job.js";

/** What an estimate is based on (Job.estimate_basis). */
export type EstimateBasis = "progress_rate" | "history" | "progress_and_history";

/** A job's estimated completion time (epoch ms) and its basis. */
export interface Estimate {
  at: number;
  basis: EstimateBasis;
}

/** How long recent COMPLETED jobs of a kind took: medians in ms, and how many runs they are over. */
export interface TypicalRun {
  runMs: number;
  waitMs: number;
  runs: number;
}

/** Fewer finished runs than this are no history: a median of one or two says little. */
export const MIN_HISTORY_RUNS = 3;
/** The medians are over this many most recent runs (of the type, or of the type on the resource). */
const HISTORY_RUNS = 50;
/** From this progress on, the job's own rate alone: below it, the history's rate weighs progress/30. */
const FULL_RATE_PROGRESS = 30;
/** An active job's estimate is at least this far ahead of the time it is computed: never in the past. */
const MIN_LEAD_MS = 1000;

/**
 * The estimated completion of `job` at time `now`, given the typical run of its kind (undefined: no
 * history); undefined when there is no basis. See Job.estimated_completion_at in job.proto for the rules.
 */
export function estimateCompletion(job: Job, typical: TypicalRun | undefined, now: number): Estimate | undefined {
  const history = typical !== undefined && typical.runs >= MIN_HISTORY_RUNS ? typical : undefined;
  const atLeast = (at: number): number => Math.max(Math.round(at), now + MIN_LEAD_MS);
  if (job.status === "pending") {
    if (history === undefined) return undefined;
    // The time already spent waiting counts: the job starts when a typical wait is over, or now if it is.
    return { at: atLeast(Math.max(now, job.createdAt + history.waitMs) + history.runMs), basis: "history" };
  }
  if (job.status !== "running" || job.startedAt === null) return undefined;

  const anchor = job.rateAnchor ?? { at: job.startedAt, progress: 0 };
  // Measured up to now, not to the last report: a job that stops reporting slows down as time passes.
  const rate = job.progress > 0 && now > anchor.at ? (job.progress - anchor.progress) / (now - anchor.at) : 0;
  if (job.progress === 0) {
    if (history === undefined) return undefined;
    return { at: atLeast(job.startedAt + history.runMs), basis: "history" };
  }
  // Progress but none since the anchor (or backwards): nothing to extrapolate, and the history would
  // only tell when a job that is not moving should have ended.
  if (rate <= 0) return undefined;
  if (history === undefined) return { at: atLeast(now + (100 - job.progress) / rate), basis: "progress_rate" };
  // The history as a rate (a typical run covers 100% in runMs), blended in rate space: a job ahead of or
  // behind the typical pace moves its estimate at once, more so as its own rate becomes more telling.
  const weight = Math.min(1, job.progress / FULL_RATE_PROGRESS);
  const blended = weight * rate + (1 - weight) * (100 / Math.max(1, history.runMs));
  return {
    at: atLeast(now + (100 - job.progress) / blended),
    basis: weight >= 1 ? "progress_rate" : "progress_and_history",
  };
}

/**
 * The typical run among `runs` (newest first): medians over the HISTORY_RUNS newest runs on `resource`
 * when there are at least MIN_HISTORY_RUNS of them, else over the HISTORY_RUNS newest of all;
 * undefined when there are too few runs either way.
 */
export function typicalRun(runs: readonly FinishedRun[], resource: string | null): TypicalRun | undefined {
  const onResource = resource === null ? [] : runs.filter((r) => r.resource === resource);
  const chosen = (onResource.length >= MIN_HISTORY_RUNS ? onResource : runs).slice(0, HISTORY_RUNS);
  if (chosen.length < MIN_HISTORY_RUNS) return undefined;
  return {
    runMs: median(chosen.map((r) => r.completedAt - r.startedAt)),
    waitMs: median(chosen.map((r) => r.startedAt - r.createdAt)),
    runs: chosen.length,
  };
}

/** The median of a non-empty list (the mean of the middle two for an even count). */
function median(values: number[]): number {
  const sorted = values.sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}
