// The MCP tools `jobwatch mcp` lists: get_job_details exactly as the seed defines it (name, description,
// inputSchema, outputSchema), and its related tools in the same style.
import type { Tool } from "@modelcontextprotocol/sdk/types.js";

/** A JSON Schema object, as tools/list carries it. */
type JsonSchema = { type: "object"; [key: string]: unknown };

const GET_JOB_DETAILS_DESCRIPTION =
  "TL;DR: Get detailed status and progress information for specific background job using job_id. Monitor " +
  "long-running operations like repository indexing, refresh, or removal. QUICK START: get_job_details(job_id) " +
  "where job_id comes from add_golden_repo, remove_golden_repo, refresh_golden_repo, add_golden_repo_index. " +
  "OUTPUT FIELDS: job_id (UUID), operation_type (what operation), status " +
  "(pending/running/completed/failed/cancelled), created_at, started_at, completed_at (ISO 8601 timestamps), " +
  "progress (0-100%), result (operation output if completed), error (diagnostic message if failed), username " +
  "(who submitted job). USE CASES: (1) Monitor repository indexing progress after add_golden_repo, (2) Check " +
  "if refresh_golden_repo completed successfully, (3) Diagnose job failures with error messages, (4) Track " +
  "long-running operations. JOB LIFECYCLE: pending → running → completed/failed. Poll this endpoint " +
  "periodically until status is completed or failed. TROUBLESHOOTING: Job not found? job_id may be expired " +
  "(old jobs are cleaned up). Job stuck in running? Check error field for issues, or contact admin for server " +
  "logs. RELATED TOOLS: get_job_statistics (overview of all jobs), add_golden_repo (returns job_id), " +
  "refresh_golden_repo (returns job_id), remove_golden_repo (returns job_id), add_golden_repo_index (returns " +
  "job_id).";

/** The seed's `job` object: what every tool here returns for one job. */
const JOB_SCHEMA = {
  type: "object",
  description: "Job details including status, timestamps, progress, and error information",
  properties: {
    job_id: { type: "string", description: "Unique job identifier (UUID)" },
    operation_type: {
      type: "string",
      description: "Type of operation (e.g., add_golden_repo, remove_golden_repo)",
    },
    status: { type: "string", description: "Current job status (pending, running, completed, failed, cancelled)" },
    created_at: { type: "string", description: "ISO 8601 timestamp when job was created" },
    started_at: {
      type: ["string", "null"],
      description: "ISO 8601 timestamp when job started (null if not started)",
    },
    completed_at: {
      type: ["string", "null"],
      description: "ISO 8601 timestamp when job completed (null if not completed)",
    },
    progress: { type: "integer", description: "Job progress percentage (0-100)" },
    result: { type: ["object", "null"], description: "Job result data (null if not completed or failed)" },
    error: { type: ["string", "null"], description: "Error message if job failed (null if no error)" },
    username: { type: "string", description: "Username of the user who submitted the job" },
  },
};

const SUCCESS = { type: "boolean", description: "Whether the operation succeeded" };
const ERROR = { type: "string", description: "Error message if operation failed" };
const JOB_ID_INPUT = { type: "string", description: "The unique identifier of the job to query (UUID format)" };

/** The seed's get_job_details, to the letter. */
const GET_JOB_DETAILS: Tool = {
  name: "get_job_details",
  description: GET_JOB_DETAILS_DESCRIPTION,
  inputSchema: { type: "object", properties: { job_id: JOB_ID_INPUT }, required: ["job_id"] },
  outputSchema: {
    type: "object",
    properties: { success: SUCCESS, job: JOB_SCHEMA, error: ERROR },
    required: ["success"],
  },
  annotations: { title: "Get job details", readOnlyHint: true, idempotentHint: true, openWorldHint: false },
};

/** The most wait_for_job waits, in seconds; a WatchJob held longer would outlive most clients' patience. */
const MAX_WAIT_SECONDS = 600;
/** What wait_for_job waits when the caller gives no timeout, in seconds. */
export const DEFAULT_WAIT_SECONDS = 60;
/** list_jobs page sizes: the server's own default and cap. */
const DEFAULT_PAGE_SIZE = 50;
const MAX_PAGE_SIZE = 100;
/** The statuses as the seed spells them. */
export const STATUS_WORDS = ["pending", "running", "completed", "failed", "cancelled"] as const;

