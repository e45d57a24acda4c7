// An OTLP/HTTP trace receiver for tests: what a collector's otlp receiver does with POST /v1/traces
// (protobuf, gzip or not), decoded by hand from the OTLP proto's field numbers, keeping every span.
//
// API:
//   startOtlpReceiver()      { url, spans, waitFor(pred, ms), close() }: url is the OTEL_EXPORTER_OTLP_ENDPOINT
//   spanTree(spans, root?)    the spans as an indented tree (name, kind, attributes), for a test's log
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { gunzipSync } from "node:zlib";
import { BinaryReader, type WireType } from "@bufbuild/protobuf/wire";

/** One received span, ids in lowercase hex, attributes as plain values. */
export interface ReceivedSpan {
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  /** OTLP SpanKind: 1 internal, 2 server, 3 client. */
  kind: number;
  attributes: Record<string, unknown>;
  links: { traceId: string; spanId: string; attributes: Record<string, unknown> }[];
  /** OTLP status code: 0 unset, 1 ok, 2 error. */
  statusCode: number;
  /** The resource's attributes (service.name ...). */
  resource: Record<string, unknown>;
}

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString("hex");

/** Calls `field(number, wireType)` for each field of the message in `bytes`; unread fields are skipped. */
function fields(bytes: Uint8Array, field: (r: BinaryReader, no: number) => boolean): void {
  const r = new BinaryReader(bytes);
  while (r.pos < r.len) {
    const [no, type] = r.tag();
    if (!field(r, no)) r.skip(type as WireType, no);
  }
}

function anyValue(bytes: Uint8Array): unknown {
  let value: unknown;
  fields(bytes, (r, no) => {
    if (no === 1) value = r.string();
    else if (no === 2) value = r.bool();
    else if (no === 3) value = Number(r.int64());
    else if (no === 4) value = r.double();
    else if (no === 5) {
      const items: unknown[] = [];
      fields(r.bytes(), (a, n) => {
        if (n !== 1) return false;
        items.push(anyValue(a.bytes()));
        return true;
      });
      value = items;
    } else if (no === 7) value = hex(r.bytes());
    else return false;
    return true;
  });
  return value;
}

function keyValue(bytes: Uint8Array, into: Record<string, unknown>): void {
  let key = "";
  let value: unknown;
  fields(bytes, (r, no) => {
    if (no === 1) key = r.string();
    else if (no === 2) value = anyValue(r.bytes());
    else return false;
    return true;
  });
  into[key] = value;
}

function span(bytes: Uint8Array, resource: Record<string, unknown>): ReceivedSpan {
  const s: ReceivedSpan = {
    traceId: "",
    spanId: "",
    parentSpanId: "",
    name: "",
    kind: 0,
    attributes: {},
    links: [],
    statusCode: 0,
    resource,
  };
  fields(bytes, (r, no) => {
    if (no === 1) s.traceId = hex(r.bytes());
    else if (no === 2) s.spanId = hex(r.bytes());
    else if (no === 4) s.parentSpanId = hex(r.bytes());
    else if (no === 5) s.name = r.string();
    else if (no === 6) s.kind = r.int32();
    else if (no === 9) keyValue(r.bytes(), s.attributes);
    else if (no === 13) {
      const link = { traceId: "", spanId: "", attributes: {} as Record<string, unknown> };
      fields(r.bytes(), (l, n) => {
        if (n === 1) link.traceId = hex(l.bytes());
        else if (n === 2) link.spanId = hex(l.bytes());
        else if (n === 4) keyValue(l.bytes(), link.attributes);
        else return false;
        return true;
      });
      s.links.push(link);
    } else if (no === 15) {
      fields(r.bytes(), (st, n) => {
        if (n !== 3) return false;
        s.statusCode = st.int32();
        return true;
      });
    } else return false;
    return true;
  });
  return s;
}

/** The spans of an ExportTraceServiceRequest. */
export function decodeTraces(bytes: Uint8Array): ReceivedSpan[] {
  const out: ReceivedSpan[] = [];
  fields(bytes, (r, no) => {
    if (no !== 1) return false;
    const resource: Record<string, unknown> = {};
    const scopeSpans: Uint8Array[] = [];
    fields(r.bytes(), (rs, n) => {
      if (n === 1) {
        fields(rs.bytes(), (res, m) => {
          if (m !== 1) return false;
          keyValue(res.bytes(), resource);
          return true;
        });
      } else if (n === 2) scopeSpans.push(rs.bytes());
      else return false;
      return true;
    });
    for (const scope of scopeSpans) {
      fields(scope, (ss, n) => {
        if (n !== 2) return false;
        out.push(span(ss.bytes(), resource));
        return true;
      });
    }
    return true;
  });
  return out;
}

/** A running receiver. */
export interface OtlpReceiver {
  /** http://127.0.0.1:<port>: the OTEL_EXPORTER_OTLP_ENDPOINT (the exporter appends /v1/traces). */
  readonly url: string;
  /** Every span received so far. */
  readonly spans: ReceivedSpan[];
  /** Resolves when `predicate` holds for the spans received; rejects after `timeoutMs`, listing them. */
  waitFor(predicate: (spans: ReceivedSpan[]) => boolean, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

/** Starts a receiver on 127.0.0.1:0. */
export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const spans: ReceivedSpan[] = [];
  const waiters = new Set<() => void>();
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      if (req.method !== "POST" || req.url !== "/v1/traces") {
        res.writeHead(404).end();
        return;
      }
      let body = Buffer.concat(chunks);
      if (req.headers["content-encoding"] === "gzip") body = gunzipSync(body);
      spans.push(...decodeTraces(body));
      for (const wake of waiters) wake();
      // An empty ExportTraceServiceResponse: everything accepted.
      res.writeHead(200, { "content-type": "application/x-protobuf" }).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    spans,
    waitFor: (predicate, timeoutMs = 20_000) =>
      new Promise<void>((resolve, reject) => {
        const check = (): void => {
          if (!predicate(spans)) return;
          waiters.delete(check);
          clearTimeout(timer);
          resolve();
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`spans not received in ${timeoutMs} ms; got:\n${spanTree(spans)}`));
        }, timeoutMs);
        waiters.add(check);
        check();
      }),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

const KINDS = ["?", "internal", "server", "client", "producer", "consumer"];

/** The spans as an indented tree under their parents (roots: spans whose parent is not among them). */
export function spanTree(spans: readonly ReceivedSpan[]): string {
  const ids = new Set(spans.map((s) => s.spanId));
  const lines: string[] = [];
  const print = (s: ReceivedSpan, depth: number): void => {
    const attrs = Object.entries(s.attributes)
      .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
      .join(" ");
    const links = s.links.map((l) => ` -> link ${l.spanId}`).join("");
    lines.push(`${"  ".repeat(depth)}${s.name} [${KINDS[s.kind] ?? s.kind} ${s.spanId}] ${attrs}${links}`);
    for (const child of spans.filter((c) => c.parentSpanId === s.spanId)) print(child, depth + 1);
  };
  const roots = spans.filter((s) => !ids.has(s.parentSpanId));
  for (const traceId of new Set(roots.map((s) => s.traceId))) {
    const outside = roots.find((s) => s.traceId === traceId && s.parentSpanId !== "")?.parentSpanId;
    lines.push(`trace ${traceId}${outside === undefined ? "" : ` (under ${outside}, a span of the caller's)`}`);
    for (const root of roots.filter((s) => s.traceId === traceId)) print(root, 1);
  }
  return lines.join("\n");
}
