// What every client command shares: --address/--token/--tls/--json, opening the client, and errors as advice.

import { readFileSync } from "node:fs";
import { type Command, Option, InvalidArgumentError as UsageError } from "commander";
import { connectionCause, rejectionReason } from "../client/errors.js";
import {
  AlreadyExistsError,
  createClient,
  DeadlineExceededError,
  FailedPreconditionError,
  GrpcStatus,
  InvalidArgumentError,
  JobNotFoundError,
  type JobwatchClient,
  JobwatchClientError,
  PermissionDeniedError,
  type TlsOptions,
  UnauthenticatedError,
  UnavailableError,
} from "../client/index.js";
import { loadProtoJson } from "../client/json.js";
import { DURATION_RULE, parseDuration } from "../duration.js";
import { ExitCode } from "./exit-codes.js";
import { printError } from "./fail.js";
import { inCommandSpan } from "./tracing.js";

/** The address used when neither --address nor JOBWATCH_ADDRESS is given. */
export const DEFAULT_ADDRESS = "127.0.0.1:50051";

/** The options addClientOptions adds, as commander parses them. */
export interface ClientFlags {
  address: string;
  token?: string;
  tls?: boolean;
  ca?: string;
  cert?: string;
  key?: string;
  json?: boolean;
}

/** Adds --address (JOBWATCH_ADDRESS), --token (JOBWATCH_TOKEN) and --tls to a command. */
export function addClientOptions(command: Command): Command {
  return command
    .addOption(
      new Option("--address <host:port>", "the jobwatch server").env("JOBWATCH_ADDRESS").default(DEFAULT_ADDRESS),
    )
    .addOption(new Option("--token <token>", "API token (jobwatch token create)").env("JOBWATCH_TOKEN"))
    .addOption(new Option("--tls", "connect with TLS (system root certificates unless --ca)"))
    .addOption(
      new Option("--ca <file>", "PEM CA certificate(s) to trust instead of the system's (implies --tls)").env(
        "JOBWATCH_CA",
      ),
    )
    .addOption(
      new Option("--cert <file>", "PEM client certificate, for a server that requires one (mTLS)").env("JOBWATCH_CERT"),
    )
    .addOption(new Option("--key <file>", "PEM private key of --cert").env("JOBWATCH_KEY"));
}

/** Reads a PEM file named by a flag; the error names the flag and the file. */
function readPem(flag: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (error) {
    throw new Error(`cannot read ${flag} file ${file}: ${(error as { code?: string }).code ?? String(error)}`);
  }
}

/** The client's TLS settings from --tls, --ca, --cert and --key; false for plaintext. */
function tlsFromFlags(flags: Pick<ClientFlags, "tls" | "ca" | "cert" | "key">): boolean | TlsOptions {
  if ((flags.cert === undefined) !== (flags.key === undefined)) {
    throw new Error("--cert and --key go together (JOBWATCH_CERT, JOBWATCH_KEY): give both or neither");
  }
  if (flags.ca === undefined && flags.cert === undefined) return flags.tls === true;
  return {
    ...(flags.ca === undefined ? {} : { rootCerts: readPem("--ca", flags.ca) }),
    ...(flags.cert === undefined ? {} : { certChain: readPem("--cert", flags.cert) }),
    ...(flags.key === undefined ? {} : { privateKey: readPem("--key", flags.key) }),
  };
}

/** Adds --json with a description of what it prints. */
export function addJsonOption(command: Command, what: string): Command {
  return command.option("--json", what);
}

/** A client for the command's flags; unary calls get a short deadline, since a person is waiting. */
export function openClient(flags: ClientFlags): JobwatchClient {
  return createClient({
    address: flags.address,
    token: flags.token,
    tls: tlsFromFlags(flags),
    callTimeoutMs: 15_000,
  });
}

/** What the command was doing, to make error messages specific. */
interface ErrorContext {
  address: string;
  jobId?: string;
  tokenGiven: boolean;
}

/**
 * Runs a command body with a client, then closes it. Expected errors are printed as advice on stderr
 * (no stack trace) and set the matching exit code; the body may return an exit code of its own.
 */
