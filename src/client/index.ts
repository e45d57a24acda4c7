// The jobwatch client library: what `import ... from "jobwatch"` gives a TypeScript service.

// The gRPC status codes that JobwatchClientError.code holds.
export { status as GrpcStatus } from "@grpc/grpc-js";
// The generated message types: Job.toJSON / JobEvent.toJSON give the protobuf JSON mapping.
export { EstimateBasis, Job, JobEvent, JobStatus } from "../gen/jobwatch/v1/job.js";
// The figures of getStatistics, as the server sends them (JobStatistics.toJSON gives the JSON mapping).
export { GetJobStatisticsResponse as JobStatistics } from "../gen/jobwatch/v1/job_service.js";
export {
  Webhook,
  WebhookAttempt,
  WebhookDelivery,
  WebhookDeliveryState,
} from "../gen/jobwatch/v1/job_webhook_service.js";
export type { BackoffOptions } from "./backoff.js";
export type { CallOptions, RetryOptions } from "./call.js";
export {
  type ClientOptions,
  createClient,
  durationMs,
  type JobPage,
  type JobwatchClient,
  type ListJobsFilter,
  type StatisticsQuery,
  type TlsOptions,
  type WaitOptions,
} from "./client.js";
export {
  AlreadyExistsError,
  DeadlineExceededError,
  type ErrorDetails,
  type ErrorReason,
  FailedPreconditionError,
  type FieldViolation,
  InvalidArgumentError,
  JobNotFoundError,
  JobwatchClientError,
  PermissionDeniedError,
  type PreconditionViolation,
  UnauthenticatedError,
  UnavailableError,
} from "./errors.js";
export type { ReconnectEvent, ResumeOptions } from "./resumable-stream.js";
export { isTerminalStatus, parseStatus, statusName } from "./status.js";
export type { RetryEvent, RevisionPosition, WatchOptions } from "./watch.js";
export type { CursorPosition, JobsWatchEvent, JobsWatchFilter, JobsWatchOptions } from "./watch-jobs.js";
export type { NewWebhookInput, WebhookClient } from "./webhooks.js";
export {
  CancelRequestedError,
  type JsonObject,
  type NewJobInput,
  type ProgressDetail,
  type RunOptions,
  type WorkerClient,
  type WorkerContext,
} from "./worker.js";
