// `jobwatch mcp --http HOST:PORT`: the MCP server over Streamable HTTP at /mcp, stateless (a fresh MCP
// server per request, all sharing one jobwatch client), on a loopback address only.
import { createServer, type Server as HttpServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Server } from "@modelcontextprotocol/sdk/server/index.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";

/** The path of the MCP endpoint. */
const MCP_PATH = "/mcp";

const LOOPBACK_HOSTS = new Set(["127.0.0.1", "localhost", "::1", "[::1]"]);

/** A listening MCP HTTP endpoint. */
export interface McpHttpServer {
  /** e.g. "http://127.0.0.1:54000/mcp". */
  readonly url: string;
  /** Stops accepting requests and ends open ones. */
  close(): Promise<void>;
}

/** True for the loopback host names and addresses the endpoint may listen on. */
export function isLoopbackHost(host: string): boolean {
  return LOOPBACK_HOSTS.has(host.toLowerCase());
}

/**
 * Serves MCP at http://host:port/mcp. Every caller acts with the one jobwatch token of this process, so the
 * endpoint listens on loopback only and refuses requests whose Host or Origin is not loopback (a web page
 * reaching it through DNS rebinding).
 */
export async function listenHttp(host: string, port: number, newServer: () => Server): Promise<McpHttpServer> {
  const http = createServer((req, res) => {
    handle(req, res, newServer).catch((err: unknown) => {
      if (!res.headersSent) jsonRpcError(res, 500, -32603, `internal error: ${(err as Error).message}`);
      else res.end();
    });
  });
  await new Promise<void>((resolve, reject) => {
    http.once("error", reject);
    http.listen(port, host.replace(/^\[(.*)\]$/, "$1"), () => {
      http.off("error", reject);
      resolve();
    });
  });
  const bound = http.address() as AddressInfo;
  const shownHost = bound.family === "IPv6" ? `[${bound.address}]` : bound.address;
  return { url: `http://${shownHost}:${bound.port}${MCP_PATH}`, close: () => closeHttp(http) };
}

async function handle(req: IncomingMessage, res: ServerResponse, newServer: () => Server): Promise<void> {
  const url = new URL(req.url ?? "/", "http://localhost");
  if (url.pathname !== MCP_PATH) {
    jsonRpcError(res, 404, -32000, `not found: the MCP endpoint is ${MCP_PATH}`);
    return;
  }
  const hostname = hostnameOf(req.headers.host);
  const origin = req.headers.origin;
  if (hostname === undefined || !isLoopbackHost(hostname) || (origin !== undefined && !isLoopbackOrigin(origin))) {
    jsonRpcError(res, 403, -32000, "forbidden: this endpoint answers loopback hosts and origins only");
    return;
  }
  // Stateless: no session to keep, and no request needs one (tools only, no server-initiated requests);
  // progress notifications travel on the response stream of the call they belong to.
  const server = newServer();
  const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined });
  res.on("close", () => {
    void transport.close();
    void server.close();
  });
  await server.connect(transport);
  await transport.handleRequest(req, res);
}

function hostnameOf(hostHeader: string | undefined): string | undefined {
  if (hostHeader === undefined) return undefined;
  try {
    return new URL(`http://${hostHeader}`).hostname;
  } catch {
    return undefined;
  }
}

function isLoopbackOrigin(origin: string): boolean {
  try {
    return isLoopbackHost(new URL(origin).hostname);
  } catch {
    return false;
  }
}

function jsonRpcError(res: ServerResponse, status: number, code: number, message: string): void {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify({ jsonrpc: "2.0", error: { code, message }, id: null }));
}

function closeHttp(http: HttpServer): Promise<void> {
  return new Promise((resolve) => {
    http.close(() => resolve());
    http.closeAllConnections();
  });
}
