// `jobwatch stats`: counts per status and operation type, and how recent jobs went (success rate, p50/p95 overall
// and per operation type).
import type { Command } from "commander";
import { durationMs, JobStatistics, type StatisticsQuery } from "../client/index.js";
import { toProtoJson } from "../client/json.js";
import {
  addClientOptions,
  addJsonOption,
  type ClientFlags,
  DURATION_HELP,
  parseDurationFlag,
  printJson,
  runWithClient,
} from "./client-options.js";
import { colorsFor, formatDuration, formatTime, table } from "./format.js";
import { addScopeOptions, SCOPE_HELP, type ScopeFlags, scopeFromFlags } from "./scope-options.js";

interface StatsFlags extends ClientFlags, ScopeFlags {
  window?: number;
}

/** Registers `jobwatch stats`. */
export function register(program: Command): void {
  const command = program
    .command("stats")
    .addHelpText("after", SCOPE_HELP + DURATION_HELP)
    .description("overview of jobs: counts per status and operation type, success rate and durations")
    .option("--window <duration>", 'how far back the finished-job figures look (default "24h")', parseDurationFlag);
  addScopeOptions(command);
  addJsonOption(command, "print the statistics in the protobuf JSON mapping");
  addClientOptions(command);
  command.action(async (flags: StatsFlags) => {
    await runWithClient(flags, async (client) => {
      // The per-type table is part of what stats prints (and of its --json).
      const query: StatisticsQuery = { ...scopeFromFlags(flags), includeDurationsByOperationType: true };
      if (flags.window !== undefined) query.windowMs = flags.window;
      const stats = await client.getStatistics(query);
      if (flags.json) {
        printJson(toProtoJson(JobStatistics, "jobwatch.v1.GetJobStatisticsResponse", stats));
        return;
      }
      const c = colorsFor(process.stdout);
      const lines: string[] = [];
      lines.push(c.bold(`Jobs (${stats.total} in all)`));
      lines.push(
        table(
          ["PENDING", "RUNNING", "COMPLETED", "FAILED", "CANCELLED"],
          [[stats.pending, stats.running, stats.completed, stats.failed, stats.cancelled].map(String)],
        ),
      );
      const byType = Object.entries(stats.byOperationType).sort((a, b) => b[1] - a[1]);
      if (byType.length > 0) {
        lines.push("", c.bold("By operation"));
        lines.push(
          table(
            ["OPERATION", "JOBS"],
            byType.map(([type, count]) => [type, String(count)]),
          ),
        );
      }
      lines.push("", c.bold(`Finished since ${formatTime(stats.windowStart)}`));
      if (stats.finishedInWindow === 0) {
        lines.push("  none");
      } else {
        const p50 = durationMs(stats.p50Duration);
        const p95 = durationMs(stats.p95Duration);
        lines.push(`  jobs          ${stats.finishedInWindow}`);
        lines.push(`  success rate  ${(stats.successRate * 100).toFixed(1)}%`);
        lines.push(`  duration p50  ${p50 === undefined ? "-" : formatDuration(p50)}`);
        lines.push(`  duration p95  ${p95 === undefined ? "-" : formatDuration(p95)}`);
        const durations = Object.entries(stats.durationsByOperationType).sort(
          (a, b) => Number(b[1].finished) - Number(a[1].finished) || (a[0] < b[0] ? -1 : 1),
        );
        if (durations.length > 0) {
          const shown = (d: Parameters<typeof durationMs>[0]) => {
            const ms = durationMs(d);
            return ms === undefined ? "-" : formatDuration(ms);
          };
          lines.push(
            "",
            table(
              ["OPERATION", "FINISHED", "P50", "P95"],
              durations.map(([type, d]) => [type, String(d.finished), shown(d.p50Duration), shown(d.p95Duration)]),
            ),
          );
        }
      }
      process.stdout.write(`${lines.join("\n")}\n`);
    });
  });
}
