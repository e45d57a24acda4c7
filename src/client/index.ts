// The jobwatch client library: what `import ... from "jobwatch"` gives a TypeScript service.
export {
  createClient,
  durationMs,
  type ClientOptions,
  type JobPage,
  type JobwatchClient,
  type ListJobsFilter,
  type StatisticsQuery,
  type TlsOptions,
  type WaitOptions,
} from "./client.js";
export type { CallOptions, RetryOptions } from "./call.js";
export type { BackoffOptions } from "./backoff.js";
export type { ReconnectEvent, ResumeOptions } from "./resumable-stream.js";
export type { RetryEvent, RevisionPosition, WatchOptions } from "./watch.js";
export type { CursorPosition, JobsWatchEvent, JobsWatchFilter, JobsWatchOptions } from "./watch-jobs.js";
export {
  CancelRequestedError,
  type JsonObject,
  type NewJobInput,
  type ProgressDetail,
  type RunOptions,
  type WorkerClient,
  type WorkerContext,
} from "./worker.js";
export {
  AlreadyExistsError,
  DeadlineExceededError,
  FailedPreconditionError,
  InvalidArgumentError,
  JobNotFoundError,
  JobwatchClientError,
  PermissionDeniedError,
  UnauthenticatedError,
  UnavailableError,
  type ErrorDetails,
  type ErrorReason,
  type FieldViolation,
  type PreconditionViolation,
} from "./errors.js";
export { isTerminalStatus, parseStatus, statusName } from "./status.js";
// The generated message types: Job.toJSON / JobEvent.toJSON give the protobuf JSON mapping.
export { EstimateBasis, Job, JobEvent, JobStatus } from "../gen/jobwatch/v1/job.js";
// The figures of getStatistics, as the server sends them (JobStatistics.toJSON gives the JSON mapping).
export { GetJobStatisticsResponse as JobStatistics } from "../gen/jobwatch/v1/job_service.js";
// The gRPC status codes that JobwatchClientError.code holds.
export { status as GrpcStatus } from "@grpc/grpc-js";
export type { NewWebhookInput, WebhookClient } from "./webhooks.js";
export {
  Webhook,
  WebhookAttempt,
  WebhookDelivery,
  WebhookDeliveryState,
} from "../gen/jobwatch/v1/job_webhook_service.js";
