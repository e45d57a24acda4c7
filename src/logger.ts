// The process's logger: JSON lines on stdout, or pino-pretty on a terminal; secret-bearing fields redacted.

import type { DestinationStream, Logger } from "pino";
import { pino } from "pino";
import { PinoPretty } from "pino-pretty";

/** How the logger is set up (from the Config). */
export interface LoggerOptions {
  /** pino level. */
  level: string;
  /** "json" always writes JSON lines; "auto" (the default) pretty-prints when stdout is a terminal. */
  format?: "json" | "auto";
  /** Where lines go; default stdout. */
  destination?: DestinationStream;
}

/**
 * Field paths that may carry a secret, should anyone ever log them: pino replaces their values, at any
 * level. Free text from grpc-js is redacted where it enters (grpc-log.ts); the access log holds no secret.
 */
const REDACTED_PATHS = [
  "authorization",
  "token",
  "jwt",
  "*.authorization",
  "*.token",
  "*.jwt",
  "headers.authorization",
  "metadata.authorization",
  "req.headers.authorization",
  // A webhook's signing secret (kept in the database so deliveries can be signed).
  "secret",
  "*.secret",
  // mysql2 puts a failed statement into the error's `sql` with its values inline (an INSERT of a webhook
  // carries its secret), also when the error is the cause of one of jobwatch's own.
  "sql",
  "*.sql",
  "*.cause.sql",
  "*.cause.cause.sql",
];

/** Makes the logger; pino-pretty (synchronous, no worker thread) when stdout is a TTY and format is not json. */
export function createLogger(options: LoggerOptions): Logger {
  const base = {
    level: options.level,
    base: { service: "jobwatch" },
    redact: { paths: REDACTED_PATHS, censor: "[REDACTED]" },
  };
  if (options.destination) return pino(base, options.destination);
  const pretty = options.format !== "json" && process.stdout.isTTY === true;
  if (pretty) return pino(base, PinoPretty({ colorize: true, sync: true, ignore: "pid,hostname,service" }));
  return pino(base);
}
