// Traces of the server, when tracing is on: a SERVER span per rpc (the rpc.* semantic conventions, parent
// from the caller's W3C traceparent), a CLIENT span per store operation under it, and the job's creation
// context kept with the job so later rpcs on it link there. Built only when tracing is on: off, the server
// has no interceptor, no store wrapper and no span of any kind.
import * as grpc from "@grpc/grpc-js";
import type { Context, Span, SpanContext, TextMapGetter, Tracer } from "@opentelemetry/api";
import { context, propagation, ROOT_CONTEXT, SpanKind, SpanStatusCode, TraceFlags, trace } from "@opentelemetry/api";
import type { Dialect } from "../store/connect.js";
import type { Job } from "../store/job.js";
import type { StoreMethod, StoreOf } from "../store/operations.js";
import { decorate } from "../store/operations.js";
import type { JobStore } from "../store/store.js";

/** Reads propagation fields (traceparent, tracestate) from gRPC metadata; no other key is ever read. */
const metadataGetter: TextMapGetter<grpc.Metadata> = {
  get(carrier, key) {
    const values = carrier.get(key);
    if (values.length === 0) return undefined;
    return values.map((value) => (typeof value === "string" ? value : value.toString("latin1")));
  },
  keys(carrier) {
    return Object.keys(carrier.getMap());
  },
};

/**
 * Codes that are the server's failure, not the caller's (the semantic conventions' list for gRPC servers):
 * their spans get status ERROR; NOT_FOUND, INVALID_ARGUMENT and the like stay UNSET.
 */
const SERVER_ERRORS: ReadonlySet<grpc.status> = new Set([
  grpc.status.UNKNOWN,
  grpc.status.DEADLINE_EXCEEDED,
  grpc.status.UNIMPLEMENTED,
  grpc.status.INTERNAL,
  grpc.status.UNAVAILABLE,
  grpc.status.DATA_LOSS,
]);

/** rpc.service and rpc.method of a path "/pkg.Service/Method", parsed once per method. */
const rpcNames = new Map<string, { service: string; method: string }>();

function namesOf(path: string): { service: string; method: string } {
  let names = rpcNames.get(path);
  if (names === undefined) {
    const [, service = "unknown", method = "unknown"] = /^\/([^/]*)\/(.*)$/.exec(path) ?? [];
    names = { service, method };
    rpcNames.set(path, names);
  }
  return names;
}

/**
 * A server interceptor (put it first) that makes each call's SERVER span and runs everything after it in
 * the span's context, so the handler's store calls become its children. Only traceparent/tracestate are
 * read from the metadata; no metadata, request or response value becomes an attribute.
 */
export function tracingInterceptor(tracer: Tracer): grpc.ServerInterceptor {
  return (method, call) => {
    const { service, method: name } = namesOf(method.path);
    let span: Span | undefined;
    let active: Context = ROOT_CONTEXT;
    const end = (code: grpc.status): void => {
      if (span === undefined) return;
      span.setAttribute("rpc.grpc.status_code", code);
      if (SERVER_ERRORS.has(code)) span.setStatus({ code: SpanStatusCode.ERROR, message: grpc.status[code] });
      span.end();
      span = undefined;
    };
    return new grpc.ServerInterceptingCall(call, {
      start(next) {
        next({
          onReceiveMetadata(metadata, mdNext) {
            const parent = propagation.extract(ROOT_CONTEXT, metadata, metadataGetter);
            span = tracer.startSpan(
              `${service}/${name}`,
              {
                kind: SpanKind.SERVER,
                attributes: { "rpc.system": "grpc", "rpc.service": service, "rpc.method": name },
              },
              parent,
            );
            active = trace.setSpan(parent, span);
            context.with(active, () => mdNext(metadata));
          },
          onReceiveMessage(message, messageNext) {
            context.with(active, () => messageNext(message));
          },
          onReceiveHalfClose(halfCloseNext) {
            context.with(active, halfCloseNext);
          },
          onCancel() {
            // Also called after every status (the span has ended then); first only when the client went
            // away or the deadline passed.
            const deadline = call.getDeadline();
            const passed = deadline instanceof Date ? deadline.getTime() : deadline;
            end(Date.now() >= passed ? grpc.status.DEADLINE_EXCEEDED : grpc.status.CANCELLED);
          },
        });
      },
      sendStatus(status, next) {
        end(status.code);
        next(status);
      },
    });
  };
}

/**
 * `method` in a CLIENT span named after the operation (db.system.name: the dialect, db.operation.name:
 * the store operation; never an argument or a value), made only inside a traced call: the change-feed
 * poll and the sweepers, which run outside any call, make no root spans of their own.
 */
function storeSpan<M extends StoreMethod>(tracer: Tracer, dialect: Dialect, operation: string, method: M): M {
  const attributes = { "db.system.name": dialect, "db.operation.name": operation };
  const traced = (...args: Parameters<M>): Promise<unknown> => {
    const parent = context.active();
    if (trace.getSpan(parent) === undefined) return method(...args);
    const span = tracer.startSpan(operation, { kind: SpanKind.CLIENT, attributes }, parent);
    return method(...args).then(
      (value) => {
        span.end();
        return value;
      },
      (error: unknown) => {
        // The error's class only: a message may quote a value.
        span.setStatus({ code: SpanStatusCode.ERROR });
        span.setAttribute("error.type", error instanceof Error ? error.name : "unknown");
        span.end();
        throw error;
      },
    );
  };
  return traced as unknown as M;
}

/** `store` with each of its operations (store/operations.ts) in a storeSpan named after it. */
export function tracedStore<S extends Partial<JobStore>>(store: S, tracer: Tracer, dialect: Dialect): StoreOf<S> {
  return decorate(store, (name, _facts, method) => storeSpan(tracer, dialect, name, method));
}

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/** The span context of a stored traceparent; undefined when it is not one (or all zeros). */
function parseTraceparent(text: string): SpanContext | undefined {
  const match = TRACEPARENT.exec(text);
  if (match === null) return undefined;
  const [, traceId = "", spanId = "", flags = "00"] = match;
  if (/^0+$/.test(traceId) || /^0+$/.test(spanId)) return undefined;
  return { traceId, spanId, traceFlags: Number.parseInt(flags, 16), isRemote: true };
}

/** What handlers do with traces: keep the creation context with a new job, link later rpcs to it. */
export interface JobTracing {
  /** The traceparent of the current rpc's span, to store with the job it creates; undefined when not sampled. */
  creationContext(): string | undefined;
  /** Links the current rpc's span to the span of the CreateJob that made `job` (when it was traced). */
  linkToCreation(job: Pick<Job, "jobId" | "traceContext">): void;
}

/** JobTracing on the active span of the call. */
export const jobTracing: JobTracing = {
  creationContext() {
    const span = trace.getSpan(context.active());
    if (span === undefined || !span.isRecording()) return undefined;
    const { traceId, spanId, traceFlags } = span.spanContext();
    const flags = (traceFlags & TraceFlags.SAMPLED).toString(16).padStart(2, "0");
    return `00-${traceId}-${spanId}-${flags}`;
  },
  linkToCreation(job) {
    const span = trace.getSpan(context.active());
    if (span === undefined || !span.isRecording()) return;
    span.setAttribute("jobwatch.job.id", job.jobId);
    const created = job.traceContext === undefined ? undefined : parseTraceparent(job.traceContext);
    // The CreateJob that made the job is not linked to itself.
    if (created === undefined || created.spanId === span.spanContext().spanId) return;
    span.addLink({ context: created, attributes: { "jobwatch.link": "job.created" } });
  },
};
