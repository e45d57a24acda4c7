// The authenticated caller, and how handlers read it from the call metadata the interceptor sets.
import { UnauthenticatedError } from "../errors.js";
import { hasPermission } from "./roles.js";

/** Who is calling: the token they presented and the user and role it was made for. */
export interface Principal {
  tokenId: string;
  username: string;
  role: string;
}

/**
 * The metadata key through which the auth interceptor hands the principal to handlers. The interceptor
 * removes every client-sent value of it before setting its own, so its presence can be trusted.
 */
export const PRINCIPAL_METADATA_KEY = "x-jobwatch-principal";

/** The part of grpc-js's Metadata that principalOf reads (kept structural so src/auth needs no grpc). */
export interface MetadataReader {
  get(key: string): Array<string | Buffer>;
}

/**
 * The principal as a metadata value: JSON with every non-ASCII character escaped, because grpc-js
 * accepts only printable ASCII in a non-binary metadata value and usernames may be anything.
 */
export function encodePrincipal(principal: Principal): string {
  const json = JSON.stringify({
    tokenId: principal.tokenId,
    username: principal.username,
    role: principal.role,
  });
  return json.replace(/[^ -~]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

/** Parses a value made by encodePrincipal; undefined when it is not one. */
export function decodePrincipal(value: string): Principal | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    return undefined;
  }
  if (typeof parsed !== "object" || parsed === null) return undefined;
  const { tokenId, username, role } = parsed as Record<string, unknown>;
  if (typeof tokenId !== "string" || typeof username !== "string" || typeof role !== "string") {
    return undefined;
  }
  return { tokenId, username, role };
}

/**
 * The caller of a call whose metadata passed the auth interceptor. Throws UnauthenticatedError when
 * the principal is absent, which only happens on a server assembled without the interceptor.
 */
export function principalOf(metadata: MetadataReader): Principal {
  const values = metadata.get(PRINCIPAL_METADATA_KEY);
  const principal = values.length === 1 && typeof values[0] === "string" ? decodePrincipal(values[0]) : undefined;
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
