// Server assembly: the auth interceptor, both jobwatch services, health and reflection; listen and graceful shutdown.
import * as grpc from "@grpc/grpc-js";
import type { Tracer } from "@opentelemetry/api";
import type { Logger } from "pino";
import type { BearerAuthenticator } from "../auth/bearer-authenticator.js";
import { authInterceptor } from "../auth/interceptor.js";
import type { TransportLimits } from "../config.js";
import { DEFAULT_TRANSPORT_LIMITS } from "../config.js";
import { JobServiceService } from "../gen/jobwatch/v1/job_service.js";
import { JobWebhookServiceService } from "../gen/jobwatch/v1/job_webhook_service.js";
import { JobWorkerServiceService } from "../gen/jobwatch/v1/job_worker_service.js";
import { RunHistory } from "../jobs/run-history.js";
import type { Dialect } from "../store/connect.js";
import type { StorageFaults } from "../store/guarded-store.js";
import type { JobStore } from "../store/store.js";
import type { JobFeed } from "../watch/job-feed.js";
import { publishingStore } from "../watch/publishing-store.js";
import { addressPolicy } from "../webhooks/address-policy.js";
import type { CallHooks } from "./call-observer.js";
import { callObserver, withMessageSizes } from "./call-observer.js";
import { CONTRACT_REGISTRY, PERMISSION_TABLE } from "./contract.js";
import { errorToStatus } from "./error-status.js";
import { withExactResults } from "./exact-struct.js";
import { HealthMonitor } from "./health.js";
import type { JobServiceDeps } from "./job-service.js";
import { createJobService } from "./job-service.js";
import { createJobView, plainJobView } from "./job-view.js";
import { createJobWebhookService } from "./job-webhook-service.js";
import { createJobWorkerService } from "./job-worker-service.js";
import type { ServiceRegistrar } from "./reflection.js";
import { addReflection } from "./reflection.js";
import { refuseRepeatedAuthorization } from "./repeated-authorization.js";
import { guardingHandlers, guardRequestDecoding, malformedRequestInterceptor } from "./request-decoding.js";
import { requestLimit } from "./request-limits.js";
import { withEncodedJobs, withSharedEncoding } from "./shared-encoding.js";
import type { StreamLimitSettings } from "./stream-limits.js";
import { StreamLimits } from "./stream-limits.js";
import { jobTracing, tracedStore, tracingInterceptor } from "./tracing.js";
import { enforcePingPolicy, transportOptions } from "./transport.js";

/** What createServer needs. The caller starts the hub and the authenticator; shutdown closes the hub. */
export interface ServerDeps {
  store: JobStore;
  /**
   * The guard's storage faults (guardStore), which health follows at once; undefined only for a store
   * that is not guarded (health then follows its periodic ping alone). Required, so no caller forgets it.
   */
  faults: StorageFaults | undefined;
  hub: JobFeed & { close(): Promise<void>; feedFailure?(): string | undefined };
  /** watchCredentials, when present, ends open streams whose token is revoked or expires. */
  authenticator: Pick<BearerAuthenticator, "authenticate"> & Partial<Pick<BearerAuthenticator, "watchCredentials">>;
  /** Caps on open WatchJob/WatchJobs streams; default DEFAULT_STREAM_LIMITS (100 per user, 20,000 in all). */
  streamLimits?: StreamLimitSettings;
  log: Logger;
  /** How often health pings the database; default 2000 ms. */
  healthIntervalMs?: number;
  /** grpc-js channel options for the server (e.g. keepalive); merged over jobwatch's defaults. */
  options?: grpc.ServerOptions;
  /** What one connection and one call may use (README "Reliability"); default DEFAULT_TRANSPORT_LIMITS. */
  transport?: TransportLimits;
  /** Told about every call, rejected ones included (access log, metrics); none: no observer at all. */
  callHooks?: CallHooks[];
  /** How the port is secured (default plaintext), and what to wait for before serving (TLS: the first read of the files). */
  credentials?: { credentials: grpc.ServerCredentials; ready(): Promise<void> };
  /** The clock of completion estimates, epoch ms; default Date.now (tests pass one they can move). */
  now?: () => number;
  /** false: jobs carry no completion estimate (bench/estimate.ts measures what it costs); default true. */
  estimates?: boolean;
  /** Tracing on (tracing.ts): spans from this tracer, store spans naming this dialect; none: no tracing code runs. */
  tracing?: { tracer: Tracer; dialect: Dialect };
  /** CIDRs a webhook endpoint may resolve to although link-local or metadata (JOBWATCH_WEBHOOK_ALLOW_ADDRESSES). */
  webhookAllowAddresses?: readonly string[];
}

