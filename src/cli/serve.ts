// `jobwatch serve` (what `npm start` runs): migrate, then serve gRPC until SIGINT/SIGTERM.
import type { Command } from "commander";
import type { ConfigFlags } from "../config.js";
import { DURATION_RULE } from "../duration.js";
import { serve } from "../main.js";
import { commandName } from "./command-name.js";
import { configFrom, withDatabaseOption } from "./database-option.js";
import { exitOnError } from "./fail.js";

/** Adds `serve` to the program. */
export function register(program: Command): void {
  withDatabaseOption(
    program.command("serve").description("start the jobwatch gRPC server (migrates the database first)"),
  )
    .option("--listen <host:port>", "address to listen on (env JOBWATCH_LISTEN; default 0.0.0.0:50051)")
    .option("--watch-poll-ms <duration>", "change-feed poll interval (env JOBWATCH_WATCH_POLL_MS; default 200)")
    .option("--log-level <level>", "fatal|error|warn|info|debug|trace|silent (env JOBWATCH_LOG_LEVEL; default info)")
    .option("--tls-cert <file>", "PEM certificate: serve TLS (env JOBWATCH_TLS_CERT; re-read when it changes)")
    .option("--tls-key <file>", "PEM private key of --tls-cert (env JOBWATCH_TLS_KEY)")
    .option(
      "--tls-client-ca <file>",
      "PEM CA: require client certificates it signed, mTLS (env JOBWATCH_TLS_CLIENT_CA)",
    )
    .addHelpText(
      "after",
      `\nDurations (--watch-poll-ms and the JOBWATCH_CANCEL_GRACE, _STALE_AFTER, _RETENTION, _SWEEP_INTERVAL ` +
        `variables): ${DURATION_RULE}.`,
    )
    .action(
      exitOnError(async (flags: ConfigFlags) => {
        await serve(configFrom(flags), { command: commandName() });
      }),
    );
}
