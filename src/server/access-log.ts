// The access log: one structured line per finished call (rpc, code, duration, user, peer, bytes, messages).
import { status as GrpcStatus } from "@grpc/grpc-js";
import type { Logger } from "pino";
import { findPrincipal } from "../auth/principal.js";
import type { CallHooks, FinishedCall } from "./call-observer.js";

/** Where access-log lines go: nowhere, or at this pino level. */
export type AccessLogLevel = "off" | "debug" | "info";

/** The user of a finished call, from the principal the auth interceptor left in its metadata. */
function usernameOf(call: FinishedCall): string | undefined {
  return call.metadata === undefined ? undefined : findPrincipal(call.metadata)?.username;
}

/**
 * Hooks that write one line per finished call. Nothing secret is in it: the token never is (the auth
 * interceptor removes it before handlers run, and this reads only the principal).
 */
export function accessLogHooks(log: Logger, level: Exclude<AccessLogLevel, "off">): CallHooks {
  return {
    wantsPeer: true,
    finished(call) {
      if (!log.isLevelEnabled(level)) return;
      log[level](
        {
          rpc: call.rpc.path.slice(1),
          code: GrpcStatus[call.code],
          durationMs: Math.round(call.durationMs * 100) / 100,
          username: usernameOf(call),
          peer: call.peer,
          bytesReceived: call.bytesReceived,
          bytesSent: call.bytesSent,
          messagesReceived: call.messagesReceived,
          messagesSent: call.messagesSent,
        },
        "call finished",
      );
    },
  };
}
