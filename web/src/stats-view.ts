// Statistics: counts by status and by operation type as a small bar chart, the window's success rate and
// p50/p95 durations, and p50/p95 bars per operation type (GetJobStatistics), read again when the jobs stream
// reports a change (never on a timer).
import { create } from "@bufbuild/protobuf";
import { jobs, messageOf, sessionEnded } from "./api.js";
import { h } from "./dom.js";
import { duration, durationMs } from "./format.js";
import type { GetJobStatisticsResponse } from "./gen/jobwatch/v1/job_service_pb.js";
import { GetJobStatisticsRequestSchema } from "./gen/jobwatch/v1/job_service_pb.js";
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

/** The width of the charts' label column, and the longest label written whole in it (13px text). */
const LABEL_WIDTH = 190;
const LABEL_CHARS = 24;

/** A row's label, right-aligned before the bars; a longer one cut with "…", whole in its tooltip. */
function chartLabel(label: string, y: number): SVGTextElement {
  const text = svg("text", { x: LABEL_WIDTH - 8, y, "text-anchor": "end", class: "label" });
  text.textContent = label.length > LABEL_CHARS ? `${label.slice(0, LABEL_CHARS - 1)}…` : label;
  const title = svg("title", {});
  title.textContent = label;
  text.append(title);
  return text;
}

/** A horizontal bar chart of `rows` (label, count, css class), with the numbers written beside the bars. */
function barChart(title: string, rows: readonly [string, number, string][]): SVGSVGElement {
  const rowHeight = 26;
  const labelWidth = LABEL_WIDTH;
  const width = 520;
  const max = Math.max(1, ...rows.map(([, n]) => n));
  const chart = svg("svg", {
    viewBox: `0 0 ${width} ${rows.length * rowHeight + 4}`,
    role: "img",
    "aria-label": `${title}: ${rows.map(([label, n]) => `${label} ${n}`).join(", ")}`,
    class: "chart",
  });
  rows.forEach(([label, count, cls], i) => {
    const y = i * rowHeight + 2;
    const text = chartLabel(label, y + 17);
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

/**
 * A horizontal bar chart of durations: per row (an operation type) a p50 bar above a p95 bar on one linear
 * scale, each with its value written beside it.
 */
function durationChart(title: string, rows: readonly [string, number, number][]): SVGSVGElement {
  const rowHeight = 34;
  const labelWidth = LABEL_WIDTH;
  const width = 520;
  const max = Math.max(1, ...rows.map(([, , p95]) => p95));
  const chart = svg("svg", {
    viewBox: `0 0 ${width} ${rows.length * rowHeight + 4}`,
    role: "img",
    "aria-label": `${title}: ${rows.map(([type, p50, p95]) => `${type} p50 ${duration(p50)}, p95 ${duration(p95)}`).join("; ")}`,
    class: "chart durations",
  });
  rows.forEach(([label, p50, p95], i) => {
    const y = i * rowHeight + 2;
    const text = chartLabel(label, y + 20);
    chart.append(text);
    for (const [k, ms, cls] of [
      [0, p50, "p50"],
      [1, p95, "p95"],
    ] as const) {
      const barWidth = Math.max(2, ((width - labelWidth - 70) * ms) / max);
      const top = y + 4 + k * 13;
      const bar = svg("rect", { x: labelWidth, y: top, width: barWidth, height: 11, rx: 2, class: `bar ${cls}` });
      const value = svg("text", { x: labelWidth + barWidth + 6, y: top + 10, class: "value small" });
      value.textContent = duration(ms);
      chart.append(bar, value);
    }
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
  // The largest types' p50/p95 (the server names at most 20), the most finished first.
  const durations = Object.entries(stats.durationsByOperationType)
    .sort(([a, x], [b, y]) => n(y.finished) - n(x.finished) || (a < b ? -1 : 1))
    .map(
      ([name, d]) => [name, durationMs(d.p50Duration) ?? 0, durationMs(d.p95Duration) ?? 0] as [string, number, number],
    );
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
        h("dd", {}, p50 === undefined ? "—" : duration(p50)),
        h("dt", {}, "p95 duration"),
        h("dd", {}, p95 === undefined ? "—" : duration(p95)),
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
    durations.length === 0
      ? ""
      : h(
          "section",
          { "aria-label": "Durations by operation type" },
          h("h2", {}, "Durations by operation type"),
          h(
            "p",
            { class: "legend muted" },
            h("span", { class: "swatch p50" }),
            " p50 ",
            h("span", { class: "swatch p95" }),
            " p95, of the jobs finished in the last 24 hours",
          ),
          durationChart("Durations by operation type", durations),
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
    jobs
      .getJobStatistics(create(GetJobStatisticsRequestSchema, { includeDurationsByOperationType: true }), {
        signal: controller.signal,
      })
      .then(
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
