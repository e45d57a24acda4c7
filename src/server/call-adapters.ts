// Adapts async handlers to grpc-js: unary and server-streaming calls (pulled from a generator, or pushed
// by a handler that writes as changes come), each handed a call context {principal, signal}.

import type {
  handleServerStreamingCall,
  handleUnaryCall,
  ServerUnaryCall,
  ServerWritableStream,
  StatusObject,
  sendUnaryData,
} from "@grpc/grpc-js";
import { Metadata } from "@grpc/grpc-js";
import type { Logger } from "pino";
import type { Principal } from "../auth/principal.js";
import { principalOf } from "../auth/principal.js";
import { errorToStatus, logFailure } from "./error-status.js";
import { guardingHandlers, MalformedRequest } from "./request-decoding.js";

/** What every handler gets besides the request. */
export interface CallContext {
  /** The caller, as the auth interceptor authenticated them. */
  readonly principal: Principal;
  /**
   * Aborted when the call is over for the client: it cancelled, its deadline passed, or the stream was
   * reset. Pass it to anything that waits, so a call nobody waits for stops holding resources.
   */
  readonly signal: AbortSignal;
}

/** What a server-streaming handler gets besides the request. */
export interface StreamContext extends CallContext {
  /** Sends the response headers now, before the first message (a client learns the call is accepted). */
  sendHeader(): void;
}

/** A unary rpc as jobwatch writes it: the response, or a thrown error that errorToStatus maps. */
export type UnaryHandler<Req, Res> = (request: Req, context: CallContext) => Promise<Res>;

/**
 * A server-streaming rpc as jobwatch writes it: an async generator (or any async iterable) of the
 * responses. The stream ends OK when it returns, with errorToStatus's status when it throws; `finally`
 * runs in every case, also when the client goes away.
 */
export type ServerStreamingHandler<Req, Res> = (request: Req, context: StreamContext) => AsyncIterable<Res>;

/** Options of serverStreamingHandler. */
export interface StreamingOptions {
  /**
   * Aborted when the server shuts down. A stream waiting for a client that does not read ('drain')
   * stops waiting then and pulls its next response, which is the handler's chance to end the stream
   * (the watch hub throws UNAVAILABLE naming where to resume).
   */
  closing?: AbortSignal | undefined;
  /**
   * Counts the stream against the caller's and the process's open streams before the handler starts,
   * returning its release; throws (ResourceExhaustedError) when a limit is reached. See StreamLimits.
   */
  admit?: ((principal: Principal) => () => void) | undefined;
  /**
   * Calls `end` when the caller's credentials stop being valid (token revoked or expired) while the
   * stream is open; returns how to stop watching. The stream then ends with the error's status
   * (UNAUTHENTICATED), as a new call with those credentials would. See BearerAuthenticator.watchCredentials.
   */
  watchCredentials?: ((principal: Principal, end: (error: Error) => void) => () => void) | undefined;
}

/** An AbortController aborted on the call's 'cancelled' (client cancel, deadline, reset), and how to detach it. */
function cancellation(call: {
  readonly cancelled: boolean;
  on(event: "cancelled", listener: () => void): unknown;
  off(event: "cancelled", listener: () => void): unknown;
}): { signal: AbortSignal; detach(): void } {
  const controller = new AbortController();
  const abort = (): void => controller.abort();
  call.on("cancelled", abort);
  // A cancel that arrived before the listener was attached would otherwise go unnoticed.
  if (call.cancelled) abort();
  return { signal: controller.signal, detach: () => call.off("cancelled", abort) };
}

/**
 * Turns `async (request, context) => response` into a grpc-js unary handler that calls back exactly
 * once: with the response, or with the status that errorToStatus makes of whatever was thrown. A request
 * its decoder refused (a MalformedRequest, see request-decoding.ts) ends with that refusal's status and
 * never reaches the handler; the server's malformedRequestInterceptor leaves these calls alone.
 */
export function unaryHandler<Req, Res>(log: Logger, handler: UnaryHandler<Req, Res>): handleUnaryCall<Req, Res> {
  const adapted = (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>): void => {
    // The signal is made (and the call's 'cancelled' listened to) only for a handler that reads it:
    // most unary handlers never wait on anything but one query, and this is every call's hot path.
    // (Read after the handler settled, it is a signal that never aborts, as it would have been.)
    let cancel: { signal: AbortSignal; detach(): void } | undefined;
    let settled = false;
    const settle = (): void => {
      settled = true;
      cancel?.detach();
    };
    // Promise.resolve().then(...) also catches a handler (or principalOf) that throws synchronously.
    Promise.resolve()
      .then(() => {
        const request: unknown = call.request;
        if (request instanceof MalformedRequest) throw request.error;
        return handler(request as Req, {
          principal: principalOf(call.metadata),
          get signal() {
            cancel ??= settled ? { signal: new AbortController().signal, detach: () => undefined } : cancellation(call);
            return cancel.signal;
          },
        });
      })
      .then(
        (response) => {
          settle();
          callback(null, response);
        },
        (error: unknown) => {
          settle();
          const path = call.getPath();
          const status = errorToStatus(error, log, { path });
          logFailure(log, path, status);
          callback(status);
        },
      );
  };
  guardingHandlers.add(adapted);
  return adapted;
}

