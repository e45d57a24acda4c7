// Token queries: create, list, revoke, and the active tokens the authenticator caches.
import { NotFoundError } from "../errors.js";
import { tokenRowToCredential, tokenRowToTokenInfo } from "./rows.js";
import type { TokenCredential, TokenInfo } from "./store.js";
import type { StoreDb } from "./transaction.js";

/** A new token (its secret already hashed by the caller), created now. */
export async function createToken(
  db: StoreDb,
  t: { tokenId: string; username: string; role: string; secretHash: string },
): Promise<TokenInfo> {
  const row = {
    token_id: t.tokenId,
    username: t.username,
    role: t.role,
    secret_hash: t.secretHash,
    created_at: db.now(),
    revoked_at: null,
  };
  const k = db.kysely;
  // Through a write transaction, like every write: a lock conflict is retried, never thrown raw.
  await db.write(function* () {
    yield k.insertInto("tokens").values(row).compile();
  });
  return tokenRowToTokenInfo(row);
}

/** Every token, oldest first (never a secret). */
export async function listTokens(db: StoreDb): Promise<TokenInfo[]> {
  const rows = await db.kysely.selectFrom("tokens").selectAll().orderBy("created_at").orderBy("token_id").execute();
  return rows.map(tokenRowToTokenInfo);
}

/** Marks a token revoked; NotFoundError when unknown; idempotent. */
export async function revokeToken(db: StoreDb, tokenId: string): Promise<TokenInfo> {
  // Only the first revocation sets revoked_at, so revoking twice keeps the original time.
  const k = db.kysely;
  const now = db.now();
  await db.write(function* () {
    yield k
      .updateTable("tokens")
      .set({ revoked_at: now })
      .where("token_id", "=", tokenId)
      .where("revoked_at", "is", null)
      .compile();
  });
  const row = await db.kysely.selectFrom("tokens").selectAll().where("token_id", "=", tokenId).executeTakeFirst();
  if (!row) throw new NotFoundError(`token ${tokenId} not found`);
  return tokenRowToTokenInfo(row);
}

/**
 * The tokens not revoked, with their secrets' hashes. Read causally: a token made (or revoked) through
 * another Galera node a moment ago counts at once (the authenticator reloads these every few seconds,
 * and when it meets an unknown token, so the wait costs little).
 */
export async function activeTokens(db: StoreDb): Promise<TokenCredential[]> {
  const rows = await db.causal.select(
    db.kysely
      .selectFrom("tokens")
      .select(["token_id", "username", "role", "secret_hash"])
      .where("revoked_at", "is", null),
  );
  return rows.map(tokenRowToCredential);
}

/** How many tokens exist, revoked ones included. */
export async function countTokens(db: StoreDb): Promise<number> {
  const row = await db.kysely
    .selectFrom("tokens")
    .select((eb) => eb.fn.countAll<number | string>().as("n"))
    .executeTakeFirstOrThrow();
  return Number(row.n);
}