/** A jobwatch gRPC server, assembled but not yet listening. */
export interface JobwatchServer {
  /** The underlying grpc-js server. */
  readonly grpcServer: grpc.Server;
  /**
   * What JobService is made of (the publishing store, the view, the hub, the stream limits): the web
   * dashboard serves the same handlers over them (src/web), so its streams count against the same caps.
   */
  readonly jobService: JobServiceDeps;
  /** Health of "" and each service; NOT_SERVING while the database is unreachable. */
  readonly health: HealthMonitor;
  /**
   * Listens on `address` ("host:port"; port 0 picks a free one) and returns "host:port" with the real
   * port. Throws Error("cannot listen on <address>: <why>") when it cannot, e.g. the port is in use.
   */
  listen(address: string): Promise<string>;
  /**
   * Stops accepting calls, ends every WatchJob with UNAVAILABLE (the hub closes), lets unary calls in
   * flight finish, and force-closes whatever is left after `timeoutMs`. Does not close the store.
   */
  shutdown(timeoutMs: number): Promise<void>;
}

/** The host:port a bound address resolves to, with the real port. */
function withPort(address: string, port: number): string {
  const host = address.replace(/:\d+$/, "");
  return `${host}:${port}`;
}

/** Turns a bind error into one line a person can act on. */
function listenError(address: string, error: Error): Error {
  const text = error.message;
  if (/EADDRINUSE|address already in use/i.test(text)) {
    return new Error(`cannot listen on ${address}: address already in use`);
  }
  if (/EACCES|permission denied/i.test(text)) {
    return new Error(`cannot listen on ${address}: permission denied (ports below 1024 need privileges)`);
  }
  if (/EADDRNOTAVAIL|ENOTFOUND|EAI_AGAIN/i.test(text)) {
    return new Error(`cannot listen on ${address}: no such local address`);
  }
  return new Error(`cannot listen on ${address}: ${text.split("\n")[0]}`);
}

/** "pkg.Service" of a grpc-js service definition, read from its methods' paths ("/pkg.Service/Method"). */
function serviceNameOf(definition: grpc.ServiceDefinition): string {
  const [method] = Object.values(definition);
  const name = method?.path.split("/")[1];
  if (name === undefined || name === "") throw new Error("a service definition without methods");
  return name;
}

/** One interceptor that tells every hook about every call; none when there are no hooks. */
function observerOf(hooks: CallHooks[]): grpc.ServerInterceptor[] {
  if (hooks.length === 0) return [];
  if (hooks.length === 1) return [callObserver(hooks[0]!)];
  const wantsPeer = hooks.some((h) => h.wantsPeer);
  return [
    callObserver({
      wantsPeer,
      started: (rpc) => {
        for (const h of hooks) h.started?.(rpc);
      },
      received: (rpc) => {
        for (const h of hooks) h.received?.(rpc);
      },
      sent: (rpc, message, count) => {
        for (const h of hooks) h.sent?.(rpc, message, count);
      },
      finished: (call) => {
        for (const h of hooks) h.finished?.(call);
      },
    }),
  ];
}

/**
 * Assembles the server: every call passes the auth interceptor first (health and reflection are
 * public), then reaches JobService or JobWorkerService; health and reflection v1/v1alpha are added.
 */
