// grpc-js's own log lines (connection errors, metadata it drops, traces) into jobwatch's log, with secrets removed.
import { format } from "node:util";
import * as grpc from "@grpc/grpc-js";
import type { Logger } from "pino";
import { redactSecrets } from "../auth/redact.js";

/**
 * Routes grpc-js's logger into `log` at debug. grpc-js writes whole header values into some lines (a
 * metadata value it cannot accept, e.g. `authorization: Bearer<TAB><token>`, and every header with
 * GRPC_TRACE set), so each line is redacted before it is logged: no token reaches the log at any level.
 * What matters to a user reaches them through jobwatch's own errors; these lines are for debugging.
 */
export function routeGrpcLog(log: Pick<Logger, "debug">): void {
  const line = (...args: unknown[]): void => log.debug({ grpc: redactSecrets(format(...args)) }, "grpc-js");
  grpc.setLogger({ error: line, info: line, debug: line } as unknown as Partial<Console>);
}
