// A real jobwatch server on 127.0.0.1:0 over a fresh database, with tokens and typed promise clients.
//
// API:
//   startTestServer({ dialect })          a server over a new database of that dialect (see databases.ts),
//                                         with tokens for an admin, a service worker and two normal users
//                                         (alice, bob). stop() shuts it down and drops the database.
//   startTestServer({ sharing: other })   a SECOND server (own store, hub, authenticator) on the same
//                                         database as `other`; its stop() leaves the database alone.
//   server.as(token)                      { jobs, worker }: promise-returning clients of JobService and
//                                         JobWorkerService that send `authorization: Bearer <token>`.
//   server.watch(token, request)          a WatchJob stream collecting every Job until it ends.
//   statusOf / badRequestOf / ...         decode what a failed call carries (code, google.rpc details).

import type { CallOptions, ClientUnaryCall, Metadata, ServiceError } from "@grpc/grpc-js";
import * as grpc from "@grpc/grpc-js";
import pino from "pino";
import { OpaqueTokenAuthenticator } from "../../src/auth/opaque-token-authenticator.js";
import { createToken } from "../../src/auth/token-admin.js";
import type { Any } from "../../src/gen/google/protobuf/any.js";
import type { BadRequest_FieldViolation } from "../../src/gen/google/rpc/error_details.js";
import { BadRequest, ErrorInfo, PreconditionFailure } from "../../src/gen/google/rpc/error_details.js";
import { Status } from "../../src/gen/google/rpc/status.js";
import type { Job } from "../../src/gen/jobwatch/v1/job.js";
import type {
  CancelJobResponse,
  GetJobDetailsResponse,
  GetJobHistoryResponse,
  GetJobStatisticsResponse,
  ListJobsResponse,
} from "../../src/gen/jobwatch/v1/job_service.js";
import {
  CancelJobRequest,
  GetJobDetailsRequest,
  GetJobHistoryRequest,
  GetJobStatisticsRequest,
  JobServiceClient,
  ListJobsRequest,
  WatchJobRequest,
} from "../../src/gen/jobwatch/v1/job_service.js";
import type {
  CompleteJobResponse,
  CreateJobResponse,
  FailJobResponse,
  HeartbeatResponse,
  MarkCancelledResponse,
  ReportProgressResponse,
  StartJobResponse,
} from "../../src/gen/jobwatch/v1/job_worker_service.js";
import {
  CompleteJobRequest,
  CreateJobRequest,
  FailJobRequest,
  HeartbeatRequest,
  JobWorkerServiceClient,
  MarkCancelledRequest,
  ReportProgressRequest,
  StartJobRequest,
} from "../../src/gen/jobwatch/v1/job_worker_service.js";
import type { SweeperSettings } from "../../src/jobs/sweeper.js";
import { Sweeper } from "../../src/jobs/sweeper.js";
import type { JobwatchServer } from "../../src/server/server.js";
import { createServer } from "../../src/server/server.js";
import { openDatabase } from "../../src/store/connect.js";
import { guardStore } from "../../src/store/guarded-store.js";
import { SqlJobStore } from "../../src/store/sql-job-store.js";
import type { JobStore } from "../../src/store/store.js";
import { probeWrite } from "../../src/store/write-probe.js";
import { Watches } from "../../src/watch/watches.js";
import type { TestDatabase, TestDialect } from "./databases.js";
import { freshDatabase } from "./databases.js";

/** A request as tests write it: any subset of the fields (the rest get their defaults). */
type Partial1<T> = { [K in keyof T]?: T[K] };

/** A grpc-js unary client method in its (request, metadata, options, callback) form. */
type UnaryMethod<Req, Res> = (
  request: Req,
  metadata: Metadata,
  options: Partial<CallOptions>,
  callback: (error: ServiceError | null, response: Res) => void,
) => ClientUnaryCall;

/** A promise-returning rpc: takes a partial request, resolves to the response or rejects with the ServiceError. */
export type Rpc<Req, Res> = (request?: Partial1<Req>, options?: Partial<CallOptions>) => Promise<Res>;

function rpc<Req, Res>(
  fromPartial: (object: Partial1<Req>) => Req,
  method: UnaryMethod<Req, Res>,
  metadata: () => Metadata,
): Rpc<Req, Res> {
  return (request = {}, options = {}) =>
    new Promise<Res>((resolve, reject) => {
      method(fromPartial(request), metadata(), options, (error, response) => {
        if (error) reject(error);
        else resolve(response);
      });
    });
}

