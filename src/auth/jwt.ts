// JWTs from an identity provider: verified with jose against a JWKS (URL or file), mapped to a Principal,
// and remembered until they expire so a repeated token costs no signature check.

import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import type { JWTPayload, JWTVerifyGetKey } from "jose";
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  customFetch,
  decodeProtectedHeader,
  errors as joseErrors,
  jwtVerify,
} from "jose";
import type { Logger } from "pino";
import { UnauthenticatedError, UnavailableError } from "../errors.js";
import type { Principal } from "./principal.js";
import { isRole, permissionsOf, ROLES } from "./roles.js";

/** The JWT settings of the server (JOBWATCH_JWT_*). */
export interface JwtSettings {
  /** http(s) URL of the identity provider's JWKS, or a path to a JWKS file (air-gapped set-ups). */
  jwksUrl: string;
  /** The `iss` every token must carry. */
  issuer: string;
  /** An `aud` every token must carry. */
  audience: string;
  /** The claim holding the username; `sub` when it is absent. Default preferred_username. */
  usernameClaim?: string;
  /** The claim holding the role (a string or an array). Default role. */
  roleClaim?: string;
}

/** Options beside the settings. */
export interface JwtVerifierOptions {
  /** Seconds of clock difference allowed for exp and nbf (default 30). */
  clockToleranceSec?: number;
  /** The least time between two JWKS fetches caused by an unknown kid, ms (default 10 s). */
  refetchCooldownMs?: number;
  /** How long a JWKS fetch may take, ms (default 5 s). */
  fetchTimeoutMs?: number;
  /** The most verified tokens remembered (default 10,000). */
  cacheLimit?: number;
  log?: Pick<Logger, "warn" | "info">;
  now?: () => number;
}

/** The algorithms accepted: what identity providers sign with. `none` and HMAC never are. */
const JWT_ALGORITHMS = ["RS256", "ES256", "EdDSA"];

/** Counters for the metrics: verified tokens found in the cache, and JWKS (re)loads. */
export interface JwtStats {
  cacheHits: number;
  cacheMisses: number;
  jwksLoads: number;
}

/** True when a bearer token has the shape of a JWT (three base64url parts); jobwatch tokens have no dot. */
export function looksLikeJwt(token: string): boolean {
  return /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/.test(token);
}

function unauthenticated(message: string, reason: string): UnauthenticatedError {
  return new UnauthenticatedError(message, reason);
}

/** Verifies JWTs against the identity provider's keys; see JwtSettings. */
export class JwtVerifier {
  readonly stats: JwtStats = { cacheHits: 0, cacheMisses: 0, jwksLoads: 0 };
  private readonly settings: Required<JwtSettings>;
  private readonly tolerance: number;
  private readonly cacheLimit: number;
  private readonly now: () => number;
  private readonly log: Pick<Logger, "warn" | "info"> | undefined;
  private readonly getKey: JWTVerifyGetKey;
  /** The remote key set (to load at start), or the file's loader. */
  private readonly preload: () => Promise<unknown>;
  private readonly source: string;
  private readonly cache = new Map<string, Principal & { expiresAt: number }>();