const WAIT_FOR_JOB: Tool = {
  name: "wait_for_job",
  description:
    "Wait until a background job finishes (completed, failed or cancelled) and return its final details, in one " +
    "call instead of polling get_job_details. Returns early with the job's current details and timed_out: true " +
    `when timeout_seconds (default ${DEFAULT_WAIT_SECONDS}, at most ${MAX_WAIT_SECONDS}) pass first; call it again ` +
    "to keep waiting. Sends MCP progress notifications with the job's progress (0-100) when the request carries " +
    "a progressToken. Output: the same fields as get_job_details.",
  inputSchema: {
    type: "object",
    properties: {
      job_id: { type: "string", description: "The unique identifier of the job to wait for (UUID format)" },
      timeout_seconds: {
        type: "number",
        exclusiveMinimum: 0,
        maximum: MAX_WAIT_SECONDS,
        description: `How long to wait at most, in seconds (default ${DEFAULT_WAIT_SECONDS}, at most ${MAX_WAIT_SECONDS})`,
      },
    },
    required: ["job_id"],
  },
  outputSchema: {
    type: "object",
    properties: {
      success: SUCCESS,
      job: JOB_SCHEMA,
      timed_out: {
        type: "boolean",
        description: "True when the timeout passed before the job finished: job is its state at that moment",
      },
      error: ERROR,
    },
    required: ["success"],
  },
  annotations: { title: "Wait for a job to finish", readOnlyHint: true, idempotentHint: true, openWorldHint: false },
};

const LIST_JOBS: Tool = {
  name: "list_jobs",
  description:
    "List background jobs, newest first, one page at a time: your own jobs, or with an admin token one user's " +
    "(username) or every user's (all_users). " +
    "Filter by status and operation type; pass next_page_token back as page_token for the next page. Each job " +
    "has the same fields as get_job_details.",
  inputSchema: {
    type: "object",
    properties: {
      status: {
        type: "array",
        items: { type: "string", enum: [...STATUS_WORDS] },
        description: "Only jobs in any of these statuses (default: every status)",
      },
      operation_type: {
        type: "string",
        description: "Only jobs of this operation type (e.g., add_golden_repo)",
      },
      username: { type: "string", description: "Only this user's jobs (another user's needs an admin token)" },
      all_users: { type: "boolean", description: "Every user's jobs (needs an admin token; not with username)" },
      page_size: {
        type: "integer",
        minimum: 1,
        maximum: MAX_PAGE_SIZE,
        description: `Jobs per page (default ${DEFAULT_PAGE_SIZE}, at most ${MAX_PAGE_SIZE})`,
      },
      page_token: { type: "string", description: "next_page_token of the previous page, with the same filters" },
    },
  },
  outputSchema: {
    type: "object",
    properties: {
      success: SUCCESS,
      jobs: { type: "array", items: JOB_SCHEMA, description: "The jobs of this page, newest first" },
      next_page_token: {
        type: ["string", "null"],
        description: "Pass as page_token to get the next page (null on the last page)",
      },
      error: ERROR,
    },
    required: ["success"],
  },
  annotations: { title: "List jobs", readOnlyHint: true, idempotentHint: true, openWorldHint: false },
};

const COUNT = (what: string) => ({ type: "integer", description: what });
const SECONDS_OR_NULL = (what: string) => ({ type: ["number", "null"], description: what });

