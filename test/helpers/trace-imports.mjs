// A Node module hook for tests (`node --import ./trace-imports.mjs`): appends the URL of every module the
// process loads to the file named by JOBWATCH_TRACE_IMPORTS, so a test can see what a command loads.
import { appendFileSync } from "node:fs";
import { createRequire, register } from "node:module";
import { pathToFileURL } from "node:url";
import { isMainThread } from "node:worker_threads";

// Imported with --import this runs on the main thread and registers itself; Node then loads it again on
// its hooks thread, where only the load hook below is used. CommonJS modules that other CommonJS code
// (or a createRequire) requires pass no hook: they are recorded at exit, from the require cache.
if (isMainThread) {
  register(import.meta.url);
  process.on("exit", () => {
    const file = process.env.JOBWATCH_TRACE_IMPORTS;
    const cache = Object.keys(createRequire(import.meta.url).cache);
    if (file) appendFileSync(file, cache.map((path) => `${pathToFileURL(path).href}\n`).join(""));
  });
}

/** Records the module's URL, then loads it as the rest of the chain (tsx included) would. */
export async function load(url, context, next) {
  const file = process.env.JOBWATCH_TRACE_IMPORTS;
  if (file) appendFileSync(file, `${url}\n`);
  return next(url, context);
}