/** JobService with promises. */
export interface JobsApi {
  getJobDetails: Rpc<GetJobDetailsRequest, GetJobDetailsResponse>;
  listJobs: Rpc<ListJobsRequest, ListJobsResponse>;
  getJobStatistics: Rpc<GetJobStatisticsRequest, GetJobStatisticsResponse>;
  cancelJob: Rpc<CancelJobRequest, CancelJobResponse>;
  getJobHistory: Rpc<GetJobHistoryRequest, GetJobHistoryResponse>;
}

/** JobWorkerService with promises. */
export interface WorkerApi {
  createJob: Rpc<CreateJobRequest, CreateJobResponse>;
  startJob: Rpc<StartJobRequest, StartJobResponse>;
  reportProgress: Rpc<ReportProgressRequest, ReportProgressResponse>;
  heartbeat: Rpc<HeartbeatRequest, HeartbeatResponse>;
  completeJob: Rpc<CompleteJobRequest, CompleteJobResponse>;
  failJob: Rpc<FailJobRequest, FailJobResponse>;
  markCancelled: Rpc<MarkCancelledRequest, MarkCancelledResponse>;
}

/** A WatchJob stream being collected. */
export interface Watch {
  /** The raw stream (pause() it to play a slow reader). */
  readonly stream: grpc.ClientReadableStream<{ job: Job | undefined }>;
  /** Every Job received so far, in order. */
  readonly jobs: Job[];
  /** Resolves when the stream ends: OK, or the error status (never rejects). */
  readonly done: Promise<{ code: grpc.status; details: string; error?: ServiceError }>;
  /** Resolves once `n` jobs have arrived (or the stream ended first). */
  received(n: number): Promise<void>;
  /** Cancels the call from the client side. */
  cancel(): void;
}

/** The tokens the test server was made with. */
export interface TestTokens {
  /** Role admin (query_repos, report_jobs, manage_jobs), user "admin". */
  admin: string;
  /** Role service (report_jobs), user "worker". */
  worker: string;
  /** Role normal_user, user "alice". */
  alice: string;
  /** Role normal_user, user "bob". */
  bob: string;
}

/** A running test server and what tests need to talk to it. */
export interface TestServer {
  readonly dialect: TestDialect;
  readonly database: TestDatabase;
  /** "127.0.0.1:<port>". */
  readonly address: string;
  readonly store: SqlJobStore;
  readonly hub: Watches;
  readonly server: JobwatchServer;
  readonly tokens: TestTokens;
  /** Clients that send `authorization: Bearer <token>` (undefined: no authorization at all). */
  as(token: string | undefined, extra?: Record<string, string>): { jobs: JobsApi; worker: WorkerApi };
  /** Opens WatchJob with the token (and call options such as a deadline) and collects what arrives. */
  watch(token: string, request: Partial1<WatchJobRequest>, options?: Partial<CallOptions>): Watch;
  /** Raw generated clients (no metadata attached). */
  readonly jobClient: JobServiceClient;
  readonly workerClient: JobWorkerServiceClient;
  /** Shuts the server down (and, unless it shares another's database, drops the database). */
  stop(): Promise<void>;
}

/** Options of startTestServer. */
export interface TestServerOptions {
  /** The dialect of a new database; ignored with `sharing`. */
  dialect?: TestDialect;
  /** Run on the same database as this server (a second replica). */
  sharing?: TestServer;
  /** Change-feed poll interval; default 50 ms. */
  pollMs?: number;
  /** Run the sweepers with these settings. */
  sweeper?: SweeperSettings;
  /** Health ping interval; default 2000 ms. */
  healthIntervalMs?: number;
  /** Rewrites the URL the server's store connects to (e.g. through a TCP proxy, tcp-proxy.ts). */
  connectVia?: (url: string) => string;
  /** WatchJobs bookmark interval (default 30 s). */
  bookmarkMs?: number;
  /** Changes one WatchJobs stream may hold for its reader (default 10,000). */
  maxQueuedChanges?: number;
  /** Listen on this address instead of 127.0.0.1:0 (a restart on the same port). */
  address?: string;
  /** Caps on open watch streams (JOBWATCH_MAX_WATCHES_PER_USER, JOBWATCH_MAX_WATCHES); default the server's. */
  maxWatchesPerUser?: number;
  maxWatches?: number;
  /** Wraps the store the server uses (e.g. to make ping fail); the helper still closes the real one. */
  wrapStore?: (store: SqlJobStore) => JobStore;
  /** The clock of the store and of completion estimates (epoch ms); default Date.now. */
  now?: () => number;
}