const GET_JOB_STATISTICS: Tool = {
  name: "get_job_statistics",
  description:
    "Overview of background jobs: how many are active (running), pending, completed, failed, cancelled and in " +
    "total, counts per operation type, and for jobs that finished in the last window_hours (default 24): " +
    "how many, the success rate and the median and 95th percentile durations (overall and per operation type). Covers your own jobs, or with " +
    "an admin token one user's (username) or every user's (all_users).",
  inputSchema: {
    type: "object",
    properties: {
      username: { type: "string", description: "Only this user's jobs (another user's needs an admin token)" },
      all_users: { type: "boolean", description: "Every user's jobs (needs an admin token; not with username)" },
      window_hours: {
        type: "number",
        exclusiveMinimum: 0,
        maximum: 87600,
        description: "How far back the finished-job figures look, in hours (default 24)",
      },
    },
  },
  outputSchema: {
    type: "object",
    properties: {
      success: SUCCESS,
      statistics: {
        type: "object",
        description: "Job counts and durations",
        properties: {
          active: COUNT("Jobs running now"),
          pending: COUNT("Jobs waiting to start"),
          running: COUNT("Jobs running now (same as active)"),
          completed: COUNT("Jobs that completed"),
          failed: COUNT("Jobs that failed"),
          cancelled: COUNT("Jobs that were cancelled"),
          total: COUNT("All jobs"),
          by_operation_type: {
            type: "object",
            additionalProperties: { type: "integer" },
            description: "Job counts per operation type",
          },
          window_start: { type: "string", description: "ISO 8601 start of the window of the figures below" },
          finished_in_window: COUNT("Jobs that finished (completed, failed or cancelled) within the window"),
          success_rate: { type: "number", description: "Of those, the fraction that completed (0 to 1)" },
          p50_duration_seconds: SECONDS_OR_NULL("Median duration of those jobs (null when none finished)"),
          p95_duration_seconds: SECONDS_OR_NULL("95th percentile duration of those jobs (null when none finished)"),
          durations_by_operation_type: {
            type: "object",
            additionalProperties: {
              type: "object",
              properties: {
                finished: COUNT("Jobs of this type that finished within the window"),
                p50_duration_seconds: SECONDS_OR_NULL("Their median duration"),
                p95_duration_seconds: SECONDS_OR_NULL("Their 95th percentile duration"),
              },
            },
            description:
              "The same per operation type, for the 20 types with the most jobs that had a job finish in the window",
          },
        },
      },
      error: ERROR,
    },
    required: ["success"],
  },
  annotations: { title: "Job statistics", readOnlyHint: true, idempotentHint: true, openWorldHint: false },
};

const CANCEL_JOB: Tool = {
  name: "cancel_job",
  description:
    "Cancel a background job. A pending job becomes cancelled at once; a running job gets a cancel request " +
    "(cancel_requested: true) and becomes cancelled when its worker stops (follow it with wait_for_job). A " +
    "completed or failed job cannot be cancelled. Cancelling a cancelled job changes nothing.",
  inputSchema: {
    type: "object",
    properties: {
      job_id: { type: "string", description: "The unique identifier of the job to cancel (UUID format)" },
      reason: { type: "string", maxLength: 1000, description: "Why, shown to the job's worker and watchers" },
    },
    required: ["job_id"],
  },
  outputSchema: {
    type: "object",
    properties: {
      success: SUCCESS,
      job: JOB_SCHEMA,
      cancel_requested: {
        type: "boolean",
        description: "True when the job is still running and its worker was asked to stop",
      },
      error: ERROR,
    },
    required: ["success"],
  },
  annotations: {
    title: "Cancel a job",
    readOnlyHint: false,
    destructiveHint: true,
    idempotentHint: true,
    openWorldHint: false,
  },
};

/** Every tool, in the order tools/list gives them. */
export const TOOLS: readonly Tool[] = [GET_JOB_DETAILS, WAIT_FOR_JOB, LIST_JOBS, GET_JOB_STATISTICS, CANCEL_JOB];

/** The names of the tools. */
export type ToolName = "get_job_details" | "wait_for_job" | "list_jobs" | "get_job_statistics" | "cancel_job";

/** The definition of one tool. */
export function toolNamed(name: string): Tool | undefined {
  return TOOLS.find((tool) => tool.name === name);
}

/** The output schema of a tool, which every structuredContent it returns must satisfy. */
export function outputSchemaOf(tool: Tool): JsonSchema {
  if (!tool.outputSchema) throw new Error(`tool ${tool.name} has no output schema`);
  return tool.outputSchema as JsonSchema;
}
