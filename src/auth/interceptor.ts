// The grpc-js server interceptor that authenticates every call and checks the rpc's permission before
// any handler runs, and hands handlers the caller through metadata no client can forge.
import * as grpc from "@grpc/grpc-js";
import type { Logger } from "pino";
import { PermissionDeniedError, UnauthenticatedError } from "../errors.js";
import type { CallAuthenticator } from "./authorize.js";
import { authorizeCall, cachedCaller, undeclaredPermission } from "./authorize.js";
import type { Principal } from "./principal.js";
import { attachPrincipal } from "./principal.js";

/** Services anyone may call without a token: health checks and server reflection. */
const DEFAULT_PUBLIC_PREFIXES: readonly string[] = [
  "/grpc.health.v1.Health/",
  "/grpc.reflection.v1.ServerReflection/",
  "/grpc.reflection.v1alpha.ServerReflection/",
];

/** Options of authInterceptor. */
export interface AuthInterceptorOptions {
  authenticator: CallAuthenticator;
  /** gRPC path ("/pkg.Service/Method") -> the permission the contract declares for it. */
  permissions: ReadonlyMap<string, string>;
  /** Path prefixes that need no token; defaults to DEFAULT_PUBLIC_PREFIXES. */
  publicPrefixes?: readonly string[];
  log: Pick<Logger, "debug" | "warn" | "error">;
  /**
   * Turns a rejection (UnauthenticatedError, PermissionDeniedError, UnavailableError, anything else) into
   * the call's status: the server's one error mapping, so a rejection here reads like one from a handler.
   */
  toStatus(error: unknown): grpc.StatusObject;
}

/**
 * A server interceptor for the `interceptors` option of `new grpc.Server`. Put it first in that array:
 * grpc-js runs the first interceptor first on incoming metadata, so no other interceptor or handler
 * sees a call it rejects.
 */
export function authInterceptor(options: AuthInterceptorOptions): grpc.ServerInterceptor {
  const { authenticator, permissions, log, toStatus } = options;
  const publicPrefixes = options.publicPrefixes ?? DEFAULT_PUBLIC_PREFIXES;
  // What the interceptor needs to know of each path, worked out once per path of the contract (every call
  // is on one of them): the hot path allocates no strings, closures or arrays for a token already seen.
  const routes = new Map<string, Route>();
  const routeOf = (path: string): Route => {
    const known = routes.get(path);
    if (known !== undefined) return known;
    const route: Route = {
      rpc: path.replace(/^\//, ""),
      isPublic: publicPrefixes.some((prefix) => path.startsWith(prefix)),
      permission: permissions.get(path),
    };
    if (route.isPublic || route.permission !== undefined) routes.set(path, route);
    return route;
  };

  // Ends the call with the status; the handler never starts because the metadata is never passed on.
  const reject = (call: grpc.ServerInterceptingCallInterface, rpc: string, error: unknown): void => {
    if (error instanceof UnauthenticatedError || error instanceof PermissionDeniedError) {
      log.debug({ rpc, peer: call.getPeer(), reason: error.message }, "call rejected");
    }
    call.sendStatus(toStatus(error));
  };

  // Resolves the principal or throws a domain error; never touches the call. A principal whose role
  // lacks the permission is attached all the same before the refusal, so the access log names the
  // user: the metadata goes no further (the call ends here), so no handler can take it as accepted.
  const authorize = (metadata: grpc.Metadata, route: Route, permission: string): Promise<Principal> =>
    authorizeCall(authenticator, route.rpc, metadata.get("authorization"), permission, (principal) =>
      attachPrincipal(metadata, principal),
    );

  const accept = (metadata: grpc.Metadata, principal: Principal): void => {
    attachPrincipal(metadata, principal);
    // The handler learns the caller from the principal; the secret goes no further.
    metadata.remove("authorization");
  };

  return (method, call) => {
    const route = routeOf(method.path);
    return new grpc.ServerInterceptingCall(call, {
      start(next) {
        next({
          onReceiveMetadata(metadata, mdNext) {
            if (route.isPublic) {
              mdNext(metadata);
              return;
            }
            const permission = route.permission;
            if (permission === undefined) {
              // A contract change that forgot the option must not open the rpc to everyone.
              const refusal = undeclaredPermission(method.path);
              log.warn({ rpc: route.rpc }, refusal.message);
              reject(call, route.rpc, refusal);
              return;
            }
            // A token already accepted since the last reload: passed on in this same turn.
            const values = metadata.get("authorization");
            const known = cachedCaller(authenticator, values, permission);
            if (known !== undefined) {
              accept(metadata, known);
              mdNext(metadata);
              return;
            }
            // Authentication may reload tokens (async); grpc-js holds any messages that arrive
            // meanwhile and delivers them after mdNext, and mdNext is a no-op once the call is cancelled.
            authorize(metadata, route, permission).then(
              (principal) => {
                accept(metadata, principal);
                mdNext(metadata);
              },
              (error: unknown) => reject(call, route.rpc, error),
            );
          },
        });
      },
    });
  };
}

/** What the interceptor knows of one gRPC path. */
interface Route {
  /** "pkg.Service/Method", for logs and messages. */
  rpc: string;
  /** Needs no token (health, reflection). */
  isPublic: boolean;
  /** The permission the contract declares for it; undefined: none (refused, fail closed). */
  permission: string | undefined;
}
