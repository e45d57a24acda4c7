// How the page talks to jobwatch: JobService over the Connect protocol (connect-es), with the session
// cookie the browser sends by itself and the CSRF header added to every call; sign-in and sign-out.

import type { Client, Interceptor } from "@connectrpc/connect";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { JobService } from "./gen/jobwatch/v1/job_service_pb.js";

/** Who is signed in, as the server's /auth endpoints say. */
export interface Identity {
  username: string;
  role: string;
  canManageJobs: boolean;
}

/** The CSRF token the server set at sign-in (a readable cookie; the session cookie itself is HttpOnly). */
function csrfToken(): string {
  const entry = document.cookie.split("; ").find((c) => c.startsWith("jobwatch_csrf="));
  return entry === undefined ? "" : entry.slice("jobwatch_csrf=".length);
}

const csrf: Interceptor = (next) => (request) => {
  request.header.set("x-csrf-token", csrfToken());
  return next(request);
};

/** JobService, served by jobwatch under /api. */
export const jobs: Client<typeof JobService> = createClient(
  JobService,
  createConnectTransport({
    baseUrl: `${location.origin}/api`,
    useBinaryFormat: true,
    interceptors: [csrf],
  }),
);

/** Thrown by the /auth endpoints: the server's message, and whether signing in again is the fix. */
class SignInError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

async function identityOf(response: Response): Promise<Identity> {
  const body = (await response.json().catch(() => ({}))) as Partial<Identity> & { error?: string };
  if (!response.ok) throw new SignInError(body.error ?? `HTTP ${response.status}`, response.status);
  return body as Identity;
}

/** The signed-in user, or SignInError(401) when there is no valid session. */
export async function currentSession(): Promise<Identity> {
  return identityOf(await fetch("/auth/session", { credentials: "same-origin" }));
}

/** Trades a token for a session cookie; the token is not kept anywhere on the page. */
export async function signIn(token: string): Promise<Identity> {
  return identityOf(
    await fetch("/auth/sign-in", {
      method: "POST",
      credentials: "same-origin",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ token }),
    }),
  );
}

/** Ends the session (the server clears both cookies). */
export async function signOut(): Promise<void> {
  await fetch("/auth/sign-out", {
    method: "POST",
    credentials: "same-origin",
    headers: { "x-csrf-token": csrfToken() },
  });
}

/** True when the error means the session is over (expired, revoked, signed out): back to sign-in. */
export function sessionEnded(error: unknown): boolean {
  return (
    (error instanceof ConnectError && error.code === Code.Unauthenticated) ||
    (error instanceof SignInError && error.status === 401)
  );
}

/** The message of an error as the page shows it (a ConnectError's without its "[code]" prefix). */
export function messageOf(error: unknown): string {
  if (error instanceof ConnectError) return error.rawMessage;
  return error instanceof Error ? error.message : String(error);
}
