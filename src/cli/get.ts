// `jobwatch get ID`: one job's state as a readable summary, or as JSON for scripts.
import type { Command } from "commander";
import { statusName } from "../client/index.js";
import { addClientOptions, addJsonOption, type ClientFlags, printJson, runWithClient } from "./client-options.js";
import { colorsFor, formatTime, jobEventJson, jobJson, jobSummary, paintStatusCell, table } from "./format.js";

interface GetFlags extends ClientFlags {
  history?: boolean;
}

/** Registers `jobwatch get`. */
export function register(program: Command): void {
  const command = program
    .command("get")
    .description("show a job: status, progress, owner, operation, timestamps, result or error")
    .argument("<job-id>", "the job's id (a UUID)")
    .option(
      "--history",
      "also show the job's recorded changes, oldest first: every change of status, phase, cancel request or " +
        "error, but progress and detail within one phase at most once a second and no heartbeats, so " +
        "revision numbers skip",
    );
  addJsonOption(command, "print the job in the protobuf JSON mapping (with --history: {job, events})");
  addClientOptions(command);
  command.action(async (jobId: string, flags: GetFlags) => {
    await runWithClient(
      flags,
      async (client) => {
        const job = await client.getJob(jobId);
        const events = flags.history ? await client.getHistory(jobId) : undefined;
        if (flags.json) {
          printJson(events === undefined ? jobJson(job) : { job: jobJson(job), events: events.map(jobEventJson) });
          return;
        }
        const c = colorsFor(process.stdout);
        process.stdout.write(`${jobSummary(c, job)}\n`);
        if (events !== undefined) {
          const rows = events.map((e) => [
            String(e.revision),
            formatTime(e.time),
            statusName(e.status),
            `${e.progress}%`,
            [e.phase, e.detail].filter((s) => s).join(": "),
            [e.cancelRequested ? "cancel requested" : "", e.error ?? ""].filter((s) => s).join("; "),
          ]);
          const painted = table(["REV", "TIME", "STATUS", "PROGRESS", "PHASE", "NOTE"], rows, (i, cell, padded) =>
            i === 2 ? paintStatusCell(c, cell, padded) : padded,
          );
          process.stdout.write(`\n${c.bold("History")}\n${painted}\n`);
        }
      },
      { jobId },
    );
  });
}