  constructor(settings: JwtSettings, options: JwtVerifierOptions = {}) {
    this.settings = {
      usernameClaim: "preferred_username",
      roleClaim: "role",
      ...settings,
    };
    this.tolerance = options.clockToleranceSec ?? 30;
    this.cacheLimit = options.cacheLimit ?? 10_000;
    this.now = options.now ?? Date.now;
    this.log = options.log;
    const cooldown = options.refetchCooldownMs ?? 10_000;
    if (/^https?:\/\//i.test(settings.jwksUrl)) {
      this.source = settings.jwksUrl;
      const remote = createRemoteJWKSet(new URL(settings.jwksUrl), {
        cooldownDuration: cooldown,
        timeoutDuration: options.fetchTimeoutMs ?? 5000,
        // jose fetches at first use, after cacheMaxAge, and for an unknown kid (at most once per cooldown).
        [customFetch]: (url, init) => {
          this.stats.jwksLoads++;
          return fetch(url, init);
        },
      });
      this.getKey = remote;
      this.preload = () => remote.reload();
    } else {
      this.source = settings.jwksUrl.replace(/^file:\/\//, "");
      const file = this.fileKeys(this.source, cooldown);
      this.getKey = file.getKey;
      this.preload = file.load;
    }
  }

  /**
   * Loads the keys once at startup. A JWKS file that cannot be read or is not a JWKS throws an Error
   * naming the file (serve stops with that line: a typo would otherwise look like an identity-provider
   * outage on every JWT call). A JWKS URL that does not answer is a warning naming the URL, and JWT calls
   * are UNAVAILABLE until it does: identity providers restart, and jobwatch tokens work meanwhile.
   */
  async start(): Promise<void> {
    if (/^https?:\/\//i.test(this.settings.jwksUrl)) {
      await this.preload().then(
        () => this.log?.info({ jwks: this.source }, "JWKS loaded"),
        (error: unknown) =>
          this.log?.warn(
            { err: error, jwks: this.source },
            `cannot fetch the JWKS at ${this.source}: JWT calls are UNAVAILABLE until it answers`,
          ),
      );
      return;
    }
    try {
      await this.preload();
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      // An fs error (ENOENT, EACCES, EISDIR ...), not jose's ERR_JWKS_INVALID.
      if (typeof code === "string" && /^E[A-Z]+$/.test(code)) {
        throw new Error(`cannot read the JWKS file ${this.source} (JOBWATCH_JWT_JWKS_URL): ${code}`);
      }
      throw new Error(
        `the JWKS file ${this.source} (JOBWATCH_JWT_JWKS_URL) is not a JSON Web Key Set: ${(error as Error).message}`,
      );
    }
  }

  /** The principal of a JWT verified before and not yet expired; no signature check. */
  cached(token: string): Principal | undefined {
    const hit = this.cache.get(token);
    if (hit === undefined) return undefined;
    if (this.now() >= hit.expiresAt) {
      this.cache.delete(token);
      return undefined;
    }
    this.stats.cacheHits++;
    return hit;
  }

  /**
   * The principal of a JWT: checks the signature with a key from the JWKS (refetched once for an unknown
   * kid), the algorithm, exp, nbf, iss and aud. Throws UnauthenticatedError with a message and a reason
   * per failure, or UnavailableError when the JWKS cannot be fetched (never lets the call in).
   */
  async verify(token: string): Promise<Principal> {
    const known = this.cached(token);
    if (known !== undefined) return known;
    this.stats.cacheMisses++;
    let alg: string | undefined;
    try {
      alg = decodeProtectedHeader(token).alg;
    } catch {
      throw unauthenticated("malformed JWT: its header is not base64url JSON", "MALFORMED_JWT");
    }
    if (alg === undefined || alg.toLowerCase() === "none") {
      throw unauthenticated(
        "unsigned JWT (alg none) refused: the token must be signed by the identity provider",
        "ALG_NONE",
      );
    }
    if (!JWT_ALGORITHMS.includes(alg)) {
      throw unauthenticated(
        `JWT signed with ${alg}, which is not accepted: use one of ${JWT_ALGORITHMS.join(", ")}`,
        "ALG_NOT_ALLOWED",
      );
    }
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, this.getKey, {
        algorithms: JWT_ALGORITHMS,
        issuer: this.settings.issuer,
        audience: this.settings.audience,
        clockTolerance: this.tolerance,
        currentDate: new Date(this.now()),
        requiredClaims: ["exp"],
      }));
    } catch (error) {
      throw this.explain(error);
    }
    const principal = this.principalOf(payload);
    if (this.cache.size >= this.cacheLimit) this.evictExpired();
    if (this.cache.size < this.cacheLimit) this.cache.set(token, principal);
    return principal;
  }

  private principalOf(payload: JWTPayload): Principal & { expiresAt: number } {
    const { usernameClaim, roleClaim } = this.settings;
    const named = payload[usernameClaim];
    const username = typeof named === "string" && named !== "" ? named : payload.sub;
    if (typeof username !== "string" || username === "") {
      throw unauthenticated(`JWT has neither a '${usernameClaim}' nor a 'sub' claim to name its user`, "NO_USERNAME");
    }
    const claimed = payload[roleClaim];
    const roles = (Array.isArray(claimed) ? claimed : [claimed]).filter((r): r is string => typeof r === "string");
    // One role per principal: of the roles claimed that the table knows, the one granting the most; an
    // unknown role grants nothing, and a token with none is known but may do nothing (PERMISSION_DENIED).
    const known = roles.filter(isRole);
    known.sort((a, b) => permissionsOf(b).size - permissionsOf(a).size || ROLES.indexOf(a) - ROLES.indexOf(b));
    const role = known[0] ?? roles[0] ?? "(none)";
    const id = typeof payload.jti === "string" ? payload.jti : createHash("sha256").update(username).digest("hex");
    return {
      tokenId: `jwt:${id.slice(0, 32)}`,
      username,
      role,
      // exp is required above. The credential is accepted until exp plus the clock tolerance (jwtVerify's
      // rule), so the cache and open streams keep it exactly that long: a token 1-30 s past exp that a
      // unary call accepts must not end a WatchJob at once.
      expiresAt: ((payload.exp ?? 0) + this.tolerance) * 1000,
    };
  }

  /** A jose failure as the error the caller gets: which check failed, and a reason code for programs. */
  private explain(error: unknown): Error {
    const at = (seconds: unknown): string =>
      typeof seconds === "number" ? new Date(seconds * 1000).toISOString() : "an unknown time";
    if (error instanceof joseErrors.JWTExpired) {
      return unauthenticated(`JWT expired at ${at(error.payload.exp)}: get a new token`, "TOKEN_EXPIRED");
    }
    if (error instanceof joseErrors.JWTClaimValidationFailed) {
      switch (error.claim) {
        case "nbf":
          return unauthenticated(
            `JWT not valid before ${at(error.payload.nbf)}: check the clocks`,
            "TOKEN_NOT_YET_VALID",
          );
        case "iss":
          return unauthenticated(
            `JWT issuer '${String(error.payload.iss)}' is not the expected '${this.settings.issuer}'`,
            "WRONG_ISSUER",
          );
        case "aud":
          return unauthenticated(
            `JWT audience ${JSON.stringify(error.payload.aud ?? null)} does not include '${this.settings.audience}'`,
            "WRONG_AUDIENCE",
          );
        case "exp":
          return unauthenticated("JWT has no exp claim: tokens without an expiry are refused", "NO_EXPIRY");
        default:
          return unauthenticated(`JWT claim '${error.claim}' is invalid: ${error.message}`, "INVALID_CLAIM");
      }
    }
    if (error instanceof joseErrors.JWSSignatureVerificationFailed) {
      return unauthenticated("JWT signature does not verify with the identity provider's key", "BAD_SIGNATURE");
    }
    if (error instanceof joseErrors.JWKSNoMatchingKey || error instanceof joseErrors.JWKSMultipleMatchingKeys) {
      return unauthenticated(
        "JWT signed by a key the identity provider's JWKS does not have (unknown kid)",
        "UNKNOWN_KEY",
      );
    }
    if (error instanceof joseErrors.JOSEAlgNotAllowed) {
      return unauthenticated(`JWT algorithm not accepted: use one of ${JWT_ALGORITHMS.join(", ")}`, "ALG_NOT_ALLOWED");
    }
    if (error instanceof joseErrors.JWTInvalid || error instanceof joseErrors.JWSInvalid) {
      return unauthenticated(`malformed JWT: ${error.message}`, "MALFORMED_JWT");
    }
    if (error instanceof joseErrors.JOSENotSupported) {
      // A header this server does not implement (an unknown `crit` extension, an unsupported key type):
      // the token's fault, not the key source's; retrying would not help.
      return unauthenticated(`JWT uses something this server does not support: ${error.message}`, "UNSUPPORTED_JWT");
    }
    // Anything else is the key source failing (unreachable, timed out, not a JWKS): never let the call
    // in, and say it is retryable. Where the keys come from goes to the log only (a URL may hold a secret).
    this.log?.warn({ err: error, jwks: this.source }, "cannot load the JWKS; JWT calls are UNAVAILABLE");
    return new UnavailableError(
      "cannot check the JWT right now: the identity provider's keys cannot be loaded; retry shortly",
    );
  }

  private evictExpired(): void {
    const now = this.now();
    for (const [token, principal] of this.cache) if (now >= principal.expiresAt) this.cache.delete(token);
  }

  /** Keys from a JWKS file, re-read (at most once per cooldown) when a token names a kid it lacks. */
  private fileKeys(path: string, cooldownMs: number): { getKey: JWTVerifyGetKey; load: () => Promise<unknown> } {
    let keys: JWTVerifyGetKey | undefined;
    let loadedAt = Number.NEGATIVE_INFINITY;
    const load = async (): Promise<JWTVerifyGetKey> => {
      loadedAt = this.now();
      this.stats.jwksLoads++;
      const text = await readFile(path, "utf8");
      keys = createLocalJWKSet(JSON.parse(text) as Parameters<typeof createLocalJWKSet>[0]);
      return keys;
    };
    const getKey: JWTVerifyGetKey = async (header, token) => {
      const current = keys ?? (await load());
      try {
        return await current(header, token);
      } catch (error) {
        if (!(error instanceof joseErrors.JWKSNoMatchingKey) || this.now() - loadedAt < cooldownMs) throw error;
        return (await load())(header, token);
      }
    };
    return { getKey, load };
  }
}
