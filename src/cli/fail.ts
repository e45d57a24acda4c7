// How every `jobwatch` subcommand ends on an error: one line on stderr, no stack trace, a non-zero exit.
import { ConfigError } from "../config.js";
import { JobwatchError } from "../errors.js";

/** The line a user sees for an error: expected errors as they are, anything else with its message only. */
export function errorLine(error: unknown): string {
  if (error instanceof ConfigError || error instanceof JobwatchError) return error.message;
  if (error instanceof Error) return error.message;
  return String(error);
}

/** Runs a subcommand's action; on an error prints `jobwatch: <message>` and exits with `code`. */
export function exitOnError<A extends unknown[]>(
  action: (...args: A) => Promise<void>,
  code = 1,
): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await action(...args);
    } catch (error) {
      process.stderr.write(`jobwatch: ${errorLine(error)}\n`);
      if (process.env.JOBWATCH_DEBUG && error instanceof Error && error.stack) process.stderr.write(`${error.stack}\n`);
      process.exit(code);
    }
  };
}
