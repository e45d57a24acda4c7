// Spawning the real `jobwatch` command in tests, and waiting on its output and exit code.
//
// API:
//   start(args, { env?, cwd?, nodeArgs? })  the CLI running; waitFor(/pattern/) on stdout or stderr, exited -> exit code
//   cli(args, { env?, cwd?, nodeArgs? })    the CLI run to completion, with stdout, stderr and code
//   cliCommand(args)                         { command, args } that run the CLI, for other spawners
// JOBWATCH_TEST_CLI=dist/cli/main.js runs the same tests against the build.
import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const CLI = fileURLToPath(
  new URL(process.env.JOBWATCH_TEST_CLI ?? "src/cli/main.ts", new URL("../../", import.meta.url)),
);
// An absolute loader, so the CLI also runs from a working directory outside the repository.
const TSX = import.meta.resolve("tsx");

/** A spawned CLI process whose output the test can wait on. */
export interface Run {
  readonly child: ChildProcess;
  stdout: string;
  stderr: string;
  /** Resolves when stdout or stderr matches (rejects if the process exits first). */
  waitFor(pattern: RegExp): Promise<void>;
  /** Resolves with the exit code once the process has exited. */
  readonly exited: Promise<number | null>;
}

/** Where and with what environment to run the CLI; JOBWATCH_TOKEN and colours are cleared unless given. */
export interface RunOptions {
  env?: Record<string, string | undefined>;
  cwd?: string;
  /** Extra node options placed before the script, e.g. ["--import", hook]. */
  nodeArgs?: string[];
}

/** The command line that runs the CLI with `args` (node, the tsx loader unless built, the script, args). */
export function cliCommand(args: string[], nodeArgs: string[] = []): { command: string; args: string[] } {
  const loader = CLI.endsWith(".ts") ? ["--import", TSX] : [];
  return { command: process.execPath, args: [...loader, ...nodeArgs, CLI, ...args] };
}

/** Starts the CLI with `args`. */
export function start(args: string[], options: RunOptions = {}): Run {
  const line = cliCommand(args, options.nodeArgs);
  const child = spawn(line.command, line.args, {
    cwd: options.cwd ?? ROOT,
    env: { ...process.env, FORCE_COLOR: undefined, JOBWATCH_TOKEN: undefined, NO_COLOR: "1", ...options.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const run: Run = {
    child,
    stdout: "",
    stderr: "",
    waitFor: (pattern) =>
      new Promise((resolve, reject) => {
        const matches = (): boolean => pattern.test(run.stdout) || pattern.test(run.stderr);
        const check = (): void => {
          if (matches()) {
            child.stdout!.off("data", check);
            child.stderr!.off("data", check);
            resolve();
          }
        };
        child.stdout!.on("data", check);
        child.stderr!.on("data", check);
        void run.exited.then(() =>
          matches() ? resolve() : reject(new Error(`exited before ${pattern}: ${run.stdout}${run.stderr}`)),
        );
        check();
      }),
    exited: new Promise((resolve) => child.on("close", (code) => resolve(code))),
  };
  child.stdout!.setEncoding("utf8").on("data", (chunk: string) => (run.stdout += chunk));
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => (run.stderr += chunk));
  return run;
}

/** Runs the CLI to completion. */
export async function cli(args: string[], options: RunOptions = {}): Promise<Run & { code: number | null }> {
  const run = start(args, options);
  const code = await run.exited;
  return Object.assign(run, { code });
}
