// `jobwatch watch ID`: follow a job to its end, as a live bar on a terminal or one line per change otherwise.
import cliProgress from "cli-progress";
import cliTruncate from "cli-truncate";
import { type Command, Option } from "commander";
import { connectionCause } from "../client/errors.js";
import { DeadlineExceededError, type Job, type RetryEvent, statusName } from "../client/index.js";
import { BAR_SIZE, type BarLineParts, fitBarLine } from "./bar-line.js";
import {
  addClientOptions,
  type ClientFlags,
  DURATION_HELP,
  parseDurationFlag,
  runWithClient,
} from "./client-options.js";
import { ExitCode, exitCodeForStatus } from "./exit-codes.js";
import { printError } from "./fail.js";
import {
  type Colors,
  colorsFor,
  etaText,
  finalSummary,
  formatDuration,
  formatSeconds,
  jobJson,
  jobLine,
  paintStatus,
  progressText,
} from "./format.js";

interface WatchFlags extends ClientFlags {
  timeout?: number;
  reconnectFor: number;
}

/** Registers `jobwatch watch`. */
export function register(program: Command): void {
  const command = program
    .command("watch")
    .addHelpText("after", DURATION_HELP)
    .summary("follow a job until it ends, with a live progress bar; exit code = outcome")
    .description(
      "Follow a job until it ends: a live progress bar on a terminal, one line per change otherwise. " +
        "Survives server restarts: it reconnects and resumes without repeating or missing a change.",
    )
    .argument("<job-id>", "the job's id (a UUID)")
    .option(
      "--timeout <duration>",
      'give up (exit 5) if the job has not ended by then, e.g. "90s", "10m"',
      parseDurationFlag,
    )
    .addOption(
      new Option("--reconnect-for <duration>", "how long to keep reconnecting while the server is unreachable")
        .argParser(parseDurationFlag)
        .default(5 * 60_000, "5m"),
    )
    .option("--json", "print each revision of the job as one JSON line (protobuf JSON mapping)")
    .addHelpText(
      "after",
      "\nExit codes: 0 COMPLETED, 2 FAILED, 3 CANCELLED, 4 not found or access denied,\n" +
        "5 server unreachable or --timeout passed, 1 other errors, 130 interrupted (Ctrl-C).",
    );
  addClientOptions(command);
  command.action(async (jobId: string, flags: WatchFlags) => {
    const view: View =
      process.stdout.isTTY && !flags.json
        ? new BarView(colorsFor(process.stdout))
        : new LineView(flags, colorsFor(process.stdout));
    // Ctrl-C: leave at once, with the terminal as it was (cursor back, bar line ended).
    const onInterrupt = (): void => {
      view.stop();
      process.stderr.write("interrupted\n");
      process.exit(ExitCode.INTERRUPTED);
    };
    process.once("SIGINT", onInterrupt);
    try {
      await runWithClient(
        flags,
        async (client) => {
          let last: Job | undefined;
          try {
            const job = await client.waitForJob(jobId, {
              ...(flags.timeout === undefined ? {} : { timeout: flags.timeout }),
              giveUpAfterMs: flags.reconnectFor,
              onUpdate: (update) => {
                last = update;
                view.update(update);
              },
              onRetry: (event) => {
                // A server that is down before we ever reached it is "unreachable" (exit 5) after a couple
                // of quick, quiet tries; one that goes away mid-watch is waited for, as a restart usually is.
                if (last === undefined) return event.attempt <= 2;
                view.reconnecting(event, flags.address);
                return true;
              },
              onResume: ({ lastRevision }) => view.resumed(flags.address, lastRevision),
            });
            view.finish(job);
            return exitCodeForStatus(job.status);
          } catch (err) {
            view.stop();
            if (err instanceof DeadlineExceededError && flags.timeout !== undefined) {
              const state =
                last === undefined
                  ? "has not been seen yet"
                  : `is still ${statusName(last.status)} at ${progressText(last)}`;
              printError(`gave up after ${formatDuration(flags.timeout)} (--timeout): job ${jobId} ${state}`);
              return ExitCode.UNREACHABLE_OR_TIMEOUT;
            }
            throw err;
          }
        },
        { jobId },
      );
    } finally {
      view.stop();
      process.removeListener("SIGINT", onInterrupt);
    }
  });
}

/** How the watch shows what happens. */
interface View {
  update(job: Job): void;
  reconnecting(event: RetryEvent, address: string): void;
  resumed(address: string, lastRevision: number): void;
  finish(job: Job): void;
  /** Ends any live drawing; safe to call more than once. */
  stop(): void;
}

function reconnectMessage(event: RetryEvent, address: string): string {
  const retry = `retrying in ${formatDuration(event.delayMs)} (attempt ${event.attempt})`;
  if (event.attempt > 1) {
    return `still cannot reach ${address} (${connectionCause(event.error.message) ?? event.error.message}); ${retry}`;
  }
  const after = event.lastRevision > 0 ? `; will resume after revision ${event.lastRevision}` : "";
  return `connection to ${address} lost (${connectionCause(event.error.message) ?? event.error.message}); ${retry}${after}`;
}

/** Not a terminal: one line per revision on stdout (or one JSON object per line), notices on stderr. */
class LineView implements View {
  constructor(
    private readonly flags: WatchFlags,
    private readonly c: Colors,
  ) {}

