// The --database-url (and --log-level) flags shared by the subcommands that open the database directly.
import type { Command } from "commander";
import type { Config, ConfigFlags } from "../config.js";
import { loadConfig } from "../config.js";

/** Adds --database-url to a subcommand. */
export function withDatabaseOption(command: Command): Command {
  return command.option(
    "--database-url <url>",
    "sqlite:<path> | sqlite::memory: | mysql://user:pass@host:3306/db (env JOBWATCH_DATABASE_URL; default sqlite:data/jobwatch.db)",
  );
}

/** The Config of this process: the environment, overridden by the subcommand's flags. */
export function configFrom(flags: ConfigFlags): Config {
  return loadConfig(process.env, flags);
}
