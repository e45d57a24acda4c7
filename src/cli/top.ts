// `jobwatch top`: a live table of the jobs matching a filter (WatchJobs), or one line per change when piped.
import type { Command } from "commander";
import { connectionCause } from "../client/errors.js";
import { type Job, JobStatus, type JobsWatchEvent, type JobsWatchFilter, statusName } from "../client/index.js";
import { addClientOptions, type ClientFlags, runWithClient } from "./client-options.js";
import { type Colors, colorsFor, formatSeconds, paintStatusCell, table } from "./format.js";
import { statusOption } from "./list.js";
import { addScopeOptions, SCOPE_HELP, type ScopeFlags, scopeFromFlags } from "./scope-options.js";

interface TopFlags extends ClientFlags, ScopeFlags {
  status: JobStatus[];
  operation?: string;
  resource?: string;
}

/** A finished job stays on screen this long (dimmed) before it goes. */
const FADE_MS = 5000;
/** At most this many redraws a second, however fast changes come. */
const REDRAW_EVERY_MS = 100;

/** Registers `jobwatch top`. */
export function register(program: Command): void {
  const command = program
    .command("top")
    .description(
      "a live table of your jobs (with --all and an admin token, everyone's): running first, updated as " +
        "they change; q or Ctrl-C quits. Piped, it prints one line per change instead.",
    )
    .addOption(statusOption())
    .option("--operation <type>", "only this operation type, e.g. add_golden_repo")
    .option("--resource <name>", "only jobs acting on this resource")
    .addHelpText("after", SCOPE_HELP);
  addScopeOptions(command);
  addClientOptions(command);
  command.action(async (flags: TopFlags) => {
    const filter: JobsWatchFilter = { statuses: flags.status, ...scopeFromFlags(flags) };
    if (flags.operation !== undefined) filter.operationType = flags.operation;
    if (flags.resource !== undefined) filter.resource = flags.resource;
    const view: TopView = process.stdout.isTTY ? new ScreenView(flags.address) : new LineView();
    const stop = new AbortController();
    const quit = (): void => stop.abort();
    process.once("SIGINT", quit);
    process.once("SIGTERM", quit);
    view.start(quit);
    try {
      await runWithClient(flags, async (client) => {
        try {
          let reached = false;
          const events = client.watchJobs(filter, {
            signal: stop.signal,
            onRetry: ({ error, attempt }) => {
              // As watch: a server down before we ever reached it is "unreachable" (exit 5) after a couple of
              // quick, quiet tries (a mistyped address must not spin forever); one that goes away later is
              // waited for, as a restart usually is.
              if (!reached) return attempt <= 2;
              view.connection(`reconnecting (${connectionCause(error.message) ?? error.message})`);
              return true;
            },
            onConnected: () => {
              reached = true;
              view.connection("live");
            },
          });
          for await (const event of events) view.event(event);
        } catch (err) {
          if (stop.signal.aborted) return;
          // Leave the alternate screen first: the error printed next would vanish with it.
          view.stop();
          throw err;
        }
      });
    } finally {
      view.stop();
      process.off("SIGINT", quit);
      process.off("SIGTERM", quit);
    }
  });
}

/** Where the events go. */
interface TopView {
  start(quit: () => void): void;
  event(event: JobsWatchEvent): void;
  connection(state: string): void;
  stop(): void;
}

/** Piped output: one line per change, like `kubectl get -w`. */
class LineView implements TopView {
  private snapshot = 0;
  private reconnecting = false;
  start(): void {}
  /** Says when the connection is lost and when it is back; the first connection is no news. */
  connection(state: string): void {
    if (state === "live" && !this.reconnecting) return;
    this.reconnecting = state !== "live";
    process.stderr.write(`${state === "live" ? "connected again" : state}\n`);
  }
  stop(): void {}
  event(event: JobsWatchEvent): void {
    const time = new Date().toISOString();
    switch (event.type) {
      case "snapshot":
        this.snapshot++;
        process.stdout.write(`${time} ${describe("SNAPSHOT", event.job)}\n`);
        return;
      case "synced":
        process.stdout.write(`${time} SYNCED   ${this.snapshot} jobs\n`);
        this.snapshot = 0;
        return;
      case "reset":
        process.stdout.write(`${time} RESET    ${event.reason}\n`);
        return;
      default:
        process.stdout.write(`${time} ${describe(event.type.toUpperCase(), event.job)}\n`);
    }
  }
}

/** One line for a job: what happened, id, status, progress, operation, owner, phase and detail. */
function describe(what: string, job: Job): string {
  const where = [job.phase, job.detail].filter((s) => s !== undefined && s !== "").join(": ");
  return [
    what.padEnd(8),
    job.jobId,
    statusName(job.status).padEnd(9),
    `${job.progress}%`.padStart(4),
    job.operationType,
    job.username,
    where,
  ]
    .join(" ")
    .trimEnd();
}

/** A row of the table and what the view remembers about it. */
interface Row {
  job: Job;
  /** When it finished or left the filter (it fades out FADE_MS later). */
  goneAt?: number;
}

/** A terminal: the alternate screen, a table redrawn in place, q or Ctrl-C to leave. */
class ScreenView implements TopView {
  private readonly rows = new Map<string, Row>();
  private readonly c: Colors = colorsFor(process.stdout);
  private state = "connecting";
  private synced = false;
  private timer: NodeJS.Timeout | undefined;
  private tick: NodeJS.Timeout | undefined;
  private onKey: ((data: Buffer) => void) | undefined;
  private stopped = false;

  constructor(private readonly address: string) {}

