// Routes a bearer token to the check that knows it: a JWT to the identity provider's keys, anything else
// to jobwatch's own opaque tokens. Counts cache hits for the metrics.
import { UnauthenticatedError } from "../errors.js";
import type { JwtVerifier } from "./jwt.js";
import { looksLikeJwt } from "./jwt.js";
import type { OpaqueTokenAuthenticator } from "./opaque-token-authenticator.js";
import type { Principal } from "./principal.js";

/** Cache counters of the opaque tokens (the JWT verifier keeps its own). */
export interface TokenCacheStats {
  hits: number;
  misses: number;
}

/** What to tell a caller who sends a JWT to a server with no JWT settings. */
const JWT_NOT_CONFIGURED_MESSAGE =
  "this server accepts no JWTs (JOBWATCH_JWT_JWKS_URL is not set): use a jobwatch token from 'jobwatch token create'";

/** The token of a `Bearer <token>` value; undefined when the value has another shape. */
function bearerToken(authorization: string): string | undefined {
  return /^\s*bearer +(\S+)\s*$/i.exec(authorization)?.[1];
}

/** An authenticator for the interceptor: JWTs (when configured) beside jobwatch's opaque tokens. */
export class BearerAuthenticator {
  readonly tokenStats: TokenCacheStats = { hits: 0, misses: 0 };

  constructor(
    private readonly tokens: Pick<OpaqueTokenAuthenticator, "authenticate" | "cached" | "watchCredentials">,
    readonly jwt: JwtVerifier | undefined,
  ) {}

  /** The principal of a header accepted before and still valid, without waiting; else undefined. */
  cached(authorization: string | undefined): Principal | undefined {
    if (authorization === undefined) return undefined;
    // jobwatch tokens have no dot: a dot means a JWT, so the opaque path costs one indexOf.
    if (authorization.indexOf(".") !== -1) {
      const token = this.jwt === undefined ? undefined : bearerToken(authorization);
      return token === undefined ? undefined : this.jwt?.cached(token);
    }
    const hit = this.tokens.cached(authorization);
    if (hit !== undefined) this.tokenStats.hits++;
    return hit;
  }

  /**
   * Calls `end` when an open stream's credential stops being valid: a jobwatch token revoked (seen at
   * the next token reload), or any credential's expiresAt (a JWT's exp) passing.
   */
  watchCredentials(principal: Principal, end: (error: UnauthenticatedError) => void): () => void {
    return this.tokens.watchCredentials(principal, end);
  }

  /** The caller named by an `authorization` value; throws UnauthenticatedError or UnavailableError. */
  async authenticate(authorization: string | undefined): Promise<Principal> {
    const token = authorization === undefined ? undefined : bearerToken(authorization);
    if (token !== undefined && looksLikeJwt(token)) {
      if (this.jwt === undefined) throw new UnauthenticatedError(JWT_NOT_CONFIGURED_MESSAGE, "JWT_NOT_CONFIGURED");
      return this.jwt.verify(token);
    }
    const hit = this.tokens.cached(authorization);
    if (hit !== undefined) {
      this.tokenStats.hits++;
      return hit;
    }
    this.tokenStats.misses++;
    return this.tokens.authenticate(authorization);
  }
}
