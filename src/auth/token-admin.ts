// Token administration over a store: create (checked against the role and username rules), list, revoke, bootstrap.
import { InvalidArgumentError } from "../errors.js";
import type { JobStore, TokenInfo } from "../store/store.js";
import type { Role } from "./roles.js";
import { isRole, ROLES } from "./roles.js";
import { generateToken, isTokenId, parseToken } from "./tokens.js";
import { usernameProblem } from "./username.js";

/** A token just made: `token` is the secret, shown once and never stored. */
export interface CreatedToken {
  tokenId: string;
  token: string;
  username: string;
  role: Role;
}

/** The user name of the token that `serve` makes on a database with no tokens. */
const BOOTSTRAP_USER = "admin";

// Errors name the `jobwatch token` flags (--user, --role, ID): the command is where people pass these
// values; the bootstrap passes fixed, valid ones.

/** Makes a token for `user` with `role`; throws InvalidArgumentError naming the bad flag. */
export async function createToken(
  store: Pick<JobStore, "createToken">,
  input: { user: string; role: string },
): Promise<CreatedToken> {
  const user = input.user.trim();
  // The same rule as CreateJob's username, so every token's user can own jobs.
  const problem = usernameProblem(user);
  if (problem !== undefined) throw InvalidArgumentError.field("--user", problem);
  if (!isRole(input.role)) {
    throw InvalidArgumentError.field("--role", `unknown role '${input.role}'; use one of ${ROLES.join(", ")}`);
  }
  const made = generateToken();
  await store.createToken({ tokenId: made.tokenId, username: user, role: input.role, secretHash: made.secretHash });
  return { tokenId: made.tokenId, token: made.token, username: user, role: input.role };
}

/** Every token, active and revoked, as the store lists them (never a secret). */
export async function listTokens(store: Pick<JobStore, "listTokens">): Promise<TokenInfo[]> {
  return store.listTokens();
}

/**
 * Revokes a token by its id (a whole token is accepted too, for convenience). Idempotent; throws
 * InvalidArgumentError for something that is not a token id and NotFoundError for an unknown one.
 */
export async function revokeToken(store: Pick<JobStore, "revokeToken">, idOrToken: string): Promise<TokenInfo> {
  const value = idOrToken.trim();
  const tokenId = parseToken(value)?.tokenId ?? value;
  if (!isTokenId(tokenId)) {
    throw InvalidArgumentError.field(
      "ID",
      `'${value}' is not a token id (12 hex characters, as 'jobwatch token list' shows)`,
    );
  }
  return store.revokeToken(tokenId);
}

/**
 * On a database with no tokens at all, makes an admin token for user "admin" and returns it for
 * `serve` to print once; otherwise undefined. Two replicas starting at once on an empty database may
 * each make one; both are valid admin tokens and each is printed by the process that made it.
 */
export async function ensureBootstrapToken(
  store: Pick<JobStore, "countTokens" | "createToken">,
): Promise<CreatedToken | undefined> {
  if ((await store.countTokens()) > 0) return undefined;
  return createToken(store, { user: BOOTSTRAP_USER, role: "admin" });
}

/**
 * The lines `serve` prints with a bootstrap token: the token and how to use it. `command` is how the
 * person runs jobwatch where the server runs (`jobwatch`, `npx jobwatch` in a checkout ...).
 */
export function bootstrapTokenMessage(
  created: CreatedToken,
  address: string,
  tls = false,
  command = "jobwatch",
): string {
  return [
    `No API tokens existed, so an admin token was created for user '${created.username}' (id ${created.tokenId}).`,
    "It is shown only this once; keep it:",
    "",
    `  ${created.token}`,
    "",
    "Use it with the jobwatch command (in another terminal):",
    `  export JOBWATCH_ADDRESS=${address} JOBWATCH_TOKEN=<the token above>${tls ? " JOBWATCH_CA=<the CA of the server's certificate>" : ""}`,
    `  ${command} demo`,
    "See the services with grpcurl (reflection needs no token):",
    `  grpcurl ${tls ? "-cacert <the CA of the server's certificate>" : "-plaintext"} ${address} list`,
    "Make tokens for people and workers:",
    `  ${command} token create --user alice --role normal_user`,
    `  ${command} token create --user worker-1 --role service`,
  ].join("\n");
}