  start(quit: () => void): void {
    process.stdout.write("\x1b[?1049h\x1b[?25l");
    if (process.stdin.isTTY) {
      process.stdin.setRawMode(true);
      this.onKey = (data) => {
        const key = data.toString();
        if (key === "q" || key === "Q" || key === "\u0003") quit();
      };
      process.stdin.on("data", this.onKey);
      process.stdin.resume();
    }
    // Ages and fading move every second even when nothing changes.
    this.tick = setInterval(() => this.draw(), 1000);
    this.draw();
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.tick);
    clearTimeout(this.timer);
    if (this.onKey) {
      process.stdin.off("data", this.onKey);
      process.stdin.setRawMode(false);
      process.stdin.pause();
    }
    process.stdout.write("\x1b[?25h\x1b[?1049l");
  }

  connection(state: string): void {
    this.state = state;
    this.schedule();
  }

  event(event: JobsWatchEvent): void {
    const now = Date.now();
    this.state = "live";
    switch (event.type) {
      case "reset":
        this.rows.clear();
        this.synced = false;
        break;
      case "synced":
        this.synced = true;
        break;
      case "snapshot":
      case "changed":
      case "removed": {
        const previous = this.rows.get(event.job.jobId);
        const row: Row = { job: event.job };
        if (event.type === "removed" || isFinished(event.job.status)) row.goneAt = previous?.goneAt ?? now;
        this.rows.set(event.job.jobId, row);
        break;
      }
    }
    this.schedule();
  }

  private schedule(): void {
    this.timer ??= setTimeout(() => {
      this.timer = undefined;
      this.draw();
    }, REDRAW_EVERY_MS);
  }

  private draw(): void {
    const now = Date.now();
    for (const [id, row] of this.rows) if (row.goneAt !== undefined && now - row.goneAt > FADE_MS) this.rows.delete(id);
    const rows = [...this.rows.values()].sort(byRunningFirst);
    const height = Math.max(5, (process.stdout.rows ?? 24) - 4);
    const shown = rows.slice(0, height);
    const running = rows.filter((r) => r.job.status === JobStatus.JOB_STATUS_RUNNING).length;
    const pending = rows.filter((r) => r.job.status === JobStatus.JOB_STATUS_PENDING).length;
    const header =
      `jobwatch top  ${this.address}  ${running} running, ${pending} pending` +
      `  [${this.synced ? this.state : "loading"}]  q quits`;
    const cells = shown.map((row) => this.cells(row, now));
    const body = table(
      ["STATUS", "PROGRESS", "JOB", "OPERATION", "OWNER", "AGE", "ETA", "PHASE"],
      cells,
      (col, cell, padded) => (col === 0 ? paintStatusCell(this.c, cell, padded) : padded),
    ).split("\n");
    const lines = [this.c.bold(header), "", ...body.map((line, i) => (shown[i - 1]?.goneAt ? this.c.dim(line) : line))];
    if (rows.length > shown.length) lines.push(this.c.dim(`... ${rows.length - shown.length} more`));
    if (rows.length === 0) lines.push(this.c.dim(this.synced ? "no jobs match" : "loading ..."));
    const width = process.stdout.columns ?? 120;
    process.stdout.write(`\x1b[H${lines.map((l) => `${clip(l, width)}\x1b[K`).join("\n")}\x1b[J`);
  }

  private cells(row: Row, now: number): string[] {
    const { job } = row;
    const created = job.createdAt?.getTime() ?? now;
    const where = [job.phase, job.detail].filter((s) => s !== undefined && s !== "").join(": ");
    return [
      statusName(job.status),
      `${bar(job.progress)} ${String(job.progress).padStart(3)}%`,
      job.jobId.slice(0, 8),
      job.operationType,
      job.username,
      formatSeconds(now - created),
      eta(job, now),
      where,
    ];
  }
}

/** Running first, then pending, then finished; newest first within each. */
function byRunningFirst(a: Row, b: Row): number {
  const rank = (r: Row): number => (r.goneAt !== undefined ? 2 : r.job.status === JobStatus.JOB_STATUS_RUNNING ? 0 : 1);
  const byRank = rank(a) - rank(b);
  if (byRank !== 0) return byRank;
  return (b.job.createdAt?.getTime() ?? 0) - (a.job.createdAt?.getTime() ?? 0);
}

function isFinished(status: JobStatus): boolean {
  return (
    status === JobStatus.JOB_STATUS_COMPLETED ||
    status === JobStatus.JOB_STATUS_FAILED ||
    status === JobStatus.JOB_STATUS_CANCELLED
  );
}

/** A 10-cell progress bar. */
function bar(progress: number): string {
  const full = Math.max(0, Math.min(10, Math.round(progress / 10)));
  return `${"█".repeat(full)}${"░".repeat(10 - full)}`;
}

/**
 * Time left: the server's estimate (Job.estimated_completion_at, PENDING jobs included), the one every
 * client shows; "-" when it sends none (the CLI keeps no estimator of its own).
 */
function eta(job: Job, now: number): string {
  return job.estimatedCompletionAt === undefined ? "-" : formatSeconds(job.estimatedCompletionAt.getTime() - now);
}

/** Cuts a line to the terminal width, counting only visible characters (escape sequences are kept). */
function clip(line: string, width: number): string {
  let visible = 0;
  let out = "";
  for (let i = 0; i < line.length; i++) {
    if (line[i] === "\x1b") {
      const end = line.indexOf("m", i);
      if (end > 0) {
        out += line.slice(i, end + 1);
        i = end;
        continue;
      }
    }
    if (visible >= width) continue;
    out += line[i];
    visible++;
  }
  return out;
}
