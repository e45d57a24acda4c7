// How a person runs this `jobwatch` from where it runs now, for the commands the CLI prints for them to type.
import { accessSync, constants, realpathSync } from "node:fs";
import { delimiter, dirname, join, relative, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";

/** The checkout (or installed package) this file belongs to: two folders up from src/cli or dist/cli. */
const PACKAGE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");

function real(path: string): string | undefined {
  try {
    return realpathSync(path);
  } catch {
    return undefined;
  }
}

/**
 * What to type to run this jobwatch: `jobwatch` when that name on PATH is this very program (installed
 * or linked), `npx jobwatch` inside its checkout (where a bare `jobwatch` is "command not found"),
 * otherwise `node <path>/dist/cli/main.js`, which works from anywhere.
 */
export function commandName(
  env: Record<string, string | undefined> = process.env,
  cwd: string = process.cwd(),
  script: string | undefined = process.argv[1],
): string {
  const self = script === undefined ? undefined : real(script);
  for (const dir of (env["PATH"] ?? "").split(delimiter)) {
    if (dir === "") continue;
    const candidate = join(dir, "jobwatch");
    try {
      accessSync(candidate, constants.X_OK);
    } catch {
      continue;
    }
    // The first jobwatch on PATH is the one the shell runs: it must be this one.
    return self !== undefined && real(candidate) === self ? "jobwatch" : fallback(cwd);
  }
  return fallback(cwd);
}

function fallback(cwd: string): string {
  const inside = relative(PACKAGE_ROOT, resolve(cwd));
  if (inside === "" || (!inside.startsWith(`..${sep}`) && inside !== ".." && !inside.startsWith(sep))) {
    return "npx jobwatch";
  }
  return `node ${join(PACKAGE_ROOT, "dist", "cli", "main.js")}`;
}
