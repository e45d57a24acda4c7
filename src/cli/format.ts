// How the client commands show jobs to people: colours, statuses, durations, one-line and full summaries.
import { EstimateBasis, Job, JobEvent, JobStatus, parseStatus, statusName } from "../client/index.js";
import { toProtoJson } from "../client/json.js";
import type { Colors } from "./colors.js";

// Every client command imports these from here; they live apart so that server-side commands can use
// them without loading the client library.
export { type Colors, colorsFor } from "./colors.js";
export { table } from "./table.js";

/** The status name in its colour (green for COMPLETED, red for FAILED ...), padded to `width` first. */
export function paintStatus(c: Colors, status: JobStatus, width = 0): string {
  const name = statusName(status).padEnd(width);
  switch (status) {
    case JobStatus.JOB_STATUS_COMPLETED:
      return c.green(name);
    case JobStatus.JOB_STATUS_FAILED:
      return c.red(name);
    case JobStatus.JOB_STATUS_CANCELLED:
      return c.magenta(name);
    case JobStatus.JOB_STATUS_RUNNING:
      return c.cyan(name);
    default:
      return c.yellow(name);
  }
}

/** A table cell holding a status name, coloured after padding so the columns stay aligned. */
export function paintStatusCell(c: Colors, cell: string, padded: string): string {
  const status = parseStatus(cell);
  return status === undefined ? padded : padded.replace(cell, paintStatus(c, status));
}

/** A duration as people read it: "850ms", "12.3s", "3m 05s", "2h 04m", "3d 4h". */
export function formatDuration(ms: number): string {
  const abs = Math.max(0, ms);
  if (abs < 1000) return `${Math.round(abs)}ms`;
  if (abs < 60_000) return `${(abs / 1000).toFixed(abs < 10_000 ? 1 : 0)}s`;
  const s = Math.round(abs / 1000);
  if (s < 3600) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, "0")}s`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h ${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
  return `${Math.floor(s / 86_400)}d ${Math.floor((s % 86_400) / 3600)}h`;
}

/** A duration in whole seconds, for figures redrawn every second: "<1s", "12s", "3m 05s". */
export function formatSeconds(ms: number): string {
  return ms < 1000 ? "<1s" : formatDuration(Math.round(ms / 1000) * 1000);
}

/** A timestamp as ISO 8601 UTC, "-" when unset. */
export function formatTime(date: Date | undefined): string {
  return date === undefined ? "-" : date.toISOString();
}

/** "40%  semantic: 150/500 files indexed" (phase and detail only when the worker reported them). */
export function progressText(job: Job): string {
  const where = [job.phase, job.detail].filter((s) => s !== undefined && s !== "").join(": ");
  return where === "" ? `${job.progress}%` : `${job.progress}%  ${where}`;
}

const BASIS_TEXT: Partial<Record<EstimateBasis, string>> = {
  [EstimateBasis.ESTIMATE_BASIS_PROGRESS_RATE]: "from progress rate",
  [EstimateBasis.ESTIMATE_BASIS_HISTORY]: "from history",
  [EstimateBasis.ESTIMATE_BASIS_PROGRESS_AND_HISTORY]: "from progress rate and history",
};

/** A wall-clock time of day in the local zone, "14:03:20". */
function timeOfDay(date: Date): string {
  return [date.getHours(), date.getMinutes(), date.getSeconds()].map((n) => String(n).padStart(2, "0")).join(":");
}

/**
 * The server's completion estimate as people read it: "ETA 14:03:20 (in 2m 10s, from progress rate and
 * history)"; undefined when the server has none (a finished job, or no basis).
 */
export function etaText(job: Job, now = Date.now()): string | undefined {
  const at = job.estimatedCompletionAt;
  if (at === undefined) return undefined;
  const basis = BASIS_TEXT[job.estimateBasis];
  return `ETA ${timeOfDay(at)} (in ${formatSeconds(at.getTime() - now)}${basis ? `, ${basis}` : ""})`;
}

/** One line per revision, for logs and pipes: time, revision, status, progress, phase/detail, cancel. */
export function jobLine(c: Colors, job: Job): string {
  const parts = [
    c.dim(formatTime(job.updatedAt)),
    c.dim(`#${job.revision}`.padEnd(4)),
    paintStatus(c, job.status, 9),
    progressText(job),
  ];
  const eta = etaText(job);
  if (eta !== undefined) parts.push(c.dim(eta));
  if (job.cancelRequested) parts.push(c.magenta(`cancel requested${job.cancelReason ? `: ${job.cancelReason}` : ""}`));
  if (job.error !== undefined && job.error !== "") parts.push(c.red(`error: ${job.error}`));
  return parts.join("  ");
}