export async function runWithClient(
  flags: ClientFlags,
  body: (client: JobwatchClient) => Promise<ExitCode | void>,
  context: { jobId?: string } = {},
): Promise<void> {
  const errorContext: ErrorContext = { address: flags.address, tokenGiven: !!flags.token, ...context };
  if (!flags.token) {
    printError(explainError(new UnauthenticatedError("no token", GrpcStatus.UNAUTHENTICATED), errorContext).message);
    process.exitCode = ExitCode.NOT_FOUND_OR_DENIED;
    return;
  }
  let client: JobwatchClient;
  try {
    client = openClient(flags);
  } catch (err) {
    printError(err instanceof Error ? err.message : String(err));
    process.exitCode = ExitCode.ERROR;
    return;
  }
  try {
    // Traced (OTEL_* set): the command is one span, and each of its calls carries it to the server.
    process.exitCode = await inCommandSpan(
      async () => {
        try {
          // --json prints the protobuf JSON mapping, from the contract's descriptors: loaded only then.
          if (flags.json) await loadProtoJson();
          return (await body(client)) ?? ExitCode.OK;
        } catch (err) {
          const { message, code } = explainError(err, errorContext);
          printError((await tlsExplanation(err, flags)) ?? message);
          return code;
        }
      },
      (code) => code,
    );
  } finally {
    client.close();
  }
}

/**
 * For a connection that failed, what a TLS handshake of our own says is wrong (plaintext against TLS, a
 * certificate the CA did not sign, a client certificate required or refused); undefined otherwise.
 */
async function tlsExplanation(err: unknown, flags: ClientFlags): Promise<string | undefined> {
  if (!(err instanceof UnavailableError) || connectionCause(err.message) === undefined) return undefined;
  // Loaded only here: a command that connected never pays for it.
  const { diagnoseConnection } = await import("./connection-diagnosis.js");
  const why = await diagnoseConnection({
    address: flags.address,
    tls: tlsFromFlags(flags),
    caFile: flags.ca,
    certFile: flags.cert,
  }).catch(() => undefined);
  return why === undefined ? undefined : `cannot connect to the jobwatch server at ${flags.address}: ${why}`;
}

/** Prints a value as indented JSON on stdout. */
export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

const TOKEN_HOWTO =
  "Create one on the server host with `jobwatch token create --user NAME --role ROLE` " +
  "and pass it with --token or JOBWATCH_TOKEN.";

