// The dashboard: sign-in, then the jobs table, a job's page or the statistics (by the address's #hash),
// all fed by the server's streams; back to sign-in whenever the session ends.
import "./style.css";
import type { Identity } from "./api.js";
import { currentSession, messageOf, sessionEnded, signIn, signOut } from "./api.js";
import { h } from "./dom.js";
import { jobView } from "./job-view.js";
import { jobsView } from "./jobs-view.js";
import type { JobsFilter } from "./live.js";
import { JobsFeed } from "./live.js";
import { statsView } from "./stats-view.js";

const main = document.getElementById("main")!;
const nav = document.getElementById("nav")!;
const who = document.getElementById("who")!;
const live = document.getElementById("live")!;
const notice = document.getElementById("notice")!;
const signOutButton = document.getElementById("sign-out") as HTMLButtonElement;

let identity: Identity | undefined;
let stopView: (() => void) | undefined;
let noticeTimer: ReturnType<typeof setTimeout> | undefined;

/** Shows a line under the header; `sticky` keeps it until the next one. */
function say(text: string, kind: "info" | "warn", sticky = false): void {
  notice.textContent = text;
  notice.dataset.kind = kind;
  notice.hidden = text === "";
  if (noticeTimer !== undefined) clearTimeout(noticeTimer);
  noticeTimer = sticky || text === "" ? undefined : setTimeout(() => (notice.hidden = true), 8000);
}

/** The connection indicator, and a notice when the stream dropped or came back. */
function connection(state: "connecting" | "live" | "reconnecting", detail: string): void {
  live.textContent = state === "live" ? "● live" : state === "reconnecting" ? "○ reconnecting…" : "○ connecting…";
  live.dataset.state = state;
  if (detail !== "") say(detail, state === "reconnecting" ? "warn" : "info", state === "reconnecting");
}

const feed = new JobsFeed({
  state: connection,
  signedOut: (error) => showSignIn(error),
  failed: (error) => say(`The jobs stream was refused: ${messageOf(error)}`, "warn", true),
});

/** The filter in the address: #/?status=2&op=add_golden_repo&owner=alice */
function filterOf(hash: string): JobsFilter {
  const params = new URLSearchParams(hash.split("?")[1] ?? "");
  const status = params.get("status");
  return {
    statuses: status === null || status === "" ? [] : status.split(",").map(Number),
    operationType: params.get("op") ?? "",
    owner: params.get("owner") ?? "",
  };
}

function hashOf(filter: JobsFilter): string {
  const params = new URLSearchParams();
  if (filter.statuses.length > 0) params.set("status", filter.statuses.join(","));
  if (filter.operationType !== "") params.set("op", filter.operationType);
  if (filter.owner !== "") params.set("owner", filter.owner);
  const query = params.toString();
  return query === "" ? "#/" : `#/?${query}`;
}

let feedFilter = "";

/** Draws the view the address names. */
function route(): void {
  if (identity === undefined) return;
  stopView?.();
  const hash = location.hash || "#/";
  const jobMatch = /^#\/job\/([0-9a-fA-F-]{36})$/.exec(hash);
  const view = jobMatch ? "job" : hash.startsWith("#/stats") ? "stats" : "jobs";
  for (const link of nav.querySelectorAll("a")) {
    if (link.dataset.view === view) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (view === "jobs") {
    const filter = filterOf(hash);
    const key = JSON.stringify(filter);
    // One stream for the table: reopened only when the filter changes.
    if (key !== feedFilter) {
      feedFilter = key;
      feed.start(filter, identity.canManageJobs);
    }
    stopView = jobsView(main, feed, filter, identity.canManageJobs, (next) => {
      location.hash = hashOf(next);
    });
    document.title = "Jobs · jobwatch";
  } else if (view === "stats") {
    if (feedFilter === "") {
      feedFilter = JSON.stringify(filterOf("#/"));
      feed.start(filterOf("#/"), identity.canManageJobs);
    }
    stopView = statsView(main, feed, showSignIn);
    document.title = "Statistics · jobwatch";
  } else {
    stopView = jobView(main, jobMatch![1]!, {
      state: (state, detail) => connection(state, detail),
      signedOut: showSignIn,
    });
    document.title = "Job · jobwatch";
  }
}

function signedIn(who_: Identity): void {
  identity = who_;
  who.textContent = `${who_.username} (${who_.role})`;
  nav.hidden = false;
  signOutButton.hidden = false;
  route();
}

/** The sign-in form; `why` says why the page came back to it (session expired, signed out). */
function showSignIn(why?: unknown): void {
  stopView?.();
  stopView = undefined;
  feed.stop();
  feedFilter = "";
  identity = undefined;
  nav.hidden = true;
  signOutButton.hidden = true;
  who.textContent = "";
  live.textContent = "";
  say("", "info");
  const input = h("input", {
    id: "token",
    name: "token",
    type: "password",
    autocomplete: "off",
    spellcheck: "false",
    required: true,
    "aria-describedby": "token-help",
  });
  const problem = h("p", { class: "error", role: "alert", id: "sign-in-error" });
  problem.hidden = why === undefined;
  if (why !== undefined) problem.textContent = `Your session ended: ${messageOf(why)}. Sign in again.`;
  const button = h("button", { type: "submit" }, "Sign in");
  const form = h(
    "form",
    { class: "sign-in", "aria-labelledby": "sign-in-title" },
    h("h1", { id: "sign-in-title" }, "Sign in to jobwatch"),
    problem,
    h("label", { for: "token" }, "Your jobwatch token"),
    input,
    h(
      "p",
      { id: "token-help", class: "muted" },
      "The token is sent once and kept by the server in an HttpOnly cookie; this page never stores it. ",
      "Make one with ",
      h("code", {}, "jobwatch token create --user NAME --role normal_user"),
      ".",
    ),
    button,
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    button.disabled = true;
    const token = input.value;
    input.value = "";
    signIn(token).then(signedIn, (error: unknown) => {
      problem.hidden = false;
      problem.textContent = messageOf(error);
      button.disabled = false;
      input.focus();
    });
  });
  main.replaceChildren(form);
  document.title = "Sign in · jobwatch";
  input.focus();
}

signOutButton.addEventListener("click", () => {
  void signOut().finally(() => showSignIn());
});
window.addEventListener("hashchange", route);

currentSession().then(signedIn, (error: unknown) => showSignIn(sessionEnded(error) ? undefined : error));
