// How every `jobwatch` subcommand reports an error: one line `jobwatch: <message>` on stderr, no stack trace.
import { colorsFor } from "./colors.js";

/** The line a user sees for an error: its message only (the stack with JOBWATCH_DEBUG set). */
function errorLine(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Prints `jobwatch: <message>` on stderr, the program name in red on a terminal: the one error style. */
export function printError(message: string): void {
  const c = colorsFor(process.stderr);
  process.stderr.write(`${c.red("jobwatch:")} ${message}\n`);
}

/** Prints the stack too when JOBWATCH_DEBUG is set, for a bug report. */
function printDebugStack(error: unknown): void {
  if (process.env.JOBWATCH_DEBUG && error instanceof Error && error.stack) process.stderr.write(`${error.stack}\n`);
}

/** Commander's own usage errors ("error: unknown option ...") in the same style. */
export function usageErrorOutput(text: string, write: (text: string) => void): void {
  write(text.replace(/^error: /, "jobwatch: "));
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
      printError(errorLine(error));
      printDebugStack(error);
      process.exit(code);
    }
  };
}
