#!/usr/bin/env node
// The `jobwatch` command: the server side (serve, migrate, token) and the client side (get, watch, ...).
import { createRequire } from "node:module";
import { Command } from "commander";
import { usageErrorOutput } from "./fail.js";

/** What each subcommand module exports. */
interface Subcommand {
  register(program: Command): void;
}

// Each subcommand's module is imported only when that subcommand runs, so a client command such as
// `jobwatch get` never loads the server, the store or the database drivers (startup 0.4 s -> see bench).
// The order is the order of `jobwatch help`.
const SUBCOMMANDS: Record<string, () => Promise<Subcommand>> = {
  // Server side: run on the host that owns the database.
  serve: () => import("./serve.js"),
  migrate: () => import("./migrate.js"),
  token: () => import("./token-command.js"),
  // Client side: talk to a running server (JOBWATCH_ADDRESS, JOBWATCH_TOKEN).
  get: () => import("./get.js"),
  watch: () => import("./watch.js"),
  top: () => import("./top.js"),
  list: () => import("./list.js"),
  stats: () => import("./stats.js"),
  cancel: () => import("./cancel.js"),
  job: () => import("./job.js"),
  demo: () => import("./demo.js"),
  webhook: () => import("./webhook.js"),
  // For AI assistants: the job tools over the Model Context Protocol.
  mcp: () => import("./mcp.js"),
};

const { version } = createRequire(import.meta.url)("../../package.json") as { version: string };

const program = new Command("jobwatch")
  .description("jobwatch: the state of background jobs, and every change while you wait")
  .version(version)
  .showHelpAfterError("(run 'jobwatch help' for the commands)")
  .configureOutput({ outputError: usageErrorOutput });

for (const name of subcommandsFor(process.argv.slice(2))) {
  (await SUBCOMMANDS[name]!()).register(program);
}
await program.parseAsync(process.argv);

/**
 * The subcommands to load for these arguments: the one named, none for --version, and all of them for help,
 * no command or an unknown one (so commander lists them or suggests the nearest).
 */
function subcommandsFor(args: readonly string[]): string[] {
  const first = args.find((arg) => !arg.startsWith("-"));
  if (first !== undefined && Object.hasOwn(SUBCOMMANDS, first)) return [first];
  if (first === undefined && args.some((arg) => arg === "-V" || arg === "--version")) return [];
  return Object.keys(SUBCOMMANDS);
}
