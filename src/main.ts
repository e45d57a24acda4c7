// Composition root: config -> store -> auth -> watch hub -> server -> sweeper; SIGINT/SIGTERM -> graceful shutdown.
import type { Logger } from "pino";
import { BearerAuthenticator } from "./auth/bearer-authenticator.js";
import { JwtVerifier } from "./auth/jwt.js";
import { OpaqueTokenAuthenticator } from "./auth/opaque-token-authenticator.js";
import { bootstrapTokenMessage, ensureBootstrapToken } from "./auth/token-admin.js";
import type { Config } from "./config.js";
import { FEED_KEEP_MS, Sweeper } from "./jobs/sweeper.js";
import { createLogger } from "./logger.js";
import { accessLogHooks } from "./server/access-log.js";
import type { CallHooks } from "./server/call-observer.js";
import { routeGrpcLog } from "./server/grpc-log.js";
import { jobServiceHandlers } from "./server/job-service.js";
import type { MetricsSources } from "./server/metrics.js";
import { Metrics } from "./server/metrics.js";
import { createServer } from "./server/server.js";
import { serverCredentials } from "./server/tls.js";
import { redactUrl } from "./store/connect.js";
import { openStore } from "./store/open.js";
import type { JobStore } from "./store/store.js";
import { startTracing } from "./telemetry/sdk.js";
import { Watches } from "./watch/watches.js";
import { createWebServer } from "./web/web-server.js";
import { WebhookDispatcher } from "./webhooks/dispatcher.js";
import { dispatcherMetrics } from "./webhooks/metrics.js";

/** How long shutdown may take before the process exits anyway (the issue allows 10 s). */
const SHUTDOWN_BUDGET_MS = 8000;

/** A running jobwatch service. */
export interface Service {
  /** The address it listens on, with the real port (useful with port 0). */
  address: string;
  /** Where the web dashboard is served (JOBWATCH_WEB_LISTEN), with the real port. */
  webAddress?: string;
  /** Where /metrics is served (JOBWATCH_METRICS_LISTEN), with the real port. */
  metricsAddress?: string;
  /** Stops accepting, ends watches with UNAVAILABLE, finishes unary calls, closes the database. */
  stop(): Promise<void>;
}

/**
 * Starts the whole service on `config`; `print` receives what a person at the terminal should read (the
 * bootstrap token): stderr by default, so the JSON log on stdout never holds a secret.
 */
