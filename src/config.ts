// Settings: environment variables and command-line flags -> one typed Config. Flags win over the environment.
import { isIP } from "node:net";
import ms from "ms";
import { DURATION_RULE, parseDuration } from "./duration.js";
import { tracingRequested } from "./telemetry/sdk.js";

/** Everything the server needs to know to start. */
export interface Config {
  /** sqlite:<path> | sqlite::memory: | mysql://user:pass@host:3306/db */
  databaseUrl: string;
  /** host:port to listen on. */
  listen: string;
  /** How often each process polls the change feed for changes written by other processes. */
  watchPollMs: number;
  /** How long a WatchJob/WatchJobs stream stays quiet before it gets a bookmark. */
  bookmarkIntervalMs: number;
  /** How long a RUNNING job's worker has to confirm a cancellation before the job is cancelled anyway. */
  cancelGraceMs: number;
  /** How long a RUNNING job may go without a heartbeat before it is failed. */
  staleAfterMs: number;
  /** How long finished jobs are kept. */
  retentionMs: number;
  /** How often expired jobs are deleted. */
  sweepIntervalMs: number;
  /** pino level: fatal, error, warn, info, debug, trace, silent. */
  logLevel: string;
  /** "json": JSON lines always; "auto": pino-pretty when stdout is a terminal. */
  logFormat: "json" | "auto";
  /** One line per finished call at this level, or none. */
  accessLog: "off" | "debug" | "info";
  /** JWTs from an identity provider, beside jobwatch's tokens; undefined: JWTs are refused. */
  jwt: { jwksUrl: string; issuer: string; audience: string; usernameClaim: string; roleClaim: string } | undefined;
  /** host:port serving the web dashboard (JOBWATCH_WEB_LISTEN); undefined: no dashboard. */
  webListen: string | undefined;
  /** host:port serving Prometheus /metrics; undefined: no metrics. */
  metricsListen: string | undefined;
  /** TLS on the gRPC port (PEM file paths); undefined: plaintext. */
  tls: { certFile: string; keyFile: string; clientCaFile: string | undefined } | undefined;
  /** Open WatchJob/WatchJobs streams one user may hold (JOBWATCH_MAX_WATCHES_PER_USER). */
  maxWatchesPerUser: number;
  /** Open WatchJob/WatchJobs streams of this process (JOBWATCH_MAX_WATCHES). */
  maxWatches: number;
  /**
   * OpenTelemetry tracing, on when the standard OTEL_* variables name an OTLP endpoint (the SDK reads the
   * rest of them itself: sampler, headers, batching); undefined: off, and the SDK is never loaded.
   */
  tracing: { serviceName: string } | undefined;
  /** How webhook deliveries are made (JOBWATCH_WEBHOOK_*); see src/webhooks/dispatcher.ts. */
  webhooks: {
    pollMs: number;
    timeoutMs: number;
    concurrency: number;
    retryForMs: number;
    maxBackoffMs: number;
    /** CIDRs an endpoint may resolve to although link-local or metadata. */
    allowAddresses: string[];
  };
  /** The transport's limits per connection and per call (README "Reliability"). */
  transport: TransportLimits;
}

/** The transport limits when nothing is set (README "Configuration" gives each, "Reliability" names them). */
export const DEFAULT_TRANSPORT_LIMITS: TransportLimits = {
  maxStreamsPerConnection: 1000,
  minPingIntervalMs: ms("10s"),
  maxPingStrikes: 2,
  maxConnectionAgeMs: ms("30m"),
  maxConnectionAgeGraceMs: ms("1m"),
  maxConnectionIdleMs: ms("15m"),
  maxSessionMemoryMb: 64,
  maxRequestBytes: 4 * 1024 * 1024,
};