/** Turns an error into advice for a person and the exit code a script sees. */
function explainError(err: unknown, context: ErrorContext): { message: string; code: ExitCode } {
  const { address } = context;
  if (err instanceof UnavailableError) {
    const cause = connectionCause(err.message);
    if (cause !== undefined) {
      return {
        message:
          `cannot reach the jobwatch server at ${address} (${cause}). Is it running? ` +
          "Start it with `jobwatch serve`, or point --address or JOBWATCH_ADDRESS at it.",
        code: ExitCode.UNREACHABLE_OR_TIMEOUT,
      };
    }
    return {
      // The server's message often says to retry already ("... retry shortly"): said once.
      message: `the jobwatch server at ${address} is unavailable: ${err.message}${/retry|try again/i.test(err.message) ? "." : ". Try again shortly."}`,
      code: ExitCode.UNREACHABLE_OR_TIMEOUT,
    };
  }
  if (err instanceof DeadlineExceededError) {
    return {
      message: `no answer from the jobwatch server at ${address} in time: ${err.message}`,
      code: ExitCode.UNREACHABLE_OR_TIMEOUT,
    };
  }
  if (err instanceof UnauthenticatedError) {
    const message = context.tokenGiven
      ? `the server at ${address} rejected the token: ${rejectionReason(err.message)}. ${TOKEN_HOWTO}`
      : `no token given. ${TOKEN_HOWTO}`;
    return { message, code: ExitCode.NOT_FOUND_OR_DENIED };
  }
  if (err instanceof PermissionDeniedError) {
    return { message: `${err.message}. ${permissionHint(err.permission)}`, code: ExitCode.NOT_FOUND_OR_DENIED };
  }
  if (err instanceof JobNotFoundError) {
    const job = context.jobId === undefined ? "the job" : `job ${context.jobId}`;
    // An admin token sees every job: "another user's" is no explanation for it (the server says which).
    const why =
      err.callerSees === "all_jobs"
        ? "it may have expired (finished jobs are removed after the retention period), or the id may be mistyped."
        : "it may have expired (finished jobs are removed after the retention period), the id may be mistyped, " +
          "or it belongs to another user (your token only sees its own user's jobs).";
    return { message: `${job} was not found: ${why}`, code: ExitCode.NOT_FOUND_OR_DENIED };
  }
  if (err instanceof InvalidArgumentError) {
    const fields = err.fieldViolations.map((v) => `${v.field}: ${v.description}`);
    return { message: `invalid request: ${fields.length > 0 ? fields.join("; ") : err.message}`, code: ExitCode.ERROR };
  }
  if (err instanceof AlreadyExistsError) {
    const active = err.activeJobId;
    const hint = active === undefined ? "" : ` Follow it with \`jobwatch watch ${active}\`.`;
    return { message: `${err.message}.${hint}`, code: ExitCode.ERROR };
  }
  if (err instanceof FailedPreconditionError) {
    return { message: err.message, code: ExitCode.ERROR };
  }
  if (err instanceof JobwatchClientError) {
    return { message: `${err.codeName}: ${err.message}`, code: ExitCode.ERROR };
  }
  const message = err instanceof Error ? err.message : String(err);
  if (process.env.JOBWATCH_DEBUG && err instanceof Error && err.stack)
    return { message: err.stack, code: ExitCode.ERROR };
  return { message, code: ExitCode.ERROR };
}

/** What to do about a missing permission: by the one the server named (ErrorInfo), never by its wording. */
function permissionHint(permission: string | undefined): string {
  if (permission === "report_jobs") {
    return "Worker commands need a token whose role grants report_jobs (service or admin).";
  }
  if (permission === "manage_jobs") {
    return "Only an admin token reads another user's jobs (--user) or every user's (--all); without them you get your own.";
  }
  if (permission === "query_repos") {
    return "Reading jobs needs a token whose role grants query_repos (normal_user, power_user or admin); a service token can only report jobs.";
  }
  return "Ask an admin for a token with a role that grants it.";
}

/** The --help footer of commands that take durations. */
export const DURATION_HELP = `\nDurations: ${DURATION_RULE}.`;

/** A duration flag in ms (DURATION_RULE: "30s", "5m", "2h"; a bare number is ms), for commander's argParser; above zero. */
export function parseDurationFlag(text: string): number {
  const value = parseNonNegativeDurationFlag(text);
  if (value === 0) throw new UsageError(`expected a duration above zero: ${DURATION_RULE}`);
  return value;
}

/** Like parseDurationFlag, but "0" is allowed. */
export function parseNonNegativeDurationFlag(text: string): number {
  const value = parseDuration(text);
  if (value === undefined || value < 0) throw new UsageError(`expected a duration: ${DURATION_RULE}`);
  return value;
}

/** Parses an ISO 8601 time, or a duration meaning that long ago ("2h" = two hours ago). */
export function parseTime(text: string): Date {
  const asDuration = (() => {
    try {
      return parseDurationFlag(text);
    } catch {
      return undefined;
    }
  })();
  if (asDuration !== undefined) return new Date(Date.now() - asDuration);
  const date = new Date(text);
  if (Number.isNaN(date.getTime())) {
    throw new UsageError('expected a time such as "2025-01-31T12:00:00Z" or a duration ago such as "2h"');
  }
  return date;
}

/** Parses an integer within [min, max], for commander's argParser. */
export function parseInteger(min: number, max: number): (text: string) => number {
  return (text) => {
    const value = Number(text);
    if (!Number.isInteger(value) || value < min || value > max) {
      throw new UsageError(`expected a whole number from ${min} to ${max}`);
    }
    return value;
  };
}
