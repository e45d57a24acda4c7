// One unary call as a promise: token metadata, deadline, abort signal, typed errors, retry when the contract allows.
import { createRequire } from "node:module";
import { setTimeout as sleep } from "node:timers/promises";
import { type Client, Metadata } from "@grpc/grpc-js";
import type { TextMapSetter } from "@opentelemetry/api";
import { type BackoffOptions, backoffDelay } from "./backoff.js";
import { idempotencyOf } from "./contract.js";
import { JobwatchClientError, toClientError } from "./errors.js";
import { isRetryable } from "./retry.js";

/** Per-call options every client method takes. */
export interface CallOptions {
  /** Abandons the call: the promise rejects with the signal's reason. */
  signal?: AbortSignal;
  /** The call's deadline in ms from now (default: the client's callTimeoutMs). */
  timeoutMs?: number;
}

/** How the client retries unary calls that failed in a way worth repeating (see retry.ts). */
export interface RetryOptions {
  /** Attempts in all, the first included (default 3; 1 turns retries off). */
  maxAttempts?: number;
  /** Delay between attempts (default: from 100 ms doubling, with jitter). */
  backoff?: BackoffOptions;
}

/**
 * One rpc of a generated grpc-js service definition (e.g. JobServiceService.getJobDetails): its path,
 * by which the contract's idempotency_level is looked up, and its codec.
 */
export interface UnaryRpc<Req, Res> {
  readonly path: string;
  requestSerialize(value: Req): Buffer;
  responseDeserialize(bytes: Buffer): Res;
}

/** What every call of one client shares. */
export interface CallContext {
  /** The channel both services' calls go through. */
  channel: Client;
  token: string | undefined;
  callTimeoutMs: number;
  retry: Required<Pick<RetryOptions, "maxAttempts">> & Pick<RetryOptions, "backoff">;
}

/**
 * For a timers/promises wait: its AbortError becomes the signal's own reason, so callers see what they
 * aborted with (e.g. a CancelRequestedError), as they do when the abort cuts a call short.
 */
export function abortReason(signal: AbortSignal | undefined): (error: unknown) => never {
  return (error) => {
    signal?.throwIfAborted();
    throw error;
  };
}

/** The job of a reply that must carry one (every JobService and JobWorkerService reply about one job). */
export function requireJob<J>(response: { job?: J | undefined }): J {
  if (response.job === undefined) throw new Error("the server answered without a job");
  return response.job;
}

/** Writes propagation fields (traceparent, tracestate) into call metadata. */
const metadataSetter: TextMapSetter<Metadata> = {
  set(carrier, key, value) {
    carrier.set(key, value);
  },
};

// Where @opentelemetry/api 1.x keeps what an application registered (its propagator, context manager,
// tracer provider): absent until something registers one. Without it the API's propagator writes nothing,
// so the API (about 30 ms of a CLI command's startup) is only required once an SDK has been registered;
// the package is CommonJS, so this is the copy an application's `import` gets too.
const OTEL_API_GLOBAL = Symbol.for("opentelemetry.js.api.1");
const require = createRequire(import.meta.url);

/**
 * Call metadata carrying the bearer token and the caller's trace context: the active context as the
 * application's registered OpenTelemetry propagator writes it (W3C traceparent with the Node SDK). With
 * no SDK registered, nothing.
 */
export function authMetadata(token: string | undefined): Metadata {
  const metadata = new Metadata();
  if (token !== undefined && token !== "") metadata.set("authorization", `Bearer ${token}`);
  if (OTEL_API_GLOBAL in globalThis) {
    const { context, propagation } = require("@opentelemetry/api") as typeof import("@opentelemetry/api");
    propagation.inject(context.active(), metadata, metadataSetter);
  }
  return metadata;
}

/**
 * Makes one unary call of `rpc`, sending it again after a backoff while isRetryable says so for the
 * idempotency_level the contract declares for it; rejects with a typed error.
 */
export async function unaryCall<Req, Res>(
  ctx: CallContext,
  rpc: UnaryRpc<Req, Res>,
  request: Req,
  options: CallOptions = {},
): Promise<Res> {
  const { signal } = options;
  for (let attempt = 1; ; attempt++) {
    signal?.throwIfAborted();
    try {
      return await once(ctx, rpc, request, options);
    } catch (err) {
      if (signal?.aborted) throw signal.reason;
      const typed = toClientError(err);
      if (attempt >= ctx.retry.maxAttempts) throw typed;
      // The contract is read only for a failed call: a call that succeeds never decodes the descriptors.
      if (!(typed instanceof JobwatchClientError) || !isRetryable(typed, await idempotencyOf(rpc.path))) throw typed;
      // An abort during the wait rejects with the signal's reason, as an abort during the call does.
      await sleep(backoffDelay(attempt - 1, ctx.retry.backoff), undefined, { signal }).catch(abortReason(signal));
    }
  }
}

function once<Req, Res>(ctx: CallContext, rpc: UnaryRpc<Req, Res>, request: Req, options: CallOptions): Promise<Res> {
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + (options.timeoutMs ?? ctx.callTimeoutMs);
    const call = ctx.channel.makeUnaryRequest(
      rpc.path,
      rpc.requestSerialize,
      rpc.responseDeserialize,
      request,
      authMetadata(ctx.token),
      { deadline },
      (error, response) => {
        options.signal?.removeEventListener("abort", onAbort);
        if (error) reject(error);
        else resolve(response as Res);
      },
    );
    const onAbort = (): void => call.cancel();
    options.signal?.addEventListener("abort", onAbort, { once: true });
  });
}
