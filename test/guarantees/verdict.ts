// How a guarantees test reports a run: its counts on one line, then every violation (up to 30), then the asserts.
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { RunResult } from "./run.js";
import { MIN_TRANSITIONS } from "./run.js";

/** Prints the run's line and its violations; fails on any violation or too small a run. */
export function assertClean(result: RunResult): void {
  console.log(result.line);
  const counts = new Map<string, number>();
  for (const v of result.verdict.violations) {
    const key = `${v.kind}${v.watcher === undefined ? "" : ` (watcher ${v.watcher.replace(/-\d+$/, "-*")})`}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  for (const [key, n] of counts) console.log(`  ${n} x ${key}`);
  for (const v of result.verdict.violations.slice(0, 30)) {
    console.log(`  ${v.kind} job ${v.jobId}${v.watcher === undefined ? "" : ` watcher ${v.watcher}`}: ${v.detail}`);
  }
  if (result.verdict.violations.length > 0) {
    // The whole history, so a failure can be read back: every ack, every message of every watch call, the finals.
    const file = join(tmpdir(), `jobwatch-guarantees-${Date.now()}.json`);
    writeFileSync(
      file,
      JSON.stringify(result.history, (_k, v) => (v instanceof Set ? [...v] : v)),
    );
    console.log(`  the history is in ${file}`);
    for (const e of result.replicaErrors.slice(0, 10)) console.log(`  logged by ${e.slice(0, 1500)}`);
  }
  assert.deepEqual(
    result.verdict.violations.map((v) => v.kind),
    [],
    "violations (listed above)",
  );
  assert.ok(
    result.stats.transitions >= MIN_TRANSITIONS,
    `only ${result.stats.transitions} status changes acknowledged (at least ${MIN_TRANSITIONS} expected)`,
  );
}
