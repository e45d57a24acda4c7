// Statistics: counts by status and by operation type as a small bar chart, the window's success rate and
// p50/p95 durations (GetJobStatistics), read again when the jobs stream reports a change (never on a timer).
import { create } from "@bufbuild/protobuf";
import { jobs, messageOf, sessionEnded } from "./api.js";
import { h } from "./dom.js";
import { durationMs, span } from "./format.js";
import { GetJobStatisticsRequestSchema } from "./gen/jobwatch/v1/job_service_pb.js";
import type { GetJobStatisticsResponse } from "./gen/jobwatch/v1/job_service_pb.js";
import type { JobsFeed } from "./live.js";

const SVG = "http://www.w3.org/2000/svg";

function svg<K extends keyof SVGElementTagNameMap>(
  tag: K,
  attrs: Record<string, string | number>,
): SVGElementTagNameMap[K] {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) element.setAttribute(name, String(value));
  return element;
}

/** A horizontal bar chart of `rows` (label, count, css class), with the numbers written beside the bars. */
function barChart(title: string, rows: readonly [string, number, string][]): SVGSVGElement {
  const rowHeight = 26;
  const labelWidth = 150;
  const width = 480;
  const max = Math.max(1, ...rows.map(([, n]) => n));
  const chart = svg("svg", {
    viewBox: `0 0 ${width} ${rows.length * rowHeight + 4}`,
    role: "img",
    "aria-label": `${title}: ${rows.map(([label, n]) => `${label} ${n}`).join(", ")}`,
    class: "chart",
  });
  rows.forEach(([label, count, cls], i) => {
    const y = i * rowHeight + 2;
    const text = svg("text", { x: labelWidth - 8, y: y + 17, "text-anchor": "end", class: "label" });
    text.textContent = label;
    const barWidth = Math.max(count > 0 ? 2 : 0, ((width - labelWidth - 60) * count) / max);
    const bar = svg("rect", {
      x: labelWidth,
      y: y + 3,
      width: barWidth,
      height: rowHeight - 8,
      rx: 3,
      class: `bar ${cls}`,
    });
    const value = svg("text", { x: labelWidth + barWidth + 6, y: y + 17, class: "value" });
    value.textContent = String(count);
    chart.append(text, bar, value);
  });
  return chart;
}

function render(root: HTMLElement, stats: GetJobStatisticsResponse): void {
  const n = (v: bigint) => Number(v);
  const p50 = durationMs(stats.p50Duration);
  const p95 = durationMs(stats.p95Duration);
  const byType = Object.entries(stats.byOperationType)
    .map(([name, count]) => [name, n(count), "op"] as [string, number, string])
    .sort((a, b) => b[1] - a[1]);
  root.replaceChildren(
    h(
      "section",
      { "aria-label": "Counts by status" },
      h("h2", {}, "By status"),
      barChart("Jobs by status", [
        ["pending", n(stats.pending), "pending"],
        ["running", n(stats.running), "running"],
        ["completed", n(stats.completed), "completed"],
        ["failed", n(stats.failed), "failed"],
        ["cancelled", n(stats.cancelled), "cancelled"],
      ]),
      h("p", { class: "muted" }, `${n(stats.total)} jobs in all.`),
    ),
    h(
      "section",
      { "aria-label": "Window" },
      h("h2", {}, "Last 24 hours"),
      h(
        "dl",
        { class: "fields" },
        h("dt", {}, "finished"),
        h("dd", {}, String(n(stats.finishedInWindow))),
        h("dt", {}, "success rate"),
        h("dd", {}, n(stats.finishedInWindow) > 0 ? `${Math.round(stats.successRate * 1000) / 10}%` : "—"),
        h("dt", {}, "p50 duration"),
        h("dd", {}, p50 === undefined ? "—" : span(p50)),
        h("dt", {}, "p95 duration"),
        h("dd", {}, p95 === undefined ? "—" : span(p95)),
      ),
    ),
    byType.length === 0
      ? ""
      : h(
          "section",
          { "aria-label": "By operation type" },
          h("h2", {}, "By operation type"),
          barChart("Jobs by operation type", byType),
        ),
  );
}

/** Renders the statistics into `root`; returns how to stop refreshing them. */
export function statsView(root: HTMLElement, feed: JobsFeed, signedOut: (error: unknown) => void): () => void {
  const body = h("div", { class: "stats" }, h("p", {}, "Loading…"));
  root.replaceChildren(h("h1", {}, "Statistics"), body);
  const controller = new AbortController();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const load = (): void => {
    timer = undefined;
    jobs.getJobStatistics(create(GetJobStatisticsRequestSchema, {}), { signal: controller.signal }).then(
      (stats) => render(body, stats),
      (error: unknown) => {
        if (controller.signal.aborted) return;
        if (sessionEnded(error)) return signedOut(error);
        body.replaceChildren(h("p", { class: "error", role: "alert" }, messageOf(error)));
      },
    );
  };
  load();
  // A job changed: read the figures again, at most once a second however busy the stream is.
  const unlisten = feed.listen(() => {
    timer ??= setTimeout(load, 1000);
  });
  return () => {
    controller.abort();
    unlisten();
    if (timer !== undefined) clearTimeout(timer);
  };
}