/** What one connection and one call may use of the server: each a setting with a default (README "Reliability"). */
export interface TransportLimits {
  /** Calls open at once on one HTTP/2 connection (JOBWATCH_MAX_STREAMS_PER_CONNECTION); more wait for a free one. */
  maxStreamsPerConnection: number;
  /** A client ping sooner than this after its last is a strike (JOBWATCH_KEEPALIVE_MIN_PING_INTERVAL). */
  minPingIntervalMs: number;
  /** Strikes a connection may collect before GOAWAY ENHANCE_YOUR_CALM "too_many_pings" (JOBWATCH_KEEPALIVE_MAX_PING_STRIKES). */
  maxPingStrikes: number;
  /** A connection older than this is asked to go (GOAWAY) so clients spread over replicas (JOBWATCH_MAX_CONNECTION_AGE). */
  maxConnectionAgeMs: number;
  /** Then its calls get this long to finish before it is closed (JOBWATCH_MAX_CONNECTION_AGE_GRACE). */
  maxConnectionAgeGraceMs: number;
  /** A connection without calls for this long is closed (JOBWATCH_MAX_CONNECTION_IDLE). */
  maxConnectionIdleMs: number;
  /** MB of memory one HTTP/2 connection may hold before new calls on it are refused (JOBWATCH_MAX_SESSION_MEMORY_MB). */
  maxSessionMemoryMb: number;
  /** The largest request message any rpc takes (JOBWATCH_MAX_REQUEST_BYTES); rpcs that need less take less. */
  maxRequestBytes: number;
}

/** Thrown for a bad setting; its message is one line naming the setting and what to fix. */
export class ConfigError extends Error {
  override name = "ConfigError";
}

/** Flags of `jobwatch serve` (and `migrate`, `token`) that override the environment. */
export interface ConfigFlags {
  databaseUrl?: string | undefined;
  listen?: string | undefined;
  watchPollMs?: string | undefined;
  logLevel?: string | undefined;
  tlsCert?: string | undefined;
  tlsKey?: string | undefined;
  tlsClientCa?: string | undefined;
}

/** The default database: an SQLite file under ./data, created on first start. */
export const DEFAULT_DATABASE_URL = "sqlite:data/jobwatch.db";

const LOG_LEVELS = new Set(["fatal", "error", "warn", "info", "debug", "trace", "silent"]);