  update(job: Job): void {
    const line = this.flags.json ? JSON.stringify(jobJson(job)) : jobLine(this.c, job);
    process.stdout.write(`${line}\n`);
  }

  reconnecting(event: RetryEvent, address: string): void {
    process.stderr.write(`${reconnectMessage(event, address)}\n`);
  }

  resumed(address: string, lastRevision: number): void {
    process.stderr.write(`reconnected to ${address}; resuming after revision ${lastRevision}\n`);
  }

  finish(job: Job): void {
    if (!this.flags.json) process.stdout.write(`${finalSummary(this.c, job)}\n`);
  }

  stop(): void {}
}

/** A terminal: status changes logged above a progress bar that is redrawn in place every second. */
class BarView implements View {
  private readonly multibar: cliProgress.MultiBar;
  private bar: cliProgress.SingleBar | undefined;
  private last: Job | undefined;
  private ticker: NodeJS.Timeout | undefined;
  private note = "";
  private stopped = false;

  constructor(private readonly c: Colors) {
    this.multibar = new cliProgress.MultiBar({
      stream: process.stdout,
      // The line is fitted to the terminal here, by visible width: cli-progress's own cut (linewrap: true)
      // counts colour codes as characters, which cut the ETA at 80 columns and phase/detail at 120.
      format: (options, params, payload: { parts?: Omit<BarLineParts, "bar"> }) =>
        payload.parts === undefined
          ? ""
          : fitBarLine(
              {
                ...payload.parts,
                bar: (barsize) => cliProgress.Format.BarFormat(params.progress, { ...options, barsize }),
              },
              params.maxWidth,
            ),
      barsize: BAR_SIZE,
      hideCursor: true,
      linewrap: false,
      // We handle Ctrl-C ourselves (exit 130); the bar's own handler would only stop drawing.
      gracefulExit: false,
      fps: 5,
    });
  }

  update(job: Job): void {
    const previous = this.last;
    this.last = job;
    this.note = "";
    const changed =
      previous === undefined ||
      previous.status !== job.status ||
      previous.cancelRequested !== job.cancelRequested ||
      previous.phase !== job.phase;
    if (changed) this.log(jobLine(this.c, job));
    this.draw();
    this.ticker ??= setInterval(() => this.draw(), 1000);
  }

  reconnecting(event: RetryEvent, address: string): void {
    this.note = this.c.yellow(`reconnecting to ${address} (attempt ${event.attempt})`);
    // One line for the outage; the attempts count up in the bar instead of scrolling the screen.
    if (event.attempt === 1) this.log(this.c.yellow(reconnectMessage(event, address)));
    this.draw();
  }

  resumed(address: string): void {
    this.note = "";
    this.log(this.c.green(`reconnected to ${address}`));
    this.draw();
  }

  finish(job: Job): void {
    this.draw();
    this.stop();
    process.stdout.write(`${finalSummary(this.c, job)}\n`);
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.ticker);
    this.multibar.stop();
  }

  /**
   * Logs a line above the bar, cut with an ellipsis at the terminal's edge by visible width: the bar turns
   * the terminal's wrapping off, so a longer line would show its last character in the last column.
   */
  private log(line: string): void {
    this.multibar.log(`${cliTruncate(line, Math.max(1, (process.stdout.columns || 80) - 1))}\n`);
  }

  private draw(): void {
    const job = this.last;
    if (job === undefined || this.stopped) return;
    const payload = { parts: this.describe(job) };
    if (this.bar === undefined) this.bar = this.multibar.create(100, job.progress, payload);
    else this.bar.update(job.progress, payload);
  }

  /** The bar line's parts: status, percentage, elapsed time, ETA, notes, phase and detail. */
  private describe(job: Job): Omit<BarLineParts, "bar"> {
    const c = this.c;
    const now = Date.now();
    const facts = [` ${String(job.progress).padStart(3)}%`];
    // The server's estimate (with its basis) is the one shown; without one there is no ETA (the CLI keeps
    // no estimator of its own, so `get`, `watch`, `top` and every other client show the same time).
    let eta: BarLineParts["eta"];
    const serverEta = etaText(job, now);
    const serverLeft = job.estimatedCompletionAt === undefined ? undefined : job.estimatedCompletionAt.getTime() - now;
    if (serverEta !== undefined && serverLeft !== undefined) {
      eta = { full: serverEta, short: `ETA ${formatSeconds(serverLeft)}` };
    }
    if (job.startedAt !== undefined) {
      facts.push(`elapsed ${formatSeconds((job.completedAt?.getTime() ?? now) - job.startedAt.getTime())}`);
    } else if (job.createdAt !== undefined) {
      facts.push(`queued ${formatSeconds(now - job.createdAt.getTime())}`);
    }
    const notes: string[] = [];
    if (job.cancelRequested) notes.push(c.magenta("cancel requested"));
    if (this.note) notes.push(this.note);
    return {
      status: paintStatus(c, job.status, 9),
      facts,
      ...(eta === undefined ? {} : { eta }),
      notes,
      where: [job.phase, job.detail].filter((s) => s).join(": "),
      separator: c.dim(" | "),
    };
  }
}
