// The web dashboard in a real browser (Debian's Chromium, headless, driven by playwright-core) against a
// real service: sign-in, a job moving PENDING -> COMPLETED on the page within 250 ms of each commit with no
// request made, another user's jobs never shown, cancel from the page, a server restart resumed with no
// status change missed, an expired token sent back to sign-in. Screenshots go to test-artifacts/web.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import type { Browser, BrowserContext, Page, Request } from "playwright-core";
import { chromium } from "playwright-core";
import type { Job } from "../../src/client/index.js";
import { durationMs, JobStatus } from "../../src/client/index.js";
import { DIALECTS } from "../helpers/databases.js";
import type { WebService } from "../helpers/web.js";
import { startWebService } from "../helpers/web.js";

/** Where the screenshots go: CI keeps this folder (README "Web dashboard"). */
const ARTIFACTS = fileURLToPath(new URL("../../test-artifacts/web/", import.meta.url));
const CHROMIUM = process.env.JOBWATCH_CHROMIUM ?? "/usr/bin/chromium";
const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--no-first-run",
  "--disable-sync",
];
/** The most a change may take from its commit to the page. */
const DELIVERY_BUDGET_MS = 250;
const ISSUER = "https://idp.example.test/";
const AUDIENCE = "jobwatch-web";

/** One state of a job's row (or job page) as the page showed it, and when (the browser's clock). */
interface Seen {
  id: string;
  status: string;
  progress: number;
  at: number;
}

/**
 * Records every distinct state each job row shows (status and the progress bar's value), from the DOM
 * mutation that drew it: installed before the page's own script runs. Plain JavaScript text: tsx would
 * add its own helpers to a function's source, which do not exist in the page.
 */
const RECORD_ROWS = `
  const seen = [];
  const last = new Map();
  window.__seen = seen;
  const scan = () => {
    const at = Date.now();
    for (const row of document.querySelectorAll("tr[data-job-id]")) {
      const id = row.dataset.jobId || "";
      const status = row.dataset.status || "";
      const bar = row.querySelector("[role=progressbar]");
      const progress = Number(bar ? bar.getAttribute("aria-valuenow") : -1);
      const key = status + "/" + progress;
      if (last.get(id) === key) continue;
      last.set(id, key);
      seen.push({ id, status, progress, at });
    }
  };
  new MutationObserver(scan).observe(document, { subtree: true, childList: true, attributes: true, characterData: true });
`;

async function seenOn(page: Page): Promise<Seen[]> {
  return page.evaluate(() => (window as unknown as { __seen: Seen[] }).__seen);
}

/** Waits until the page has shown `id` in `status` at `progress`. */
async function shown(page: Page, id: string, status: string, progress: number): Promise<void> {
  await page.waitForFunction(
    ([i, s, p]) =>
      (window as unknown as { __seen: Seen[] }).__seen.some((x) => x.id === i && x.status === s && x.progress === p),
    [id, status, progress] as const,
    { timeout: 5000 },
  );
}

const NAMES: Record<number, string> = {
  [JobStatus.JOB_STATUS_PENDING]: "pending",
  [JobStatus.JOB_STATUS_RUNNING]: "running",
  [JobStatus.JOB_STATUS_COMPLETED]: "completed",
  [JobStatus.JOB_STATUS_FAILED]: "failed",
  [JobStatus.JOB_STATUS_CANCELLED]: "cancelled",
};

/** A commit as the worker's reply reports it: the state and the server's updated_at. */
function commitOf(job: Job): { status: string; progress: number; at: number } {
  return { status: NAMES[job.status] ?? "?", progress: job.progress, at: job.updatedAt!.getTime() };
}

