// What each MCP tool does: check its arguments, call the jobwatch server through the client library (which
// the server authorizes with the configured token), and answer in the tool's output shape, failures included.
import type { CallToolResult, Tool } from "@modelcontextprotocol/sdk/types.js";
import { AjvJsonSchemaValidator } from "@modelcontextprotocol/sdk/validation/ajv";
import type { JsonSchemaType, JsonSchemaValidator } from "@modelcontextprotocol/sdk/validation/types.js";
import {
  DeadlineExceededError,
  isTerminalStatus,
  type Job,
  type JobStatus,
  type JobwatchClient,
  parseStatus,
  statusName,
} from "../client/index.js";
import { seedJob, statisticsJson } from "./job-json.js";
import { DEFAULT_WAIT_SECONDS, outputSchemaOf, STATUS_WORDS, TOOLS, type ToolName } from "./tool-definitions.js";
import { noTokenMessage, ToolInputError, toolErrorMessage } from "./tool-errors.js";

/** What the tools share: the jobwatch client (none when no token is configured) and its address. */
export interface ToolContext {
  client: JobwatchClient | undefined;
  address: string;
}

/** The request a tool runs for. */
export interface ToolCall {
  /** Aborted when the MCP client cancels the request or goes away. */
  signal: AbortSignal;
  /** Sends an MCP progress notification; undefined when the caller gave no progressToken. */
  progress?: ((progress: number, total: number, message: string) => Promise<void>) | undefined;
}

/** A tool's answer before it becomes a CallToolResult: the structured content, with success set. */
type Structured = { success: boolean } & Record<string, unknown>;

type Handler = (client: JobwatchClient, args: Record<string, unknown>, call: ToolCall) => Promise<Structured>;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

const HANDLERS: Record<ToolName, Handler> = {
  async get_job_details(client, args, call) {
    const job = await client.getJob(jobIdArg(args), { signal: call.signal });
    return { success: true, job: seedJob(job) };
  },

  async wait_for_job(client, args, call) {
    const jobId = jobIdArg(args);
    const timeoutMs = ((args["timeout_seconds"] as number | undefined) ?? DEFAULT_WAIT_SECONDS) * 1000;
    const deadline = Date.now() + timeoutMs;
    // A read first, so a missing job, a rejected token or an unreachable server fails at once instead of
    // after the timeout (the watch retries an unreachable server until then).
    let last = await client.getJob(jobId, { signal: call.signal });
    const notifier = progressNotifier(call);
    notifier(last);
    if (!isTerminalStatus(last.status)) {
      try {
        last = await client.waitForJob(jobId, {
          timeout: Math.max(1, deadline - Date.now()),
          signal: call.signal,
          onUpdate: (job) => {
            last = job;
            notifier(job);
          },
        });
      } catch (err) {
        if (!(err instanceof DeadlineExceededError) || call.signal.aborted) throw err;
        return { success: true, job: seedJob(last), timed_out: true };
      }
    }
    return { success: true, job: seedJob(last), timed_out: false };
  },

  async list_jobs(client, args, call) {
    const words = (args["status"] as string[] | undefined) ?? [];
    // A word named twice is one filter (the server refuses more than five statuses).
    const statuses = [...new Set(words.map((word) => parseStatus(word)))].filter(
      (s): s is JobStatus => s !== undefined,
    );
    const page = await client.listJobs(
      {
        statuses,
        ...optional("operationType", args["operation_type"] as string | undefined),
        ...optional("username", args["username"] as string | undefined),
        ...optional("allUsers", args["all_users"] as boolean | undefined),
        ...optional("pageSize", args["page_size"] as number | undefined),
        ...optional("pageToken", args["page_token"] as string | undefined),
      },
      { signal: call.signal },
    );
    return { success: true, jobs: page.jobs.map(seedJob), next_page_token: page.nextPageToken ?? null };
  },

  async get_job_statistics(client, args, call) {
    const hours = args["window_hours"] as number | undefined;
    const stats = await client.getStatistics(
      {
        ...optional("username", args["username"] as string | undefined),
        ...optional("allUsers", args["all_users"] as boolean | undefined),
        ...optional("windowMs", hours === undefined ? undefined : Math.round(hours * 3_600_000)),
        // The seed's tool has no input for it; its output names durations_by_operation_type, so always asked.
        includeDurationsByOperationType: true,
      },
      { signal: call.signal },
    );
    return { success: true, statistics: statisticsJson(stats) };
  },

  async cancel_job(client, args, call) {
    const reason = args["reason"] as string | undefined;
    const job = await client.cancelJob(jobIdArg(args), { signal: call.signal, ...optional("reason", reason) });
    return { success: true, job: seedJob(job), cancel_requested: !isTerminalStatus(job.status) && job.cancelRequested };
  },
};

