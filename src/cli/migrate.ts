// `jobwatch migrate`: applies the schema migrations to the configured database and exits.
import type { Command } from "commander";
import { openStore } from "../store/open.js";
import { configFrom, withDatabaseOption } from "./database-option.js";
import { exitOnError } from "./fail.js";

/** Adds `migrate` to the program. */
export function register(program: Command): void {
  withDatabaseOption(program.command("migrate").description("apply the database migrations and exit")).action(
    exitOnError(async (flags: { databaseUrl?: string }) => {
      const config = configFrom(flags);
      const { store } = await openStore(config.databaseUrl);
      await store.close();
      process.stdout.write("database is up to date\n");
    }),
  );
}
