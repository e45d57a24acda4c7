// `jobwatch watch` on a real terminal: the bar line as tmux shows it at 80 and 120 columns, colours on.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { after, before, describe, test } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { createClient, type JobwatchClient } from "../src/client/index.js";
import { cliCommand } from "./helpers/cli.js";
import { startTestServer, type TestServer } from "./helpers/server.js";

/** A tmux server of this test's own (its own socket), so nobody else's sessions are touched. */
const SOCKET = `jobwatch-test-${process.pid}`;

function tmux(args: string[]): string {
  return execFileSync("tmux", ["-L", SOCKET, ...args], { encoding: "utf8" });
}

/** Quotes a word for the shell tmux runs the command with. */
const shellWord = (word: string): string => `'${word.replace(/'/g, `'\\''`)}'`;

/** The screen of session `name` as a person sees it (no colour codes), one string per row. */
function screen(name: string): string[] {
  return tmux(["capture-pane", "-p", "-t", name]).split("\n");
}

/** Polls the screen until a row matches `pattern`; returns that row. */
async function rowMatching(name: string, pattern: RegExp, timeoutMs = 15_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const row = screen(name).find((line) => pattern.test(line));
    if (row !== undefined) return row;
    if (Date.now() > deadline) throw new Error(`no row matching ${pattern}:\n${screen(name).join("\n")}`);
    await delay(100);
  }
}

describe("jobwatch watch on a terminal", () => {
  let server: TestServer;
  let worker: JobwatchClient;

  before(async () => {
    server = await startTestServer();
    worker = createClient({ address: server.address, token: server.tokens.worker });
  });

  after(async () => {
    try {
      tmux(["kill-server"]);
    } catch {
      // no session left
    }
    worker.close();
    await server.stop();
  });

  for (const columns of [80, 120]) {
    test(`the bar line fits ${columns} columns by what is visible: ETA shown, phase and detail where they fit`, async () => {
      const job = await worker.worker.createJob({ operationType: "add_golden_repo", username: "alice" });
      await worker.worker.startJob(job.jobId);
      await worker.worker.reportProgress(job.jobId, 40, { phase: "semantic", detail: "200/500 files indexed" });
      const { command, args } = cliCommand(["watch", job.jobId]);
      const name = `watch-${columns}`;
      // Colours on (a terminal, no NO_COLOR): the codes the bar line carries are what used to be miscounted.
      const env = `env -u NO_COLOR -u FORCE_COLOR JOBWATCH_ADDRESS=${server.address} JOBWATCH_TOKEN=${server.tokens.alice} TERM=xterm-256color`;
      tmux([
        "new-session",
        "-d",
        "-x",
        String(columns),
        "-y",
        "20",
        "-s",
        name,
        `${env} ${[command, ...args].map(shellWord).join(" ")}; sleep 60`,
      ]);
      const row = await rowMatching(name, /^RUNNING .*40%/);
      assert.match(row, /^RUNNING\s+\S+\s+40% \| elapsed \S+ \| ETA \S/, `the ETA is on the bar line: ${row}`);
      assert.ok(row.trimEnd().length < columns, `the line stays within ${columns} columns: ${row}`);
      if (columns === 120) assert.match(row, /\| semantic: 200\/500 files indexed$/, row.trimEnd());
      else assert.match(row, /\| sem.*…$/, `phase and detail cut with an ellipsis: ${row.trimEnd()}`);
      // The change's log line above the bar (time, revision, status, progress, phase/detail, ETA) is cut
      // at the edge with an ellipsis too: the terminal does not wrap it, so its last column used to show
      // the line's last character after a cut-off text ("... files indexed)").
      const logged = (await rowMatching(name, /#3\s+RUNNING\s+40%/)).trimEnd();
      assert.ok(logged.length < columns, `the log line stays within ${columns} columns: ${logged}`);
      if (logged.length === columns - 1) assert.match(logged, /…$/, logged);
      else assert.match(logged, /semantic: 200\/500 files indexed {2}ETA \S+ \(in [^)]+\)$/, logged);
      await worker.worker.completeJob(job.jobId, { files: 500 });
      await rowMatching(name, new RegExp(`job ${job.jobId} COMPLETED`));
      tmux(["kill-session", "-t", name]);
    });
  }
});
