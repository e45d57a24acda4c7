// The dashboard's sign-in session: the user's token in an HttpOnly, SameSite=Strict cookie, and a
// double-submit CSRF token (a readable cookie the page echoes in a header) for every call that uses it.
import { randomBytes, timingSafeEqual } from "node:crypto";
import { UnauthenticatedError } from "../errors.js";

/** The cookie holding the signed-in user's token: HttpOnly, so no script on the page can read it. */
export const SESSION_COOKIE = "jobwatch_session";
/** The cookie holding the CSRF token: readable by the page, which sends it back in CSRF_HEADER. */
const CSRF_COOKIE = "jobwatch_csrf";
/** The header every cookie-authenticated call must carry, equal to the CSRF cookie. */
export const CSRF_HEADER = "x-csrf-token";

/** How long a sign-in lasts at most (a JWT's own expiry, when sooner, ends it first). */
export const SESSION_MAX_AGE_MS = 8 * 60 * 60 * 1000;

/** Why a cookie-authenticated call without the matching CSRF header is refused. */
const CSRF_MESSAGE =
  "the session cookie came without a matching x-csrf-token header: calls must come from the dashboard page (reload it)";

/** Why a call with neither an authorization header nor a session is refused. */
export const SIGNED_OUT_MESSAGE =
  "not signed in: sign in with your jobwatch token (or send 'authorization: Bearer <token>')";

/** The cookies of a Cookie header, by name (the first of a repeated name wins). */
export function parseCookies(header: string | null | undefined): Map<string, string> {
  const cookies = new Map<string, string>();
  for (const part of (header ?? "").split(";")) {
    const eq = part.indexOf("=");
    if (eq <= 0) continue;
    const name = part.slice(0, eq).trim();
    if (!cookies.has(name)) cookies.set(name, part.slice(eq + 1).trim());
  }
  return cookies;
}

/** True when both strings are present and equal, compared in constant time. */
function sameSecret(a: string | undefined | null, b: string | undefined | null): boolean {
  if (!a || !b) return false;
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/**
 * The `authorization` values of a Connect call: its own header when it sends one (a script: no cookie
 * involved, so no CSRF either), else `Bearer <session token>` when the CSRF header matches the CSRF
 * cookie. Throws UnauthenticatedError for a session without it, or no credential at all.
 */
export function credentialOf(headers: Headers): string[] {
  const authorization = headers.get("authorization");
  if (authorization !== null) return authorization.split(/,\s*/);
  const cookies = parseCookies(headers.get("cookie"));
  const token = cookies.get(SESSION_COOKIE);
  if (token === undefined || token === "") throw new UnauthenticatedError(SIGNED_OUT_MESSAGE, "SIGNED_OUT");
  if (!sameSecret(headers.get(CSRF_HEADER), cookies.get(CSRF_COOKIE))) {
    throw new UnauthenticatedError(CSRF_MESSAGE, "CSRF_MISMATCH");
  }
  return [`Bearer ${decodeURIComponent(token)}`];
}

/** A fresh CSRF token. */
export function newCsrfToken(): string {
  return randomBytes(24).toString("base64url");
}

/** The Set-Cookie values that start a session of `maxAgeMs`; `secure` when the page is served over https. */
export function sessionCookies(token: string, csrf: string, maxAgeMs: number, secure: boolean): string[] {
  const common = `Path=/; SameSite=Strict; Max-Age=${Math.max(0, Math.floor(maxAgeMs / 1000))}${secure ? "; Secure" : ""}`;
  return [`${SESSION_COOKIE}=${encodeURIComponent(token)}; HttpOnly; ${common}`, `${CSRF_COOKIE}=${csrf}; ${common}`];
}

/** The Set-Cookie values that end the session. */
export function clearedCookies(secure: boolean): string[] {
  return sessionCookies("", "", 0, secure);
}

/** True when the request's CSRF header matches its CSRF cookie (sign-out, and any other form-like call). */
export function csrfMatches(cookieHeader: string | undefined, csrfHeader: string | undefined): boolean {
  return sameSecret(csrfHeader, parseCookies(cookieHeader).get(CSRF_COOKIE));
}
