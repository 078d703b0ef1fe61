/**
 * The web console in headless Chromium against the whole pipeline: a task submitted with the CLI is followed live
 * (RUNNING with partial progress, then SUCCEEDED, without a reload) in its detail view (timeline, result, the worker
 * that ran it); the task list is keyboard-operable and lists unfinished (and stalled) tasks; behind a gateway with
 * API keys the console asks for a key, refuses a wrong one and works with the right one; a task still moving is not
 * requeued (the reason shown); a task dead-lettered while the enricher was down is replayed with a click once it is
 * back, and succeeds; a FAILED task is retried with a click (its dead letter replayed); a task failed "not queued" is
 * requeued with a click and followed to SUCCEEDED; selected dead letters are discarded once the confirmation is
 * accepted (not when it is dismissed); the overview marks a paused priority and lists the live workers with the tasks
 * they run (and the worker's own task types, from the docs' example module), and quiets a worker after a confirmation (shown quiet once it applies it) and resumes it; a delayed task
 * is promoted with Run now; the tasks a filter matches are counted, then cancelled, with Cancel matching, and the
 * stalled ones among them requeued with Requeue stalled; a schedule
 * is created from the form (a bad cron or payload refused, naming it), with the task's limits (a bad one refused,
 * naming the field), and replaces one with the same id only when Replace is ticked; a task is submitted from the New
 * task form (opened by keyboard from the Tasks page) and followed on its page to SUCCEEDED with its result, a bad
 * payload, time, duration or key reuse refused there, naming it, with nothing sent, an unknown type's refusal by the
 * gateway shown in the form, and the same idempotency key again lands on the same task saying it was deduplicated
 * (replace waiting: its payload replaced); a type is paused and resumed from
 * the type limits page, its other limits kept, and its concurrency and rate are set from its dialog (a bad value
 * refused, naming the field; a pause kept) and cleared after a confirmation.
 * A task waiting for a place under its concurrency key links the key to its page, which counts and lists the key's
 * tasks (each linked); behind a gateway isolating callers the link names the task's submitter as the owner.
 * A task submitted from the New task form with a fairness key (a weight without a key, a malformed key, an
 * out-of-range weight refused in the browser, nothing sent) waits for its turn while its type's window (one place
 * here) is held: its page links the key to the type's fairness page, which counts the places taken and the keys
 * waiting and lists the window's tasks (linked) and the keys in turn order; the overview counts the waiting tasks.
 * A task's Logs section shows what its handler logged (ctx.log lines stored in Redis as a worker stores them) and
 * follows new lines while the task is unfinished; an unknown task's error is shown there.
 * Screenshots go to test-artifacts/.
 * Skipped (with a message) when Debian's chromium is not installed (scripts/setup.sh installs it); under CI=true a
 * missing chromium fails instead.
 */
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { create } from "@bufbuild/protobuf";
import { DurationSchema, timestampDate } from "@bufbuild/protobuf/wkt";
import { StatusEventSchema, statusEvent } from "@tm/flow";
import {
  createAdminClient,
  createTaskClient,
  Priority,
  RetryBackoffSchema,
  ScheduleOverlap,
  TaskState,
} from "@tm/proto";
import {
  appendDeadLetter,
  appendTaskLog,
  applyStatus,
  Keys,
  markCancelled,
  readResult,
  saveTask,
  type TaskLogEntry,
} from "@tm/store";
import { freePort, REPO_ROOT, spawnService, waitFor } from "@tm/testkit";
import { connect } from "nats";
import { type BrowserContext, chromium, type Locator, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Pipeline, startPipeline } from "../support/pipeline.js";

const CHROMIUM = "/usr/bin/chromium";
const ARTIFACTS = join(REPO_ROOT, "test-artifacts", "console");
const CLI = join(REPO_ROOT, "services", "client", "dist", "bundle", "cli.js");
const run = promisify(execFile);

if (!existsSync(CHROMIUM)) {
  console.warn(`console tests skipped: ${CHROMIUM} not found (install it: bash scripts/setup.sh)`);
}

// CI's setup installs chromium: there, a missing browser is a broken setup, not a reason to skip silently.
it("CI has chromium for the console tests", () => {
  if (process.env.CI) expect(existsSync(CHROMIUM), `${CHROMIUM}: scripts/setup.sh test installs it`).toBe(true);
});

