// A Node module hook for tests (`node --import ./trace-imports.mjs`): appends the URL of every module the
// process loads to the file named by JOBWATCH_TRACE_IMPORTS, so a test can see what a command loads.
import { appendFileSync } from "node:fs";
import { register } from "node:module";
import { isMainThread } from "node:worker_threads";

// Imported with --import this runs on the main thread and registers itself; Node then loads it again on
// its hooks thread, where only the load hook below is used.
if (isMainThread) register(import.meta.url);

/** Records the module's URL, then loads it as the rest of the chain (tsx included) would. */
export async function load(url, context, next) {
  const file = process.env.JOBWATCH_TRACE_IMPORTS;
  if (file) appendFileSync(file, `${url}\n`);
  return next(url, context);
}
