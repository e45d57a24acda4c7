// `jobwatch demo`: create a job and drive it through realistic phases, so a new user sees jobwatch work.
import { randomBytes } from "node:crypto";
import { userInfo } from "node:os";
import { setTimeout as sleep } from "node:timers/promises";
import { type Command, Option } from "commander";
import { abortReason } from "../client/call.js";
import { CancelRequestedError, type Job, JobStatus, type WorkerContext } from "../client/index.js";
import {
  addClientOptions,
  type ClientFlags,
  DEFAULT_ADDRESS,
  DURATION_HELP,
  parseDurationFlag,
  parseNonNegativeDurationFlag,
  runWithClient,
} from "./client-options.js";
import { commandName } from "./command-name.js";
import { ExitCode, exitCodeForStatus } from "./exit-codes.js";
import { colorsFor, finalSummary, formatDuration, paintStatus } from "./format.js";

interface DemoFlags extends ClientFlags {
  user: string;
  operation: string;
  duration: number;
  delay: number;
  fail?: boolean;
}

/** One phase of the demo job: the share of the bar it covers and what it reports on the way. */
interface Phase {
  name: string;
  /** Fraction of the total duration. */
  share: number;
  /** Progress at the end of the phase. */
  until: number;
  steps: number;
  detail: (step: number, steps: number) => string;
}

const FILES = 500;

// Modelled on indexing a repository (add_golden_repo): clone, scan, semantic and full-text indexing.
const PHASES: Phase[] = [
  {
    name: "clone",
    share: 0.12,
    until: 10,
    steps: 4,
    detail: (i, n) => `receiving objects ${Math.round((100 * i) / n)}%`,
  },
  {
    name: "scan",
    share: 0.08,
    until: 15,
    steps: 2,
    detail: (i, n) => (i < n ? "listing files" : `found ${FILES} files`),
  },
  {
    name: "semantic",
    share: 0.5,
    until: 70,
    steps: 20,
    detail: (i, n) => `${Math.round((FILES * i) / n)}/${FILES} files indexed`,
  },
  {
    name: "fts",
    share: 0.25,
    until: 95,
    steps: 10,
    detail: (i, n) => `${Math.round((FILES * i) / n)}/${FILES} files indexed`,
  },
  { name: "finalize", share: 0.05, until: 100, steps: 1, detail: () => "writing index metadata" },
];

