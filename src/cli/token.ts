// How `jobwatch token list` shows tokens; the token administration itself is src/auth/token-admin.ts.
import type { TokenInfo } from "../store/store.js";
import { table } from "./table.js";

/** `token list` output: a header and one aligned row per token, active or revoked since when. */
export function formatTokenTable(rows: readonly TokenInfo[]): string {
  if (rows.length === 0) return "no tokens (create one with 'jobwatch token create --user NAME --role ROLE')";
  return table(
    ["ID", "USER", "ROLE", "CREATED", "STATUS"],
    rows.map((t) => [
      t.tokenId,
      t.username,
      t.role,
      new Date(t.createdAt).toISOString(),
      t.revokedAt === null ? "active" : `revoked ${new Date(t.revokedAt).toISOString()}`,
    ]),
  );
}
