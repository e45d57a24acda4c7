// API tokens: how they are made, parsed, hashed for storage and checked without leaking timing.
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";

/** The prefix of every jobwatch token; makes a leaked token recognizable to secret scanners. */
const TOKEN_PREFIX = "jw_";

// tokenId: 6 random bytes as 12 lowercase hex chars, public (listed, used to revoke).
// secret: 32 random bytes as 43 base64url chars (256 bits). The id is fixed-length hex, so the `_`
// that base64url may contain in the secret never makes parsing ambiguous.
const TOKEN_ID_BYTES = 6;
const SECRET_BYTES = 32;
const TOKEN_RE = /^jw_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$/;
const TOKEN_ID_RE = /^[0-9a-f]{12}$/;

/** A token split into its public id and the whole string (which is what gets hashed). */
export interface ParsedToken {
  tokenId: string;
  token: string;
}

/** A freshly made token: show `token` to the user once, store `secretHash`. */
export interface NewToken {
  tokenId: string;
  token: string;
  secretHash: string;
}

/** Makes a new random token and the hash to store for it. */
export function generateToken(): NewToken {
  const tokenId = randomBytes(TOKEN_ID_BYTES).toString("hex");
  const secret = randomBytes(SECRET_BYTES).toString("base64url");
  const token = `${TOKEN_PREFIX}${tokenId}_${secret}`;
  return { tokenId, token, secretHash: hashToken(token) };
}

/** Splits a token; undefined when it is not in jobwatch's format. */
export function parseToken(token: string): ParsedToken | undefined {
  const m = TOKEN_RE.exec(token);
  return m ? { tokenId: m[1]!, token } : undefined;
}

/** True when `value` looks like a token id (12 lowercase hex chars). */
export function isTokenId(value: string): boolean {
  return TOKEN_ID_RE.test(value);
}

/**
 * The stored form of a token: sha256 hex of the whole token. A plain hash (no salt, no KDF) is enough
 * because the secret has 256 random bits; hashing the whole string binds the id to the secret.
 */
export function hashToken(token: string): string {
  return createHash("sha256").update(token, "utf8").digest("hex");
}

/**
 * True when `token` hashes to `storedHash`. Compares the two digests with timingSafeEqual, so the time
 * taken says nothing about how much of a guess was right.
 */
export function tokenMatches(token: string, storedHash: string): boolean {
  const presented = createHash("sha256").update(token, "utf8").digest();
  const stored = Buffer.from(storedHash, "hex");
  // A malformed stored hash (wrong length) cannot match; the length is not secret.
  if (stored.length !== presented.length) return false;
  return timingSafeEqual(presented, stored);
}
