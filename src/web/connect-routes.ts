// JobService over the Connect protocol for the web dashboard: the same handlers as gRPC, behind the same
// authorization (src/auth/authorize.ts), with requests and responses carried as the contract's bytes.
//
// connect-node hands a handler protobuf-es messages of the contract (described by the compiled descriptor
// set, CONTRACT_REGISTRY); jobwatch's handlers take ts-proto's. Each call's request is encoded with the
// one and decoded with the other's guarded decoder (request-decoding.ts), and the response the other way,
// so every rule of every rpc (validation, visibility, limits, estimates) is the gRPC handler's own.
import type { DescMethod, DescService } from "@bufbuild/protobuf";
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import type { ConnectRouter, HandlerContext, Interceptor } from "@connectrpc/connect";
import { type Code, ConnectError, createContextKey } from "@connectrpc/connect";
import type * as grpc from "@grpc/grpc-js";
import type { Logger } from "pino";
import type { CallAuthenticator } from "../auth/authorize.js";
import { authorizeCall, cachedCaller, undeclaredPermission } from "../auth/authorize.js";
import type { Principal } from "../auth/principal.js";
import { UnauthenticatedError } from "../errors.js";
import { Status } from "../gen/google/rpc/status.js";
import type { WatchJobsRequest, WatchJobsResponse } from "../gen/jobwatch/v1/job_service.js";
import { JobServiceService, WatchJobsEventType } from "../gen/jobwatch/v1/job_service.js";
import type { ServerStreamingHandler, StreamingOptions, UnaryHandler } from "../server/call-adapters.js";
import { pushAsStream } from "../server/call-adapters.js";
import { CONTRACT_REGISTRY, PERMISSION_TABLE } from "../server/contract.js";
import { errorToStatus, logFailure, STATUS_DETAILS_TRAILER } from "../server/error-status.js";
import type { JobServiceHandlers } from "../server/job-service.js";
import { guardRequestDecoding, MalformedRequest } from "../server/request-decoding.js";
import { withSharedEncoding } from "../server/shared-encoding.js";
import { credentialOf } from "./session.js";

/** The contract's JobService, as connect-node serves it. */
export const JOB_SERVICE: DescService = (() => {
  const service = CONTRACT_REGISTRY.getService("jobwatch.v1.JobService");
  if (!service) throw new Error("the descriptor set has no jobwatch.v1.JobService; run 'npm run generate'");
  return service;
})();

/** Where the authorization interceptor leaves the caller for the handlers. */
const PRINCIPAL = createContextKey<Principal | undefined>(undefined);

/** What the routes need. */
export interface ConnectRoutesDeps {
  handlers: JobServiceHandlers;
  authenticator: CallAuthenticator;
  /** How WatchJob and WatchJobs streams are admitted, ended early and told of shutdown: gRPC's own. */
  streams: Pick<StreamingOptions, "admit" | "watchCredentials" | "closing">;
  log: Logger;
}

/** "pkg.Service/Method" of a method, as permissions and logs name it. */
function rpcOf(method: DescMethod): string {
  return `${method.parent.typeName}/${method.name}`;
}

/**
 * The Connect error that says what errorToStatus says over gRPC: the same code, message and google.rpc
 * details (the server's one error mapping).
 */