const silent = pino({ level: process.env.JOBWATCH_TEST_LOG_LEVEL ?? "silent" });

/** Starts a jobwatch server on 127.0.0.1:0 (see the file header). */
export async function startTestServer(options: TestServerOptions = {}): Promise<TestServer> {
  const sharing = options.sharing;
  const database = sharing ? sharing.database : await freshDatabase(options.dialect ?? "sqlite");
  const open = openDatabase(options.connectVia ? options.connectVia(database.url) : database.url);
  const realStore = new SqlJobStore(open, options.now === undefined ? {} : { now: options.now });
  await realStore.migrate();
  // Guarded as `serve` guards it (main.ts openStore): storage faults are UNAVAILABLE, health follows them.
  const guarded = guardStore(options.wrapStore ? options.wrapStore(realStore) : realStore, {
    probeWrite: () => probeWrite(open),
  });
  const store = guarded.store;

  let tokens: TestTokens;
  if (sharing) {
    tokens = sharing.tokens;
  } else {
    const make = async (user: string, role: string): Promise<string> =>
      (await createToken(realStore, { user, role })).token;
    tokens = {
      admin: await make("admin", "admin"),
      worker: await make("worker", "service"),
      alice: await make("alice", "normal_user"),
      bob: await make("bob", "normal_user"),
    };
  }

  const authenticator = new OpaqueTokenAuthenticator({ store, log: silent });
  await authenticator.start();
  const hub = new Watches({
    store,
    pollMs: options.pollMs ?? 50,
    log: silent,
    ...(options.bookmarkMs === undefined ? {} : { bookmarkMs: options.bookmarkMs }),
    ...(options.maxQueuedChanges === undefined ? {} : { maxQueuedChanges: options.maxQueuedChanges }),
  });
  await hub.start();
  const server = createServer({
    store,
    faults: guarded,
    hub,
    authenticator,
    log: silent,
    ...(options.healthIntervalMs === undefined ? {} : { healthIntervalMs: options.healthIntervalMs }),
    ...(options.now === undefined ? {} : { now: options.now }),
    streamLimits: { perUser: options.maxWatchesPerUser ?? 100, total: options.maxWatches ?? 20_000 },
  });
  const address = await server.listen(options.address ?? "127.0.0.1:0");
  const sweeper = options.sweeper ? new Sweeper({ store, hub, log: silent, ...options.sweeper }) : undefined;
  sweeper?.start();

  const credentials = grpc.credentials.createInsecure();
  const jobClient = new JobServiceClient(address, credentials);
  const workerClient = new JobWorkerServiceClient(address, credentials);

  const metadataFor =
    (token: string | undefined, extra: Record<string, string> = {}) =>
    (): Metadata => {
      const md = new grpc.Metadata();
      if (token !== undefined) md.set("authorization", `Bearer ${token}`);
      for (const [key, value] of Object.entries(extra)) md.set(key, value);
      return md;
    };

  const as = (token: string | undefined, extra: Record<string, string> = {}) => {
    const md = metadataFor(token, extra);
    const j = jobClient;
    const w = workerClient;
    const jobs: JobsApi = {
      getJobDetails: rpc(GetJobDetailsRequest.fromPartial, j.getJobDetails.bind(j), md),
      listJobs: rpc(ListJobsRequest.fromPartial, j.listJobs.bind(j), md),
      getJobStatistics: rpc(GetJobStatisticsRequest.fromPartial, j.getJobStatistics.bind(j), md),
      cancelJob: rpc(CancelJobRequest.fromPartial, j.cancelJob.bind(j), md),
      getJobHistory: rpc(GetJobHistoryRequest.fromPartial, j.getJobHistory.bind(j), md),
    };
    const worker: WorkerApi = {
      createJob: rpc(CreateJobRequest.fromPartial, w.createJob.bind(w), md),
      startJob: rpc(StartJobRequest.fromPartial, w.startJob.bind(w), md),
      reportProgress: rpc(ReportProgressRequest.fromPartial, w.reportProgress.bind(w), md),
      heartbeat: rpc(HeartbeatRequest.fromPartial, w.heartbeat.bind(w), md),
      completeJob: rpc(CompleteJobRequest.fromPartial, w.completeJob.bind(w), md),
      failJob: rpc(FailJobRequest.fromPartial, w.failJob.bind(w), md),
      markCancelled: rpc(MarkCancelledRequest.fromPartial, w.markCancelled.bind(w), md),
    };
    return { jobs, worker };
  };

  const watch = (token: string, request: Partial1<WatchJobRequest>, callOptions: Partial<CallOptions> = {}): Watch => {
    const stream = jobClient.watchJob(WatchJobRequest.fromPartial(request), metadataFor(token)(), callOptions);
    const jobs: Job[] = [];
    const waiters: { n: number; resolve(): void }[] = [];
    const wake = (all: boolean): void => {
      for (const w of [...waiters]) {
        if (all || jobs.length >= w.n) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve();
        }
      }
    };
    stream.on("data", (message: { job: Job | undefined }) => {
      if (message.job) jobs.push(message.job);
      wake(false);
    });
    const done = new Promise<{ code: grpc.status; details: string; error?: ServiceError }>((resolve) => {
      let error: ServiceError | undefined;
      let status: grpc.StatusObject | undefined;
      let ended = false;
      // The status can arrive while received messages still wait in a paused stream: done means both
      // the status and the last message have been seen.
      const finish = (): void => {
        if (!status || !ended) return;
        wake(true);
        resolve(
          error
            ? { code: status.code, details: status.details, error }
            : { code: status.code, details: status.details },
        );
      };
      stream.on("error", (e: ServiceError) => {
        error = e;
      });
      stream.on("status", (s: grpc.StatusObject) => {
        status = s;
        finish();
      });
      const onEnd = (): void => {
        ended = true;
        finish();
      };
      stream.on("end", onEnd);
      stream.on("close", onEnd);
    });
    return {
      stream,
      jobs,
      done,
      received: (n) =>
        jobs.length >= n ? Promise.resolve() : new Promise<void>((resolve) => waiters.push({ n, resolve })),
      cancel: () => stream.cancel(),
    };
  };

  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      jobClient.close();
      workerClient.close();
      await sweeper?.stop();
      await server.shutdown(2000);
      await authenticator.stop();
      await realStore.close();
      if (!sharing) await database.drop();
    })();
    return stopped;
  };

  return {
    dialect: database.dialect,
    database,
    address,
    store: realStore,
    hub,
    server,
    tokens,
    as,
    watch,
    jobClient,
    workerClient,
    stop,
  };
}

