// `jobwatch cancel ID`: cancel a job (at once if PENDING; a RUNNING one is asked to stop by its worker).
import type { Command } from "commander";
import { JobStatus, statusName } from "../client/index.js";
import { addClientOptions, addJsonOption, type ClientFlags, printJson, runWithClient } from "./client-options.js";
import { colorsFor, jobJson, paintStatus } from "./format.js";

interface CancelFlags extends ClientFlags {
  reason?: string;
}

/** Registers `jobwatch cancel`. */
export function register(program: Command): void {
  const command = program
    .command("cancel")
    .description(
      "cancel a job: a PENDING job ends CANCELLED at once; a RUNNING job's worker is asked to stop and confirm",
    )
    .argument("<job-id>", "the job's id (a UUID)")
    .option("--reason <text>", "why, shown to the worker and to watchers");
  addJsonOption(command, "print the job after the request in the protobuf JSON mapping");
  addClientOptions(command);
  command.action(async (jobId: string, flags: CancelFlags) => {
    await runWithClient(
      flags,
      async (client) => {
        const job = await client.cancelJob(jobId, flags.reason === undefined ? {} : { reason: flags.reason });
        if (flags.json) {
          printJson(jobJson(job));
          return;
        }
        const c = colorsFor(process.stdout);
        if (job.status === JobStatus.JOB_STATUS_CANCELLED) {
          process.stdout.write(`job ${jobId} is ${paintStatus(c, job.status)}\n`);
        } else {
          process.stdout.write(
            `cancel requested: job ${jobId} is ${statusName(job.status)}; its worker should stop and confirm. ` +
              `Follow it with \`jobwatch watch ${jobId}\`.\n`,
          );
        }
      },
      { jobId },
    );
  });
}
