// A server interceptor that follows each call from start to end (messages, bytes, code, duration) for the
// access log and the metrics; it sits before the auth interceptor, so rejected calls are seen too.
import { performance } from "node:perf_hooks";
import * as grpc from "@grpc/grpc-js";

/** What kind of rpc, in the words of go-grpc-prometheus's `grpc_type` label. */
type RpcType = "unary" | "client_stream" | "server_stream" | "bidi_stream";

/** One rpc of the server; made once per method and shared by its calls. */
export interface RpcInfo {
  /** "/jobwatch.v1.JobService/GetJobDetails" */
  readonly path: string;
  /** "jobwatch.v1.JobService" */
  readonly service: string;
  /** "GetJobDetails" */
  readonly method: string;
  readonly type: RpcType;
}

/** A call that has ended. */
export interface FinishedCall {
  readonly rpc: RpcInfo;
  readonly code: grpc.status;
  readonly durationMs: number;
  readonly messagesReceived: number;
  readonly messagesSent: number;
  readonly bytesReceived: number;
  readonly bytesSent: number;
  /** The incoming metadata after the auth interceptor ran (it holds the principal when one was found). */
  readonly metadata: grpc.Metadata | undefined;
  /** "ip:port" of the client, when `peer` was asked for. */
  readonly peer: string | undefined;
}

/** What an observer (access log, metrics) is told; every method must be cheap and must not throw. */
export interface CallHooks {
  /** Read the peer address at the start of each call (the socket may be gone at the end). */
  readonly wantsPeer?: boolean;
  started?(rpc: RpcInfo): void;
  received?(rpc: RpcInfo): void;
  /** `count` is how many messages this call has sent, this one included. */
  sent?(rpc: RpcInfo, message: unknown, count: number): void;
  finished?(call: FinishedCall): void;
}

// Encoded sizes of messages, keyed by the decoded request or the response object, recorded by the
// (de)serializers that withMessageSizes wraps. A WeakMap, so nothing outlives its message.
const sizes = new WeakMap<object, number>();

function sizeOf(message: unknown): number {
  return typeof message === "object" && message !== null ? (sizes.get(message) ?? 0) : 0;
}

/**
 * A copy of a service definition whose (de)serializers record each message's encoded size for the
 * observer: gRPC byte counts without encoding anything twice.
 */
export function withMessageSizes<T extends grpc.ServiceDefinition>(service: T): T {
  const copy: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const [name, method] of Object.entries(service) as [string, grpc.MethodDefinition<unknown, unknown>][]) {
    const serialize = method.responseSerialize;
    const deserialize = method.requestDeserialize;
    copy[name] = {
      ...method,
      responseSerialize: (value: unknown) => {
        const bytes = serialize(value);
        if (typeof value === "object" && value !== null) sizes.set(value, bytes.length);
        return bytes;
      },
      requestDeserialize: (bytes: Buffer) => {
        const value = deserialize(bytes);
        if (typeof value === "object" && value !== null) sizes.set(value, bytes.length);
        return value;
      },
    };
  }
  return copy as T;
}

const rpcs = new Map<string, RpcInfo>();

function rpcInfo(method: grpc.ServerMethodDefinition<unknown, unknown>): RpcInfo {
  let info = rpcs.get(method.path);
  if (info === undefined) {
    const [, service = "unknown", name = "unknown"] = /^\/([^/]*)\/(.*)$/.exec(method.path) ?? [];
    const type: RpcType = method.requestStream
      ? method.responseStream
        ? "bidi_stream"
        : "client_stream"
      : method.responseStream
        ? "server_stream"
        : "unary";
    info = { path: method.path, service, method: name, type };
    rpcs.set(method.path, info);
  }
  return info;
}

/** A server interceptor that reports every call to `hooks`. Put it first in the server's interceptors. */
export function callObserver(hooks: CallHooks): grpc.ServerInterceptor {
  return (method, call) => {
    const rpc = rpcInfo(method);
    const startedAt = performance.now();
    const peer = hooks.wantsPeer ? call.getPeer() : undefined;
    let metadata: grpc.Metadata | undefined;
    let messagesReceived = 0;
    let messagesSent = 0;
    let bytesReceived = 0;
    let bytesSent = 0;
    let done = false;
    hooks.started?.(rpc);

    const finish = (code: grpc.status): void => {
      if (done) return;
      done = true;
      hooks.finished?.({
        rpc,
        code,
        durationMs: performance.now() - startedAt,
        messagesReceived,
        messagesSent,
        bytesReceived,
        bytesSent,
        metadata,
        peer,
      });
    };

    return new grpc.ServerInterceptingCall(call, {
      start(next) {
        next({
          onReceiveMetadata(received, mdNext) {
            metadata = received;
            mdNext(received);
          },
          onReceiveMessage(message, messageNext) {
            messagesReceived++;
            bytesReceived += sizeOf(message);
            hooks.received?.(rpc);
            messageNext(message);
          },
          onCancel() {
            // Also called after every status; only a call that ended without one gets here first: the
            // client went away, or grpc-js ended it at its deadline.
            const deadline = call.getDeadline();
            const passed = deadline instanceof Date ? deadline.getTime() : deadline;
            finish(Date.now() >= passed ? grpc.status.DEADLINE_EXCEEDED : grpc.status.CANCELLED);
          },
        });
      },
      sendMessage(message, next) {
        next(message);
        // Serialized synchronously by grpc-js inside next(), so its size is known here.
        messagesSent++;
        bytesSent += sizeOf(message);
        hooks.sent?.(rpc, message, messagesSent);
      },
      sendStatus(status, next) {
        finish(status.code);
        next(status);
      },
    });
  };
}