/**
 * Turns an async generator of responses into a grpc-js server-streaming handler (after nice-grpc's
 * handleServerStreamingCall): each response is written as the generator yields it; when the stream's
 * buffer is full the next one is pulled only after 'drain', so a client that does not read holds at
 * most one buffer, never an unbounded backlog. When the client cancels or resets the stream the
 * context's signal aborts, nothing more is written, and the generator is returned (its `finally` runs)
 * as soon as it yields or its signal-aware wait throws.
 */
export function serverStreamingHandler<Req, Res>(
  log: Logger,
  handler: ServerStreamingHandler<Req, Res>,
  options: StreamingOptions = {},
): handleServerStreamingCall<Req, Res> {
  return (call: ServerWritableStream<Req, Res>) => {
    const path = call.getPath();
    // The handler's signal: the client went away (cancelled, deadline, reset), or the server ended the
    // stream (credentials revoked). One controller for both, not AbortSignal.any: with thousands of open
    // streams, its weak references showed as garbage-collector time on every delivery.
    const ending = new AbortController();
    const signal = ending.signal;
    let clientGone = false;
    const onCancelled = (): void => {
      clientGone = true;
      ending.abort();
    };
    call.on("cancelled", onCancelled);
    // A cancel that arrived before the listener was attached would otherwise go unnoticed.
    if (call.cancelled) onCancelled();
    const detach = (): void => {
      call.off("cancelled", onCancelled);
    };
    let endedBy: Error | undefined;
    let release: (() => void) | undefined;
    let unwatch: (() => void) | undefined;
    const run = async (): Promise<void> => {
      const principal = principalOf(call.metadata);
      release = options.admit?.(principal);
      unwatch = options.watchCredentials?.(principal, (error) => {
        endedBy = error;
        ending.abort(error);
      });
      const context: StreamContext = { principal, signal, sendHeader: () => call.sendMetadata(new Metadata()) };
      // for await returns the generator (running its finally) on every way out of the loop.
      for await (const response of handler(call.request, context)) {
        if (signal.aborted) break;
        if (!call.write(response)) await writable(call, signal, options.closing);
        if (signal.aborted) break;
      }
      if (endedBy !== undefined) throw endedBy;
      if (!clientGone) call.end();
    };
    run()
      .catch((error: unknown) => {
        if (clientGone) return; // the client is gone: nobody to tell
        const status: StatusObject = errorToStatus(endedBy ?? error, log, { path });
        logFailure(log, path, status);
        call.emit("error", status);
      })
      .finally(() => {
        // Released as soon as the stream is over, however it ended: the count stays exact.
        release?.();
        unwatch?.();
        detach();
      });
  };
}

/** What a push handler gets: the call context, and the call to write to as it likes. */
export interface PushContext<Res> extends StreamContext {
  /**
   * Writes one message: a response object, or a Buffer already serialized for this method (its
   * serializer passes Buffers through, see shared-encoding.ts). False when the stream's buffer is full:
   * write no more until the onDrain listener runs. Nothing is written once the call is over.
   */
  write(message: Res | Buffer): boolean;
  /** Calls `listener` on every 'drain' (the client took what was buffered). One listener per call. */
  onDrain(listener: () => void): void;
  /** Ends the stream OK, after what was written. */
  end(): void;
  /** Ends the stream with errorToStatus's status of `error`, after what was written. Idempotent with end(). */
  fail(error: unknown): void;
}

/**
 * A server-streaming rpc that pushes: it starts the stream (validating, subscribing) and returns; the
 * messages are written later by whoever has them, through the context, without a generator, promise or
 * timer per message. A throw (or rejection) ends the stream with its status.
 */
export type PushHandler<Req, Res> = (request: Req, context: PushContext<Res>) => void | Promise<void>;

/**
 * Turns a push handler into a grpc-js server-streaming handler: the same admission, credential watch,
 * cancellation and error mapping as serverStreamingHandler, and every stream released exactly once
 * however it ends (end, fail, client cancel or reset, credentials revoked).
 */