// --- what a failed call carries ---------------------------------------------------------------------

/** Awaits a call that must fail and returns its ServiceError; throws if it succeeded. */
export async function failure(call: Promise<unknown>): Promise<ServiceError> {
  try {
    await call;
  } catch (error) {
    if (typeof error === "object" && error !== null && "code" in error) return error as ServiceError;
    throw error;
  }
  throw new Error("the call succeeded but was expected to fail");
}

/** The google.rpc.Status of a failed call's grpc-status-details-bin trailer, if any. */
export function richStatusOf(error: ServiceError): Status | undefined {
  const [bytes] = error.metadata?.get("grpc-status-details-bin") ?? [];
  if (bytes === undefined || typeof bytes === "string") return undefined;
  return Status.decode(bytes);
}

function detail<T>(error: ServiceError, typeName: string, decode: (bytes: Uint8Array) => T): T | undefined {
  const any = richStatusOf(error)?.details.find((d: Any) => d.typeUrl === `type.googleapis.com/${typeName}`);
  return any === undefined ? undefined : decode(any.value);
}

/** The google.rpc.BadRequest field violations of a failed call (empty when none). */
export function fieldViolationsOf(error: ServiceError): BadRequest_FieldViolation[] {
  return detail(error, "google.rpc.BadRequest", (b) => BadRequest.decode(b))?.fieldViolations ?? [];
}

/** The google.rpc.PreconditionFailure of a failed call, if any. */
export function preconditionFailureOf(error: ServiceError): PreconditionFailure | undefined {
  return detail(error, "google.rpc.PreconditionFailure", (b) => PreconditionFailure.decode(b));
}

/** The google.rpc.ErrorInfo of a failed call, if any. */
export function errorInfoOf(error: ServiceError): ErrorInfo | undefined {
  return detail(error, "google.rpc.ErrorInfo", (b) => ErrorInfo.decode(b));
}