/** Builds the Config from the environment (passed in: only the entry point reads process.env) and flags. */
export function loadConfig(env: Record<string, string | undefined>, flags: ConfigFlags = {}): Config {
  const given = (flag: string | undefined): flag is string => flag !== undefined && flag !== "";
  const pick = (flag: string | undefined, name: string): string | undefined =>
    given(flag) ? flag : nonEmpty(env[name]);
  // Errors name the setting as the user gave it: the flag when it was typed, else the variable.
  const named = (flag: string | undefined, option: string, name: string): string => (given(flag) ? option : name);
  const databaseUrl = pick(flags.databaseUrl, "JOBWATCH_DATABASE_URL") ?? DEFAULT_DATABASE_URL;
  if (!/^(sqlite:|mysql:\/\/)/.test(databaseUrl)) {
    throw new ConfigError(
      // Only the scheme is shown: the rest of a URL may hold a password.
      `${named(flags.databaseUrl, "--database-url", "JOBWATCH_DATABASE_URL")} (scheme '${databaseUrl.split(":")[0]}:') has an unknown scheme: use sqlite:<path>, sqlite::memory: or mysql://user:pass@host:3306/db`,
    );
  }
  const listen = pick(flags.listen, "JOBWATCH_LISTEN") ?? "0.0.0.0:50051";
  checkListen(listen, named(flags.listen, "--listen", "JOBWATCH_LISTEN"));
  const logLevel = pick(flags.logLevel, "JOBWATCH_LOG_LEVEL") ?? "info";
  if (!LOG_LEVELS.has(logLevel)) {
    throw new ConfigError(
      `${named(flags.logLevel, "--log-level", "JOBWATCH_LOG_LEVEL")} '${logLevel}' is not one of ${[...LOG_LEVELS].join(", ")}`,
    );
  }
  const logFormat = nonEmpty(env.JOBWATCH_LOG_FORMAT) ?? "auto";
  if (logFormat !== "json" && logFormat !== "auto") {
    throw new ConfigError(`JOBWATCH_LOG_FORMAT '${logFormat}' is not json or auto`);
  }
  const accessLog = nonEmpty(env.JOBWATCH_ACCESS_LOG) ?? "info";
  if (accessLog !== "off" && accessLog !== "debug" && accessLog !== "info") {
    throw new ConfigError(`JOBWATCH_ACCESS_LOG '${accessLog}' is not off, debug or info`);
  }
  const tlsCert = pick(flags.tlsCert, "JOBWATCH_TLS_CERT");
  const tlsKey = pick(flags.tlsKey, "JOBWATCH_TLS_KEY");
  const tlsClientCa = pick(flags.tlsClientCa, "JOBWATCH_TLS_CLIENT_CA");
  const certName = named(flags.tlsCert, "--tls-cert", "JOBWATCH_TLS_CERT");
  const keyName = named(flags.tlsKey, "--tls-key", "JOBWATCH_TLS_KEY");
  if (tlsCert !== undefined && tlsKey === undefined) {
    throw new ConfigError(`${certName} needs its key: set --tls-key or JOBWATCH_TLS_KEY too (PEM files), or neither`);
  }
  if (tlsKey !== undefined && tlsCert === undefined) {
    throw new ConfigError(
      `${keyName} needs its certificate: set --tls-cert or JOBWATCH_TLS_CERT too (PEM files), or neither`,
    );
  }
  if (tlsClientCa !== undefined && tlsCert === undefined) {
    throw new ConfigError(
      `${named(flags.tlsClientCa, "--tls-client-ca", "JOBWATCH_TLS_CLIENT_CA")} needs TLS: set --tls-cert and --tls-key (or JOBWATCH_TLS_CERT and JOBWATCH_TLS_KEY) too`,
    );
  }
  const jwksUrl = nonEmpty(env.JOBWATCH_JWT_JWKS_URL);
  const issuer = nonEmpty(env.JOBWATCH_JWT_ISSUER);
  const audience = nonEmpty(env.JOBWATCH_JWT_AUDIENCE);
  if (jwksUrl === undefined && (issuer !== undefined || audience !== undefined)) {
    throw new ConfigError("JOBWATCH_JWT_ISSUER and JOBWATCH_JWT_AUDIENCE need JOBWATCH_JWT_JWKS_URL (the keys)");
  }
  if (jwksUrl !== undefined && (issuer === undefined || audience === undefined)) {
    throw new ConfigError(
      "JOBWATCH_JWT_JWKS_URL needs JOBWATCH_JWT_ISSUER and JOBWATCH_JWT_AUDIENCE: tokens are checked against both",
    );
  }
  if (jwksUrl !== undefined && /^[a-z][a-z0-9+.-]*:\/\//i.test(jwksUrl) && !/^(https?|file):\/\//i.test(jwksUrl)) {
    throw new ConfigError(`JOBWATCH_JWT_JWKS_URL '${jwksUrl}' is neither an http(s) URL nor a file path`);
  }
  const metricsListen = nonEmpty(env.JOBWATCH_METRICS_LISTEN);
  if (metricsListen !== undefined) checkListen(metricsListen, "JOBWATCH_METRICS_LISTEN", "127.0.0.1:9464");
  const webListen = nonEmpty(env.JOBWATCH_WEB_LISTEN);
  if (webListen !== undefined) checkListen(webListen, "JOBWATCH_WEB_LISTEN", "127.0.0.1:8080");
  return {
    databaseUrl,
    listen,
    watchPollMs: duration(
      named(flags.watchPollMs, "--watch-poll-ms", "JOBWATCH_WATCH_POLL_MS"),
      pick(flags.watchPollMs, "JOBWATCH_WATCH_POLL_MS"),
      200,
      10,
      60_000,
    ),
    bookmarkIntervalMs: duration(
      "JOBWATCH_BOOKMARK_INTERVAL",
      env.JOBWATCH_BOOKMARK_INTERVAL,
      ms("30s"),
      100,
      ms("1h"),
    ),
    cancelGraceMs: duration("JOBWATCH_CANCEL_GRACE", env.JOBWATCH_CANCEL_GRACE, ms("5m"), 1),
    staleAfterMs: duration("JOBWATCH_STALE_AFTER", env.JOBWATCH_STALE_AFTER, ms("10m"), 1),
    retentionMs: duration("JOBWATCH_RETENTION", env.JOBWATCH_RETENTION, ms("720h"), 1),
    sweepIntervalMs: duration("JOBWATCH_SWEEP_INTERVAL", env.JOBWATCH_SWEEP_INTERVAL, ms("1h"), 100),
    logLevel,
    logFormat,
    accessLog,
    metricsListen,
    webListen,
    jwt:
      jwksUrl === undefined || issuer === undefined || audience === undefined
        ? undefined
        : {
            jwksUrl,
            issuer,
            audience,
            usernameClaim: nonEmpty(env.JOBWATCH_JWT_USERNAME_CLAIM) ?? "preferred_username",
            roleClaim: nonEmpty(env.JOBWATCH_JWT_ROLE_CLAIM) ?? "role",
          },
    tls:
      tlsCert === undefined || tlsKey === undefined
        ? undefined
        : { certFile: tlsCert, keyFile: tlsKey, clientCaFile: tlsClientCa },
    maxWatchesPerUser: count("JOBWATCH_MAX_WATCHES_PER_USER", env.JOBWATCH_MAX_WATCHES_PER_USER, 100),
    maxWatches: count("JOBWATCH_MAX_WATCHES", env.JOBWATCH_MAX_WATCHES, 20_000),
    webhooks: {
      pollMs: duration("JOBWATCH_WEBHOOK_POLL", env.JOBWATCH_WEBHOOK_POLL, 500, 10, ms("1m")),
      timeoutMs: duration("JOBWATCH_WEBHOOK_TIMEOUT", env.JOBWATCH_WEBHOOK_TIMEOUT, ms("10s"), 100, ms("5m")),
      concurrency: count("JOBWATCH_WEBHOOK_CONCURRENCY", env.JOBWATCH_WEBHOOK_CONCURRENCY, 4),
      retryForMs: duration("JOBWATCH_WEBHOOK_RETRY_FOR", env.JOBWATCH_WEBHOOK_RETRY_FOR, ms("24h"), 1000),
      maxBackoffMs: duration("JOBWATCH_WEBHOOK_MAX_BACKOFF", env.JOBWATCH_WEBHOOK_MAX_BACKOFF, ms("10m"), 100),
      allowAddresses: cidrs("JOBWATCH_WEBHOOK_ALLOW_ADDRESSES", env.JOBWATCH_WEBHOOK_ALLOW_ADDRESSES),
    },
    tracing: tracingRequested(env) ? { serviceName: nonEmpty(env.OTEL_SERVICE_NAME) ?? "jobwatch" } : undefined,
    transport: transportLimits(env),
  };
}