export function createServer(deps: ServerDeps): JobwatchServer {
  const { store, hub, authenticator, log } = deps;
  const limits = new StreamLimits(deps.streamLimits);
  const transport = deps.transport ?? DEFAULT_TRANSPORT_LIMITS;
  // Paths whose handler answers an undecodable request itself (unaryHandler): the interceptor skips them.
  const selfGuarded = new Set<string>();
  const grpcServer = new grpc.Server({
    // Notice a vanished watcher (laptop asleep, network cut) so its stream is released.
    "grpc.keepalive_time_ms": 60_000,
    "grpc.keepalive_timeout_ms": 20_000,
    // jobwatch serves no channelz service, so grpc-js's per-call channelz bookkeeping would be for nobody.
    "grpc.enable_channelz": 0,
    ...transportOptions(transport),
    ...deps.options,
    interceptors: [
      // First, so a rejected call has its span too and everything after runs in the span's context.
      ...(deps.tracing ? [tracingInterceptor(deps.tracing.tracer)] : []),
      ...observerOf(deps.callHooks ?? []),
      authInterceptor({
        authenticator,
        permissions: PERMISSION_TABLE,
        log,
        toStatus: (error) => errorToStatus(error, log),
      }),
      malformedRequestInterceptor(
        (error) => errorToStatus(error, log),
        (path) => selfGuarded.has(path),
      ),
    ],
  });
  // Every service goes through here, so reflection lists exactly what is registered, no request decoder
  // can throw (a body it cannot read is INVALID_ARGUMENT, not grpc-js's INTERNAL) and, with call hooks,
  // every message's size is recorded.
  const measure = (deps.callHooks ?? []).length > 0;
  const services: string[] = [];
  const registrar: ServiceRegistrar = {
    addService(definition, implementation) {
      for (const [name, method] of Object.entries(definition)) {
        if (guardingHandlers.has(implementation[name] as object)) selfGuarded.add(method.path);
      }
      const guarded = guardRequestDecoding(definition, CONTRACT_REGISTRY, (path) =>
        requestLimit(path, transport.maxRequestBytes),
      );
      grpcServer.addService(measure ? withMessageSizes(guarded) : guarded, implementation);
      services.push(serviceNameOf(definition));
    },
  };
  // Handlers write through this store, so every change reaches this process's watchers at once.
  const published = publishingStore(store, hub);
  const jobs = deps.tracing ? tracedStore(published, deps.tracing.tracer, deps.tracing.dialect) : published;
  const now = deps.now ?? Date.now;
  const view = deps.estimates === false ? plainJobView : createJobView(new RunHistory({ store, now, log }), now);
  const jobService: JobServiceDeps = {
    store: jobs,
    hub,
    view,
    log,
    streams: {
      admit: (principal) => limits.admit(principal),
      watchCredentials: authenticator.watchCredentials?.bind(authenticator),
    },
  };
  registrar.addService(withSharedEncoding(JobServiceService), createJobService(jobService));
  registrar.addService(
    withEncodedJobs(withExactResults(JobWorkerServiceService)),
    createJobWorkerService({
      store: jobs,
      view,
      log,
      ...(deps.tracing ? { tracing: jobTracing } : {}),
    }),
  );
  registrar.addService(
    JobWebhookServiceService,
    createJobWebhookService({ store: jobs, policy: addressPolicy(deps.webhookAllowAddresses), log }),
  );
  const health = new HealthMonitor({
    store,
    log,
    // The guard reports storage faults as they happen; the hub, a lost change feed.
    faults: deps.faults,
    conditions: hub.feedFailure ? [() => hub.feedFailure?.()] : [],
    ...(deps.healthIntervalMs === undefined ? {} : { intervalMs: deps.healthIntervalMs }),
  });
  health.addToServer(registrar);
  addReflection(registrar, () => services);

  let listening = false;
  let shutdownPromise: Promise<void> | undefined;

  const listen = async (address: string): Promise<string> => {
    const port = await new Promise<number>((resolve, reject) => {
      grpcServer.bindAsync(
        address,
        deps.credentials?.credentials ?? grpc.ServerCredentials.createInsecure(),
        (error, boundPort) => {
          if (error) reject(listenError(address, error));
          else resolve(boundPort);
        },
      );
    });
    listening = true;
    refuseRepeatedAuthorization(grpcServer);
    enforcePingPolicy(grpcServer, transport, log);
    await deps.credentials?.ready();
    await health.start();
    return withPort(address, port);
  };

  const shutdown = async (timeoutMs: number): Promise<void> => {
    const run = async (): Promise<void> => {
      // Tell load balancers first, then stop taking new calls (GOAWAY) and wait for calls in flight.
      await health.stop();
      if (!listening) {
        await hub.close();
        grpcServer.forceShutdown();
        return;
      }
      const drained = new Promise<void>((resolve) => grpcServer.tryShutdown(() => resolve()));
      // Watch streams never end by themselves: closing the hub ends each with UNAVAILABLE and the
      // revision to resume after, so clients reconnect to another replica without missing a change.
      await hub.close();
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(true), Math.max(0, timeoutMs));
      });
      const forced = await Promise.race([drained.then(() => false), timedOut]);
      clearTimeout(timer);
      if (forced) {
        log.warn({ timeoutMs }, "calls still open after the shutdown timeout; closing them");
        grpcServer.forceShutdown();
      }
    };
    shutdownPromise ??= run();
    return shutdownPromise;
  };

  return { grpcServer, health, listen, shutdown, jobService };
}