/** How long the job has run (or ran, or waited), measured from its own timestamps. */
function jobTimes(job: Job, now = Date.now()): { queuedMs?: number; ranMs?: number; totalMs?: number } {
  const created = job.createdAt?.getTime();
  const started = job.startedAt?.getTime();
  const ended = job.completedAt?.getTime() ?? now;
  const out: { queuedMs?: number; ranMs?: number; totalMs?: number } = {};
  if (created !== undefined) {
    out.queuedMs = (started ?? ended) - created;
    out.totalMs = ended - created;
  }
  if (started !== undefined) out.ranMs = ended - started;
  return out;
}

/** The final line of a watch: "COMPLETED in 20.3s (queued 1.2s)", with the error or the result after it. */
export function finalSummary(c: Colors, job: Job): string {
  const t = jobTimes(job);
  const took =
    t.ranMs !== undefined
      ? `after running ${formatDuration(t.ranMs)}${t.queuedMs ? ` (queued ${formatDuration(t.queuedMs)})` : ""}`
      : t.totalMs !== undefined
        ? `after ${formatDuration(t.totalMs)}, never started`
        : "";
  const lines = [`job ${job.jobId} ${c.bold(paintStatus(c, job.status))} ${took}`.trimEnd()];
  if (job.cancelRequested) {
    lines.push(`cancel requested${job.cancelReason ? `: ${job.cancelReason}` : ""}`);
  }
  if (job.error !== undefined && job.error !== "") lines.push(`${c.red("error:")} ${job.error}`);
  if (job.result !== undefined) lines.push(`result: ${JSON.stringify(job.result)}`);
  return lines.join("\n");
}

/** The readable summary of `jobwatch get`. */
export function jobSummary(c: Colors, job: Job, now = Date.now()): string {
  const rows: [string, string][] = [];
  const ago = (d: Date | undefined): string =>
    d === undefined ? "-" : `${formatTime(d)}  ${c.dim(`(${formatDuration(now - d.getTime())} ago)`)}`;
  const t = jobTimes(job, now);
  let status = paintStatus(c, job.status);
  if (job.cancelRequested) {
    status += c.magenta(`  cancel requested${job.cancelReason ? `: ${job.cancelReason}` : ""}`);
  }
  rows.push(["Status", status]);
  rows.push(["Progress", progressText(job)]);
  rows.push(["Operation", job.operationType + (job.resource ? `  on ${job.resource}` : "")]);
  rows.push(["Owner", job.username]);
  rows.push(["Created", ago(job.createdAt)]);
  const queued = t.queuedMs === undefined ? "" : c.dim(`  queued ${formatDuration(t.queuedMs)}`);
  rows.push(["Started", job.startedAt === undefined ? "not yet" : ago(job.startedAt) + queued]);
  if (job.completedAt !== undefined) {
    const ran = t.ranMs === undefined ? "" : c.dim(`  ran ${formatDuration(t.ranMs)}`);
    rows.push(["Finished", ago(job.completedAt) + ran]);
  } else if (t.ranMs !== undefined) {
    rows.push(["Running for", formatDuration(t.ranMs)]);
  }
  const eta = etaText(job, now);
  if (eta !== undefined) rows.push(["Estimate", eta]);
  if (job.lastHeartbeatAt !== undefined) rows.push(["Last heard", ago(job.lastHeartbeatAt)]);
  rows.push(["Updated", `${ago(job.updatedAt)}  ${c.dim(`revision ${job.revision}`)}`]);
  if (job.error !== undefined && job.error !== "") rows.push(["Error", c.red(job.error)]);
  const width = Math.max(...rows.map(([k]) => k.length)) + 2;
  const lines = [c.bold(`Job ${job.jobId}`)];
  for (const [key, value] of rows) lines.push(`  ${c.dim(key.padEnd(width))}${value}`);
  if (job.result !== undefined) {
    lines.push(`  ${c.dim("Result")}`);
    for (const line of JSON.stringify(job.result, null, 2).split("\n")) lines.push(`    ${line}`);
  }
  return lines.join("\n");
}

/** The proto3 JSON mapping of a job (lowerCamelCase names, enums by name, RFC 3339 times, int64 as strings). */
export function jobJson(job: Job): unknown {
  return toProtoJson(Job, "jobwatch.v1.Job", job);
}

/** The proto3 JSON mapping of a history event. */
export function jobEventJson(event: JobEvent): unknown {
  return toProtoJson(JobEvent, "jobwatch.v1.JobEvent", event);
}