/** Runs tools by name; each answer validates against its tool's outputSchema. */
export class ToolRunner {
  private readonly validators = new Map<
    string,
    { input: JsonSchemaValidator<unknown>; output: JsonSchemaValidator<unknown> }
  >();

  constructor(private readonly context: ToolContext) {
    const ajv = new AjvJsonSchemaValidator();
    for (const tool of TOOLS) {
      this.validators.set(tool.name, {
        input: ajv.getValidator(tool.inputSchema as JsonSchemaType),
        output: ajv.getValidator(outputSchemaOf(tool) as JsonSchemaType),
      });
    }
  }

  /**
   * Runs `tool` with `args`. Every failure (bad arguments, an error from the server, the server down) is a
   * result with isError and {success: false, error} for the caller to act on, never a thrown error.
   */
  async run(tool: Tool, args: Record<string, unknown> | undefined, call: ToolCall): Promise<CallToolResult> {
    const validators = this.validators.get(tool.name)!;
    const jobId = typeof args?.["job_id"] === "string" ? args["job_id"] : undefined;
    let structured: Structured;
    try {
      const input = validators.input(args ?? {});
      if (!input.valid)
        throw new ToolInputError(`invalid arguments for ${tool.name}: ${ajvMessage(input.errorMessage)}`);
      if (this.context.client === undefined) throw new ToolInputError(noTokenMessage());
      structured = await HANDLERS[tool.name as ToolName](this.context.client, args ?? {}, call);
    } catch (err) {
      structured = {
        success: false,
        error: toolErrorMessage(err, { address: this.context.address, ...optional("jobId", jobId) }),
      };
    }
    const output = validators.output(structured);
    if (!output.valid) {
      // A bug here, not the caller's fault; still an answer in the tool's shape rather than a broken result.
      structured = {
        success: false,
        error: `internal error: the answer did not match the output schema (${output.errorMessage})`,
      };
    }
    return {
      content: [{ type: "text", text: JSON.stringify(structured, null, 2) }],
      structuredContent: structured,
      ...(structured.success ? {} : { isError: true }),
    };
  }
}

/** The job_id argument, checked to be a UUID. */
function jobIdArg(args: Record<string, unknown>): string {
  const value = String(args["job_id"]);
  if (!UUID.test(value.trim())) {
    throw new ToolInputError(
      `job_id '${value.length > 60 ? `${value.slice(0, 60)}...` : value}' is not a UUID: pass the job_id exactly as ` +
        "the operation that started the job returned it, e.g. 3f0e2c1a-9b7d-4c2e-8f1a-2b3c4d5e6f70.",
    );
  }
  return value.trim();
}

/** Sends a progress notification for each job update whose progress went up (the protocol wants it rising). */
function progressNotifier(call: ToolCall): (job: Job) => void {
  let sent = -1;
  return (job) => {
    if (call.progress === undefined || job.progress <= sent) return;
    sent = job.progress;
    const where = [job.phase, job.detail].filter((s) => s !== undefined && s !== "").join(": ");
    const message = `${statusName(job.status).toLowerCase()}${where === "" ? "" : ` (${where})`}`;
    // A notification that cannot be sent (the client went away) must not fail the wait; the answer will tell.
    call.progress(job.progress, 100, message).catch(() => {});
  };
}

/** ajv's "data/job_id must be string" as "job_id must be string", with the allowed values spelled out. */
function ajvMessage(text: string | undefined): string {
  return (
    (text ?? "invalid")
      .replace(/\bdata\//g, "")
      .replace(/\bdata\b/g, "arguments")
      // The one enum of the tools' inputs is list_jobs' status words, and ajv's text does not name them.
      .replace(/must be equal to one of the allowed values/g, `must be one of ${STATUS_WORDS.join(", ")}`)
  );
}

/** `{ [key]: value }`, or nothing when value is undefined (for exactOptionalPropertyTypes-style options). */
function optional<K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } {
  return (value === undefined ? {} : { [key]: value }) as { [P in K]?: V };
}
