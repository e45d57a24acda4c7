#!/usr/bin/env node
// The `jobwatch` command: the server side (serve, migrate, token) and the client side (get, watch, ...).
import { createRequire } from "node:module";
import { Command } from "commander";
import { register as registerCancel } from "./cancel.js";
import { register as registerDemo } from "./demo.js";
import { register as registerGet } from "./get.js";
import { register as registerJob } from "./job.js";
import { register as registerList } from "./list.js";
import { register as registerMigrate } from "./migrate.js";
import { register as registerServe } from "./serve.js";
import { register as registerStats } from "./stats.js";
import { register as registerToken } from "./token-command.js";
import { register as registerWatch } from "./watch.js";

const { version } = createRequire(import.meta.url)("../../package.json") as { version: string };

const program = new Command("jobwatch")
  .description("jobwatch: the state of background jobs, and every change while you wait")
  .version(version)
  .showHelpAfterError("(run 'jobwatch help' for the commands)");

// Server side: run on the host that owns the database.
registerServe(program);
registerMigrate(program);
registerToken(program);
// Client side: talk to a running server (JOBWATCH_ADDRESS, JOBWATCH_TOKEN).
registerGet(program);
registerWatch(program);
registerList(program);
registerStats(program);
registerCancel(program);
registerJob(program);
registerDemo(program);

await program.parseAsync(process.argv);
