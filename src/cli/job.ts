// `jobwatch job ...`: the worker calls as commands, so a shell script can create, drive and finish a job.
import { type Command, InvalidArgumentError as UsageError } from "commander";
import { type Job, JobStatus, type JobwatchClient, type JsonObject } from "../client/index.js";
import {
  addClientOptions,
  addJsonOption,
  type ClientFlags,
  parseInteger,
  printJson,
  runWithClient,
} from "./client-options.js";
import { ExitCode } from "./exit-codes.js";
import { colorsFor, jobJson, paintStatus, progressText } from "./format.js";

interface CreateFlags extends ClientFlags {
  operation: string;
  user: string;
  resource?: string;
  requestId?: string;
}

interface ProgressFlags extends ClientFlags {
  phase?: string;
  detail?: string;
}

/** Registers `jobwatch job create|start|progress|heartbeat|complete|fail|cancelled`. */
export function register(program: Command): void {
  const job = program
    .command("job")
    .summary("report a job as its worker: create, start, progress, complete, fail ...")
    .description(
      "Report a job as its worker, so a shell script can be one. Needs a service or admin token.\n" +
        "`job progress` and `job heartbeat` exit 3 when a cancel was requested: stop, then run `job cancelled`.",
    );

  leaf(job.command("create").description("create a PENDING job and print its id"))
    .requiredOption("--operation <type>", "the operation, e.g. add_golden_repo")
    .requiredOption("--user <name>", "the user the job is for (they, and admins, can see it)")
    .option("--resource <name>", "what it acts on, e.g. a repository alias (one active job per operation and resource)")
    .option("--request-id <uuid>", "makes a retried create return the same job instead of a second one")
    .action(async (flags: CreateFlags) => {
      await runWithClient(flags, async (client) => {
        const created = await client.worker.createJob({
          operationType: flags.operation,
          username: flags.user,
          ...(flags.resource === undefined ? {} : { resource: flags.resource }),
          ...(flags.requestId === undefined ? {} : { requestId: flags.requestId }),
        });
        if (flags.json) printJson(jobJson(created));
        else process.stdout.write(`${created.jobId}\n`);
      });
    });

  transition(job, "start", "move a PENDING job to RUNNING", (client, id) => client.worker.startJob(id));

  leaf(
    job
      .command("progress")
      .description("report progress of a RUNNING job (exits 3 if a cancel was requested)")
      .argument("<job-id>", "the job's id")
      .argument("<percent>", "0 to 100", parseInteger(0, 100)),
  )
    .option("--phase <phase>", 'the current phase, e.g. "semantic"')
    .option("--detail <text>", 'e.g. "150/500 files indexed"')
    .action(async (jobId: string, percent: number, flags: ProgressFlags) => {
      await runWithClient(
        flags,
        async (client) => {
          const detail: { phase?: string; detail?: string } = {};
          if (flags.phase !== undefined) detail.phase = flags.phase;
          if (flags.detail !== undefined) detail.detail = flags.detail;
          return show(flags, await client.worker.reportProgress(jobId, percent, detail));
        },
        { jobId },
      );
    });

  transition(
    job,
    "heartbeat",
    "tell the server a RUNNING job's worker is alive (exits 3 if a cancel was requested)",
    (client, id) => client.worker.heartbeat(id),
  );

  leaf(job.command("complete").description("finish a job as COMPLETED").argument("<job-id>", "the job's id"))
    .option("--result <json>", "the result, a JSON object, e.g. '{\"files\": 500}'", parseResult)
    .action(async (jobId: string, flags: ClientFlags & { result?: JsonObject }) => {
      await runWithClient(flags, async (client) => show(flags, await client.worker.completeJob(jobId, flags.result)), {
        jobId,
      });
    });

  leaf(job.command("fail").description("finish a job as FAILED").argument("<job-id>", "the job's id"))
    .requiredOption("--error <text>", "what went wrong, for the user")
    .action(async (jobId: string, flags: ClientFlags & { error: string }) => {
      await runWithClient(flags, async (client) => show(flags, await client.worker.failJob(jobId, flags.error)), {
        jobId,
      });
    });

  transition(job, "cancelled", "confirm a requested cancellation: the job becomes CANCELLED", (client, id) =>
    client.worker.markCancelled(id),
  );
}

/** Adds the client options and --json to a worker subcommand. */
function leaf(command: Command): Command {
  addJsonOption(command, "print the job in the protobuf JSON mapping");
  return addClientOptions(command);
}

/** A subcommand that takes a job id and makes one call. */
function transition(
  parent: Command,
  name: string,
  description: string,
  call: (client: JobwatchClient, jobId: string) => Promise<Job>,
): void {
  leaf(parent.command(name).description(description).argument("<job-id>", "the job's id")).action(
    async (jobId: string, flags: ClientFlags) => {
      await runWithClient(flags, async (client) => show(flags, await call(client, jobId)), { jobId });
    },
  );
}

/** Prints the job after a call; a pending cancel request is the script's cue to stop (exit 3). */
function show(flags: ClientFlags, job: Job): ExitCode {
  if (flags.json) {
    printJson(jobJson(job));
  } else {
    const c = colorsFor(process.stdout);
    process.stdout.write(`job ${job.jobId} ${paintStatus(c, job.status)} ${progressText(job)}\n`);
  }
  if (job.cancelRequested && job.status === JobStatus.JOB_STATUS_RUNNING) {
    const reason = job.cancelReason ? ` (${job.cancelReason})` : "";
    process.stderr.write(`cancel requested${reason}: stop the work and run \`jobwatch job cancelled ${job.jobId}\`\n`);
    return ExitCode.CANCELLED;
  }
  return ExitCode.OK;
}

function parseResult(text: string): JsonObject {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new UsageError("expected a JSON object, e.g. '{\"files\": 500}'");
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new UsageError("expected a JSON object (in braces), not an array or a single value");
  }
  return value as JsonObject;
}
