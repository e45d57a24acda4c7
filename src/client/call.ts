// One unary call as a promise: token metadata, deadline, abort signal, typed errors, retry when safe.
import {
  Metadata,
  status,
  type CallOptions as GrpcCallOptions,
  type ClientUnaryCall,
  type ServiceError,
} from "@grpc/grpc-js";
import { backoffDelay, sleep, type BackoffOptions } from "./backoff.js";
import { JobwatchClientError, toClientError } from "./errors.js";

/** Per-call options every client method takes. */
export interface CallOptions {
  /** Abandons the call: the promise rejects with the signal's reason. */
  signal?: AbortSignal;
  /** The call's deadline in ms from now (default: the client's callTimeoutMs). */
  timeoutMs?: number;
}

/** How the client retries unary calls against an unavailable server. */
export interface RetryOptions {
  /** Attempts in all, the first included (default 3; 1 turns retries off). */
  maxAttempts?: number;
  /** Delay between attempts (default: from 100 ms doubling, with jitter). */
  backoff?: BackoffOptions;
}

/**
 * Whether repeating a call is harmless. "idempotent" calls (reads, cancel, progress, heartbeat, a
 * create with its request_id) are retried on any UNAVAILABLE. "once" calls (start, complete, fail,
 * mark cancelled) are retried only when the request provably never left the client, because a
 * transition applied just before the connection dropped would make the retry fail as FAILED_PRECONDITION.
 */
export type Idempotency = "idempotent" | "once";

/** The shape of a generated grpc-js unary method with metadata, options and callback. */
export type UnaryMethod<Req, Res> = (
  request: Req,
  metadata: Metadata,
  options: Partial<GrpcCallOptions>,
  callback: (error: ServiceError | null, response: Res) => void,
) => ClientUnaryCall;

/** What every call of one client shares. */
export interface CallContext {
  token: string | undefined;
  callTimeoutMs: number;
  retry: Required<Pick<RetryOptions, "maxAttempts">> & Pick<RetryOptions, "backoff">;
}

/** Call metadata carrying the bearer token. */
export function authMetadata(token: string | undefined): Metadata {
  const metadata = new Metadata();
  if (token !== undefined && token !== "") metadata.set("authorization", `Bearer ${token}`);
  return metadata;
}

/** Makes one unary call, retrying on UNAVAILABLE as `idempotency` allows; rejects with a typed error. */
export async function unaryCall<Req, Res>(
  ctx: CallContext,
  method: UnaryMethod<Req, Res>,
  request: Req,
  idempotency: Idempotency,
  options: CallOptions = {},
): Promise<Res> {
  const { signal } = options;
  for (let attempt = 1; ; attempt++) {
    signal?.throwIfAborted();
    try {
      return await once(ctx, method, request, options);
    } catch (err) {
      if (signal?.aborted) throw signal.reason;
      const typed = toClientError(err);
      if (attempt >= ctx.retry.maxAttempts || !mayRetry(typed, idempotency)) throw typed;
      await sleep(backoffDelay(attempt - 1, ctx.retry.backoff), signal);
    }
  }
}

function once<Req, Res>(
  ctx: CallContext,
  method: UnaryMethod<Req, Res>,
  request: Req,
  options: CallOptions,
): Promise<Res> {
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + (options.timeoutMs ?? ctx.callTimeoutMs);
    const call = method(request, authMetadata(ctx.token), { deadline }, (error, response) => {
      options.signal?.removeEventListener("abort", onAbort);
      if (error) reject(error);
      else resolve(response);
    });
    const onAbort = (): void => call.cancel();
    options.signal?.addEventListener("abort", onAbort, { once: true });
  });
}

function mayRetry(err: unknown, idempotency: Idempotency): boolean {
  if (!(err instanceof JobwatchClientError) || err.code !== status.UNAVAILABLE) return false;
  // grpc-js fails a call with this message when no connection was up to send it on.
  return idempotency === "idempotent" || /No connection established/.test(err.message);
}
