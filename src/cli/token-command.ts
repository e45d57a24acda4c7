// `jobwatch token create|list|revoke`: manages API tokens directly in the configured database (run it on
// the server host, or anywhere that can reach the database).
import type { Command } from "commander";
import { ROLES } from "../auth/roles.js";
import { createToken, listTokens, revokeToken } from "../auth/token-admin.js";
import { openStore } from "../store/open.js";
import type { JobStore } from "../store/store.js";
import { configFrom, withDatabaseOption } from "./database-option.js";
import { exitOnError } from "./fail.js";
import { formatTokenTable } from "./token.js";

/** Runs `work` on the configured store and closes it. */
async function withStore(flags: { databaseUrl?: string }, work: (store: JobStore) => Promise<void>): Promise<void> {
  const { store } = await openStore(configFrom(flags).databaseUrl);
  try {
    await work(store);
  } finally {
    await store.close();
  }
}

/** Adds `token` and its subcommands to the program. */
export function register(program: Command): void {
  const token = program.command("token").description("create, list and revoke API tokens (in the database itself)");

  withDatabaseOption(token.command("create").description("create a token and print it once"))
    .requiredOption("--user <name>", "the user the token acts as (jobs are visible to their username)")
    .requiredOption("--role <role>", `one of ${ROLES.join(", ")}`)
    .action(
      exitOnError(async (flags: { databaseUrl?: string; user: string; role: string }) => {
        await withStore(flags, async (store) => {
          const made = await createToken(store, flags);
          process.stdout.write(`${made.token}\n`);
          process.stderr.write(
            `token ${made.tokenId} for user '${made.username}' with role '${made.role}'; shown only once.\n` +
              `use it as the metadata 'authorization: Bearer <token>' (or JOBWATCH_TOKEN for the jobwatch client)\n`,
          );
        });
      }),
    );

  withDatabaseOption(token.command("list").description("list tokens (ids, users, roles; never the secrets)")).action(
    exitOnError(async (flags: { databaseUrl?: string }) => {
      await withStore(flags, async (store) => {
        process.stdout.write(`${formatTokenTable(await listTokens(store))}\n`);
      });
    }),
  );

  withDatabaseOption(token.command("revoke").description("revoke a token (stops working within 5 seconds)"))
    .argument("<id>", "the token id, as 'jobwatch token list' shows it")
    .action(
      exitOnError(async (id: string, flags: { databaseUrl?: string }) => {
        await withStore(flags, async (store) => {
          const revoked = await revokeToken(store, id);
          process.stdout.write(`revoked token ${revoked.tokenId} of user '${revoked.username}'\n`);
        });
      }),
    );
}
