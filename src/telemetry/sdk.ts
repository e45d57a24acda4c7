// The OpenTelemetry SDK behind tracing: started only when OTEL_* configures an exporter, and only then
// loaded (dynamic imports), so a process without tracing never loads it and keeps no span objects.
import type { Tracer } from "@opentelemetry/api";

/** What startTracing needs; the SDK also reads the standard OTEL_* variables itself (endpoint, sampler, batch). */
export interface TracingSettings {
  /** service.name of every span (OTEL_SERVICE_NAME, else the program's own default). */
  serviceName: string;
}

/** A started SDK: its tracer, registered globally (context manager and W3C propagator included). */
export interface TracingSdk {
  readonly tracer: Tracer;
  /** Exports the spans still buffered and stops; safe to call twice. */
  shutdown(): Promise<void>;
}

/**
 * True when the environment asks for traces: an OTLP endpoint (OTEL_EXPORTER_OTLP_ENDPOINT or
 * OTEL_EXPORTER_OTLP_TRACES_ENDPOINT), unless OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none.
 */
export function tracingRequested(env: Record<string, string | undefined>): boolean {
  const set = (name: string): boolean => (env[name] ?? "").trim() !== "";
  if ((env.OTEL_SDK_DISABLED ?? "").trim().toLowerCase() === "true") return false;
  if ((env.OTEL_TRACES_EXPORTER ?? "").trim().toLowerCase() === "none") return false;
  return set("OTEL_EXPORTER_OTLP_ENDPOINT") || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
}

/**
 * Starts the SDK: spans batched (OTEL_BSP_*) to the OTLP/HTTP exporter (protobuf, the OTLP default;
 * endpoint, headers and timeout from OTEL_EXPORTER_OTLP_*), sampled per OTEL_TRACES_SAMPLER (default
 * parentbased_always_on), with service.name and OTEL_RESOURCE_ATTRIBUTES on the resource.
 */
export async function startTracing(settings: TracingSettings): Promise<TracingSdk> {
  const [{ NodeTracerProvider, BatchSpanProcessor }, { OTLPTraceExporter }, resources] = await Promise.all([
    import("@opentelemetry/sdk-trace-node"),
    import("@opentelemetry/exporter-trace-otlp-proto"),
    import("@opentelemetry/resources"),
  ]);
  const resource = resources
    .defaultResource()
    .merge(resources.resourceFromAttributes({ "service.name": settings.serviceName }))
    .merge(resources.detectResources({ detectors: [resources.envDetector] }));
  const provider = new NodeTracerProvider({
    resource,
    spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter())],
  });
  provider.register();
  let stopped: Promise<void> | undefined;
  return {
    tracer: provider.getTracer("jobwatch"),
    shutdown: () => {
      stopped ??= provider.shutdown();
      return stopped;
    },
  };
}