/** Registers `jobwatch demo`. */
export function register(program: Command): void {
  const command = program
    .command("demo")
    .addHelpText("after", DURATION_HELP)
    .summary("create a job and drive it through realistic phases while you watch it")
    .description(
      "Create a job and drive it through realistic phases (about 20 s) while you follow it with " +
        "`jobwatch watch`. Needs a token that may report jobs (admin or service).",
    )
    .option("--user <name>", "the user the job is for", defaultUser())
    .option("--operation <type>", "the operation type", "add_golden_repo")
    .addOption(
      new Option("--duration <duration>", "how long the work takes")
        .argParser(parseDurationFlag)
        .default(20_000, "20s"),
    )
    .addOption(
      new Option("--delay <duration>", "time to start a watcher before the job starts")
        .argParser(parseNonNegativeDurationFlag)
        .default(5_000, "5s"),
    )
    .option("--fail", "end the job FAILED during full-text indexing, to see a failure");
  addClientOptions(command);
  command.action(async (flags: DemoFlags) => {
    const c = colorsFor(process.stdout);
    const out = (line: string): boolean => process.stdout.write(`${line}\n`);
    const interrupted = new AbortController();
    const onInterrupt = (): void => {
      // First Ctrl-C: fail the job so it does not stay RUNNING; a second one leaves at once.
      process.once("SIGINT", () => process.exit(ExitCode.INTERRUPTED));
      interrupted.abort(new Error("the demo was interrupted (Ctrl-C)"));
    };
    process.once("SIGINT", onInterrupt);
    const resource = `demo-repo-${randomBytes(3).toString("hex")}`;
    try {
      await runWithClient(flags, async (client) => {
        let final: Job;
        try {
          final = await client.worker.run(
            { operationType: flags.operation, username: flags.user, resource },
            (ctx) => work(ctx, flags, resource, interrupted.signal, (line) => out(line)),
            {
              beforeStart: async (job) => {
                const address = flags.address === DEFAULT_ADDRESS ? "" : ` --address ${flags.address}`;
                // What works where the demo runs: a bare `jobwatch` is "command not found" in a checkout.
                const command = commandName();
                out(`Created job ${c.bold(job.jobId)}: ${flags.operation} on ${resource}, for user ${flags.user}.`);
                out("");
                out("Follow it in another terminal:");
                out("");
                out(`  ${c.cyan(`${command} watch ${job.jobId}${address}`)}`);
                out("");
                out(
                  c.dim(
                    `(with JOBWATCH_TOKEN set to an admin token, or to a token of user ${flags.user}; ` +
                      `try \`${command} cancel ${job.jobId}\` too)`,
                  ),
                );
                out(`Starting in ${formatDuration(flags.delay)} ...`);
                await sleep(flags.delay, undefined, { signal: interrupted.signal }).catch(
                  abortReason(interrupted.signal),
                );
              },
            },
          );
        } catch (err) {
          if (interrupted.signal.aborted) {
            process.stderr.write("interrupted: the job was marked FAILED\n");
            return ExitCode.INTERRUPTED;
          }
          if (err instanceof DemoFailure) {
            // run() failed the job with this message; say so as watch would.
            out("");
            out(`job ${err.jobId} ${paintStatus(c, JobStatus.JOB_STATUS_FAILED)}`);
            out(`${c.red("error:")} ${err.message}`);
            return ExitCode.FAILED;
          }
          throw err;
        }
        out("");
        out(finalSummary(c, final));
        if (final.status === JobStatus.JOB_STATUS_CANCELLED)
          out(`${paintStatus(c, final.status)}: the worker stopped and confirmed.`);
        return exitCodeForStatus(final.status);
      });
    } finally {
      process.removeListener("SIGINT", onInterrupt);
    }
  });
}

/** The demo's work: report each step of each phase, stop when a cancel is requested or on Ctrl-C. */
async function work(
  ctx: WorkerContext,
  flags: DemoFlags,
  resource: string,
  interrupted: AbortSignal,
  out: (line: string) => void,
): Promise<Record<string, unknown>> {
  const signal = AbortSignal.any([interrupted, ctx.signal]);
  const started = Date.now();
  let progress = 0;
  out(`job ${ctx.jobId} started`);
  for (const phase of PHASES) {
    const from = progress;
    for (let step = 1; step <= phase.steps; step++) {
      const pause = (flags.duration * phase.share) / phase.steps;
      await sleep(pause, undefined, { signal })
        .catch(abortReason(signal))
        .catch((err: unknown) => {
          if (err instanceof CancelRequestedError)
            out(`cancel requested${err.reason ? ` (${err.reason})` : ""}: stopping`);
          throw err;
        });
      if (flags.fail && phase.name === "fts" && step > phase.steps / 2) {
        throw new DemoFailure(
          ctx.jobId,
          "fts indexing failed: no space left on device (index needs 2.1 GB, 0.4 GB free)",
        );
      }
      progress = Math.round(from + ((phase.until - from) * step) / phase.steps);
      const detail = phase.detail(step, phase.steps);
      await ctx.progress(progress, { phase: phase.name, detail });
      out(`  ${String(progress).padStart(3)}%  ${phase.name}: ${detail}`);
      ctx.throwIfCancelRequested();
    }
  }
  return {
    alias: resource,
    files_indexed: FILES,
    semantic_chunks: 4213,
    fts_documents: FILES,
    branch: "main",
    duration_ms: Date.now() - started,
  };
}

/** The failure --fail makes the demo's work throw. */
class DemoFailure extends Error {
  constructor(
    readonly jobId: string,
    message: string,
  ) {
    super(message);
  }
}

function defaultUser(): string {
  try {
    return userInfo().username || "demo";
  } catch {
    return "demo";
  }
}