/** The transport settings (TransportLimits), each from its variable or its default. */
function transportLimits(env: Record<string, string | undefined>): TransportLimits {
  const d = DEFAULT_TRANSPORT_LIMITS;
  const time = (name: string, fallback: number, min: number): number => duration(name, env[name], fallback, min);
  return {
    maxStreamsPerConnection: count(
      "JOBWATCH_MAX_STREAMS_PER_CONNECTION",
      env.JOBWATCH_MAX_STREAMS_PER_CONNECTION,
      d.maxStreamsPerConnection,
    ),
    minPingIntervalMs: time("JOBWATCH_KEEPALIVE_MIN_PING_INTERVAL", d.minPingIntervalMs, 1),
    maxPingStrikes: count(
      "JOBWATCH_KEEPALIVE_MAX_PING_STRIKES",
      env.JOBWATCH_KEEPALIVE_MAX_PING_STRIKES,
      d.maxPingStrikes,
    ),
    maxConnectionAgeMs: time("JOBWATCH_MAX_CONNECTION_AGE", d.maxConnectionAgeMs, 100),
    maxConnectionAgeGraceMs: time("JOBWATCH_MAX_CONNECTION_AGE_GRACE", d.maxConnectionAgeGraceMs, 0),
    maxConnectionIdleMs: time("JOBWATCH_MAX_CONNECTION_IDLE", d.maxConnectionIdleMs, 100),
    maxSessionMemoryMb: count(
      "JOBWATCH_MAX_SESSION_MEMORY_MB",
      env.JOBWATCH_MAX_SESSION_MEMORY_MB,
      d.maxSessionMemoryMb,
    ),
    maxRequestBytes: count("JOBWATCH_MAX_REQUEST_BYTES", env.JOBWATCH_MAX_REQUEST_BYTES, d.maxRequestBytes),
  };
}

