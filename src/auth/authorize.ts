// The one check every jobwatch call passes before its handler runs, over gRPC (the interceptor) and over
// the web dashboard's Connect endpoint alike: exactly one `authorization` value, an accepted credential,
// and the permission the contract declares for the rpc.
import { PermissionDeniedError, UnauthenticatedError } from "../errors.js";
import type { BearerAuthenticator } from "./bearer-authenticator.js";
import type { Principal } from "./principal.js";
import { hasPermission } from "./roles.js";

/** What authorizeCall needs of an authenticator. */
export type CallAuthenticator = Pick<BearerAuthenticator, "authenticate"> &
  Partial<Pick<BearerAuthenticator, "cached">>;

/**
 * The PermissionDeniedError for an rpc that declares no permission: a contract change that forgot the
 * option must not open the rpc to everyone (fail closed).
 */
export function undeclaredPermission(path: string): PermissionDeniedError {
  return new PermissionDeniedError(
    `rpc ${path} declares no required_permission; refusing (fail closed)`,
    "(none declared)",
  );
}

/** The principal of a credential already accepted since the last reload, when it has the permission. */
export function cachedCaller(
  authenticator: CallAuthenticator,
  values: readonly unknown[],
  permission: string,
): Principal | undefined {
  const header = values.length === 1 ? values[0] : undefined;
  const known = typeof header === "string" ? authenticator.cached?.(header) : undefined;
  return known !== undefined && hasPermission(known.role, permission) ? known : undefined;
}

/**
 * The caller of `rpc` ("pkg.Service/Method") whose request carried the `authorization` values given, or
 * the domain error that refuses it (UnauthenticatedError, PermissionDeniedError, UnavailableError).
 */
export async function authorizeCall(
  authenticator: CallAuthenticator,
  rpc: string,
  values: readonly unknown[],
  permission: string,
  /** Told the principal that authenticated but lacks the permission, before the refusal (the access log names it). */
  denied?: (principal: Principal) => void,
): Promise<Principal> {
  if (values.length > 1) {
    throw new UnauthenticatedError(
      `${values.length} authorization headers: send exactly one 'authorization: Bearer <token>'`,
      "REPEATED_AUTHORIZATION",
    );
  }
  const header = values[0];
  const principal = await authenticator.authenticate(typeof header === "string" ? header : undefined);
  if (!hasPermission(principal.role, permission)) {
    denied?.(principal);
    throw new PermissionDeniedError(
      `permission denied: ${rpc} requires permission '${permission}', which role '${principal.role}' does not grant`,
      permission,
    );
  }
  return principal;
}
