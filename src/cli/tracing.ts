// Traces of the `jobwatch` client commands, when OTEL_* configures an exporter: one span per command, its
// parent the TRACEPARENT/TRACESTATE environment variables (OpenTelemetry's carrier for processes), and
// every call of the command carrying it, so the server's spans join the caller's trace. Without OTEL_*,
// neither the SDK nor @opentelemetry/api is loaded (about 30 ms of a command's startup).
import { tracingRequested } from "../telemetry/sdk.js";

/** How long a command waits at its end for its spans to be exported before it exits anyway. */
const FLUSH_BUDGET_MS = 3000;

/** The client commands, and the words that may follow `job`: a span is named after these and nothing else. */
const COMMANDS = new Set(["get", "watch", "top", "list", "stats", "cancel", "job", "demo", "mcp", "webhook"]);
const JOB_COMMANDS = new Set(["create", "start", "progress", "heartbeat", "complete", "fail", "cancelled"]);

/** "jobwatch job create": the command words of argv, never an argument or a flag's value. */
function commandName(argv: readonly string[]): string {
  const at = argv.findIndex((arg) => COMMANDS.has(arg));
  const command = argv[at];
  if (command === undefined) return "jobwatch";
  const next = argv[at + 1];
  return command === "job" && next !== undefined && JOB_COMMANDS.has(next)
    ? `jobwatch job ${next}`
    : `jobwatch ${command}`;
}

/**
 * Runs `body` in the command's span when tracing is requested (else just runs it), then exports the
 * span before returning. `exitCode` reads the exit code the body settled on, recorded on the span.
 */
export async function inCommandSpan<T>(body: () => Promise<T>, exitCode: (result: T) => number): Promise<T> {
  if (!tracingRequested(process.env)) return body();
  const [{ startTracing }, { context, propagation, ROOT_CONTEXT, SpanStatusCode, trace }] = await Promise.all([
    import("../telemetry/sdk.js"),
    import("@opentelemetry/api"),
  ]);
  const sdk = await startTracing({ serviceName: process.env.OTEL_SERVICE_NAME?.trim() || "jobwatch-cli" });
  const carrier = { traceparent: process.env.TRACEPARENT, tracestate: process.env.TRACESTATE };
  const parent = propagation.extract(ROOT_CONTEXT, carrier, {
    get: (c, key) => c[key as keyof typeof c],
    keys: (c) => Object.keys(c),
  });
  const span = sdk.tracer.startSpan(commandName(process.argv.slice(2)), {}, parent);
  try {
    const result = await context.with(trace.setSpan(parent, span), body);
    const code = exitCode(result);
    span.setAttribute("process.exit.code", code);
    if (code !== 0) span.setStatus({ code: SpanStatusCode.ERROR });
    return result;
  } catch (error) {
    span.setStatus({ code: SpanStatusCode.ERROR });
    throw error;
  } finally {
    span.end();
    let timer: NodeJS.Timeout | undefined;
    const flushed = await Promise.race([
      sdk.shutdown().then(
        () => true,
        () => true,
      ),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), FLUSH_BUDGET_MS);
      }),
    ]);
    clearTimeout(timer);
    // A collector that does not answer must not hold the command: its spans are given up.
    if (!flushed) process.exit(process.exitCode ?? 0);
  }
}