describe.skipIf(!existsSync(CHROMIUM))("web console", () => {
  let pipeline: Pipeline;
  let browser: BrowserContext;
  let page: Page;
  let webUrl: string;
  let profileDir: string;

  /** A second gateway on the pipeline's NATS and Redis whose callers use API keys (`ops` is an operator), serving the
   *  console on a port of its own: what the tests of authentication and caller isolation open. */
  async function apiKeyGateway(keys: Record<string, string>, env: NodeJS.ProcessEnv = {}) {
    const webPort = await freePort();
    const gateway = await spawnService("gateway", {
      NATS_URL: pipeline.nats.url,
      REDIS_URL: pipeline.redis.url,
      GATEWAY_AUTH_MODE: "api-key",
      GATEWAY_API_KEYS: Object.entries(keys)
        .map(([caller, key]) => `${caller}:${key}`)
        .join(","),
      GATEWAY_ADMIN_CALLERS: "ops",
      GATEWAY_WEB_PORT: String(webPort),
      ...env,
    });
    return { gateway, origin: `http://127.0.0.1:${webPort}` };
  }

  beforeAll(async () => {
    const webPort = await freePort();
    pipeline = await startPipeline({
      // The enricher is stopped and started again: its own process; the rest share one.
      ownProcess: ["enricher"],
      perService: {
        // The gateway requeues no stalled task on its own: the tasks page's "Requeue stalled" does (tested below).
        // A fairness window of one place per type: one task of a key holds it, the next ones wait their turn (only
        // tasks with a fairness key pass through it: the fairness test's).
        gateway: {
          GATEWAY_WEB_PORT: String(webPort),
          GATEWAY_STALLED_REQUEUE_LIMIT: "0",
          GATEWAY_FAIRNESS_WINDOW: "1",
        },
        // Reports, and pauses, quiet marks and limits read, every 200 ms (1-5 s by default): the tests wait on them.
        // The docs' example module: the overview names the worker's own task types.
        worker: {
          WORKER_REPORT_INTERVAL_MS: "200",
          WORKER_PAUSE_POLL_MS: "200",
          WORKER_HANDLER_MODULES: join(REPO_ROOT, "docs", "examples", "handlers.mjs"),
        },
      },
      env: { TASK_TYPES: "slugify,word-count,word-total,word-count-all" },
    });
    webUrl = `http://127.0.0.1:${webPort}`;
    profileDir = mkdtempSync(join(tmpdir(), "tm-console-chromium-"));
    mkdirSync(ARTIFACTS, { recursive: true });
    // A fresh profile directory (--user-data-dir) per run: playwright takes it as launchPersistentContext's argument.
    browser = await chromium.launchPersistentContext(profileDir, {
      executablePath: CHROMIUM,
      viewport: { width: 1280, height: 900 },
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    });
    page = await browser.newPage();
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await pipeline?.dispose();
    if (profileDir) rmSync(profileDir, { recursive: true, force: true });
  });

  async function submitWithCli(type: string, payload: object): Promise<string> {
    const { stdout } = await run(process.execPath, [
      CLI,
      "submit",
      type,
      "--payload",
      JSON.stringify(payload),
      "--addr",
      pipeline.gatewayUrl,
      "--json",
    ]);
    return (JSON.parse(stdout) as { taskId: string }).taskId;
  }

  /** Clicks a button that asks with window.confirm and answers; the question. (The click returns only once the
   *  question is answered: the page's handler waits for it.) */
  async function clickAndAnswer(button: Locator, accept: boolean): Promise<string> {
    const [question] = await Promise.all([
      page.waitForEvent("dialog").then(async (dialog) => {
        await (accept ? dialog.accept() : dialog.dismiss());
        return dialog.message();
      }),
      button.click(),
    ]);
    return question;
  }

  it("follows a task submitted with the CLI live to SUCCEEDED, with its timeline and result", async () => {
    const taskId = await submitWithCli("sleep", { ms: 4000 });
    let navigations = 0;
    const countNavigation = (frame: { parentFrame(): unknown }) => {
      if (frame.parentFrame() === null) navigations++;
    };
    page.on("framenavigated", countNavigation);
    await page.goto(`${webUrl}/tasks/${taskId}`);
    // The page opens while the task is still on its way: it must show it RUNNING with partial progress, then
    // SUCCEEDED, from the status stream alone (no reload).
    await page.waitForSelector("#task-state:text('RUNNING')", { timeout: 15_000 });
    // A string, evaluated in the page (this file is type-checked without the DOM library).
    await page.waitForFunction(
      "(() => { const v = document.querySelector('#task-progress')?.value ?? 0; return v > 0 && v < 100; })()",
      undefined,
      { timeout: 15_000 },
    );
    // The handler's last progress message and details (sleep reports how long it has slept) beside the bar.
    expect(await page.textContent("#task-progress-message")).toMatch(/^slept \d+ of 4000 ms$/);
    expect(JSON.parse((await page.textContent("#task-progress-details")) ?? "")).toHaveProperty("sleptMs");
    await page.waitForSelector("#task-state:text('SUCCEEDED')", { timeout: 30_000 });
    page.off("framenavigated", countNavigation);
    expect(navigations, "the page was not reloaded").toBe(1);
    await page.waitForSelector("#task-result", { timeout: 10_000 });
    expect(await page.textContent("#task-result")).toContain("sleptMs");
    const stages = await page.$$eval(".timeline .stage", (items) =>
      items.map((item) => ({
        name: item.querySelector(".stage-name")?.textContent,
        reached: item.classList.contains("reached"),
      })),
    );
    expect(stages.map((stage) => stage.name)).toEqual(["PENDING", "INGESTED", "SCHEDULED", "RUNNING", "SUCCEEDED"]);
    expect(stages.every((stage) => stage.reached)).toBe(true);
    expect(await page.getAttribute("a:text('View trace')", "href")).toMatch(/^http:\/\/localhost:3000\/explore\?/);
    // Every service's lines about the task in Loki: the query promtail's labels answer (observability-configs checks
    // them), from a minute before the task was created.
    const logsHref = (await page.getAttribute("a:text('View logs')", "href")) ?? "";
    expect(logsHref).toMatch(/^http:\/\/localhost:3000\/explore\?/);
    const logsPane = JSON.parse(new URL(logsHref).searchParams.get("panes") ?? "{}").l;
    expect(logsPane.queries[0]).toMatchObject({
      datasource: { type: "loki", uid: "loki" },
      expr: `{service=~".+"} | task_id="${taskId}"`,
    });
    // The worker that ran it (host:pid), from its audit record (read again a moment after the task ended).
    await page.locator("dt:text('Worker') + dd").waitFor({ timeout: 15_000 });
    expect(await page.textContent("dt:text('Worker') + dd")).toMatch(/^\S+:\d+$/);
    await page.screenshot({ path: join(ARTIFACTS, "task-detail.png"), fullPage: true });
    if (process.env.CONSOLE_DOCS_SCREENSHOT === "1") {
      await page.screenshot({ path: join(REPO_ROOT, "docs", "console.png"), fullPage: true });
    }
  });

  it("shows a task's log lines in its Logs section and follows new ones while it is unfinished", async () => {
    // Delayed an hour: unfinished while the page reads its log. Its lines are stored as a worker stores ctx.log's.
    const { taskId } = await pipeline.client.submitTask({
      type: "echo",
      schedule: { case: "delay", value: create(DurationSchema, { seconds: 3_600n }) },
    });
    const redis = pipeline.redisClient;
    const log = (entries: TaskLogEntry[], maxLines = 1_000) =>
      appendTaskLog(redis, taskId, entries, { maxLines, ttlSeconds: 3_600 });
    const logs = page.getByRole("region", { name: "Logs", exact: true });
    const rows = logs.locator("tbody tr");
    try {
      await page.goto(`${webUrl}/tasks/${taskId}`);
      await page.waitForSelector("#task-state:text('PENDING')", { timeout: 15_000 });
      await logs.getByText("No lines logged (a handler's ctx.log lines appear here).").waitFor({ timeout: 10_000 });

      // Logged after the page opened: read on from its cursor (every 2 s), no reload.
      const time = new Date().toISOString();
      await log([
        { time, level: "info", message: "fetching part 7", attempt: 1, generation: 0, fields: { part: 7 } },
        { time, level: "warn", message: "the upstream is slow", attempt: 2, generation: 0 },
      ]);
      await rows.nth(1).waitFor({ timeout: 10_000 });
      // The page's own time format (toLocaleString without hour12), in the browser's locale.
      const shownTime = await page.evaluate(
        `new Date(${JSON.stringify(time)}).toLocaleString(undefined, { hour12: false })`,
      );
      expect(await rows.nth(0).getByRole("cell").allTextContents()).toEqual([
        shownTime,
        "info",
        "#1",
        "fetching part 7",
        '{"part":7}',
      ]);
      expect(await rows.nth(1).getByRole("cell").allTextContents()).toEqual([
        shownTime,
        "warn",
        "#2",
        "the upstream is slow",
        "",
      ]);
      expect(await rows.nth(1).getAttribute("class")).toContain("log-warn");
      expect(await logs.getByText("No lines logged").count()).toBe(0);

      // One more, past a cap of two lines: it appears after the others, and the oldest stored one is counted dropped.
      await log(
        [
          {
            time: new Date().toISOString(),
            level: "error",
            message: "part 8 failed",
            attempt: 2,
            generation: 0,
            fields: { err: { message: "socket hang up" } },
          },
        ],
        2,
      );
      await rows.nth(2).waitFor({ timeout: 10_000 });
      expect(await rows.nth(2).getByRole("cell").nth(3).textContent()).toBe("part 8 failed");
      expect(await rows.nth(2).getByRole("cell").nth(4).textContent()).toBe('{"err":{"message":"socket hang up"}}');
      expect(await rows.nth(2).getAttribute("class")).toContain("log-error");
      await logs
        .getByText("1 older line dropped: the workers keep a task's newest WORKER_TASK_LOG_LINES.")
        .waitFor({ timeout: 10_000 });
      await page.screenshot({ path: join(ARTIFACTS, "task-logs.png"), fullPage: true });
    } finally {
      await pipeline.client.cancelTask({ taskId });
    }
    // Finished: its lines stay.
    await page.waitForSelector("#task-state:text('CANCELLED')", { timeout: 15_000 });
    expect(await rows.count()).toBe(3);

    // An unknown task: the call's error in the section, the rest of the page drawn.
    const unknown = crypto.randomUUID();
    await page.goto(`${webUrl}/tasks/${unknown}`);
    await logs
      .locator("p.error")
      .filter({ hasText: /^Could not load the logs: NotFound: / })
      .waitFor({ timeout: 10_000 });
    expect(await page.textContent("h1")).toBe(`Task ${unknown}`);
    expect(await page.getByRole("heading", { name: "Logs" }).count()).toBe(1);
  });

  it("offers Run now for a delayed task still waiting: a click promotes it, and it runs to SUCCEEDED", async () => {
    const { taskId } = await pipeline.client.submitTask({
      type: "echo",
      payload: { promoted: "from the console" },
      schedule: { case: "delay", value: create(DurationSchema, { seconds: 3_600n }) },
    });
    await page.goto(`${webUrl}/tasks/${taskId}`);
    await page.waitForSelector("#task-state:text('PENDING')", { timeout: 15_000 });
    await page.waitForSelector("button:text('Run now')", { state: "visible", timeout: 10_000 });
    // Every announcement from here on: the task's status changes ("Task is INGESTED." …) follow the promotion's own
    // within milliseconds and replace it in the live region, faster than a poll of its text may see it.
    await page.evaluate(`(() => {
      const region = document.getElementById("announcer");
      window.announced = [];
      // Each record's added text, not the region's text when the observer runs: two announcements may share a run.
      new MutationObserver((records) => {
        for (const record of records) for (const node of record.addedNodes) window.announced.push(node.textContent);
      }).observe(region, { childList: true });
    })()`);
    await page.click("button:text('Run now')");
    await page.waitForFunction("window.announced.includes('Task promoted: it runs now.')", undefined, {
      timeout: 10_000,
    });
    await page.waitForSelector("#task-state:text('SUCCEEDED')", { timeout: 30_000 });
    expect(await page.isHidden("button:text('Run now')")).toBe(true);
    const { events } = await createAdminClient({ baseUrl: pipeline.gatewayUrl }).getTaskHistory({ taskId });
    expect(events.map((event) => event.action)).toContain("promoted");
    // A task that never waited offers no such button.
    const plain = await submitWithCli("echo", { plain: true });
    await page.goto(`${webUrl}/tasks/${plain}`);
    await page.waitForSelector("#task-state:text('SUCCEEDED')", { timeout: 30_000 });
    expect(await page.isHidden("button:text('Run now')")).toBe(true);
  });

  it("refuses, with the gateway's reason, to requeue a task that is still moving; the button is off once it finished", async () => {
    const taskId = await submitWithCli("sleep", { ms: 5000 });
    // Long enough that the refusal is announced before "Task is SUCCEEDED." replaces it, on a slow machine too.
    await page.goto(`${webUrl}/tasks/${taskId}`);
    await page.waitForSelector("#task-state:text('RUNNING')", { timeout: 15_000 });
    await page.click("button:text('Requeue stalled task')");
    await page.waitForSelector("#announcer:text('Not requeued: it is RUNNING and its status changed')", {
      state: "attached",
      timeout: 10_000,
    });
    await page.waitForSelector("#task-state:text('SUCCEEDED')", { timeout: 30_000 });
    expect(await page.isDisabled("button:text('Requeue stalled task')")).toBe(true);
    const { events } = await createAdminClient({ baseUrl: pipeline.gatewayUrl }).getTaskHistory({ taskId });
    expect(events.map((event) => event.action)).not.toContain("requeued_stalled");
  });

  it("lists unfinished tasks, those unchanged for ten minutes and those stalled (none here), from the Unfinished filter", async () => {
    // Unfinished for the whole test (a short one could finish before a loaded machine renders the list), then
    // cancelled.
    const taskId = await submitWithCli("sleep", { ms: 60_000 });
    try {
      await page.goto(`${webUrl}/tasks?stalled=0`);
      await page.waitForSelector(`#task-list a:text('${taskId}')`, { timeout: 10_000 });
      await page.selectOption("select[name=stalled]", "600");
      await page.waitForSelector("#task-list p:text('No task matches.')", { timeout: 10_000 });
      expect(page.url()).toMatch(/\/tasks\?stalled=600$/);
      // Stalled (ListTasks `stalled`): its message waits in the worker queue while it runs, so it is not listed.
      await page.goto(`${webUrl}/tasks?stalled=0`);
      await page.waitForSelector(`#task-list a:text('${taskId}')`, { timeout: 10_000 });
      await page.selectOption("select[name=stalled]", "counted");
      await page.waitForSelector("#task-list p:text('No task matches.')", { timeout: 10_000 });
      expect(page.url()).toMatch(/\/tasks\?stalled=counted$/);
    } finally {
      await pipeline.client.cancelTask({ taskId });
    }
  });

  it("shows a running task's last progress message beside its percent in the task list", async () => {
    const taskId = await submitWithCli("sleep", { ms: 5000 });
    await waitFor("a progress message", async () =>
      Boolean((await pipeline.client.getTask({ taskId })).task?.status?.progressMessage),
    );
    await page.goto(`${webUrl}/tasks?state=RUNNING`);
    const row = page.getByRole("row").filter({ has: page.locator(`a[href='/tasks/${taskId}']`) });
    await row.waitFor({ timeout: 15_000 });
    expect(await row.textContent()).toMatch(/\d+% · slept \d+ of 5000 ms/);
  });

  it("reaches the task list with Tab and opens a task with Enter", async () => {
    const taskId = await submitWithCli("echo", { hello: "keyboard" });
    await page.goto(`${webUrl}/tasks`);
    await page.waitForSelector(`a[href='/tasks/${taskId}']`, { timeout: 15_000 });
    let focused = "";
    // A task's link (the page's "New task" link, /tasks/new, comes before the list).
    for (let presses = 0; presses < 40 && !/^\/tasks\/[\da-f-]{36}$/.test(focused); presses++) {
      await page.keyboard.press("Tab");
      focused = (await page.evaluate("document.activeElement?.getAttribute('href') ?? ''")) as string;
    }
    expect(focused).toMatch(/^\/tasks\/[\da-f-]{36}$/);
    await page.keyboard.press("Enter");
    await page.waitForURL(`${webUrl}${focused}`, { timeout: 10_000 });
    await page.waitForSelector("#task-state", { timeout: 10_000 });
    await page.screenshot({ path: join(ARTIFACTS, "task-list-keyboard.png"), fullPage: true });
  });

  it("honours the gateway's authentication: asks for a key, refuses a wrong one, works with the right one", async () => {
    const KEY = "ops-key-0123456789abcdef";
    const { gateway: guarded, origin } = await apiKeyGateway({ ops: KEY });
    const tab = await browser.newPage(); // its own sessionStorage: no key yet
    try {
      await tab.goto(`${origin}/tasks`);
      const dialog = tab.getByRole("dialog");
      await dialog.getByText("The gateway requires an API key.").waitFor({ timeout: 15_000 });
      expect(await tab.locator("#task-list a[href^='/tasks/']").count()).toBe(0);

      await dialog.getByLabel("API key").fill(`${KEY}-wrong`);
      await dialog.getByRole("button", { name: "Use this key" }).click();
      await tab
        .getByRole("dialog")
        .getByText("The gateway refused the request: enter a valid API key.")
        .waitFor({ timeout: 15_000 });

      await tab.getByRole("dialog").getByLabel("API key").fill(KEY);
      await tab.getByRole("dialog").getByRole("button", { name: "Use this key" }).click();
      // Earlier tests' tasks are in this Redis: with the key, the list loads them.
      await tab.locator("#task-list a[href^='/tasks/']").first().waitFor({ timeout: 15_000 });
      await tab.screenshot({ path: join(ARTIFACTS, "api-key-accepted.png"), fullPage: true });
    } finally {
      await tab.close();
      await guarded.process.stop();
    }
  });

  it("replays, with a click, a task dead-lettered while the enricher was down", async () => {
    const enricher = pipeline.services.get("enricher")!;
    await enricher.process.stop();
    const taskId = await submitWithCli("echo", { replay: true });
    const admin = createAdminClient({ baseUrl: pipeline.gatewayUrl });
    await waitFor(
      "the task in the dead-letter list",
      async () =>
        (await admin.listDeadLetters({ filter: { taskId } })).deadLetters.some((letter) => letter.taskId === taskId),
      { timeoutMs: 30_000 },
    );
    enricher.process.start();
    await enricher.ready(60_000);

    await page.goto(`${webUrl}/dead-letters`);
    const replay = page.getByRole("button", { name: `Replay ${taskId}` });
    await replay.waitFor({ timeout: 15_000 });
    await page.screenshot({ path: join(ARTIFACTS, "dead-letters.png"), fullPage: true });
    await replay.click();
    await page.waitForSelector("#announcer:text('Replayed 1 of 1')", { state: "attached", timeout: 15_000 });

    await page.goto(`${webUrl}/tasks/${taskId}`);
    await page.waitForSelector("#task-state:text('SUCCEEDED')", { timeout: 30_000 });
  });

  it("retries a FAILED task with a click (its dead letter replayed) and follows the new run; none for a succeeded one", async () => {
    const { taskId } = await pipeline.client.submitTask({ type: "fail", maxAttempts: 1 });
    const admin = createAdminClient({ baseUrl: pipeline.gatewayUrl });
    await waitFor(
      "the task dead-lettered",
      async () => (await admin.listDeadLetters({ filter: { taskId } })).deadLetters.length === 1,
      { timeoutMs: 30_000 },
    );
    await page.goto(`${webUrl}/tasks/${taskId}`);
    await page.waitForSelector("#task-state:text('FAILED')", { timeout: 15_000 });
    const retry = page.getByRole("button", { name: "Retry failed task" });
    await retry.click();
    // The new generation runs (and fails again, being a fail task), followed live to its end, when the page reads the
    // history again: "replayed" appears there only then. (The announcement of the retry is soon replaced by those of
    // the new run's states, so it is not waited for.)
    await page
      .locator("section[aria-label=History] tbody tr")
      .filter({ hasText: "replayed" })
      .waitFor({ timeout: 30_000 });
    expect(await page.textContent("#task-state")).toBe("FAILED");
    await waitFor("the second run's failure audited", async () => {
      const { events } = await admin.getTaskHistory({ taskId });
      return events.filter((event) => event.action === "failed").length === 2;
    });

    const done = await submitWithCli("echo", { retry: false });
    await page.goto(`${webUrl}/tasks/${done}`);
    await page.waitForSelector("#task-state:text('SUCCEEDED')", { timeout: 30_000 });
    expect(await page.getByRole("button", { name: "Retry failed task" }).isHidden()).toBe(true);
  });

  it("requeues, with a click, a task whose submission never reached the stream, and follows it to SUCCEEDED", async () => {
    // What the gateway's requeue sweeper leaves for a submission cut short while NATS was down for good: the record,
    // FAILED "not queued", and its cancel marker; no message anywhere.
    const taskId = crypto.randomUUID();
    const redis = pipeline.redisClient;
    await saveTask(redis, {
      taskId,
      type: "echo",
      priority: "high",
      payload: { requeued: true },
      metadata: {},
      createdAt: new Date(Date.now() - 180_000).toISOString(),
      generation: 0,
    });
    const error =
      "not queued: the submission was interrupted and 180 s later is too old to queue safely; submit it again";
    await applyStatus(
      redis,
      StatusEventSchema.parse(statusEvent({ taskId, state: "FAILED", source: "gateway", error, generation: 0 })),
    );
    await markCancelled(redis, taskId, error);

    await page.goto(`${webUrl}/tasks/${taskId}`);
    await page.waitForSelector("#task-state:text('FAILED')", { timeout: 10_000 });
    expect(await page.isDisabled("button:text('Cancel task')")).toBe(true);
    await page.click("button:text('Requeue stalled task')");
    // (Its announcement is at once followed by the new generation's "Task is PENDING.": no wait on it.)
    // The page follows the new generation without a reload.
    await page.waitForSelector("#task-state:text('SUCCEEDED')", { timeout: 30_000 });
    expect(await readResult(redis, taskId)).toMatchObject({ generation: 1, output: { requeued: true } });
    const admin = createAdminClient({ baseUrl: pipeline.gatewayUrl });
    let requeued: { detail?: unknown } | undefined;
    await waitFor("the requeued_stalled audit event", async () => {
      requeued = (await admin.getTaskHistory({ taskId })).events.find((event) => event.action === "requeued_stalled");
      return requeued !== undefined;
    });
    expect(requeued?.detail).toMatchObject({ generation: 1, previousState: "FAILED" });
  });

  it("lists the live workers and the tasks they run on the overview, each task linked to its page", async () => {
    const taskId = await submitWithCli("sleep", { ms: 60_000 });
    try {
      await page.goto(`${webUrl}/`);
      await page.waitForSelector("h2:text('Workers (1)')", { timeout: 15_000 });
      const link = page.getByRole("link", { name: taskId });
      await link.waitFor({ timeout: 15_000 });
      const row = page.getByRole("row").filter({ has: link });
      expect(await row.getByRole("cell", { name: "sleep", exact: true }).count()).toBe(1);
      // The worker's own task types (the example module), in their column; word-count's attempts run in threads.
      const [worker] = (await createAdminClient({ baseUrl: pipeline.gatewayUrl }).listWorkers({})).workers;
      const workerRow = page
        .getByRole("row")
        .filter({ has: page.getByRole("cell", { name: worker?.id, exact: true }) });
      expect(
        await workerRow
          .getByRole("cell", { name: "slugify, word-count (thread), word-total, word-count-all", exact: true })
          .count(),
      ).toBe(1);
      await page.screenshot({ path: join(ARTIFACTS, "overview-workers.png"), fullPage: true });
      await link.click();
      await page.waitForSelector("#task-state:text('RUNNING')", { timeout: 15_000 });
    } finally {
      await pipeline.client.cancelTask({ taskId, reason: "test done" });
    }
  });

  it("shows the pool each worker serves (WORKER_POOL), in a column only where some worker serves one", async () => {
    const admin = createAdminClient({ baseUrl: pipeline.gatewayUrl });
    // A worker of pool "text": its own TASK_ROUTES names the pool (the rest of this pipeline routes nothing to it).
    const pooled = await pipeline.spawn(
      "worker",
      { WORKER_POOL: "text", TASK_ROUTES: "word-count=text", WORKER_ID: "console-pool-worker" },
      "worker-text",
    );
    try {
      await page.goto(`${webUrl}/`);
      await page.waitForSelector("h2:text('Workers (2)')", { timeout: 15_000 });
      const rowOf = (id: string) =>
        page
          .getByRole("row")
          .filter({ has: page.getByRole("cell", { name: id, exact: true }) })
          .filter({ has: page.getByRole("button") });
      expect(await page.getByRole("columnheader", { name: "Pool", exact: true }).count()).toBe(1);
      expect(await rowOf("console-pool-worker").getByRole("cell", { name: "text", exact: true }).count()).toBe(1);
      const other = (await admin.listWorkers({})).workers.find((worker) => worker.id !== "console-pool-worker");
      expect(
        await rowOf(other?.id ?? "?")
          .getByRole("cell", { name: "default", exact: true })
          .count(),
      ).toBe(1);
      await page.screenshot({ path: join(ARTIFACTS, "overview-worker-pools.png"), fullPage: true });
    } finally {
      await pooled.process.stop();
      pipeline.services.delete("worker-text");
      await waitFor(
        "the pool's worker gone from the list",
        async () => (await admin.listWorkers({})).workers.length === 1,
      );
    }
    // One pool no more: no column.
    await page.goto(`${webUrl}/`);
    await page.waitForSelector("h2:text('Workers (1)')", { timeout: 15_000 });
    expect(await page.getByRole("columnheader", { name: "Pool", exact: true }).count()).toBe(0);
  });

  it("warns of a queue no consumer reads (a pool none of whose workers started) and counts its messages as waiting", async () => {
    // A task message on a pool's queue with no worker of that pool, as the scheduler would route it.
    const subject = "tasks.worker.low.unstarted";
    const nc = await connect({ servers: pipeline.nats.url });
    const jsm = await nc.jetstreamManager();
    try {
      await nc.jetstream().publish(subject, new TextEncoder().encode("{}"));
      await page.goto(`${webUrl}/`);
      const warning = page.getByRole("alert").filter({ hasText: subject });
      await warning.waitFor({ timeout: 15_000 });
      expect(await warning.textContent()).toMatch(
        new RegExp(`^${subject.replaceAll(".", "\\.")} holds 1 message \\(oldest [^)]+\\) that no consumer reads`),
      );
      const low = page.getByRole("row").filter({ has: page.getByRole("cell", { name: "low", exact: true }) });
      expect(await low.getByRole("cell").nth(1).textContent()).toBe("1");
      const consumerRow = page.getByRole("row").filter({ has: page.getByRole("cell", { name: subject, exact: true }) });
      expect(await consumerRow.getByRole("cell", { name: "none reads it", exact: true }).count()).toBe(1);
      await page.screenshot({ path: join(ARTIFACTS, "overview-unconsumed-queue.png"), fullPage: true });
    } finally {
      await jsm.streams.purge("TASKS", { filter: subject });
      await nc.close();
    }
    await page.goto(`${webUrl}/`);
    await page.waitForSelector("h2:text('Queue depth per priority')", { timeout: 15_000 });
    expect(await page.getByRole("alert").filter({ hasText: subject }).count()).toBe(0);
  });

  it("lists a handler that ignores its signal under Abandoned handlers, linked to its task", async () => {
    // One attempt of 1 s: the sleep goes on for 20 s in the background, abandoned a second after its attempt ended.
    const { stdout } = await run(process.execPath, [
      CLI,
      "submit",
      "sleep",
      "--payload",
      JSON.stringify({ ms: 20_000, ignoreSignal: true }),
      "--attempt-timeout",
      "1s",
      "--max-attempts",
      "1",
      "--addr",
      pipeline.gatewayUrl,
      "--json",
    ]);
    const { taskId } = JSON.parse(stdout) as { taskId: string };
    await page.goto(`${webUrl}/`);
    await page.waitForSelector("h2:text('Abandoned handlers (1)')", { timeout: 20_000 });
    const link = page.getByRole("link", { name: taskId });
    const row = page.getByRole("row").filter({ has: link });
    expect(await row.getByRole("cell", { name: "sleep", exact: true }).count()).toBe(1);
    await page.screenshot({ path: join(ARTIFACTS, "overview-abandoned.png"), fullPage: true });
    // Its one attempt failed (timed out) when it was abandoned: the task is FAILED, whatever the handler still does.
    await waitFor(
      "the task FAILED",
      async () => (await pipeline.client.getTask({ taskId })).task?.status?.state === TaskState.FAILED,
    );
  });

  it("quiets the worker from the overview after a confirmation (dismissed: not), shows it quiet, and resumes it", async () => {
    const admin = createAdminClient({ baseUrl: pipeline.gatewayUrl });
    const [worker] = (await admin.listWorkers({})).workers;
    if (!worker) throw new Error("no live worker");
    const workerId = worker.id;
    const quietNow = async () => (await admin.listWorkers({})).workers.find((w) => w.id === workerId)?.quiet;
    try {
      await page.goto(`${webUrl}/`);
      // Its row in the workers table (the running tasks' rows name it too, without a button).
      const row = page
        .getByRole("row")
        .filter({ has: page.getByRole("cell", { name: workerId, exact: true }) })
        .filter({ has: page.getByRole("button") });
      await row.getByRole("cell", { name: "taking tasks", exact: true }).waitFor({ timeout: 15_000 });
      // Dismissed: no mark is set.
      await clickAndAnswer(row.getByRole("button", { name: `Quiet ${workerId}` }), false);
      expect(await pipeline.redisClient.exists(`worker_quiet:${workerId}`)).toBe(0);
      // Accepted: the gateway's answer is shown, and the row says quiet once the worker reports it applies it.
      const question = await clickAndAnswer(row.getByRole("button", { name: `Quiet ${workerId}` }), true);
      expect(question).toBe(
        `Quiet worker ${workerId}? It takes no new tasks and gives the ones it holds buffered to the other workers; ` +
          "its running tasks finish. Resume undoes it.",
      );
      await page.waitForSelector(`[role=status]:text('Worker ${workerId}: quiet (takes no new tasks')`, {
        timeout: 15_000,
      });
      await row.getByRole("cell", { name: "quiet", exact: true }).waitFor({ timeout: 15_000 });
      expect(await quietNow()).toBe(true);
      await page.screenshot({ path: join(ARTIFACTS, "overview-worker-quiet.png"), fullPage: true });
      // Resume: no confirmation; the row says it takes tasks again, and it runs one.
      await row.getByRole("button", { name: `Resume ${workerId}` }).click();
      await page.waitForSelector(`[role=status]:text('Worker ${workerId}: resumed (takes tasks again).')`, {
        timeout: 15_000,
      });
      await row.getByRole("cell", { name: "taking tasks", exact: true }).waitFor({ timeout: 15_000 });
      expect(await quietNow()).toBe(false);
      const taskId = await submitWithCli("echo", { afterResume: true });
      await waitFor(
        "a task run after the resume",
        async () => (await pipeline.client.getTask({ taskId })).task?.status?.state === TaskState.SUCCEEDED,
        { timeoutMs: 30_000 },
      );
    } finally {
      // Later tests need the worker to take tasks.
      await admin.resumeWorker({ workerId });
      await waitFor("the worker taking tasks again", async () => (await quietNow()) === false);
    }
  });

  it("marks a paused priority in the overview's queue-depth table", async () => {
    const admin = createAdminClient({ baseUrl: pipeline.gatewayUrl });
    await admin.pauseQueue({ priority: Priority.LOW });
    try {
      await page.goto(`${webUrl}/`);
      const low = page.getByRole("row").filter({ has: page.getByRole("cell", { name: "low", exact: true }) });
      await low.getByRole("cell", { name: "paused", exact: true }).waitFor({ timeout: 15_000 });
      const high = page.getByRole("row").filter({ has: page.getByRole("cell", { name: "high", exact: true }) });
      expect(await high.getByRole("cell", { name: "paused" }).count()).toBe(0);
    } finally {
      await admin.resumeQueue({ priority: Priority.LOW });
    }
  });

  it("shows a delayed task's time and limits on its page and counts it among the overview's delayed tasks", async () => {
    const { taskId } = await pipeline.client.submitTask({
      type: "echo",
      schedule: { case: "delay", value: create(DurationSchema, { seconds: 3_600n }) },
      timeout: create(DurationSchema, { seconds: 2n }),
      maxAttempts: 1,
      retryBackoff: create(RetryBackoffSchema, {
        delay: create(DurationSchema, { seconds: 1n }),
        multiplier: 2,
        maxDelay: create(DurationSchema, { seconds: 60n }),
        jitter: 0.2,
      }),
      succeededRetention: create(DurationSchema, { seconds: 600n }),
    });
    try {
      await page.goto(`${webUrl}/tasks/${taskId}`);
      await page.waitForSelector("#task-state:text('PENDING')", { timeout: 15_000 });
      const runsAt = page.locator("dt:text-is('Runs at') + dd");
      await runsAt.waitFor({ timeout: 15_000 });
      expect(await runsAt.textContent()).toMatch(/\(delayed\)$/);
      expect(await page.locator("dt:text-is('Limits') + dd").textContent()).toBe(
        "timeout 2.0 s per attempt; at most 1 attempt; retried after 1.0 s, ×2 each time up to 1 min 0 s, up to 20 % less at random; kept 10 min 0 s once it succeeded",
      );
      await page.goto(`${webUrl}/`);
      const tile = page.locator(".tile").filter({ has: page.locator(".tile-label:text-is('Delayed tasks')") });
      await tile.waitFor({ timeout: 15_000 });
      expect(Number((await tile.locator("strong").textContent())?.split(" ")[0])).toBeGreaterThanOrEqual(1);
      // The Redis server's memory beside it (the test's redis-server has no maxmemory).
      const redis = page.locator(".tile").filter({ has: page.locator(".tile-label:text-is('Redis memory')") });
      expect(await redis.locator("strong").textContent()).toMatch(/^\d+ MB, no maxmemory$/);
      // No task's message is lost here: none stalled, linked to the list of the stalled tasks.
      const stalled = page.locator(".tile").filter({ has: page.locator(".tile-label:text-is('Stalled tasks')") });
      expect(await stalled.locator("a").textContent()).toBe("0");
      expect(await stalled.locator("a").getAttribute("href")).toBe("/tasks?stalled=counted");
    } finally {
      await pipeline.client.cancelTask({ taskId });
    }
  });

  it("links a child task to its parent (the task whose handler submitted it) and the parent to its children", async () => {
    const { taskId: parent } = await pipeline.client.submitTask({ type: "echo" });
    // Delayed an hour: still unfinished when its parent's page cancels it.
    const { taskId } = await pipeline.client.submitTask({
      type: "echo",
      parentTaskId: parent,
      schedule: { case: "delay", value: create(DurationSchema, { seconds: 3_600n }) },
    });
    await page.goto(`${webUrl}/tasks/${taskId}`);
    const shown = page.locator("dt:text-is('Parent') + dd");
    await shown.waitFor({ timeout: 15_000 });
    expect(await shown.textContent()).toBe(`${parent} (submitted by its handler)`);
    await shown.getByRole("link", { name: parent }).click();
    await page.waitForURL(`${webUrl}/tasks/${parent}`);
    // The parent's page lists its children, linked back.
    const listed = page.locator("dt:text-is('Children') + dd");
    await listed.waitFor({ timeout: 15_000 });
    expect(await listed.textContent()).toBe(taskId);
    expect(await page.locator("dt:text-is('Parent')").count()).toBe(0);
    // "Cancel with its children" cancels the parent and the child with it.
    await page.click("button:text('Cancel with its children')");
    await page.waitForSelector("text=Task and 1 of its child task cancelled.", { timeout: 15_000 });
    expect((await pipeline.client.getTask({ taskId })).task?.status?.state).toBe(TaskState.CANCELLED);
    await listed.getByRole("link", { name: taskId }).click();
    await page.waitForURL(`${webUrl}/tasks/${taskId}`);
    // A task without children does not offer it.
    expect(await page.isHidden("button:text('Cancel with its children')")).toBe(true);
  });

  it("links a parent's children past the first 100 to the task list filtered by the parent, which lists them all", async () => {
    const delayed = { case: "delay" as const, value: create(DurationSchema, { seconds: 3_600n }) };
    const { taskId: parent } = await pipeline.client.submitTask({ type: "echo", schedule: delayed });
    const { outcomes } = await pipeline.client.submitTasks({
      tasks: Array.from({ length: 102 }, () => ({ type: "echo", parentTaskId: parent, schedule: delayed })),
    });
    const children = outcomes.map((outcome) =>
      outcome.outcome.case === "accepted" ? outcome.outcome.value.taskId : "",
    );
    expect(children.filter(Boolean)).toHaveLength(102);
    try {
      await page.goto(`${webUrl}/tasks/${parent}`);
      const listed = page.locator("dt:text-is('Children') + dd");
      await listed.waitFor({ timeout: 15_000 });
      // How far the fan-out got: every child still waits for its time; the count links to those children.
      const states = page.locator('dt:text-is("Children\'s states") + dd');
      expect(await states.textContent()).toBe("102 pending");
      expect(await states.getByRole("link", { name: "102 pending" }).getAttribute("href")).toBe(
        `/tasks?parent=${parent}&state=PENDING`,
      );
      await listed.getByRole("link", { name: "2 more" }).click();
      await page.waitForURL(`${webUrl}/tasks?parent=${parent}`);
      expect(await page.inputValue("input[name=parent]")).toBe(parent);
      // The list holds the children only, newest first, 50 a page: the parent is not among them.
      await page.waitForSelector("#task-list a[href^='/tasks/']", { timeout: 10_000 });
      const shown = await page.locator("#task-list a[href^='/tasks/']").allTextContents();
      expect(shown).toHaveLength(50);
      expect(shown.every((id) => children.includes(id))).toBe(true);
    } finally {
      await pipeline.client.cancelTask({ taskId: parent, includeChildren: true });
    }
  });

  it("links a parent's failed children to their dead letters, listed alone and replayed with one click", async () => {
    const delayed = { case: "delay" as const, value: create(DurationSchema, { seconds: 3_600n }) };
    const { taskId: parent } = await pipeline.client.submitTask({ type: "echo", schedule: delayed });
    const { outcomes } = await pipeline.client.submitTasks({
      tasks: [
        { type: "fail", parentTaskId: parent, maxAttempts: 1 },
        { type: "fail", parentTaskId: parent, maxAttempts: 1 },
        { type: "echo", parentTaskId: parent },
      ],
    });
    const [failing, alsoFailing] = outcomes.map((outcome) =>
      outcome.outcome.case === "accepted" ? outcome.outcome.value.taskId : "",
    );
    // Another task's letter, which the filtered page must leave out.
    const { taskId: stranger } = await pipeline.client.submitTask({ type: "fail", maxAttempts: 1 });
    const admin = createAdminClient({ baseUrl: pipeline.gatewayUrl });
    await waitFor(
      "the three dead-lettered",
      async () =>
        (
          await Promise.all(
            [failing, alsoFailing, stranger].map(
              async (taskId) => (await admin.listDeadLetters({ filter: { taskId } })).deadLetters.length,
            ),
          )
        ).every((count) => count === 1),
      { timeoutMs: 30_000 },
    );
    try {
      await page.goto(`${webUrl}/tasks/${parent}`);
      const states = page.locator('dt:text-is("Children\'s states") + dd');
      await states.getByRole("link", { name: "their dead letters" }).waitFor({ timeout: 15_000 });
      await states.getByRole("link", { name: "their dead letters" }).click();
      await page.waitForURL(`${webUrl}/dead-letters?parent=${parent}`);
      expect(await page.textContent("#dead-letter-filter")).toBe(
        `Only the letters of the child tasks of ${parent} (show all)`,
      );
      await page.waitForSelector("main table a[href^='/tasks/']", { timeout: 10_000 });
      const listed = await page.locator("main table a[href^='/tasks/']").allTextContents();
      expect(listed.sort()).toEqual([failing, alsoFailing].sort());
      await page.getByRole("button", { name: "Replay all matching" }).click();
      await page.waitForSelector("p[role=status]:text('Replayed 2 of 2.')", { timeout: 15_000 });
      // The stranger's letter is still there; the children's were replayed (they run, and fail, again).
      expect((await admin.listDeadLetters({ filter: { taskId: stranger } })).deadLetters).toHaveLength(1);
    } finally {
      await pipeline.client.cancelTask({ taskId: parent, includeChildren: true });
    }
  });

  it("shows the tasks a task waits for (depends_on) and the tasks waiting for it, each linked, and how many it still waits for", async () => {
    // Its dependency delayed an hour: it stays waiting while the page is read.
    const { taskId: first } = await pipeline.client.submitTask({
      type: "echo",
      schedule: { case: "delay", value: create(DurationSchema, { seconds: 3_600n }) },
    });
    const { taskId } = await pipeline.client.submitTask({ type: "echo", dependsOn: [first] });
    try {
      await page.goto(`${webUrl}/tasks/${taskId}`);
      await page.waitForSelector("#task-state:text('PENDING')", { timeout: 15_000 });
      const after = page.locator("dt:text-is('After') + dd");
      await after.waitFor({ timeout: 15_000 });
      expect(await after.textContent()).toBe(`${first} (waiting for 1)`);
      // Counted on the overview.
      await page.goto(`${webUrl}/`);
      const tile = page
        .locator(".tile")
        .filter({ has: page.locator(".tile-label:text-is('Waiting for dependencies')") });
      await tile.waitFor({ timeout: 15_000 });
      expect(Number(await tile.locator("strong").textContent())).toBeGreaterThanOrEqual(1);
      await page.goto(`${webUrl}/tasks/${taskId}`);
      await after.waitFor({ timeout: 15_000 });
      await after.getByRole("link", { name: first }).click();
      await page.waitForURL(`${webUrl}/tasks/${first}`);
      // The dependency's page lists what comes after it, linked back.
      const before = page.locator("dt:text-is('Before') + dd");
      await before.waitFor({ timeout: 15_000 });
      expect(await before.textContent()).toBe(taskId);
      await before.getByRole("link", { name: taskId }).click();
      await page.waitForURL(`${webUrl}/tasks/${taskId}`);
    } finally {
      // Cancelling the dependency cancels the task waiting for it.
      await pipeline.client.cancelTask({ taskId: first });
      await waitFor(
        "the dependent cancelled",
        async () => (await pipeline.client.getTask({ taskId })).task?.status?.state === TaskState.CANCELLED,
      );
    }
  });

  it("lists each type's limits and pauses and resumes a type, keeping its other limits", async () => {
    const admin = createAdminClient({ baseUrl: pipeline.gatewayUrl });
    await admin.setTypeLimit({ limit: { type: "checksum", globalConcurrency: 3 } });
    try {
      await page.goto(`${webUrl}/limits`);
      const row = page.getByRole("row").filter({ has: page.getByRole("cell", { name: "checksum", exact: true }) });
      await row.getByRole("cell", { name: "0 / 3" }).waitFor({ timeout: 15_000 });
      await row.getByRole("button", { name: "Pause checksum" }).click();
      await page.waitForSelector("[role=status]:text('Paused checksum: no worker starts one until it is resumed.')");
      expect((await admin.listTypeLimits({})).limits.find((l) => l.type === "checksum")).toMatchObject({
        paused: true,
        globalConcurrency: 3,
      });
      await row.getByRole("button", { name: "Resume checksum" }).click();
      await page.waitForSelector("[role=status]:text('Resumed checksum.')");
      expect((await admin.listTypeLimits({})).limits.find((l) => l.type === "checksum")).toMatchObject({
        paused: false,
        globalConcurrency: 3,
      });
      // A type with no limit at all can be paused too; resuming it leaves no entry.
      const echo = page.getByRole("row").filter({ has: page.getByRole("cell", { name: "echo", exact: true }) });
      await echo.getByRole("button", { name: "Pause echo" }).click();
      await echo.getByRole("button", { name: "Resume echo" }).click();
      await page.waitForSelector("[role=status]:text('Resumed echo.')");
      expect((await admin.listTypeLimits({})).limits.map((l) => l.type)).not.toContain("echo");
    } finally {
      await admin.clearTypeLimit({ type: "checksum" });
      await admin.clearTypeLimit({ type: "echo" });
    }
  });

  it("sets a type's concurrency and rate from its dialog (a bad value refused, naming the field), keeps its pause, and clears them after a confirmation (dismissed: kept)", async () => {
    const admin = createAdminClient({ baseUrl: pipeline.gatewayUrl });
    const limitOf = async (type: string) => (await admin.listTypeLimits({})).limits.find((l) => l.type === type);
    const status = (text: string) => page.getByRole("status").filter({ hasText: text }).waitFor({ timeout: 15_000 });
    try {
      await page.goto(`${webUrl}/limits`);
      const row = page.getByRole("row").filter({ has: page.getByRole("cell", { name: "checksum", exact: true }) });
      const dialog = page.getByRole("dialog", { name: "Limits for checksum" });
      await row.getByRole("button", { name: "Set limits for checksum" }).click({ timeout: 15_000 });
      // The gateway's bounds, not the browser's: its refusal is shown in the dialog, naming the field.
      await dialog.getByLabel(/^Global concurrency/).fill("20000");
      await dialog.getByRole("button", { name: "Save limits" }).click();
      await dialog
        .getByRole("alert")
        .filter({
          hasText: "Not saved: InvalidArgument: limit.global_concurrency: must be from 1 to 10000 (0: none), not 20000",
        })
        .waitFor({ timeout: 15_000 });
      expect(await limitOf("checksum")).toBeUndefined();
      await page.screenshot({ path: join(ARTIFACTS, "type-limits-dialog.png") });
      // 120 a minute is stored as 2 a second.
      await dialog.getByLabel(/^Global concurrency/).fill("4");
      await dialog.getByLabel(/^Start rate/).fill("120");
      await dialog.getByLabel("Rate unit").selectOption("m");
      await dialog.getByLabel(/^Burst/).fill("5");
      await dialog.getByRole("button", { name: "Save limits" }).click();
      await status("Set checksum's limits: at most 4 running, 2/s (burst 5).");
      expect(await dialog.count()).toBe(0);
      expect(await limitOf("checksum")).toMatchObject({
        globalConcurrency: 4,
        ratePerSecond: 2,
        rateBurst: 5,
        paused: false,
      });
      await row.getByRole("cell", { name: "2/s (burst 5)" }).waitFor();

      // Paused, the dialog opens with the pause ticked and the limits prefilled: saving a new concurrency keeps both.
      await row.getByRole("button", { name: "Pause checksum" }).click();
      await status("Paused checksum");
      await row.getByRole("button", { name: "Set limits for checksum" }).click();
      expect(await dialog.getByRole("checkbox", { name: /^Paused/ }).isChecked()).toBe(true);
      expect(await dialog.getByLabel(/^Start rate/).inputValue()).toBe("2");
      expect(await dialog.getByLabel("Rate unit").inputValue()).toBe("s");
      expect(await dialog.getByLabel(/^Burst/).inputValue()).toBe("5");
      await dialog.getByLabel(/^Global concurrency/).fill("6");
      await dialog.getByRole("button", { name: "Save limits" }).click();
      await status("Set checksum's limits: at most 6 running, 2/s (burst 5), paused.");
      expect(await limitOf("checksum")).toMatchObject({ globalConcurrency: 6, ratePerSecond: 2, paused: true });

      // Paused by someone else while the dialog is open (the box untouched): the save keeps that pause.
      await row.getByRole("button", { name: "Resume checksum" }).click();
      await status("Resumed checksum.");
      await row.getByRole("button", { name: "Set limits for checksum" }).click();
      expect(await dialog.getByRole("checkbox", { name: /^Paused/ }).isChecked()).toBe(false);
      await admin.pauseType({ type: "checksum" });
      await dialog.getByLabel(/^Global concurrency/).fill("7");
      await dialog.getByRole("button", { name: "Save limits" }).click();
      await status("Set checksum's limits: at most 7 running, 2/s (burst 5), paused.");
      expect(await limitOf("checksum")).toMatchObject({ globalConcurrency: 7, paused: true });
      // Unticked by the operator: resumed with the save.
      await row.getByRole("button", { name: "Set limits for checksum" }).click();
      await dialog.getByRole("checkbox", { name: /^Paused/ }).uncheck();
      await dialog.getByRole("button", { name: "Save limits" }).click();
      await status("Set checksum's limits: at most 7 running, 2/s (burst 5).");
      expect(await limitOf("checksum")).toMatchObject({ globalConcurrency: 7, paused: false });

      // Clear asks first; dismissed, the limits stay.
      const clear = row.getByRole("button", { name: "Clear limits for checksum" });
      expect(await clickAndAnswer(clear, false)).toBe(
        "Clear checksum's limits (at most 7 running, 2/s (burst 5))? " +
          "The workers' own WORKER_TYPE_* settings apply to it again.",
      );
      expect(await limitOf("checksum")).toMatchObject({ globalConcurrency: 7 });
      await clickAndAnswer(clear, true);
      await status("Cleared checksum's limits: the workers' own settings apply.");
      expect(await limitOf("checksum")).toBeUndefined();
      expect(await clear.count()).toBe(0);
      await page.screenshot({ path: join(ARTIFACTS, "type-limits.png"), fullPage: true });
    } finally {
      await admin.clearTypeLimit({ type: "checksum" });
    }
  });

  it("creates a schedule from the form; a bad cron or payload is refused, naming the problem, and creates nothing", async () => {
    const admin = createAdminClient({ baseUrl: pipeline.gatewayUrl });
    await page.goto(`${webUrl}/schedules`);
    await page.click("summary:text('New schedule')");
    const form = page.getByRole("form", { name: "New schedule" });
    await form.getByLabel("Id", { exact: true }).fill("console-made");
    await form.getByLabel("Cron (UTC unless a time zone)").fill("not a cron");
    await form.getByLabel("Task type").fill("echo");
    await form.getByRole("button", { name: "Create schedule" }).click();
    await page.waitForSelector("[role=status]:text-matches('^Create failed: .*cron')", { timeout: 15_000 });
    await form.getByLabel("Cron (UTC unless a time zone)").fill("*/5 * * * *");
    await form.getByLabel("Payload (JSON object)").fill("[1, 2]");
    await form.getByRole("button", { name: "Create schedule" }).click();
    await page.waitForSelector("[role=status]:text-matches('payload must be a JSON object')", { timeout: 15_000 });
    expect((await admin.listSchedules({})).schedules.map((s) => s.id)).not.toContain("console-made");

    await form.getByLabel("Payload (JSON object)").fill('{"from": "the console"}');
    // A malformed end is refused here, naming it; then a window and a run limit.
    await form.getByLabel(/^End at/).fill("next week");
    await form.getByRole("button", { name: "Create schedule" }).click();
    await page.waitForSelector("[role=status]:text-matches('the end must be an ISO time')", { timeout: 15_000 });
    const endAt = new Date(Math.ceil((Date.now() + 86_400_000) / 1_000) * 1_000);
    await form.getByLabel(/^End at/).fill(endAt.toISOString());
    await form.getByLabel(/^Max runs/).fill("3");
    await form.getByLabel("Priority").selectOption("HIGH");
    await form.getByLabel("Skip a run while the previous one's task is unfinished").check();
    await form.getByRole("button", { name: "Create schedule" }).click();
    await page.waitForSelector("[role=status]:text-matches('^Created schedule console-made: first run ')", {
      timeout: 15_000,
    });
    const made = (await admin.listSchedules({})).schedules.find((s) => s.id === "console-made");
    expect(made).toMatchObject({
      cron: "*/5 * * * *",
      overlap: ScheduleOverlap.SKIP,
      maxRuns: 3,
      task: { type: "echo", priority: Priority.HIGH, payload: { from: "the console" } },
    });
    expect(timestampDate(made!.endAt!).getTime()).toBe(endAt.getTime());
    await page
      .getByRole("row")
      .filter({ has: page.getByRole("cell", { name: "console-made" }) })
      .waitFor();
    await admin.deleteSchedule({ id: "console-made" });
  });

  it("creates a schedule with the task's limits from the form; a bad value is refused, naming the field; a taken id only with Replace", async () => {
    const admin = createAdminClient({ baseUrl: pipeline.gatewayUrl });
    const id = "console-limited";
    const stored = async () => (await admin.listSchedules({})).schedules.find((s) => s.id === id);
    const status = (pattern: string) =>
      page.waitForSelector(`[role=status]:text-matches('${pattern}')`, { timeout: 15_000 });
    try {
      await page.goto(`${webUrl}/schedules`);
      await page.click("summary:text('New schedule')");
      const form = page.getByRole("form", { name: "New schedule" });
      const fill = async (cron: string, maxAttempts: string) => {
        await form.getByLabel("Id", { exact: true }).fill(id);
        await form.getByLabel("Cron (UTC unless a time zone)").fill(cron);
        await form.getByLabel("Task type").fill("echo");
        await form.getByLabel(/^Attempt timeout/).fill("30s");
        await form.getByLabel(/^Heartbeat timeout/).fill("10s");
        await form.getByLabel("Max attempts").fill(maxAttempts);
        await form.getByLabel(/^Retry delay/).fill("10s");
        await form.getByLabel(/^Retry multiplier/).fill("2");
        await form.getByLabel(/^Expires after/).fill("2h");
        await form.getByLabel(/^Kept once succeeded/).fill("1h");
      };
      const create = () => form.getByRole("button", { name: "Create schedule" }).click();

      // A malformed duration is caught here; a value out of the gateway's bounds is its refusal, naming the field.
      await fill("0 3 * * *", "2");
      await form.getByLabel(/^Expires after/).fill("soon");
      await create();
      await status("^Not created: the expiry must be a duration like");
      await fill("0 3 * * *", "50");
      await create();
      await status("^Create failed: InvalidArgument: schedule.task.max_attempts: 50 exceeds");
      expect(await stored()).toBeUndefined();

      await fill("0 3 * * *", "2");
      await form.getByLabel(/^Starting deadline/).fill("later");
      await create();
      await status("^Not created: the starting deadline must be a duration like");
      await fill("0 3 * * *", "2");
      await form.getByLabel(/^Starting deadline/).fill("10m");
      await create();
      await status(`^Created schedule ${id}: first run `);
      expect((await stored())?.startingDeadline).toMatchObject({ seconds: 600n });
      expect((await stored())?.task).toMatchObject({
        type: "echo",
        timeout: { seconds: 30n },
        maxAttempts: 2,
        retryBackoff: { delay: { seconds: 10n }, multiplier: 2 },
        expiresAfter: { seconds: 7_200n },
        succeededRetention: { seconds: 3_600n },
        heartbeatTimeout: { seconds: 10n },
      });
      const row = page.getByRole("row").filter({ has: page.getByRole("cell", { name: id }) });
      await row
        .getByRole("cell", {
          name: /^echo \(medium\), skips runs later than 10 min 0 s; timeout 30\.0 s per attempt; at most 2 attempts;/,
        })
        .waitFor();

      // The same id again: refused without Replace (nothing changed), replaced with it.
      await fill("0 4 * * *", "3");
      await create();
      await status(`^Create failed: AlreadyExists: schedule ${id} exists.* Tick "Replace an existing schedule`);
      expect(await stored()).toMatchObject({ cron: "0 3 * * *", task: { maxAttempts: 2 } });
      await page.screenshot({ path: join(ARTIFACTS, "schedule-form.png"), fullPage: true });
      await form.getByLabel("Replace an existing schedule with this id").check();
      await create();
      await status(`^Replaced schedule ${id}: next run `);
      expect(await stored()).toMatchObject({ cron: "0 4 * * *", task: { maxAttempts: 3 } });
      expect(await form.getByLabel("Replace an existing schedule with this id").isChecked()).toBe(false);
    } finally {
      await admin.deleteSchedule({ id });
    }
  });

  /** The New task form, opened from the Tasks page's "New task" link with the keyboard. */
  async function openNewTaskForm(): Promise<Locator> {
    await page.goto(`${webUrl}/tasks`);
    const link = page.getByRole("link", { name: "New task", exact: true });
    await link.focus();
    await page.keyboard.press("Enter");
    await page.waitForURL(`${webUrl}/tasks/new`, { timeout: 15_000 });
    const form = page.getByRole("form", { name: "New task" });
    await form.waitFor({ timeout: 15_000 });
    return form;
  }

  /** Waits for the page's status line (role=status) to match `text`. */
  const statusSays = (text: RegExp) => page.getByRole("status").filter({ hasText: text }).waitFor({ timeout: 15_000 });

  /** The task page the New task form led to: its id, from the URL. */
  async function landedOnTask(): Promise<string> {
    await page.waitForURL(/\/tasks\/[0-9a-f-]{36}$/, { timeout: 15_000 });
    return new URL(page.url()).pathname.split("/").pop() ?? "";
  }

  it("submits a task from the New task form (reached by keyboard from the Tasks page) and follows it on its page to SUCCEEDED", async () => {
    const form = await openNewTaskForm();
    // The pipeline's types are offered; the payload starts as {} and the priority as medium.
    expect(
      await page
        .locator("#new-task-types option")
        .evaluateAll((options) => options.map((o) => o.getAttribute("value"))),
    ).toEqual(expect.arrayContaining(["echo", "sleep", "slugify"]));
    expect(await form.getByLabel("Payload (JSON object)").inputValue()).toBe("{}");
    expect(await form.getByLabel("Priority").inputValue()).toBe("MEDIUM");
    await form.getByLabel("Task type").fill("echo");
    await form.getByLabel("Payload (JSON object)").fill('{"from": "the new task form", "n": 7}');
    await form.getByLabel("Priority").selectOption("HIGH");
    await form.getByLabel(/^Attempt timeout/).fill("30s");
    await form.getByLabel("Max attempts").fill("2");
    // Metadata, and a task it waits for (one already SUCCEEDED: it runs at once), named by id.
    const dependency = await submitWithCli("echo", {});
    await waitFor(
      "the dependency to succeed",
      async () => (await pipeline.client.getTask({ taskId: dependency })).task?.status?.state === TaskState.SUCCEEDED,
    );
    await form.getByLabel(/^Metadata/).fill('{"team": "qa"}');
    await form.getByLabel(/^Waits for/).fill(` ${dependency}, `);
    // Enter in a field submits the form.
    await form.getByLabel("Max attempts").press("Enter");
    const taskId = await landedOnTask();
    expect(await page.textContent("#task-notice")).toBe(`Submitted task ${taskId}.`);
    await page.waitForSelector("#task-state:text('SUCCEEDED')", { timeout: 30_000 });
    await page.waitForSelector("#task-result", { timeout: 10_000 });
    expect(JSON.parse((await page.textContent("#task-result")) ?? "")).toEqual({ from: "the new task form", n: 7 });
    const { task } = await pipeline.client.getTask({ taskId });
    expect(task).toMatchObject({
      type: "echo",
      priority: Priority.HIGH,
      maxAttempts: 2,
      timeout: { seconds: 30n },
      payload: { from: "the new task form", n: 7 },
      metadata: { team: "qa" },
      dependsOn: [dependency],
    });
    await page.screenshot({ path: join(ARTIFACTS, "new-task-submitted.png"), fullPage: true });
  });

  it("refuses a bad field in the New task form, naming it, sending nothing; shows the gateway's refusal of an unknown type", async () => {
    const sent: string[] = [];
    const onRequest = (request: { url(): string }) => {
      if (request.url().endsWith("/taskmanager.v1.TaskService/SubmitTask")) sent.push(request.url());
    };
    page.on("request", onRequest);
    try {
      const form = await openNewTaskForm();
      const submit = () => form.getByRole("button", { name: "Submit task" }).click();
      await form.getByLabel("Task type").fill("echo");
      await form.getByLabel("Payload (JSON object)").fill("[1, 2]");
      await submit();
      await statusSays(/^Not submitted: the payload must be a JSON object/);
      expect(await form.getByLabel("Payload (JSON object)").getAttribute("aria-invalid")).toBe("true");
      await form.getByLabel("Payload (JSON object)").fill("{");
      await submit();
      await statusSays(/^Not submitted: the payload must be a JSON object/);
      await form.getByLabel("Payload (JSON object)").fill('{"ok": true}');
      await form.getByLabel(/^When/).fill("soon");
      await submit();
      await statusSays(/^Not submitted: the time to run must be empty \(now\), a delay like 90s/);
      expect(await form.getByLabel(/^When/).getAttribute("aria-invalid")).toBe("true");
      expect(await form.getByLabel("Payload (JSON object)").getAttribute("aria-invalid")).toBeNull();
      await form.getByLabel(/^When/).fill("");
      await form.getByLabel(/^Retry delay/).fill("a while");
      await submit();
      await statusSays(/^Not submitted: the retry delay must be a duration like/);
      await form.getByLabel(/^Retry delay/).fill("");
      await form.getByLabel(/^Metadata/).fill('{"n": 1}');
      await submit();
      await statusSays(/^Not submitted: the metadata must be a JSON object of strings/);
      expect(await form.getByLabel(/^Metadata/).getAttribute("aria-invalid")).toBe("true");
      await form.getByLabel(/^Metadata/).fill("");
      await form.getByLabel("Key reuse").selectOption("AFTER_FINISHED");
      await submit();
      await statusSays(/^Not submitted: a key reuse needs an idempotency key/);
      expect(sent, "nothing was sent").toEqual([]);

      // An unknown type is the gateway's refusal (INVALID_ARGUMENT naming the field), shown in the form.
      await form.getByLabel("Key reuse").selectOption("UNSPECIFIED");
      await form.getByLabel("Task type").fill("no-such-type");
      await submit();
      await statusSays(/^Submit failed: InvalidArgument: type: unknown task type "no-such-type" \(known: .*echo/);
      expect(sent).toHaveLength(1);
      expect(await form.getByLabel("Task type").getAttribute("aria-invalid")).toBe("true");
      expect(new URL(page.url()).pathname).toBe("/tasks/new");
      expect(await form.getByRole("button", { name: "Submit task" }).isEnabled()).toBe(true);
      await page.screenshot({ path: join(ARTIFACTS, "new-task-refused.png"), fullPage: true });
    } finally {
      page.off("request", onRequest);
    }
  });

  it("submits with an idempotency key: the same key again says deduplicated and lands on the same task; replace waiting replaces it", async () => {
    const key = `console-key-${crypto.randomUUID().slice(0, 8)}`;
    const submitWithKey = async (payload: string, when: string, reuse: string) => {
      const form = await openNewTaskForm();
      await form.getByLabel("Task type").fill("echo");
      await form.getByLabel("Payload (JSON object)").fill(payload);
      await form.getByLabel(/^When/).fill(when);
      await form.getByLabel("Idempotency key (optional)").fill(key);
      await form.getByLabel("Key reuse").selectOption(reuse);
      await form.getByRole("button", { name: "Submit task" }).click();
      return landedOnTask();
    };
    // Delayed an hour: still waiting when the key is used again.
    const taskId = await submitWithKey('{"v": 1}', "1h", "UNSPECIFIED");
    expect(await page.textContent("#task-notice")).toMatch(new RegExp(`^Submitted task ${taskId}; it is due at `));
    await page.waitForSelector("#task-state:text('PENDING')", { timeout: 15_000 });
    try {
      expect(await submitWithKey('{"v": 2}', "", "UNSPECIFIED")).toBe(taskId);
      expect(await page.textContent("#task-notice")).toBe(
        `Deduplicated: idempotency key "${key}" already names this task, so no new task was made.`,
      );
      expect((await pipeline.client.getTask({ taskId })).task?.payload).toEqual({ v: 1 });
      // Replace waiting: the waiting task takes this payload and time.
      expect(await submitWithKey('{"v": 3}', "2h", "REPLACE_WAITING")).toBe(taskId);
      expect(await page.textContent("#task-notice")).toMatch(/^Replaced the waiting task of idempotency key/);
      expect((await pipeline.client.getTask({ taskId })).task?.payload).toEqual({ v: 3 });
    } finally {
      await pipeline.client.cancelTask({ taskId, reason: "test over" });
    }
  });

  it("submits with a concurrency key: the task waits for a place while the key's limit is taken (the key's page lists it, linked), then runs", async () => {
    // With a "/": the key's page is at its encodeURIComponent'd path.
    const key = `console/tenant-${crypto.randomUUID().slice(0, 8)}`;
    const keyPage = `${webUrl}/concurrency/${encodeURIComponent(key)}`;
    const keyCounts = (text: string) =>
      page.locator("#concurrency-counts").filter({ hasText: text }).waitFor({ timeout: 15_000 });
    // The key's one place, held by a long task.
    const { taskId: holder } = await pipeline.client.submitTask({
      type: "sleep",
      payload: { ms: 60_000 },
      concurrencyKey: key,
      concurrencyLimit: 1,
    });
    try {
      const form = await openNewTaskForm();
      await form.getByLabel("Task type").fill("echo");
      await form.getByLabel(/^Concurrency key/).fill(key);
      // One without the other is refused here, naming it.
      await form.getByRole("button", { name: "Submit task" }).click();
      await statusSays(/^Not submitted: a concurrency key needs a limit\./);
      expect(await form.getByLabel(/^Limit/).getAttribute("aria-invalid")).toBe("true");
      await form.getByLabel(/^Limit/).fill("1");
      await form.getByRole("button", { name: "Submit task" }).click();
      const taskId = await landedOnTask();
      const { task } = await pipeline.client.getTask({ taskId });
      expect(task).toMatchObject({ concurrencyKey: key, concurrencyLimit: 1, concurrencyWaiting: true });
      // Its page says so, and once the holder ends, the task is released and the mark goes.
      await page.waitForSelector(`dd:has-text("at most 1 at once of key ${key}")`, { timeout: 15_000 });
      expect(await page.isVisible("#task-concurrency-waiting")).toBe(true);
      // The key links to its page: the holder in the pipeline, this task waiting, each linked to its page.
      await page.click("#task-concurrency-key");
      await page.waitForURL(keyPage, { timeout: 10_000 });
      await keyCounts("1 in the pipeline, 1 waiting; the next is admitted under a limit of 1");
      expect(await page.textContent("h1")).toBe(`Concurrency key ${key}`);
      expect(await page.locator("#concurrency-running a").getAttribute("href")).toBe(`/tasks/${holder}`);
      const waiting = page.locator("#concurrency-waiting li a");
      expect(await waiting.allTextContents()).toEqual([taskId]);
      await page.screenshot({ path: join(ARTIFACTS, "concurrency-key.png"), fullPage: true });
      await waiting.click();
      await page.waitForURL(`${webUrl}/tasks/${taskId}`, { timeout: 10_000 });
      await page.locator("#task-concurrency-waiting").waitFor({ timeout: 15_000 });
      await pipeline.client.cancelTask({ taskId: holder, reason: "test: free the place" });
      await page.waitForSelector("#task-state:text('SUCCEEDED')", { timeout: 30_000 });
      expect(await page.isVisible("#task-concurrency-waiting")).toBe(false);
      // Back on the key's page: nothing holds or waits for it any more.
      await page.click("#task-concurrency-key");
      await keyCounts("No task in the pipeline, none waiting");
      // This gateway does not isolate callers: it refuses an owner, which the page then leaves out.
      await page.goto(`${keyPage}?owner=shop`);
      await keyCounts("No task in the pipeline, none waiting");
      expect(await page.textContent("h1")).toBe(`Concurrency key ${key}`);
      // A malformed key: the gateway's refusal, shown.
      await page.goto(`${webUrl}/concurrency/${encodeURIComponent("no spaces")}`);
      await statusSays(/^Could not load the concurrency key: InvalidArgument: key: must be 1 to /);
    } finally {
      await pipeline.client.cancelTask({ taskId: holder, reason: "test over" }).catch(() => undefined);
    }
  });

  it("opens a task's concurrency key as its submitter's when the gateway isolates callers (GATEWAY_TASK_ISOLATION=caller)", async () => {
    const OPS = "ops-key-0123456789abcdef";
    const SHOP = "shop-key-0123456789abcdef";
    const { gateway: isolated, origin } = await apiKeyGateway(
      { ops: OPS, shop: SHOP },
      { GATEWAY_TASK_ISOLATION: "caller" },
    );
    const key = `console-shop-${crypto.randomUUID().slice(0, 8)}`;
    const tab = await browser.newPage(); // its own sessionStorage: the operator's key, stored before the page loads
    await tab.addInitScript(`sessionStorage.setItem("tm-console-api-key", ${JSON.stringify(OPS)})`);
    let holder = "";
    try {
      const shop = createTaskClient({ baseUrl: `http://127.0.0.1:${isolated.port}`, apiKey: SHOP });
      ({ taskId: holder } = await shop.submitTask({
        type: "sleep",
        payload: { ms: 60_000 },
        concurrencyKey: key,
        concurrencyLimit: 1,
      }));
      // The task's page links its key with its submitter (submitted_by) as the owner the gateway requires.
      await tab.goto(`${origin}/tasks/${holder}`);
      await tab.click("#task-concurrency-key");
      await tab.waitForURL(`${origin}/concurrency/${key}?owner=shop`, { timeout: 10_000 });
      await tab
        .locator("#concurrency-counts")
        .filter({ hasText: "1 in the pipeline, none waiting" })
        .waitFor({ timeout: 15_000 });
      expect(await tab.textContent("h1")).toBe(`Concurrency key ${key} (owner shop)`);
      expect(await tab.locator("#concurrency-running a").getAttribute("href")).toBe(`/tasks/${holder}`);
      // Without an owner, the gateway's refusal is shown.
      await tab.goto(`${origin}/concurrency/${key}`);
      await tab
        .getByRole("status")
        .filter({
          hasText:
            /^Could not load the concurrency key: InvalidArgument: owner: is required with GATEWAY_TASK_ISOLATION=caller/,
        })
        .waitFor({ timeout: 15_000 });
    } finally {
      await tab.close();
      if (holder) await pipeline.client.cancelTask({ taskId: holder, reason: "test over" }).catch(() => undefined);
      await isolated.process.stop();
    }
  });

  it("submits with a fairness key: the task waits for its turn while its type's window is held (the type's fairness page lists the window and the keys in turn order), then runs", async () => {
    const suffix = crypto.randomUUID().slice(0, 8);
    // With a "/": the key is shown and sent as it is.
    const [tenantA, tenantB] = [`console/tenant-a-${suffix}`, `console/tenant-b-${suffix}`];
    const fairnessPage = `${webUrl}/fairness/sleep`;
    const fairnessCounts = (text: string) =>
      page.locator("#fairness-counts").filter({ hasText: text }).waitFor({ timeout: 15_000 });
    const sent: string[] = [];
    const onRequest = (request: { url(): string }) => {
      if (request.url().endsWith("/taskmanager.v1.TaskService/SubmitTask")) sent.push(request.url());
    };
    // The sleep window's one place (GATEWAY_FAIRNESS_WINDOW=1), held by tenant A's long task; A's second task waits.
    const sleepOf = (key: string) => ({ type: "sleep", payload: { ms: 60_000 }, fairnessKey: key });
    const { taskId: holder } = await pipeline.client.submitTask(sleepOf(tenantA));
    const { taskId: second } = await pipeline.client.submitTask(sleepOf(tenantA));
    page.on("request", onRequest);
    try {
      const form = await openNewTaskForm();
      const submit = () => form.getByRole("button", { name: "Submit task" }).click();
      await form.getByLabel("Task type").fill("sleep");
      await form.getByLabel("Payload (JSON object)").fill('{"ms": 10}');
      // A weight without a key, then a malformed key: refused here, the field named and marked.
      await form.getByLabel(/^Weight/).fill("2");
      await submit();
      await statusSays(/^Not submitted: a weight needs a fairness key\./);
      expect(await form.getByLabel(/^Fairness key/).getAttribute("aria-invalid")).toBe("true");
      await form.getByLabel(/^Fairness key/).fill("two words");
      await submit();
      await statusSays(
        /^Not submitted: the fairness key must be 1 to 128 letters, digits or _ \. : @ \/ = \+ - \(got "two words"\)\./,
      );
      // Past the highest weight: the browser holds the form back (the field's range), so nothing is checked or sent.
      await form.getByLabel(/^Fairness key/).fill(tenantB);
      await form.getByLabel(/^Weight/).fill("1001");
      await submit();
      expect(
        await form
          .getByLabel(/^Weight/)
          .evaluate((input) => (input as unknown as { validity: { rangeOverflow: boolean } }).validity.rangeOverflow),
      ).toBe(true);
      expect(new URL(page.url()).pathname).toBe("/tasks/new");
      expect(sent, "nothing was sent").toEqual([]);
      await form.getByLabel(/^Weight/).fill("2");
      await submit();
      const taskId = await landedOnTask();
      expect(sent).toHaveLength(1);
      const { task } = await pipeline.client.getTask({ taskId });
      expect(task).toMatchObject({ fairnessKey: tenantB, fairnessWeight: 2, fairnessWaiting: true });
      // Its page says so; the key links to the type's fairness page.
      await page.waitForSelector(`dt:text-is("Fairness") + dd:has-text("key ${tenantB}, weight 2")`, {
        timeout: 15_000,
      });
      expect(await page.isVisible("#task-fairness-waiting")).toBe(true);
      await page.click("#task-fairness-key");
      await page.waitForURL(fairnessPage, { timeout: 10_000 });
      await fairnessCounts("1 of 1 place taken, 2 keys waiting");
      expect(await page.textContent("h1")).toBe("Fairness queue sleep");
      expect(await page.locator("#fairness-running a").allTextContents()).toEqual([holder]);
      expect(await page.locator("#fairness-running a").getAttribute("href")).toBe(`/tasks/${holder}`);
      // B has had no turn yet: it comes before A, whose next task starts a turn after the holder's.
      const rows = page.locator("#fairness-keys tbody tr");
      const cells = async (row: Locator) => row.locator("td").allTextContents();
      expect(await Promise.all((await rows.all()).map(cells))).toEqual([
        [tenantB, "1", "0", "2"],
        [tenantA, "1", "1", "1"],
      ]);
      expect(await page.textContent("#fairness-clock")).toMatch(/\(the type's clock: 0\)\.$/);
      await page.screenshot({ path: join(ARTIFACTS, "fairness-queue.png"), fullPage: true });
      // Counted on the overview, next to the concurrency keys' tile.
      await page.goto(`${webUrl}/`);
      await page
        .locator(".tile")
        .filter({ has: page.locator(".tile-label:text-is('Waiting for a fairness turn')") })
        .locator("strong:text-is('2')")
        .waitFor({ timeout: 15_000 });
      // The type's window is listed under the tiles, linked to its page.
      expect(await page.textContent("#fairness-queues")).toBe(
        "Fairness windows: sleep 1 of 1 place taken, 2 keys waiting",
      );
      expect(await page.locator("#fairness-queues a").getAttribute("href")).toBe("/fairness/sleep");
      // The window's task links to its page; once it ends, B's task has its turn (before A's second) and runs.
      await page.goto(fairnessPage);
      await page.locator("#fairness-running a").click();
      await page.waitForURL(`${webUrl}/tasks/${holder}`, { timeout: 10_000 });
      await page.waitForSelector(`dt:text-is("Fairness") + dd:has-text("key ${tenantA}, weight 1")`, {
        timeout: 15_000,
      });
      expect(await page.isVisible("#task-fairness-waiting")).toBe(false);
      await pipeline.client.cancelTask({ taskId: holder, reason: "test: free the place" });
      await page.goto(`${webUrl}/tasks/${taskId}`);
      await page.waitForSelector("#task-state:text('SUCCEEDED')", { timeout: 30_000 });
      expect(await page.isVisible("#task-fairness-waiting")).toBe(false);
      // Then A's second: in the window, no key waiting.
      await page.click("#task-fairness-key");
      await fairnessCounts("1 of 1 place taken, no key waiting");
      expect(await page.locator("#fairness-running a").allTextContents()).toEqual([second]);
      expect(await page.textContent("#fairness-keys")).toContain("No key has a task waiting for its turn.");
      // An unknown type: the gateway's refusal, shown.
      await page.goto(`${webUrl}/fairness/no-such-type`);
      await statusSays(
        /^Could not load the fairness queue: InvalidArgument: task_type: unknown task type "no-such-type"/,
      );
    } finally {
      page.off("request", onRequest);
      for (const id of [holder, second]) {
        await pipeline.client.cancelTask({ taskId: id, reason: "test over" }).catch(() => undefined);
      }
    }
  });

  it("lists the schedules with their next run, pauses and resumes one, and deletes one after a confirmation (dismissed: kept)", async () => {
    const admin = createAdminClient({ baseUrl: pipeline.gatewayUrl });
    await admin.createSchedule({
      schedule: { id: "console-nightly", cron: "0 2 * * *", timezone: "Europe/Berlin", task: { type: "echo" } },
      replace: true,
    });
    await page.goto(`${webUrl}/schedules`);
    const row = page.getByRole("row").filter({ has: page.getByRole("cell", { name: "console-nightly" }) });
    await row.waitFor({ timeout: 15_000 });
    expect(await row.getByRole("cell").allTextContents()).toEqual([
      "console-nightly",
      "0 2 * * *",
      "Europe/Berlin",
      "echo (medium)",
      expect.stringMatching(/^in \d+[smh]$/),
      "—",
      "—",
      "—",
      "Run nowPauseDelete",
    ]);
    // Run now: one task of the template, as the operator; the schedule's times unchanged.
    const nextBefore = (await admin.listSchedules({})).schedules.find((s) => s.id === "console-nightly")?.nextRunAt;
    await row.getByRole("button", { name: "Run console-nightly now" }).click();
    const ran = await page.waitForSelector("text=/^Ran schedule console-nightly now: task [0-9a-f-]{36}\\.$/", {
      timeout: 15_000,
    });
    const ranTaskId = /task ([0-9a-f-]{36})/.exec((await ran.textContent()) ?? "")?.[1] ?? "";
    const { task: ranTask } = await pipeline.client.getTask({ taskId: ranTaskId });
    expect(ranTask?.metadata.schedule_id).toBe("console-nightly");
    expect((await admin.listSchedules({})).schedules.find((s) => s.id === "console-nightly")?.nextRunAt).toEqual(
      nextBefore,
    );
    // Pause: no confirmation; the row says paused, nothing is due; Resume: due again from now.
    await row.getByRole("button", { name: "Pause console-nightly" }).click();
    await page.waitForSelector("text=Paused schedule console-nightly: nothing runs until it is resumed.", {
      timeout: 15_000,
    });
    expect((await admin.listSchedules({})).schedules.find((s) => s.id === "console-nightly")?.paused).toBe(true);
    // The message is announced before the list is read again: wait for the row to show it.
    await waitFor("the row to say paused", async () =>
      /^paused/.test((await row.getByRole("cell").allTextContents())[4] ?? ""),
    );
    await row.getByRole("button", { name: "Resume console-nightly" }).click();
    await page.waitForSelector("text=/^Resumed schedule console-nightly: next run /", { timeout: 15_000 });
    const resumed = (await admin.listSchedules({})).schedules.find((s) => s.id === "console-nightly");
    expect(resumed?.paused).toBe(false);
    expect(resumed?.nextRunAt).toBeDefined();
    page.once("dialog", (dialog) => void dialog.dismiss());
    await row.getByRole("button", { name: "Delete console-nightly" }).click();
    expect((await admin.listSchedules({})).schedules.map((s) => s.id)).toContain("console-nightly");
    page.once("dialog", (dialog) => void dialog.accept());
    await row.getByRole("button", { name: "Delete console-nightly" }).click();
    await page.waitForSelector("text=Deleted schedule console-nightly.", { timeout: 15_000 });
    expect((await admin.listSchedules({})).schedules.map((s) => s.id)).not.toContain("console-nightly");
  });

  it("cancels every unfinished task the filters match after a confirmation (dismissed: none), not finished ones", async () => {
    const batch = `bulk-${crypto.randomUUID().slice(0, 8)}`;
    const delayed = [];
    for (let n = 0; n < 3; n++) {
      const { taskId } = await pipeline.client.submitTask({
        type: "echo",
        metadata: { batch },
        schedule: { case: "delay", value: create(DurationSchema, { seconds: 3_600n }) },
      });
      delayed.push(taskId);
    }
    const done = await submitWithCli("echo", { batch });
    // Its SUCCEEDED status, not only its result (the notifier can lag): until then it would count as unfinished.
    await waitFor(
      "the finished one",
      async () => (await pipeline.client.getTask({ taskId: done })).task?.status?.state === TaskState.SUCCEEDED,
    );
    await page.goto(`${webUrl}/tasks?q=${batch}`);
    await page.waitForSelector("#task-list table", { timeout: 15_000 });
    const stateOf = async (taskId: string) => (await pipeline.client.getTask({ taskId })).task?.status?.state;
    // The question counts what would be cancelled (a dry run); dismissed, nothing is.
    // The click returns only once the question is answered when the dry run answered before playwright's click
    // finished (the page then sits in window.confirm): it is awaited after the answer.
    const asked = page.waitForEvent("dialog");
    const clicked = page.click("button:text('Cancel matching')");
    const question = await asked;
    expect(question.message()).toBe("Cancel 3 unfinished tasks these filters match? Running handlers are aborted.");
    await question.dismiss();
    await clicked;
    await page.waitForSelector("button:text('Cancel matching'):not([disabled])");
    for (const taskId of delayed) expect(await stateOf(taskId)).toBe(TaskState.PENDING);
    // Accepted, exactly the tasks counted are cancelled: one submitted while the question is open is not.
    let latecomer = "";
    page.once("dialog", async (dialog) => {
      latecomer = (
        await pipeline.client.submitTask({
          type: "echo",
          metadata: { batch },
          schedule: { case: "delay", value: create(DurationSchema, { seconds: 3_600n }) },
        })
      ).taskId;
      await dialog.accept();
    });
    await page.click("button:text('Cancel matching')");
    await page.waitForSelector("#announcer:text('Cancelled 3 tasks.')", { state: "attached", timeout: 15_000 });
    expect(await stateOf(latecomer)).toBe(TaskState.PENDING);
    for (const taskId of delayed) expect(await stateOf(taskId)).toBe(TaskState.CANCELLED);
    expect(await stateOf(done)).toBe(TaskState.SUCCEEDED);
    // A cancelled task's page says why it was cancelled.
    await page.goto(`${webUrl}/tasks/${delayed[0]}`);
    await page.waitForSelector("#task-error", { timeout: 15_000 });
    expect(await page.textContent("#task-error")).toBe("Cancelled: cancelled from the web console");
    // Nothing matching: said so, no question asked.
    await page.goto(`${webUrl}/tasks?q=none-${batch}`);
    await page.waitForSelector("#task-list", { timeout: 15_000 });
    await page.click("button:text('Cancel matching')");
    await page.waitForSelector("#announcer:text('No unfinished task matches these filters.')", {
      state: "attached",
      timeout: 15_000,
    });
    // Finished tasks cannot be cancelled: with such a state chosen the button is off.
    await page.selectOption("select[name=state]", "SUCCEEDED");
    expect(await page.isDisabled("button:text('Cancel matching')")).toBe(true);
  });

  it("requeues the stalled tasks the filters match after a confirmation (dismissed: none), and they run", async () => {
    // Two tasks whose messages were lost 20 minutes ago: their records and PENDING statuses, no message anywhere. The
    // gateway counts them as stalled (and requeues none itself here: GATEWAY_STALLED_REQUEUE_LIMIT 0).
    const batch = `lost-${crypto.randomUUID().slice(0, 8)}`;
    const redis = pipeline.redisClient;
    const lostAt = new Date(Date.now() - 20 * 60_000).toISOString();
    const lost = [crypto.randomUUID(), crypto.randomUUID()];
    for (const taskId of lost) {
      await saveTask(redis, {
        taskId,
        type: "echo",
        priority: "low",
        payload: { lost: true },
        metadata: { batch },
        createdAt: lostAt,
        generation: 0,
      });
      const pending = {
        ...statusEvent({ taskId, state: "PENDING", source: "gateway", generation: 0 }),
        updatedAt: lostAt,
      };
      await applyStatus(redis, StatusEventSchema.parse(pending));
    }
    const stateOf = async (taskId: string) => (await pipeline.client.getTask({ taskId })).task?.status;
    // Off until the list is narrowed to the stalled tasks.
    await page.goto(`${webUrl}/tasks?q=${batch}`);
    await page.waitForSelector("#task-list table", { timeout: 15_000 });
    expect(await page.isDisabled("button:text('Requeue stalled')")).toBe(true);
    await page.goto(`${webUrl}/tasks?q=${batch}&stalled=counted`);
    await page.waitForSelector("#task-list table", { timeout: 15_000 });
    expect(await page.getByRole("link", { name: lost[0] }).count()).toBe(1);
    // Dismissed: nothing is requeued.
    const asked = page.waitForEvent("dialog");
    const clicked = page.click("button:text('Requeue stalled')");
    const question = await asked;
    expect(question.message()).toBe(
      "Requeue 2 stalled tasks these filters match? Each goes through the pipeline again.",
    );
    await question.dismiss();
    await clicked;
    await page.waitForSelector("button:text('Requeue stalled'):not([disabled])");
    for (const taskId of lost) expect(await redis.hget(Keys.task(taskId), "generation")).toBe("0");
    // Accepted: both are requeued as generation 1, and run to SUCCEEDED.
    page.once("dialog", (dialog) => void dialog.accept());
    await page.click("button:text('Requeue stalled')");
    await page.waitForSelector("#announcer:text('Requeued 2 tasks.')", { state: "attached", timeout: 15_000 });
    for (const taskId of lost) {
      await waitFor(
        `${taskId} SUCCEEDED as generation 1`,
        async () => {
          const [status, result] = await Promise.all([stateOf(taskId), readResult(redis, taskId)]);
          return status?.state === TaskState.SUCCEEDED && result?.generation === 1;
        },
        { timeoutMs: 30_000 },
      );
    }
    // None stalled any more: said so, no question asked.
    await page.click("button:text('Requeue stalled')");
    await page.waitForSelector("#announcer:text('No stalled task matches these filters.')", {
      state: "attached",
      timeout: 15_000,
    });
  });

  it("discards selected dead letters after a confirmation; the tasks' histories record it", async () => {
    const redis = pipeline.redisClient;
    const taskIds = [crypto.randomUUID(), crypto.randomUUID()];
    const letterIds: string[] = [];
    for (const taskId of taskIds) {
      const id = `TASKS:${crypto.randomUUID()}`;
      letterIds.push(id);
      await appendDeadLetter(redis, {
        id,
        taskId,
        subject: "tasks.worker.high",
        consumer: "worker",
        reason: "exhausted",
        error: "the upstream account was closed",
        attempts: 5,
        at: new Date().toISOString(),
        message: { taskId, generation: 0 },
      });
    }
    await page.goto(`${webUrl}/dead-letters`);
    for (const taskId of taskIds) await page.getByLabel(`Select ${taskId}`).check({ timeout: 15_000 });
    // Dismissed first: nothing is discarded; then accepted.
    page.once("dialog", (dialog) => void dialog.dismiss());
    await page.click("button:text('Discard selected (2)')");
    const admin = createAdminClient({ baseUrl: pipeline.gatewayUrl });
    const listed = async () => (await admin.listDeadLetters({ pageSize: 500 })).deadLetters.map((letter) => letter.id);
    expect(await listed()).toEqual(expect.arrayContaining(letterIds));
    page.once("dialog", (dialog) => {
      expect(dialog.message()).toBe("Discard 2 dead letters? Their tasks stay FAILED and can no longer be replayed.");
      void dialog.accept();
    });
    await page.click("button:text('Discard selected (2)')");
    await page.waitForSelector("#announcer:text('Discarded 2 of 2.')", { state: "attached", timeout: 15_000 });
    const left = await listed();
    expect(left.filter((id) => letterIds.includes(id))).toEqual([]);
    for (const [index, taskId] of taskIds.entries()) {
      await waitFor("the dead_letter_discarded audit event", async () =>
        (await admin.getTaskHistory({ taskId })).events.some(
          (event) =>
            event.action === "dead_letter_discarded" &&
            (event.detail as { deadLetterId?: string } | undefined)?.deadLetterId === letterIds[index],
        ),
      );
    }
  });
});