for (const dialect of DIALECTS) {
  describe(`web dashboard in Chromium (${dialect})`, () => {
    let web: WebService;
    let browser: Browser;
    let keyDir: string;
    let signJwt: (user: string, lifetimeS: number) => Promise<string>;
    const contexts: BrowserContext[] = [];

    before(async () => {
      mkdirSync(ARTIFACTS, { recursive: true });
      // An identity provider's key, as a JWKS file: JWTs with a short lifetime test expiry.
      const { privateKey, publicKey } = await generateKeyPair("ES256");
      keyDir = mkdtempSync(join(tmpdir(), "jobwatch-web-jwks-"));
      const jwks = join(keyDir, "jwks.json");
      writeFileSync(jwks, JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid: "k1", alg: "ES256" }] }));
      signJwt = (user, lifetimeS) =>
        new SignJWT({ preferred_username: user, role: "normal_user" })
          .setProtectedHeader({ alg: "ES256", kid: "k1" })
          .setIssuer(ISSUER)
          .setAudience(AUDIENCE)
          .setSubject(user)
          .setIssuedAt()
          .setExpirationTime(Math.floor(Date.now() / 1000) + lifetimeS)
          .sign(privateKey);
      web = await startWebService({
        dialect,
        env: { JOBWATCH_JWT_JWKS_URL: jwks, JOBWATCH_JWT_ISSUER: ISSUER, JOBWATCH_JWT_AUDIENCE: AUDIENCE },
      });
      browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
    });

    after(async () => {
      for (const context of contexts) await context.close().catch(() => undefined);
      await browser?.close();
      await web?.close();
      rmSync(keyDir, { recursive: true, force: true });
    });

    /** A fresh browser profile (its own cookies) on the sign-in page, signed in with `token` by keyboard. */
    async function signedIn(token: string, viewport = { width: 1200, height: 640 }) {
      const context = await browser.newContext({ viewport });
      contexts.push(context);
      const page = await context.newPage();
      await page.addInitScript({ content: RECORD_ROWS });
      const requests: Request[] = [];
      page.on("request", (request) => requests.push(request));
      const errors: string[] = [];
      page.on("pageerror", (error) => errors.push(String(error)));
      await page.goto(web.url);
      await page.locator("#token").waitFor();
      await page.keyboard.type(token);
      await page.keyboard.press("Enter");
      await page.locator("table.jobs").waitFor();
      await page.locator("#live[data-state=live]").waitFor();
      await page.locator(".count").filter({ hasText: /job/ }).waitFor();
      return { context, page, requests, errors };
    }

    test("a job driven by a worker moves PENDING -> COMPLETED on the page, each step within 250 ms, with no request", async () => {
      const { page, requests, errors } = await signedIn(web.tokens.alice);
      assert.equal(await page.locator("#who").textContent(), "alice (normal_user)");
      const before = requests.length;
      const w = web.worker.worker;
      // Bob's job changes alongside: alice's page must never show it.
      const bobJob = await w.createJob({ operationType: "add_golden_repo", username: "bob", resource: "bobs-repo" });
      const created = await w.createJob({ operationType: "add_golden_repo", username: "alice", resource: "my-repo" });
      const jobId = created.jobId;
      const commits = [commitOf(created)];
      await shown(page, jobId, "pending", 0);
      await w.startJob(bobJob.jobId);
      commits.push(commitOf(await w.startJob(jobId)));
      await shown(page, jobId, "running", 0);
      for (const [progress, phase] of [
        [10, "clone"],
        [35, "semantic"],
        [60, "semantic"],
        [85, "fts"],
        [100, "finalize"],
      ] as const) {
        await w.reportProgress(bobJob.jobId, progress);
        commits.push(commitOf(await w.reportProgress(jobId, progress, { phase, detail: `${progress * 5}/500 files` })));
        await shown(page, jobId, "running", progress);
      }
      commits.push(commitOf(await w.completeJob(jobId, { files_indexed: 500, branch: "main", semantic_chunks: 4213 })));
      await shown(page, jobId, "completed", 100);

      const seen = (await seenOn(page)).filter((s) => s.id === jobId);
      assert.deepEqual(
        seen.map((s) => `${s.status} ${s.progress}`),
        commits.map((c) => `${c.status} ${c.progress}`),
        "the page showed every commit, in order, and nothing else",
      );
      const delays = seen.map((s, i) => s.at - commits[i]!.at);
      for (const [i, delay] of delays.entries()) {
        assert.ok(
          delay <= DELIVERY_BUDGET_MS,
          `${commits[i]!.status} ${commits[i]!.progress}% took ${delay} ms from commit to page`,
        );
      }
      console.log(`# commit -> page delays (ms): ${delays.join(", ")}`);
      assert.ok(
        (await seenOn(page)).every((s) => s.id !== bobJob.jobId),
        "bob's job appeared on alice's page",
      );
      assert.deepEqual(
        requests.slice(before).map((r) => `${r.method()} ${r.url()}`),
        [],
        "the page made requests while the job moved (polling)",
      );
      assert.equal(
        await page.locator(`tr[data-job-id="${jobId}"] [role=progressbar]`).getAttribute("aria-valuenow"),
        "100",
      );

      // A fuller table for the screenshot: a running job with its phase and estimate, a failed one.
      const other = await w.createJob({
        operationType: "refresh_golden_repo",
        username: "alice",
        resource: "docs-site",
      });
      await w.startJob(other.jobId);
      await w.reportProgress(other.jobId, 42, { phase: "semantic", detail: "210/500 files indexed" });
      const failed = await w.createJob({
        operationType: "remove_golden_repo",
        username: "alice",
        resource: "old-repo",
      });
      await w.startJob(failed.jobId);
      await w.failJob(failed.jobId, "the repository is locked by another job");
      await w.createJob({ operationType: "add_golden_repo_index", username: "alice", resource: "my-repo" });
      await shown(page, failed.jobId, "failed", 0);
      await page.screenshot({ path: join(ARTIFACTS, "jobs-table.png") });

      // The job's page, by keyboard: its link, then Enter.
      await page.locator(`tr[data-job-id="${jobId}"] a.op`).focus();
      await page.keyboard.press("Enter");
      await page.locator("#job-status").filter({ hasText: "completed" }).waitFor();
      const fields = await page.locator("dl.fields dt").allTextContents();
      for (const name of [
        "job_id",
        "operation_type",
        "status",
        "created_at",
        "started_at",
        "completed_at",
        "progress",
        "username",
      ]) {
        assert.ok(fields.includes(name), `the job page shows ${name}`);
      }
      assert.match((await page.locator("pre.result").textContent()) ?? "", /"files_indexed": 500/);
      await page.locator("ol.timeline li.status-change").nth(2).waitFor();
      assert.deepEqual(await page.locator("ol.timeline li.status-change .what").allTextContents(), [
        "pending",
        "running",
        "completed",
      ]);
      // The recorded history (GetJobHistory keeps every status change; progress steps as the server records them).
      assert.equal(await page.locator("ol.timeline li .rev").last().textContent(), `rev ${commits.length}`);
      await page.screenshot({ path: join(ARTIFACTS, "job-page.png"), fullPage: true });
      assert.deepEqual(errors, []);
    });

    test("a user cancels their job from the page; another user's job is not found there", async () => {
      const { page } = await signedIn(web.tokens.alice);
      const w = web.worker.worker;
      const pending = await w.createJob({ operationType: "cancel_me", username: "alice" });
      const running = await w.createJob({ operationType: "cancel_me_running", username: "alice" });
      await w.startJob(running.jobId);
      await shown(page, pending.jobId, "pending", 0);

      await page.goto(`${web.url}/#/job/${pending.jobId}`);
      // The button shows once the job's first state arrives; focusing it while still hidden focuses nothing.
      const cancel = page.locator("button.danger").filter({ hasText: "Cancel job" });
      await cancel.waitFor({ state: "visible" });
      await cancel.focus();
      await page.keyboard.press("Enter");
      await page.locator("#job-status").filter({ hasText: "cancelled" }).waitFor();
      const afterCancel = await web.client(web.tokens.alice).getJob(pending.jobId);
      assert.equal(afterCancel.status, JobStatus.JOB_STATUS_CANCELLED);
      assert.equal(afterCancel.cancelReason, "cancelled from the web dashboard");

      // The job page follows the job live: its bar and its timeline move with each report.
      await page.goto(`${web.url}/#/job/${running.jobId}`);
      await page.locator("#job-status").filter({ hasText: "running" }).waitFor();
      await w.reportProgress(running.jobId, 30, { phase: "semantic", detail: "150/500 files" });
      await page.locator(".job-progress [role=progressbar][aria-valuenow='30']").waitFor({ timeout: 2000 });
      await page.locator("ol.timeline li").filter({ hasText: "150/500 files" }).waitFor({ timeout: 2000 });
      await page.locator("button.danger").click();
      await page
        .locator("dl.fields dd")
        .filter({ hasText: /^requested/ })
        .waitFor();
      assert.equal((await web.client(web.tokens.alice).getJob(running.jobId)).cancelRequested, true);

      const bobs = await w.createJob({ operationType: "secret", username: "bob", resource: "bobs-secret" });
      await page.goto(`${web.url}/#/job/${bobs.jobId}`);
      await page.locator("p.error[role=alert]").waitFor();
      assert.equal(
        await page.locator("p.error[role=alert]").textContent(),
        `job ${bobs.jobId} not found (finished jobs are removed after the retention period)`,
      );
      assert.equal(await page.getByText("bobs-secret").count(), 0);
    });

    test("a server restart mid-watch: the page says so, resumes from its cursor, and misses no status change", async () => {
      const { page, requests } = await signedIn(web.tokens.alice);
      const w = web.worker.worker;
      const first = await w.createJob({ operationType: "restart_test", username: "alice", resource: "r1" });
      await w.startJob(first.jobId);
      await w.reportProgress(first.jobId, 10);
      await shown(page, first.jobId, "running", 10);
      const before = requests.length;

      await web.stop();
      await page.locator("#live[data-state=reconnecting]").waitFor();
      assert.match((await page.locator("#notice").textContent()) ?? "", /resuming from the last cursor/);
      // While it is down, another replica takes the writes: the page must get them after the restart.
      const replica = await web.replica();
      await replica.worker.worker.completeJob(first.jobId, { ok: true });
      const second = await replica.worker.worker.createJob({
        operationType: "restart_test",
        username: "alice",
        resource: "r2",
      });
      await replica.worker.worker.startJob(second.jobId);
      await replica.stop();
      await web.start();

      await page
        .locator("#notice")
        .filter({ hasText: "Reconnected: resumed from the last cursor" })
        .waitFor({ timeout: 15_000 });
      await shown(page, first.jobId, "completed", 100);
      await shown(page, second.jobId, "running", 0);
      const seen = await seenOn(page);
      assert.deepEqual(
        seen.filter((s) => s.id === second.jobId).map((s) => s.status),
        ["pending", "running"],
        "the job made during the restart passed through PENDING on the page (a resume, not a new snapshot)",
      );
      assert.deepEqual(
        [...new Set(seen.filter((s) => s.id === first.jobId).map((s) => s.status))],
        ["pending", "running", "completed"],
      );
      // The only requests were the stream's reopening attempts (with backoff), none for anything else.
      const reopened = requests.slice(before).map((r) => new URL(r.url()).pathname);
      assert.ok(reopened.length >= 1 && reopened.length <= 8, `${reopened.length} requests to reconnect`);
      assert.ok(
        reopened.every((p) => p === "/api/jobwatch.v1.JobService/WatchJobs"),
        reopened.join(", "),
      );

      // Changes after the restart are live again.
      await w.reportProgress(second.jobId, 55);
      await shown(page, second.jobId, "running", 55);
    });

    test("sign-in keeps no secret in the page; an expired token sends the page back to sign-in", async () => {
      // The server accepts a JWT until exp plus its 30 s clock tolerance (for streams too), and a session
      // lives no longer than that: a token past its exp by 18 s leaves 12 s (typing it in and signing in take
      // a few seconds on a loaded machine; with 4 s left the session ended before the table showed).
      const jwt = await signJwt("alice", 12 - 30);
      const { page, context } = await signedIn(jwt);
      assert.equal(await page.locator("#who").textContent(), "alice (normal_user)");
      const cookies = await context.cookies();
      const session = cookies.find((c) => c.name === "jobwatch_session")!;
      assert.equal(session.httpOnly, true);
      assert.equal(session.sameSite, "Strict");
      assert.ok(
        session.expires - Date.now() / 1000 <= 13,
        "the cookie lives no longer than the server accepts the JWT",
      );
      const visible = await page.evaluate(() => ({
        cookie: document.cookie,
        local: JSON.stringify(localStorage),
        sessionStore: JSON.stringify(sessionStorage),
        url: location.href,
      }));
      assert.ok(!visible.cookie.includes(jwt) && !visible.cookie.includes("jobwatch_session"), visible.cookie);
      assert.equal(visible.local, "{}");
      assert.equal(visible.sessionStore, "{}");
      assert.ok(!visible.url.includes(jwt));
      assert.equal(await page.locator("#token").count(), 0);

      await page.locator("#sign-in-error").filter({ hasText: "Your session ended" }).waitFor({ timeout: 20_000 });
      assert.match((await page.locator("#sign-in-error").textContent()) ?? "", /expired/i);
      assert.equal(await page.locator("table.jobs").count(), 0);

      // A user token signs in again from the same page.
      await page.locator("#token").fill(web.tokens.alice);
      await page.keyboard.press("Enter");
      await page.locator("table.jobs").waitFor();
    });

    test("statistics: counts and p50/p95 per operation type as charts, read again once when a job changes, never on a timer", async () => {
      const { page, requests } = await signedIn(web.tokens.alice);
      await page.locator("nav a", { hasText: "Statistics" }).click();
      await page.locator("svg.chart").first().waitFor();
      const stats = await web.client(web.tokens.alice).getStatistics();
      const label = (await page.locator("svg.chart").first().getAttribute("aria-label")) ?? "";
      assert.match(label, new RegExp(`completed ${stats.completed}\\b`));
      assert.match(label, new RegExp(`pending ${stats.pending}\\b`));
      const statisticsCalls = () =>
        requests.filter((r) => r.url().endsWith("/api/jobwatch.v1.JobService/GetJobStatistics")).length;
      const before = statisticsCalls();
      await new Promise((resolve) => setTimeout(resolve, 2500));
      assert.equal(statisticsCalls(), before, "no request while nothing changes");
      await web.worker.worker.createJob({ operationType: "stats_test", username: "alice" });
      await page.locator("svg.chart").nth(1).and(page.locator("[aria-label*=stats_test]")).waitFor({ timeout: 5000 });
      assert.equal(statisticsCalls(), before + 1);

      // p50/p95 bars per operation type: the types the server names, a bar of each per type, the values
      // written as the server's durations.
      const job = await web.worker.worker.createJob({ operationType: "stats_done", username: "alice" });
      await web.worker.worker.startJob(job.jobId);
      await web.worker.worker.completeJob(job.jobId);
      const durations = page.locator("svg.chart.durations");
      await durations.and(page.locator("[aria-label*=stats_done]")).waitFor({ timeout: 5000 });
      const now = await web.client(web.tokens.alice).getStatistics({ includeDurationsByOperationType: true });
      const types = Object.keys(now.durationsByOperationType);
      assert.ok(types.includes("stats_done") && types.includes("add_golden_repo"), types.join(", "));
      assert.equal(await durations.locator("rect.bar.p50").count(), types.length);
      assert.equal(await durations.locator("rect.bar.p95").count(), types.length);
      const shownLabel = (await durations.getAttribute("aria-label")) ?? "";
      // As the page writes a duration: "340 ms" below a second, "4.2s" below a minute.
      const written = (d: Parameters<typeof durationMs>[0]) => {
        const ms = durationMs(d)!;
        return ms < 1000 ? `${Math.round(ms)} ms` : `${Math.round(ms / 100) / 10}s`;
      };
      for (const [type, d] of Object.entries(now.durationsByOperationType)) {
        assert.ok(
          shownLabel.includes(`${type} p50 ${written(d.p50Duration)}, p95 ${written(d.p95Duration)}`),
          shownLabel,
        );
      }
      await page.screenshot({ path: join(ARTIFACTS, "statistics.png"), fullPage: true });
    });

    test("a narrow screen shows each job as a card", async () => {
      const { page } = await signedIn(web.tokens.alice, { width: 390, height: 800 });
      const row = page.locator("tr[data-job-id]").first();
      await row.waitFor();
      const box = await row.boundingBox();
      assert.ok(box !== null && box.width <= 390, "a row fits the screen");
      assert.equal(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), true);
      await page.screenshot({ path: join(ARTIFACTS, "jobs-table-narrow.png") });
    });
  });
}