function toConnectError(error: unknown, log: Logger, method: DescMethod): ConnectError {
  const path = `/${rpcOf(method)}`;
  const status = errorToStatus(error, log, { path, transport: "connect" });
  logFailure(log, path, status);
  const failure = new ConnectError(status.details, status.code as number as Code);
  const [bin] = status.metadata?.get(STATUS_DETAILS_TRAILER) ?? [];
  if (bin instanceof Buffer) {
    for (const detail of Status.decode(bin).details) {
      failure.details.push({ type: detail.typeUrl.replace(/^.*\//, ""), value: detail.value });
    }
  }
  return failure;
}

/**
 * Authenticates and authorizes every call before its handler: the credential is the `authorization`
 * header (scripts, `buf curl --protocol connect`) or the dashboard's session cookie, which is only
 * honoured with the matching CSRF header; then authorizeCall, exactly as the gRPC interceptor does.
 */
function authorization(deps: ConnectRoutesDeps): Interceptor {
  return (next) => async (request) => {
    const rpc = rpcOf(request.method);
    const permission = PERMISSION_TABLE.get(`/${rpc}`);
    try {
      if (permission === undefined) throw undeclaredPermission(`/${rpc}`);
      const values = credentialOf(request.header);
      const principal =
        cachedCaller(deps.authenticator, values, permission) ??
        (await authorizeCall(deps.authenticator, rpc, values, permission));
      request.contextValues.set(PRINCIPAL, principal);
    } catch (error) {
      throw toConnectError(error, deps.log, request.method);
    }
    return next(request);
  };
}

/** The caller the authorization interceptor accepted. */
function principalIn(context: HandlerContext): Principal {
  const principal = context.values.get(PRINCIPAL);
  if (principal === undefined) throw new UnauthenticatedError("no authenticated caller: the interceptor is missing");
  return principal;
}

/** A method's ts-proto codecs, with gRPC's guarded request decoder. */
type Codec = Pick<grpc.MethodDefinition<unknown, unknown>, "requestDeserialize" | "responseSerialize">;

/** The request as jobwatch's handler reads it: the Connect message's bytes, decoded as gRPC would. */
function requestOf(codec: Codec, method: DescMethod, message: unknown): unknown {
  const decoded = codec.requestDeserialize(Buffer.from(toBinary(method.input, message as never)));
  if (decoded instanceof MalformedRequest) throw decoded.error;
  return decoded;
}

/**
 * A WatchJobs stream resumed from a cursor may see no change for a while, and Connect sends the response
 * headers only with the first message: so once the handler accepts the request, a bookmark naming the
 * cursor it resumed from goes first (a position the client already has: nothing is skipped or repeated),
 * and the page knows at once that it is connected again.
 */
function acceptedMessage(method: DescMethod, request: unknown): WatchJobsResponse | undefined {
  if (method.localName !== "watchJobs") return undefined;
  const cursor = (request as WatchJobsRequest).afterCursor;
  if (cursor === "") return undefined;
  return { type: WatchJobsEventType.WATCH_JOBS_EVENT_TYPE_BOOKMARK, jobs: [], cursor };
}

/** JobService's Connect routes: every rpc served by its gRPC handler (see the file comment). */
export function jobServiceRoutes(deps: ConnectRoutesDeps): (router: ConnectRouter) => void {
  const { log, streams } = deps;
  const codecs = guardRequestDecoding(withSharedEncoding(JobServiceService), CONTRACT_REGISTRY);
  const implementation: Record<string, unknown> = {};
  for (const method of JOB_SERVICE.methods) {
    const codec = codecs[method.localName] as Codec | undefined;
    // WatchJob pushes (its gRPC path writes each change's shared bytes to the call); Connect pulls it.
    const handler =
      method.localName === "watchJob"
        ? pushAsStream(deps.handlers.watchJob)
        : (deps.handlers[method.localName as keyof JobServiceHandlers] as unknown);
    if (codec === undefined || handler === undefined) continue; // answered UNIMPLEMENTED by the router
    const responseOf = (response: unknown) => fromBinary(method.output, codec.responseSerialize(response));
    if (method.methodKind === "unary") {
      const unary = handler as UnaryHandler<unknown, unknown>;
      implementation[method.localName] = async (message: unknown, context: HandlerContext) => {
        try {
          const request = requestOf(codec, method, message);
          return responseOf(await unary(request, { principal: principalIn(context), signal: context.signal }));
        } catch (error) {
          throw toConnectError(error, log, method);
        }
      };
    } else if (method.methodKind === "server_streaming") {
      const stream = handler as ServerStreamingHandler<unknown, unknown>;
      implementation[method.localName] = async function* (message: unknown, context: HandlerContext) {
        const principal = principalIn(context);
        // One signal for "the client went away" and "the server ended the stream" (credentials revoked).
        const ending = new AbortController();
        const clientGone = (): void => ending.abort();
        context.signal.addEventListener("abort", clientGone, { once: true });
        let endedBy: Error | undefined;
        let release: (() => void) | undefined;
        let unwatch: (() => void) | undefined;
        let responses: AsyncIterator<unknown> | undefined;
        try {
          const request = requestOf(codec, method, message);
          release = streams.admit?.(principal);
          unwatch = streams.watchCredentials?.(principal, (error) => {
            endedBy = error;
            ending.abort(error);
          });
          let accepted!: () => void;
          const header = new Promise<"header">((resolve) => {
            accepted = () => resolve("header");
          });
          responses = stream(request, { principal, signal: ending.signal, sendHeader: accepted })[
            Symbol.asyncIterator
          ]();
          let pending = responses.next();
          // Not while the server shuts down: the stream is about to end UNAVAILABLE, and is not "connected".
          const bookmark = streams.closing?.aborted ? undefined : acceptedMessage(method, request);
          if (bookmark !== undefined) {
            const settled = pending.then(
              () => "message" as const,
              () => "message" as const,
            );
            if ((await Promise.race([header, settled])) === "header") yield responseOf(bookmark);
          }
          for (;;) {
            const next = await pending;
            if (next.done || ending.signal.aborted) break;
            yield responseOf(next.value);
            pending = responses.next();
          }
          if (endedBy !== undefined) throw endedBy;
        } catch (error) {
          throw toConnectError(endedBy ?? error, log, method);
        } finally {
          // The handler's own finally runs (as for-await would) once its wait ends with the signal.
          ending.abort();
          responses?.return?.(undefined).catch(() => undefined);
          release?.();
          unwatch?.();
          context.signal.removeEventListener("abort", clientGone);
        }
      };
    }
  }
  return (router) => {
    router.service(JOB_SERVICE, implementation as never, { interceptors: [authorization(deps)] });
  };
}
