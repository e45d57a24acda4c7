// The MCP server of `jobwatch mcp`: tools/list gives the tool definitions as they are written (JSON Schema,
// the seed's to the letter), tools/call runs them; on the SDK's low-level Server, so no schema is rewritten.
import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import {
  CallToolRequestSchema,
  ErrorCode,
  ListToolsRequestSchema,
  type ServerNotification,
} from "@modelcontextprotocol/sdk/types.js";
import { TOOLS, toolNamed } from "./tool-definitions.js";
import type { ToolRunner } from "./tools.js";

const INSTRUCTIONS =
  "jobwatch reports the state of background jobs (repository indexing, refresh, removal). Use get_job_details " +
  "for a job's current state, and wait_for_job to wait for it to finish in one call instead of polling. " +
  "list_jobs and get_job_statistics give an overview; cancel_job stops a job.";

/**
 * A JSON-RPC error the SDK sends as `{code, message}`. Not the SDK's McpError: its message already reads
 * "MCP error -32602: ...", which went on the wire, and an SDK client adds the prefix again when it makes
 * its own McpError of the reply ("MCP error -32602: MCP error -32602: unknown tool ...").
 */
function protocolError(code: ErrorCode, message: string): Error & { code: number } {
  return Object.assign(new Error(message), { code });
}

/**
 * An MCP server (not yet connected to a transport) whose tools `runner` runs. Over HTTP there is one per
 * request, so the runner (with its compiled schemas and the jobwatch connection) is made once and shared.
 */
export function createMcpServer(runner: ToolRunner, version: string): Server {
  const server = new Server({ name: "jobwatch", version }, { capabilities: { tools: {} }, instructions: INSTRUCTIONS });

  server.setRequestHandler(ListToolsRequestSchema, () => ({ tools: [...TOOLS] }));

  server.setRequestHandler(CallToolRequestSchema, async (request, extra) => {
    const tool = toolNamed(request.params.name);
    if (tool === undefined) {
      // An unknown tool is a protocol error (the spec's -32602), unlike a tool that fails.
      throw protocolError(
        ErrorCode.InvalidParams,
        `unknown tool '${request.params.name}'; the tools are ${TOOLS.map((t) => t.name).join(", ")}`,
      );
    }
    const token = request.params._meta?.progressToken;
    const progress =
      token === undefined
        ? undefined
        : (value: number, total: number, message: string) =>
            extra.sendNotification({
              method: "notifications/progress",
              params: { progressToken: token, progress: value, total, message },
            } satisfies ServerNotification);
    return runner.run(tool, request.params.arguments, { signal: extra.signal, progress });
  });

  return server;
}
