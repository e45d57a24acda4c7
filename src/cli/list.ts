// `jobwatch list`: the caller's jobs (one user's with --user, every user's with --all), newest first, as a table or JSON.
import { type Command, Option, InvalidArgumentError as UsageError } from "commander";
import {
  isTerminalStatus,
  type Job,
  type JobStatus,
  type ListJobsFilter,
  parseStatus,
  statusName,
} from "../client/index.js";
import {
  addClientOptions,
  addJsonOption,
  type ClientFlags,
  DURATION_HELP,
  parseInteger,
  parseTime,
  printJson,
  runWithClient,
} from "./client-options.js";
import { colorsFor, formatDuration, jobJson, paintStatusCell, table } from "./format.js";
import { addScopeOptions, SCOPE_HELP, type ScopeFlags, scopeFromFlags } from "./scope-options.js";

interface ListFlags extends ClientFlags, ScopeFlags {
  status: JobStatus[];
  operation?: string;
  since?: Date;
  before?: Date;
  limit?: number;
  pageToken?: string;
  allPages?: boolean;
}

/** Registers `jobwatch list`. */
export function register(program: Command): void {
  const command = program
    .command("list")
    .addHelpText("after", SCOPE_HELP + DURATION_HELP)
    .description("list jobs, newest first: your own, one user's (--user) or every user's (--all, admin token)")
    .addOption(statusOption())
    .option("--operation <type>", "only this operation type, e.g. add_golden_repo")
    .option(
      "--since <time>",
      'only jobs created at or after this time (ISO 8601, or a duration ago such as "2h")',
      parseTime,
    )
    .option("--before <time>", "only jobs created before this time (ISO 8601, or a duration ago)", parseTime)
    .option("--limit <n>", "jobs per page (default 50, at most 100)", parseInteger(1, 100))
    .option("--page-token <token>", "continue from where a previous list stopped (same filters)")
    .option("--all-pages", "follow every page to the end");
  addScopeOptions(command);
  addJsonOption(command, "print {jobs, nextPageToken} with jobs in the protobuf JSON mapping");
  addClientOptions(command);
  command.action(async (flags: ListFlags) => {
    await runWithClient(flags, async (client) => {
      const filter: ListJobsFilter = { statuses: flags.status, ...scopeFromFlags(flags) };
      if (flags.operation !== undefined) filter.operationType = flags.operation;
      if (flags.since !== undefined) filter.createdAfter = flags.since;
      if (flags.before !== undefined) filter.createdBefore = flags.before;
      if (flags.limit !== undefined) filter.pageSize = flags.limit;
      let jobs: Job[] = [];
      let next: string | undefined;
      if (flags.allPages) {
        for await (const job of client.listAllJobs(filter)) jobs.push(job);
      } else {
        const page = await client.listJobs({ ...filter, ...(flags.pageToken ? { pageToken: flags.pageToken } : {}) });
        jobs = page.jobs;
        next = page.nextPageToken;
      }
      if (flags.json) {
        printJson({ jobs: jobs.map(jobJson), ...(next ? { nextPageToken: next } : {}) });
        return;
      }
      const c = colorsFor(process.stdout);
      if (jobs.length === 0) {
        process.stdout.write("no jobs match\n");
        return;
      }
      const now = Date.now();
      const rows = jobs.map((job) => [
        job.jobId,
        statusName(job.status),
        // A pending cancel is news while the job runs; once it ended, its status says what happened.
        `${job.progress}%${job.cancelRequested && !isTerminalStatus(job.status) ? " (cancel requested)" : ""}`,
        job.operationType,
        job.resource ?? "",
        job.username,
        job.createdAt === undefined ? "-" : `${formatDuration(now - job.createdAt.getTime())} ago`,
      ]);
      const text = table(
        ["JOB ID", "STATUS", "PROGRESS", "OPERATION", "RESOURCE", "USER", "CREATED"],
        rows,
        (column, cell, padded) => (column === 1 ? paintStatusCell(c, cell, padded) : padded),
      );
      process.stdout.write(`${text}\n`);
      if (next) {
        process.stderr.write(`more jobs: repeat with --page-token ${next} (or use --all-pages)\n`);
      }
    });
  });
}

/** Commander's parser of a repeated --status list (also used by `top`). */
/** The `--status` filter of list and top: repeated or comma-separated, any status by default. */
export function statusOption(): Option {
  return (
    new Option(
      "--status <statuses>",
      "only these statuses, comma-separated or repeated (pending, running, completed, failed, cancelled)",
    )
      .argParser(collectStatuses)
      // Help shows "(default: any status)", not the empty list's "(default: [])".
      .default([] as JobStatus[], "any status")
  );
}

export function collectStatuses(value: string, previous: JobStatus[]): JobStatus[] {
  const out = [...previous];
  for (const part of value.split(",").filter((p) => p.trim() !== "")) {
    const status = parseStatus(part);
    if (status === undefined) {
      throw new UsageError(`unknown status "${part}"; use pending, running, completed, failed or cancelled`);
    }
    // Named twice is the same filter; the server refuses more than five statuses.
    if (!out.includes(status)) out.push(status);
  }
  return out;
}