/** A positive whole-number setting; `fallback` when unset; ConfigError naming it when bad. */
function count(name: string, raw: string | undefined, fallback: number): number {
  const value = nonEmpty(raw);
  if (value === undefined) return fallback;
  const parsed = /^\d+$/.test(value) ? Number(value) : Number.NaN;
  if (!Number.isSafeInteger(parsed) || parsed < 1) {
    throw new ConfigError(`${name} '${value}' is not a whole number of 1 or more`);
  }
  return parsed;
}

/** A comma-separated list of CIDRs ("169.254.10.0/24,fe80::/64"; a bare address is /32 or /128). */
function cidrs(name: string, raw: string | undefined): string[] {
  const value = nonEmpty(raw);
  if (value === undefined) return [];
  return value.split(",").map((item) => {
    const cidr = item.trim();
    const [address = "", prefix] = cidr.split("/");
    const family = isIP(address);
    const bits = prefix === undefined ? (family === 6 ? 128 : 32) : /^\d+$/.test(prefix) ? Number(prefix) : -1;
    if (family === 0 || bits < 0 || bits > (family === 6 ? 128 : 32)) {
      throw new ConfigError(`${name}: '${cidr}' is not an address or CIDR (e.g. 169.254.10.0/24, fe80::/64)`);
    }
    return `${address}/${bits}`;
  });
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === "" ? undefined : value.trim();
}

/** A duration setting in ms (DURATION_RULE); `fallback` when unset; ConfigError naming it when bad or out of range. */
function duration(
  name: string,
  raw: string | undefined,
  fallback: number,
  min: number,
  max = Number.MAX_SAFE_INTEGER,
): number {
  const value = nonEmpty(raw);
  if (value === undefined) return fallback;
  const parsed = parseDuration(value);
  if (parsed === undefined) {
    throw new ConfigError(`${name} '${value}' is not a duration: use ${DURATION_RULE}`);
  }
  if (parsed < min) {
    throw new ConfigError(`${name} '${value}' is too small: the minimum is ${min} ms`);
  }
  if (parsed > max) {
    throw new ConfigError(`${name} '${value}' is too large: the maximum is ${ms(max, { long: true })}`);
  }
  return Math.round(parsed);
}

function checkListen(listen: string, name: string, example = "0.0.0.0:50051"): void {
  const match = /^(\[[0-9a-fA-F:.]+\]|[^:[\]\s]+):(\d{1,5})$/.exec(listen);
  const port = match ? Number(match[2]) : -1;
  if (!match || port > 65535) {
    throw new ConfigError(`${name} '${listen}' is not host:port (e.g. ${example}, 127.0.0.1:0, [::]:50051)`);
  }
}
