// `jobwatch webhook ...`: register webhooks, list them, read their deliveries and attempts, replay a job's.
import { type Command, InvalidArgumentError as UsageError } from "commander";
import type { JobStatus } from "../client/index.js";
import { parseStatus, statusName, Webhook, WebhookDelivery, WebhookDeliveryState } from "../client/index.js";
import {
  addClientOptions,
  addJsonOption,
  type ClientFlags,
  parseInteger,
  printJson,
  runWithClient,
} from "./client-options.js";
import { formatTime } from "./format.js";
import { table } from "./table.js";

interface CreateFlags extends ClientFlags {
  operation: string[];
  status?: JobStatus[];
  all?: boolean;
}

interface DeliveriesFlags extends ClientFlags {
  job?: string;
  limit: number;
}

/** "completed,failed" -> the statuses; a usage error naming the bad one. */
function parseStatuses(text: string): JobStatus[] {
  return text.split(",").map((word) => {
    const status = parseStatus(word.trim());
    if (status === undefined)
      throw new UsageError(`'${word}' is not a status (pending, running, completed, failed, cancelled)`);
    return status;
  });
}

const STATE_NAMES: Record<number, string> = {
  [WebhookDeliveryState.WEBHOOK_DELIVERY_STATE_PENDING]: "PENDING",
  [WebhookDeliveryState.WEBHOOK_DELIVERY_STATE_DELIVERED]: "DELIVERED",
  [WebhookDeliveryState.WEBHOOK_DELIVERY_STATE_FAILED]: "FAILED",
};

/** The last attempt of a delivery as a cell: "200 in 12 ms" or the error. */
function lastAttempt(d: WebhookDelivery): string {
  const a = d.attempts.at(-1);
  if (a === undefined) return "-";
  const ms = Math.round((a.latency?.seconds ?? 0) * 1000 + (a.latency?.nanos ?? 0) / 1e6);
  return `${a.httpStatus === 0 ? a.error : a.httpStatus} in ${ms} ms`;
}

function leaf(command: Command, what: string): Command {
  addJsonOption(command, what);
  return addClientOptions(command);
}

/** Registers `jobwatch webhook create|list|delete|deliveries|replay`. */
export function register(program: Command): void {
  const webhook = program
    .command("webhook")
    .summary("webhooks: HTTP endpoints told of job transitions (create, list, deliveries, replay)")
    .description(
      "Register HTTPS endpoints that get a signed POST (Standard Webhooks) for every matching job transition.\n" +
        "Needs a power_user or admin token; --all (every user's jobs) needs an admin.",
    );

  leaf(
    webhook.command("create").description("register a webhook; prints its id and signing secret (once)"),
    "print the response",
  )
    .argument("<url>", "https://... (http:// only to a loopback host)")
    .option(
      "--operation <type>",
      "only this operation type (repeatable)",
      (v: string, acc: string[]) => [...acc, v],
      [],
    )
    .option("--status <list>", "the statuses to be told of (default completed,failed,cancelled)", parseStatuses)
    .option("--all", "every user's jobs, not only your own (admin)")
    .action(async (url: string, flags: CreateFlags) => {
      await runWithClient(flags, async (client) => {
        const made = await client.webhooks.create({
          url,
          operationTypes: flags.operation,
          ...(flags.status === undefined ? {} : { statuses: flags.status }),
          allUsers: flags.all === true,
        });
        if (flags.json) printJson({ webhook: Webhook.toJSON(made.webhook!), secret: made.secret });
        else
          process.stdout.write(
            `${made.webhook!.webhookId}\nsecret: ${made.secret} (shown once: keep it with the receiver)\n`,
          );
      });
    });

  leaf(webhook.command("list").description("your webhooks (everyone's for an admin)"), "print them as JSON").action(
    async (flags: ClientFlags) => {
      await runWithClient(flags, async (client) => {
        const hooks = await client.webhooks.list();
        if (flags.json) return printJson(hooks.map((w) => Webhook.toJSON(w)));
        const rows = hooks.map((w) => [
          w.webhookId,
          w.owner + (w.allUsers ? " (all users)" : ""),
          w.statuses.map(statusName).join(","),
          w.operationTypes.join(",") || "*",
          w.url,
        ]);
        process.stdout.write(`${table(["ID", "OWNER", "STATUSES", "OPERATIONS", "URL"], rows)}\n`);
      });
    },
  );

  leaf(webhook.command("delete").description("remove a webhook and its pending deliveries"), "print nothing")
    .argument("<webhook-id>", "the webhook's id")
    .action(async (id: string, flags: ClientFlags) => {
      await runWithClient(flags, async (client) => {
        await client.webhooks.delete(id);
      });
    });

  leaf(
    webhook.command("deliveries").description("a webhook's deliveries, newest first, with their last attempt"),
    "print them as JSON",
  )
    .argument("<webhook-id>", "the webhook's id")
    .option("--job <id>", "only this job's deliveries")
    .option("--limit <n>", "at most this many (1-500)", parseInteger(1, 500), 50)
    .action(async (id: string, flags: DeliveriesFlags) => {
      await runWithClient(flags, async (client) => {
        const page = await client.webhooks.deliveries(id, {
          pageSize: flags.limit,
          ...(flags.job === undefined ? {} : { jobId: flags.job }),
        });
        if (flags.json) return printJson(page.deliveries.map((d) => WebhookDelivery.toJSON(d)));
        const rows = page.deliveries.map((d) => [
          d.deliveryId,
          d.jobId,
          String(d.revision),
          statusName(d.status),
          STATE_NAMES[d.state] ?? "?",
          String(d.attempts.length),
          lastAttempt(d),
          d.state === WebhookDeliveryState.WEBHOOK_DELIVERY_STATE_DELIVERED
            ? formatTime(d.deliveredAt)
            : formatTime(d.nextAttemptAt),
        ]);
        process.stdout.write(
          `${table(["DELIVERY", "JOB", "REV", "STATUS", "STATE", "ATTEMPTS", "LAST", "DELIVERED/NEXT"], rows)}\n`,
        );
      });
    });

  leaf(webhook.command("replay").description("send a job's deliveries again from a revision on"), "print nothing")
    .argument("<webhook-id>", "the webhook's id")
    .requiredOption("--job <id>", "the job")
    .option("--from-revision <n>", "from this revision on (default: all)", parseInteger(0, Number.MAX_SAFE_INTEGER), 0)
    .action(async (id: string, flags: ClientFlags & { job: string; fromRevision: number }) => {
      await runWithClient(flags, async (client) => {
        const n = await client.webhooks.replay(id, flags.job, flags.fromRevision);
        process.stdout.write(`${n} deliveries pending again\n`);
      });
    });
}
