// The web dashboard's own HTTP listener (JOBWATCH_WEB_LISTEN): the built page, sign-in and sign-out, and
// JobService over the Connect protocol under /api (connect-routes.ts).
import { readdirSync, readFileSync, statSync } from "node:fs";
import * as http from "node:http";
import { extname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import type { Logger } from "pino";
import type { BearerAuthenticator } from "../auth/bearer-authenticator.js";
import type { Principal } from "../auth/principal.js";
import { canManageJobs } from "../auth/principal.js";
import { hasPermission } from "../auth/roles.js";
import { UnauthenticatedError, UnavailableError } from "../errors.js";
import type { StreamingOptions } from "../server/call-adapters.js";
import { PERMISSION_TABLE } from "../server/contract.js";
import type { JobServiceHandlers } from "../server/job-service.js";
import { JOB_SERVICE, jobServiceRoutes } from "./connect-routes.js";
import {
  CSRF_HEADER,
  clearedCookies,
  csrfMatches,
  newCsrfToken,
  parseCookies,
  SESSION_COOKIE,
  SESSION_MAX_AGE_MS,
  SIGNED_OUT_MESSAGE,
  sessionCookies,
} from "./session.js";

/** Where `npm run build` puts the page (vite's outDir), from src/web or dist/web alike. */
const PAGE_DIR = fileURLToPath(new URL("../../dist/page/", import.meta.url));

/** The path prefix of the Connect endpoint: /api/jobwatch.v1.JobService/WatchJobs ... */
const API_PREFIX = "/api";

/** What the web server needs: the gRPC server's JobService handlers and stream rules, and the authenticator. */
export interface WebServerDeps {
  handlers: JobServiceHandlers;
  authenticator: Pick<BearerAuthenticator, "authenticate"> &
    Partial<Pick<BearerAuthenticator, "cached" | "watchCredentials">>;
  streams: Pick<StreamingOptions, "admit" | "closing">;
  log: Logger;
  /** The built page; default PAGE_DIR. */
  pageDir?: string;
  /** The clock of session lifetimes, epoch ms; default Date.now. */
  now?: () => number;
}

/** The dashboard's HTTP server, not yet listening. */
export interface WebServer {
  /** Listens on "host:port" (port 0 picks one); returns "host:port" with the real port. */
  listen(address: string): Promise<string>;
  /** Stops accepting; connections still open after `timeoutMs` (streams the hub did not end) are cut. */
  close(timeoutMs: number): Promise<void>;
}

/** Headers of every response: nothing from elsewhere may load, frame the page, or learn where it came from. */
const SECURITY_HEADERS: Record<string, string> = {
  "content-security-policy":
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; " +
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
};

const CONTENT_TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".json": "application/json",
};

/** A sign-in request body larger than this is refused (a token is ~60 bytes, a JWT a few KiB). */
const SIGN_IN_MAX_BYTES = 16 * 1024;

/** The page's files by URL path ("/" is index.html), read once: the page is a few small files. */
function loadPage(dir: string): Map<string, { body: Buffer; type: string }> {
  const files = new Map<string, { body: Buffer; type: string }>();
  const walk = (folder: string): void => {
    let names: string[];
    try {
      names = readdirSync(folder);
    } catch {
      return; // not built: "/" says so
    }
    for (const name of names) {
      const path = join(folder, name);
      if (statSync(path).isDirectory()) walk(path);
      else {
        const url = `/${relative(dir, path).split("\\").join("/")}`;
        files.set(url, { body: readFileSync(path), type: CONTENT_TYPES[extname(name)] ?? "application/octet-stream" });
      }
    }
  };
  walk(dir);
  const index = files.get("/index.html");
  if (index) files.set("/", index);
  return files;
}

function send(
  res: http.ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string | string[]> = {},
) {
  const text = body === undefined ? "" : JSON.stringify(body);
  res.writeHead(status, {
    ...SECURITY_HEADERS,
    "cache-control": "no-store",
    ...(body === undefined ? {} : { "content-type": "application/json" }),
    ...headers,
  });
  res.end(text);
}