export function serverPushHandler<Req, Res>(
  log: Logger,
  handler: PushHandler<Req, Res>,
  options: Pick<StreamingOptions, "admit" | "watchCredentials"> = {},
): handleServerStreamingCall<Req, Res> {
  return (call: ServerWritableStream<Req, Res>) => {
    const ending = new AbortController();
    let over = false;
    let release: (() => void) | undefined;
    let unwatch: (() => void) | undefined;
    let drain: (() => void) | undefined;
    const finish = (): void => {
      over = true;
      call.off("cancelled", onCancelled);
      if (drain) call.off("drain", drain);
      release?.();
      unwatch?.();
    };
    const onCancelled = (): void => {
      if (over) return;
      // The client is gone: nobody to tell; the abort releases whatever the handler holds.
      finish();
      ending.abort();
    };
    const fail = (error: unknown): void => {
      if (over) return;
      finish();
      const status: StatusObject = errorToStatus(error, log, { path: call.getPath() });
      logFailure(log, call.getPath(), status);
      call.emit("error", status);
      ending.abort();
    };
    call.on("cancelled", onCancelled);
    // A cancel that arrived before the listener was attached would otherwise go unnoticed.
    if (call.cancelled) onCancelled();
    const start = (): void | Promise<void> => {
      if (over) return;
      const principal = principalOf(call.metadata);
      release = options.admit?.(principal);
      unwatch = options.watchCredentials?.(principal, fail);
      return handler(call.request, {
        principal,
        signal: ending.signal,
        sendHeader: () => call.sendMetadata(new Metadata()),
        // The hot path of a fan-out: one grpc-js write, nothing else.
        // A Buffer reaches the method's serializer as it is (see PushContext.write).
        write: (message) => !over && call.write(message as Res),
        onDrain: (listener) => {
          if (drain) call.off("drain", drain);
          drain = listener;
          call.on("drain", listener);
        },
        end: () => {
          if (over) return;
          finish();
          call.end();
        },
        fail,
      });
    };
    // Promise.resolve().then(...) also catches a handler (or principalOf, or admit) that throws synchronously.
    Promise.resolve().then(start).catch(fail);
  };
}

/**
 * Resolves when the stream takes more ('drain'), the call is over (signal) or the server is shutting
 * down (closing); every listener is removed again, so a long stream does not pile them up.
 */
function writable(call: ServerWritableStream<unknown, unknown>, signal: AbortSignal, closing?: AbortSignal) {
  if (signal.aborted || closing?.aborted) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const done = (): void => {
      call.off("drain", done);
      signal.removeEventListener("abort", done);
      closing?.removeEventListener("abort", done);
      resolve();
    };
    call.on("drain", done);
    signal.addEventListener("abort", done, { once: true });
    closing?.addEventListener("abort", done, { once: true });
  });
}

/** Messages a pulled push stream queues before write() answers false (the writer waits for onDrain). */
const PULLED_PUSH_QUEUE = 16;

/**
 * A push handler as a pulled stream, for a transport that pulls its messages (the web dashboard's
 * Connect routes): what the handler writes is queued and yielded in order, a Buffer as it is (the
 * method's shared serializer passes it through); write() answers false once PULLED_PUSH_QUEUE messages
 * wait, and the onDrain listener runs when the reader has taken them all. The stream ends when the
 * handler ends or fails it (after what it wrote), or when the reader goes away (the context's signal).
 */
export function pushAsStream<Req, Res>(handler: PushHandler<Req, Res>): ServerStreamingHandler<Req, Res | Buffer> {
  return async function* (request, context) {
    const queue: (Res | Buffer)[] = [];
    let over = false;
    let failure: { error: unknown } | undefined;
    let wake: (() => void) | undefined;
    let drain: (() => void) | undefined;
    const notify = (): void => {
      const resolve = wake;
      wake = undefined;
      resolve?.();
    };
    const ending = new AbortController();
    const gone = (): void => {
      ending.abort();
      notify();
    };
    context.signal.addEventListener("abort", gone, { once: true });
    try {
      await handler(request, {
        principal: context.principal,
        signal: ending.signal,
        sendHeader: context.sendHeader,
        write: (message) => {
          if (over) return false;
          queue.push(message);
          notify();
          return queue.length < PULLED_PUSH_QUEUE;
        },
        onDrain: (listener) => {
          drain = listener;
        },
        end: () => {
          over = true;
          notify();
        },
        fail: (error) => {
          if (over) return;
          over = true;
          failure = { error };
          notify();
        },
      });
      for (;;) {
        while (queue.length > 0 && !context.signal.aborted) {
          yield queue.shift()!;
          if (queue.length === 0 && !over) drain?.();
        }
        if (over || context.signal.aborted) break;
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
      }
      if (failure !== undefined) throw failure.error;
    } finally {
      over = true;
      ending.abort();
      context.signal.removeEventListener("abort", gone);
    }
  };
}
