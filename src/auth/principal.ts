// The authenticated caller, and how handlers read it from the call metadata the interceptor sets.
import { UnauthenticatedError } from "../errors.js";
import { hasPermission } from "./roles.js";

/** Who is calling: the token they presented and the user and role it was made for. */
export interface Principal {
  tokenId: string;
  username: string;
  role: string;
  /**
   * When the credential stops being valid (ms since the epoch): a JWT's `exp`. Undefined for jobwatch
   * tokens, which do not expire (they are revoked). Open streams should end by then.
   */
  expiresAt?: number;
}

/**
 * The property of a call's metadata object that holds its principal, set by the auth interceptor. The
 * handler receives the very object the interceptor passed on, so reading it is a property load (no JSON
 * round trip, and no WeakMap entry per call for the garbage collector to trace), and a client cannot
 * forge it: nothing it sends becomes a property keyed by this module's own symbol.
 */
const PRINCIPAL = Symbol("jobwatch.principal");

type WithPrincipal = { [PRINCIPAL]?: Principal };

/** Records who is calling on a call's metadata (the auth interceptor does this, before the handler runs). */
export function attachPrincipal(metadata: object, principal: Principal): void {
  (metadata as WithPrincipal)[PRINCIPAL] = principal;
}

/**
 * The principal the auth interceptor attached to a call's metadata: the caller of an accepted call, or
 * of one refused for a missing permission (whose metadata never reaches a handler), for the access log.
 */
export function findPrincipal(metadata: object): Principal | undefined {
  return (metadata as WithPrincipal)[PRINCIPAL];
}

/**
 * The caller of a call whose metadata passed the auth interceptor. Throws UnauthenticatedError when
 * the principal is absent, which only happens on a server assembled without the interceptor.
 */
export function principalOf(metadata: object): Principal {
  const principal = findPrincipal(metadata);
  if (!principal) {
    throw new UnauthenticatedError(
      "no authenticated caller on this call: the server is misconfigured (auth interceptor missing)",
    );
  }
  return principal;
}

/** True when the principal may see and act on every user's jobs (the manage_jobs permission). */
export function canManageJobs(principal: Principal): boolean {
  return hasPermission(principal.role, "manage_jobs");
}
