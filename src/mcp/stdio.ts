// `jobwatch mcp` over stdio: the SDK's transport, plus the JSON-RPC replies it leaves out for lines that are not messages.
import type { Server } from "@modelcontextprotocol/sdk/server/index.js";
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import type { JSONRPCMessage } from "@modelcontextprotocol/sdk/types.js";

/** JSON-RPC 2.0's codes for a line that is not JSON, and for JSON that is not a request. */
const PARSE_ERROR = -32700;
const INVALID_REQUEST = -32600;

/**
 * Connects `server` to stdin/stdout. The SDK's transport drops a line that is not JSON (or not a JSON-RPC
 * message) with no reply, so a client that sent one waits for ever; JSON-RPC 2.0 answers it with an error
 * whose id is null: -32700 Parse error, or -32600 Invalid Request.
 */
export async function connectStdio(server: Server): Promise<StdioServerTransport> {
  const transport = new StdioServerTransport();
  await server.connect(transport);
  // connect() set the protocol's own handler; ours answers the line first, then hands the error on.
  const protocolOnError = transport.onerror;
  transport.onerror = (error: Error) => {
    const code = error instanceof SyntaxError ? PARSE_ERROR : error.name === "ZodError" ? INVALID_REQUEST : undefined;
    if (code !== undefined) {
      const message =
        code === PARSE_ERROR
          ? `Parse error: the line is not JSON (${error.message}); send one JSON-RPC 2.0 message per line`
          : "Invalid Request: the line is JSON but not a JSON-RPC 2.0 message (jsonrpc, method, id ...)";
      // JSON-RPC's reply to a request whose id could not be read carries id null, which the SDK's types lack.
      const reply = { jsonrpc: "2.0", id: null, error: { code, message } } as unknown as JSONRPCMessage;
      transport.send(reply).catch(() => undefined);
    }
    protocolOnError?.(error);
  };
  return transport;
}