export async function startService(
  config: Config,
  log: Logger,
  print: (text: string) => void = (text) => process.stderr.write(`${text}\n`),
  options: ServeOptions = {},
): Promise<Service> {
  // grpc-js writes its own errors to stderr ("No address added ..."); what matters reaches the user
  // through our errors, so its lines go to the log at debug, with any secret in them removed.
  routeGrpcLog(log);
  // Checked before anything opens: a bad certificate file is one line naming it, exit 1.
  const credentials = config.tls === undefined ? undefined : serverCredentials(config.tls, undefined, log);
  // The JWKS too: a JWKS file that cannot be read stops serve here; a JWKS URL that is down is a warning.
  const jwt = config.jwt === undefined ? undefined : new JwtVerifier(config.jwt, { log });
  await jwt?.start();
  const callHooks: CallHooks[] = [];
  // An access log whose level the logger drops would follow every call for nothing.
  if (config.accessLog !== "off" && log.isLevelEnabled(config.accessLog)) {
    callHooks.push(accessLogHooks(log, config.accessLog));
  }
  const sources: MetricsSources = {};
  let counted: JobStore | undefined;
  const metrics: Metrics | undefined =
    config.metricsListen === undefined ? undefined : new Metrics(sources, () => counted);
  // Metrics first: the access log's line then follows the counts a scrape would show.
  if (metrics) callHooks.unshift(metrics.hooks());
  // Tracing off: the SDK is not even loaded.
  const tracing = config.tracing === undefined ? undefined : await startTracing(config.tracing);
  const guarded = await openStore(config.databaseUrl).catch(async (error: unknown) => {
    await tracing?.shutdown();
    throw error;
  });
  const store: JobStore = metrics ? metrics.instrumentStore(guarded.store) : guarded.store;
  // Jobs are counted through the raw store: a periodic GROUP BY is not a query anyone waits on.
  counted = guarded.store;
  const tokens = new OpaqueTokenAuthenticator({ store, log });
  const authenticator = new BearerAuthenticator(tokens, jwt);
  sources.tokenCache = authenticator.tokenStats;
  sources.jwt = jwt?.stats;
  const hub = new Watches({
    store,
    pollMs: config.watchPollMs,
    log,
    bookmarkMs: config.bookmarkIntervalMs,
    // A WatchJobs cursor must not outlive the feed entries after it: a minute's margin before pruning.
    maxCursorAgeMs: FEED_KEEP_MS - 60_000,
  });
  const sweeper = new Sweeper({
    store,
    hub,
    log,
    cancelGraceMs: config.cancelGraceMs,
    staleAfterMs: config.staleAfterMs,
    retentionMs: config.retentionMs,
    sweepIntervalMs: config.sweepIntervalMs,
  });
  // Delivers the webhook outbox that transitions write; one of any number of replicas takes each delivery.
  const webhooks = new WebhookDispatcher({
    store,
    log,
    settings: config.webhooks,
    // The backlog is counted through the raw store, like the jobs by status.
    ...(metrics ? { metrics: dispatcherMetrics(metrics.registry, guarded.store) } : {}),
  });
  const server = createServer({
    store,
    faults: guarded,
    hub,
    authenticator,
    log,
    callHooks,
    ...(credentials ? { credentials } : {}),
    streamLimits: { perUser: config.maxWatchesPerUser, total: config.maxWatches },
    transport: config.transport,
    webhookAllowAddresses: config.webhooks.allowAddresses,
    ...(tracing
      ? { tracing: { tracer: tracing.tracer, dialect: config.databaseUrl.startsWith("mysql:") ? "mysql" : "sqlite" } }
      : {}),
  });
  const web =
    config.webListen === undefined
      ? undefined
      : createWebServer({
          handlers: jobServiceHandlers(server.jobService),
          authenticator,
          streams: { ...server.jobService.streams, closing: hub.closing },
          log,
        });
  try {
    await tokens.start();
    await hub.start();
    const address = await server.listen(config.listen);
    const metricsAddress =
      metrics && config.metricsListen !== undefined ? await metrics.listen(config.metricsListen) : undefined;
    const webAddress = web && config.webListen !== undefined ? await web.listen(config.webListen) : undefined;
    sweeper.start();
    webhooks.start();
    const bootstrap = await ensureBootstrapToken(store);
    if (bootstrap) {
      print(bootstrapTokenMessage(bootstrap, displayAddress(address), config.tls !== undefined, options.command));
    }
    log.info(
      {
        address,
        database: redactUrl(config.databaseUrl),
        tls: tlsMode(config),
        metrics: metricsAddress,
        // What JWTs must carry, so a refused token can be checked against the settings from the log (not
        // under "jwt": the logger redacts that key, which holds tokens elsewhere).
        jwtSettings:
          config.jwt === undefined
            ? "off"
            : {
                jwks: redactUrl(config.jwt.jwksUrl),
                issuer: config.jwt.issuer,
                audience: config.jwt.audience,
                usernameClaim: config.jwt.usernameClaim,
                roleClaim: config.jwt.roleClaim,
              },
        web: webAddress,
      },
      "jobwatch is serving",
    );
    return {
      address,
      ...(metricsAddress === undefined ? {} : { metricsAddress }),
      ...(webAddress === undefined ? {} : { webAddress }),
      stop: async () => {
        await metrics?.close();
        await sweeper.stop();
        await webhooks.stop();
        // Stops taking new requests; its streams end (UNAVAILABLE, resume from the cursor) when the hub closes.
        const webClosed = web?.close(SHUTDOWN_BUDGET_MS);
        await server.shutdown(SHUTDOWN_BUDGET_MS);
        await webClosed;
        await tokens.stop();
        await store.close();
        credentials?.close();
        // Last: the spans of the calls that shutdown let finish are exported too.
        await tracing?.shutdown();
      },
    };
  } catch (error) {
    await web?.close(0);
    await metrics?.close();
    await sweeper.stop();
    await webhooks.stop();
    await server.shutdown(0).catch(() => undefined);
    await tokens.stop();
    await store.close().catch(() => undefined);
    credentials?.close();
    await tracing?.shutdown().catch(() => undefined);
    throw error;
  }
}

/** What the entry point knows about how it was run. */
export interface ServeOptions {
  /** How a person runs jobwatch here, for the commands the bootstrap banner prints (default `jobwatch`). */
  command?: string;
}

/** `jobwatch serve`: runs until SIGINT or SIGTERM, then shuts down gracefully and exits 0. */
export async function serve(config: Config, options: ServeOptions = {}): Promise<void> {
  const log = createLogger({ level: config.logLevel, format: config.logFormat });
  // Listen for signals before starting: a signal that arrives while the service starts (or just after
  // it said it is serving) must still mean a graceful stop, not the default of dying at once.
  let onSignal!: (signal: NodeJS.Signals) => void;
  const signalled = new Promise<NodeJS.Signals>((resolve) => (onSignal = resolve));
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  let service: Service;
  try {
    service = await startService(config, log, undefined, options);
  } catch (error) {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    throw error;
  }
  const signal = await signalled;
  log.info({ signal }, "shutting down");
  // Shut down once; a second signal (either one), or a shutdown that hangs, ends the process.
  process.off("SIGINT", onSignal);
  process.off("SIGTERM", onSignal);
  setTimeout(() => process.exit(1), SHUTDOWN_BUDGET_MS + 1500).unref();
  process.once("SIGINT", () => process.exit(1));
  process.once("SIGTERM", () => process.exit(1));
  try {
    await service.stop();
  } catch (error) {
    log.error({ err: error }, "shutdown failed");
  }
  log.info("stopped");
  log.flush();
}

/** How clients reach the port: "off", "tls", or "mtls" (client certificates required). */
function tlsMode(config: Config): string {
  if (config.tls === undefined) return "off";
  return config.tls.clientCaFile === undefined ? "tls" : "mtls";
}

/** 0.0.0.0:50051 -> localhost:50051, what a client on this host dials. */
function displayAddress(address: string): string {
  return address.replace(/^(0\.0\.0\.0|\[::\]):/, "localhost:");
}