/** True when the request was made over https (here, or at a TLS proxy in front that says so). */
function overHttps(req: http.IncomingMessage): boolean {
  return "encrypted" in req.socket || req.headers["x-forwarded-proto"] === "https";
}

/**
 * True unless the browser says the request comes from another origin. Browsers send Origin on every
 * POST; a cross-site form or script posting here is refused before any cookie is looked at.
 */
function sameOrigin(req: http.IncomingMessage): boolean {
  const origin = req.headers.origin;
  if (origin === undefined) return true;
  try {
    return new URL(origin).host === req.headers.host;
  } catch {
    return false;
  }
}

/** The request body as text, at most `max` bytes (undefined when larger). */
async function bodyOf(req: http.IncomingMessage, max: number): Promise<string | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > max) return undefined;
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString("utf8");
}

/** Who the signed-in user is, as the page shows it. */
function identity(principal: Principal) {
  return { username: principal.username, role: principal.role, canManageJobs: canManageJobs(principal) };
}

/** Assembles the dashboard's HTTP server over the gRPC server's JobService handlers. */
export function createWebServer(deps: WebServerDeps): WebServer {
  const { authenticator, log } = deps;
  const now = deps.now ?? Date.now;
  const page = loadPage(deps.pageDir ?? PAGE_DIR);
  // Every JobService rpc needs this permission (query_repos); a token without it cannot use the page.
  const readPermission = PERMISSION_TABLE.get(`/${JOB_SERVICE.typeName}/WatchJobs`) ?? "query_repos";
  const api = connectNodeAdapter({
    routes: jobServiceRoutes({
      handlers: deps.handlers,
      authenticator,
      streams: { ...deps.streams, watchCredentials: authenticator.watchCredentials?.bind(authenticator) },
      log,
    }),
    requestPathPrefix: API_PREFIX,
    // The page speaks Connect; gRPC clients have the gRPC port.
    grpc: false,
    grpcWeb: false,
    // A call without Connect-Protocol-Version is no Connect client's: and a cross-site page cannot add
    // that header without a CORS preflight, which this server never grants.
    requireConnectProtocolHeader: true,
    readMaxBytes: 4 * 1024 * 1024,
  });

  /** The principal of a token, or the error that says why not (401/403/503 as JSON). */
  const signIn = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
    if (!sameOrigin(req)) return send(res, 403, { error: "sign-in from another site is refused" });
    if (!/^application\/json\b/.test(req.headers["content-type"] ?? "")) {
      return send(res, 415, { error: 'send {"token": "<your jobwatch token>"} as application/json' });
    }
    const text = await bodyOf(req, SIGN_IN_MAX_BYTES);
    let token: unknown;
    try {
      token = text === undefined ? undefined : (JSON.parse(text) as { token?: unknown }).token;
    } catch {
      token = undefined;
    }
    if (typeof token !== "string" || token.trim() === "") {
      return send(res, 400, { error: 'send {"token": "<your jobwatch token>"} (at most 16 KiB)' });
    }
    const principal = await authenticator.authenticate(`Bearer ${token.trim()}`);
    if (!hasPermission(principal.role, readPermission)) {
      return send(res, 403, {
        error: `role '${principal.role}' cannot read jobs (the dashboard needs permission '${readPermission}'): use a user's token`,
      });
    }
    const lifetime = Math.min(SESSION_MAX_AGE_MS, (principal.expiresAt ?? Number.POSITIVE_INFINITY) - now());
    if (lifetime <= 0) throw new UnauthenticatedError("token expired: get a fresh one", "TOKEN_EXPIRED");
    log.info({ username: principal.username, role: principal.role }, "dashboard sign-in");
    send(res, 200, identity(principal), {
      "set-cookie": sessionCookies(token.trim(), newCsrfToken(), lifetime, overHttps(req)),
    });
  };

  const session = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
    const token = parseCookies(req.headers.cookie).get(SESSION_COOKIE);
    if (token === undefined || token === "") return send(res, 401, { error: SIGNED_OUT_MESSAGE });
    const principal = await authenticator.authenticate(`Bearer ${decodeURIComponent(token)}`);
    send(res, 200, identity(principal));
  };

  let closing = false;
  const route = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
    const path = (req.url ?? "/").split("?")[0] ?? "/";
    if (closing) {
      // A browser reuses its keep-alive connection: without this, a reconnecting stream would reach a
      // server whose hub is closed. 503 is Connect's UNAVAILABLE; the client retries on a new connection.
      return send(
        res,
        503,
        { code: "unavailable", message: "the server is shutting down: retry" },
        { connection: "close" },
      );
    }
    if (path.startsWith(`${API_PREFIX}/`)) {
      if (!sameOrigin(req)) return send(res, 403, { error: "calls from another site are refused" });
      return api(req, res);
    }
    if (path === "/auth/sign-in" && req.method === "POST") return signIn(req, res);
    if (path === "/auth/session" && req.method === "GET") return session(req, res);
    if (path === "/auth/sign-out" && req.method === "POST") {
      const csrf = req.headers[CSRF_HEADER];
      if (!sameOrigin(req) || !csrfMatches(req.headers.cookie, typeof csrf === "string" ? csrf : undefined)) {
        return send(res, 403, { error: "sign-out needs the page's x-csrf-token header" });
      }
      return send(res, 204, undefined, { "set-cookie": clearedCookies(overHttps(req)) });
    }
    if (req.method !== "GET" && req.method !== "HEAD") return send(res, 405, { error: "method not allowed" });
    const file = page.get(path);
    if (file === undefined) {
      if (path === "/") return send(res, 503, { error: "the dashboard is not built: run 'npm run build'" });
      return send(res, 404, { error: `no such page: ${path}` });
    }
    res.writeHead(200, {
      ...SECURITY_HEADERS,
      "content-type": file.type,
      // Vite names assets by content hash; the page itself must be fetched anew to pick up a new build.
      "cache-control": path.startsWith("/assets/") ? "public, max-age=31536000, immutable" : "no-cache",
    });
    res.end(req.method === "HEAD" ? undefined : file.body);
  };

  const server = http.createServer((req, res) => {
    route(req, res).catch((error: unknown) => {
      if (res.headersSent) return void res.destroy();
      if (error instanceof UnauthenticatedError) return send(res, 401, { error: error.message });
      if (error instanceof UnavailableError) return send(res, 503, { error: error.message });
      log.error({ err: error, path: req.url }, "web request failed");
      send(res, 500, { error: "internal error (see server log)" });
    });
  });
  // Long-lived streams: no per-request timeout (Node's default would cut a quiet watch after 5 minutes).
  server.requestTimeout = 0;

  return {
    listen: (address) =>
      new Promise((resolve, reject) => {
        const match = /^\[?(.*?)\]?:(\d+)$/.exec(address);
        const host = match?.[1] ?? "127.0.0.1";
        const onError = (error: NodeJS.ErrnoException): void => {
          const why = error.code === "EADDRINUSE" ? "address already in use" : error.message;
          reject(new Error(`cannot listen on ${address} (JOBWATCH_WEB_LISTEN): ${why}`));
        };
        server.once("error", onError);
        server.listen(Number(match?.[2] ?? 0), host, () => {
          server.off("error", onError);
          const bound = server.address();
          const port = typeof bound === "object" && bound !== null ? bound.port : 0;
          resolve(`${address.replace(/:\d+$/, "")}:${port}`);
        });
      }),
    close: (timeoutMs) =>
      new Promise<void>((resolve) => {
        closing = true;
        if (!server.listening) return resolve();
        const timer = setTimeout(() => server.closeAllConnections(), Math.max(0, timeoutMs));
        // Streams end when the hub closes; their connections are then idle, and closed here.
        const sweep = setInterval(() => server.closeIdleConnections(), 50);
        server.close(() => {
          clearTimeout(timer);
          clearInterval(sweep);
          resolve();
        });
        server.closeIdleConnections();
      }),
  };
}
