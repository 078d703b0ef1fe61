/**
 * Task detail: the live status stream drawn as a stage-by-stage timeline (PENDING → INGESTED → SCHEDULED → RUNNING →
 * terminal) with times, a progress bar, attempts and errors; then the result, the audit history, Cancel, Run now (a
 * delayed task still waiting for its time: PromoteTask), Retry (a FAILED task: its dead letter replayed), Requeue (an
 * unfinished task stalled for ten minutes, its message lost, or one failed "not queued"), a link to the task's
 * trace in Grafana, and the task's own log: what its handler logged with ctx.log (GetTaskLogs), followed while it
 * runs.
 */
import { durationMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Task, TaskLogLine, TaskStatus } from "@tm/proto/web";
import {
  isLaterStatus,
  orderedStateCounts,
  ReplayResult,
  RequeueResult,
  retryBackoffText,
  stateCountText,
  TaskState,
} from "@tm/proto/web";
import { admin, errorText, isAbort, tasks } from "../api.js";
import { announce, h, replace, takeNotice } from "../dom.js";
import { dateOf, duration, formatTime, json, priorityName, stateName, TERMINAL_STATES } from "../format.js";
import { table } from "./overview.js";
import { taskLogsUrl, traceUrl } from "./trace-link.js";
import type { View } from "./view.js";

const STAGES = [TaskState.PENDING, TaskState.INGESTED, TaskState.SCHEDULED, TaskState.RUNNING];
const RETRY_MS = 2000;
/** How long after a task ended its history is read again, for the audit events stored after its last status. */
const HISTORY_SETTLE_MS = 1500;
/** Audit actions that mark a stage, for the stages passed before the page opened the stream. */
const STAGE_OF_ACTION: Record<string, TaskState> = {
  submitted: TaskState.PENDING,
  ingested: TaskState.INGESTED,
  scheduled: TaskState.SCHEDULED,
  succeeded: TaskState.SUCCEEDED,
  failed: TaskState.FAILED,
  cancelled: TaskState.CANCELLED,
};
/** Lines asked for per GetTaskLogs page (it allows up to 1,000). */
const LOG_PAGE = 500;
/** How often an unfinished task's log is read on from the last cursor. */
const LOG_POLL_MS = 2000;
/** The most log lines the page keeps: a chatty task's oldest go, so the page cannot grow without bound. */
const LOG_LINES_SHOWN = 1000;
const LOG_LEVELS = new Set(["trace", "debug", "info", "warn", "error", "fatal"]);
/** GetTaskLogs' errors that asking again does not cure (an unknown task, a refused key: the key prompt would come
 *  back every LOG_POLL_MS): the section says so and stops reading. */
const LASTING_LOG_ERRORS = new Set([Code.NotFound, Code.Unauthenticated, Code.PermissionDenied, Code.InvalidArgument]);

export const taskDetailView: View = (main, { params, config }) => {
  const taskId = params.id ?? "";
  const controller = new AbortController();
  const reachedAt = new Map<TaskState, Date>();
  let status: TaskStatus | undefined;

  const heading = h("h1", {}, "Task ", h("span", { class: "mono" }, taskId));
  const summary = h("dl", { class: "summary" });
  const live = h("section", { class: "live", "aria-live": "polite", "aria-label": "Status" });
  const timeline = h("ol", { class: "timeline", "aria-label": "Stages" });
  const cancel = h("button", { type: "button", class: "danger" }, "Cancel task") as HTMLButtonElement;
  const requeue = h(
    "button",
    { type: "button", title: "Send the task through the pipeline again if it has not moved for ten minutes" },
    "Requeue stalled task",
  ) as HTMLButtonElement;
  const runNow = h(
    "button",
    { type: "button", title: "A delayed task: run it now instead of at its time", hidden: true },
    "Run now",
  ) as HTMLButtonElement;
  const retry = h(
    "button",
    { type: "button", title: "A failed task: replay its dead letter, as a new generation", hidden: true },
    "Retry failed task",
  ) as HTMLButtonElement;
  const cancelFanOut = h(
    "button",
    {
      type: "button",
      class: "danger",
      title: "Cancel the task and the child tasks its handler submitted, and theirs (even after it finished)",
      hidden: true,
    },
    "Cancel with its children",
  ) as HTMLButtonElement;
  const actions = h("div", { class: "actions" }, cancel, cancelFanOut, runNow, retry, requeue);
  /** When the task is due, for a delayed one (GetTask's run_at). */
  let runAt: Date | undefined;
  /** "(waiting for a place)" beside its concurrency key while GetTask said so: hidden once its status moves on. */
  const concurrencyWait = h("span", { id: "task-concurrency-waiting" }, " (waiting for a place)");
  /** "(waiting for its turn)" beside its fairness key while GetTask said so: hidden once its status moves on. */
  const fairnessWait = h("span", { id: "task-fairness-waiting" }, " (waiting for its turn)");
  const result = h("section", { "aria-label": "Result" });
  const history = h("section", { "aria-label": "History" });
  const logs = taskLogs(taskId, controller.signal);
  // What the New task form did, when it led here (a deduplicated submission's key named this task).
  const notice = takeNotice();
  replace(
    main,
    heading,
    notice && h("p", { class: "notice", role: "status", id: "task-notice" }, notice),
    summary,
    actions,
    live,
    timeline,
    result,
    logs.section,
    history,
  );
  if (notice) announce(notice);

  cancel.addEventListener("click", async () => {
    cancel.disabled = true;
    try {
      const response = await tasks.cancelTask({ taskId, reason: "cancelled from the web console" });
      if (response.status) onStatus(response.status);
      announce("Task cancelled.");
    } catch (error) {
      announce(`Could not cancel: ${errorText(error)}`);
      cancel.disabled = false;
    }
  });

  cancelFanOut.addEventListener("click", async () => {
    cancelFanOut.disabled = true;
    try {
      const response = await tasks.cancelTask({
        taskId,
        reason: "cancelled from the web console",
        includeChildren: true,
      });
      if (response.status) onStatus(response.status);
      const n = response.childrenCancelled;
      announce(`Task and ${n} of its child task${n === 1 ? "" : "s"} cancelled.`);
    } catch (error) {
      announce(`Could not cancel: ${errorText(error)}`);
    } finally {
      cancelFanOut.disabled = false;
    }
  });

  runNow.addEventListener("click", async () => {
    runNow.disabled = true;
    try {
      const response = await tasks.promoteTask({ taskId });
      runAt = dateOf(response.runAt);
      announce("Task promoted: it runs now.");
      void loadDetails(); // its new run_at, and the promoted event in the history
    } catch (error) {
      announce(`Not promoted: ${errorText(error)}`);
    } finally {
      drawStatus();
    }
  });

  // A failed task's dead letter replayed (ReplayDeadLetters by task id), as `taskctl dlq replay --all --task` does.
  retry.addEventListener("click", async () => {
    retry.disabled = true;
    try {
      const { outcomes } = await admin.replayDeadLetters({ all: true, filter: { taskId } });
      const replayed = outcomes.find((outcome) => outcome.result === ReplayResult.REPLAYED);
      if (replayed) {
        const revived = replayed.revivedDependents.length;
        announce(
          (replayed.queuePending
            ? `Task retried as generation ${replayed.generation}; the requeue sweeper queues it once NATS answers.`
            : `Task retried as generation ${replayed.generation}.`) +
            (revived > 0
              ? ` ${revived} task${revived === 1 ? "" : "s"} its failure had cancelled wait for it again.`
              : ""),
        );
        reachedAt.clear(); // the new generation's stages
        void follow();
      } else {
        announce(
          `Not retried: ${outcomes[0]?.reason || "no dead letter of this task (discarded, or trimmed from the list)"}`,
        );
        retry.disabled = false;
      }
    } catch (error) {
      announce(`Could not retry: ${errorText(error)}`);
      retry.disabled = false;
    }
  });

  // The gateway's default threshold (ten minutes unchanged) applies: the console never requeues a task still moving.
  requeue.addEventListener("click", async () => {
    requeue.disabled = true;
    try {
      const { outcomes } = await admin.requeueTasks({ taskIds: [taskId] });
      const [outcome] = outcomes;
      if (outcome?.result === RequeueResult.REQUEUED) {
        announce(
          outcome.queuePending
            ? `Task requeued as generation ${outcome.generation}; the requeue sweeper queues it once NATS answers.`
            : `Task requeued as generation ${outcome.generation}.`,
        );
        // A task that had finished ("not queued") ended its status stream: follow the new generation.
        if (status && TERMINAL_STATES.has(status.state)) void follow();
      } else {
        announce(`Not requeued: ${outcome?.reason ?? "no answer"}`);
      }
    } catch (error) {
      announce(`Could not requeue: ${errorText(error)}`);
    } finally {
      requeue.disabled = status !== undefined && !requeueable(status);
    }
  });

  function onStatus(update: TaskStatus) {
    // Later: a higher version, or the same one with a later progress report (a message at an unchanged percent).
    if (status && !isLaterStatus(status, update)) return;
    const changed = status?.state !== update.state;
    status = update;
    const at = dateOf(update.updatedAt) ?? new Date();
    if (!reachedAt.has(update.state)) reachedAt.set(update.state, at);
    // A task unfinished again (a retry or a requeue: a new generation) logs anew: its log is followed again.
    if (!TERMINAL_STATES.has(update.state)) logs.follow();
    drawStatus();
    if (changed) announce(`Task is ${stateName(update.state)}.`);
  }

  function drawStatus() {
    if (!status) return;
    const terminal = TERMINAL_STATES.has(status.state);
    cancel.disabled = terminal;
    requeue.disabled = !requeueable(status);
    // Offered while a delayed task waits for its time; the gateway has the last word (it may be released meanwhile).
    runNow.hidden = !(status.state === TaskState.PENDING && runAt !== undefined && runAt.getTime() > Date.now());
    runNow.disabled = runNow.hidden;
    if (status.state !== TaskState.PENDING) {
      concurrencyWait.hidden = true;
      fairnessWait.hidden = true;
    }
    // A failed task that ran (one failed "not queued" never did: Requeue takes it); the gateway has the last word.
    retry.hidden = !(status.state === TaskState.FAILED && !requeueable(status));
    if (retry.hidden) retry.disabled = false;
    const progress = terminal && status.state === TaskState.SUCCEEDED ? 100 : status.progress;
    replace(
      live,
      h(
        "p",
        {},
        "State: ",
        h("strong", { class: `state state-${stateName(status.state)}`, id: "task-state" }, stateName(status.state)),
      ),
      h(
        "p",
        {},
        h("label", { for: "task-progress" }, `Progress ${progress}%`),
        h("progress", { id: "task-progress", max: 100, value: progress }),
      ),
      // The running attempt's last progress report: what the handler says it is doing.
      status.progressMessage ? h("p", { id: "task-progress-message" }, status.progressMessage) : null,
      status.progressDetails
        ? h("pre", { id: "task-progress-details", class: "mono" }, json(status.progressDetails))
        : null,
      h("p", {}, `Attempt ${status.attempt || "—"}`),
      // A cancelled task's error is why it was cancelled (the cancel's reason, a failed dependency, an expiry).
      status.error
        ? h(
            "p",
            { id: "task-error", class: "error" },
            `${status.state === TaskState.CANCELLED ? "Cancelled" : "Error"}: ${status.error}`,
          )
        : null,
    );
    const finalState = terminal ? status.state : undefined;
    const stages = [...STAGES, finalState ?? TaskState.SUCCEEDED];
    replace(
      timeline,
      ...stages.map((stage, index) => {
        const at = reachedAt.get(stage);
        const isFinal = index === STAGES.length;
        const reached =
          at !== undefined || (status !== undefined && stageRank(status.state) > stageRank(stage) && !isFinal);
        const current = status?.state === stage;
        return h(
          "li",
          {
            class: `stage${reached ? " reached" : ""}${current ? " current" : ""}`,
            "aria-current": current ? "step" : undefined,
          },
          h("span", { class: "stage-name" }, isFinal && !finalState ? "finished" : stateName(stage)),
          h("span", { class: "stage-time" }, at ? formatTime(at) : reached ? "passed" : "—"),
        );
      }),
    );
  }

  /** The worker (host:pid) that ran the task's latest attempt, from its audit records; "" before one ran. */
  let ranOn = "";

  /** Task ids, each linked to its page. */
  const taskLinks = (ids: readonly string[]) =>
    ids.flatMap((id, i) => [...(i > 0 ? [", "] : []), h("a", { href: `/tasks/${id}`, class: "mono" }, id)]);

  /** The tasks it waits for (depends_on), each linked, and how many it still waits for. */
  function dependencies(task: Task): Node {
    const waiting = task.dependenciesUnfinished > 0 ? ` (waiting for ${task.dependenciesUnfinished})` : "";
    return h("span", {}, ...taskLinks(task.dependsOn), waiting);
  }

  /** Its concurrency key (linked to the key's page: its tasks in the pipeline and waiting) and limit, and whether it
   *  waits for a place (GetTask's concurrency_waiting). */
  function concurrency(task: Task): Node {
    concurrencyWait.hidden = !task.concurrencyWaiting;
    return h(
      "span",
      {},
      `at most ${task.concurrencyLimit} at once of key `,
      h("a", { href: concurrencyKeyHref(task), class: "mono", id: "task-concurrency-key" }, task.concurrencyKey),
      concurrencyWait,
    );
  }

  /** Its fairness key (linked to its type's fair share: the window's tasks and the keys waiting, in turn order; a key's
   *  turn means something only against the type's other keys) and weight, and whether it waits for its turn
   *  (GetTask's fairness_waiting). As `taskctl get` says it. */
  function fairness(task: Task): Node {
    fairnessWait.hidden = !task.fairnessWaiting;
    return h(
      "span",
      {},
      "key ",
      h(
        "a",
        {
          href: `/fairness/${encodeURIComponent(task.type)}`,
          class: "mono",
          id: "task-fairness-key",
          title: `The ${task.type} window: its tasks, and the keys waiting in turn order`,
        },
        task.fairnessKey,
      ),
      // The gateway answers 1 for a task submitted without a weight; || 1 covers an answer that left it out.
      `, weight ${task.fairnessWeight || 1}`,
      fairnessWait,
    );
  }

  /** Listed task ids (a task's dependents or children), each linked, and how many more the gateway did not list:
   *  linked to the task list that has them all when `allAt` is given. */
  function listedTasks(ids: readonly string[], total: number, allAt?: string): Node {
    const more = total - ids.length;
    if (more <= 0) return h("span", {}, ...taskLinks(ids));
    const rest = allAt ? h("a", { href: allAt }, `${more} more`) : `${more} more`;
    return h("span", {}, ...taskLinks(ids), " and ", rest);
  }

  /** "20 succeeded, 2 failed", each count linked to the task list of the children in that state. */
  function childStates(task: Task): Node {
    const failed = (task.childrenByState.FAILED ?? 0) > 0;
    return h(
      "span",
      {},
      ...orderedStateCounts(task.childrenByState).flatMap(([state, count], i) => [
        ...(i > 0 ? [", "] : []),
        h("a", { href: `/tasks?parent=${task.taskId}&state=${state}` }, stateCountText(state, count)),
      ]),
      // The failures' dead letters, to read and replay together.
      ...(failed ? [" (", h("a", { href: `/dead-letters?parent=${task.taskId}` }, "their dead letters"), ")"] : []),
    );
  }

  function drawTask(task: Task) {
    const traceLink = task.traceId
      ? h("a", { href: traceUrl(config.grafanaUrl, task.traceId), target: "_blank", rel: "noopener" }, "View trace")
      : h("span", { class: "muted" }, "no trace recorded");
    // Every service's lines about the task in Loki (the Logs section below has its handler's own).
    const logsLink = h(
      "a",
      {
        href: taskLogsUrl(config.grafanaUrl, task.taskId, dateOf(task.createdAt)?.getTime()),
        target: "_blank",
        rel: "noopener",
      },
      "View logs",
    );
    const link = h("span", {}, traceLink, " · ", logsLink);
    runAt = dateOf(task.runAt);
    // Offered while it has children, finished or not: a parent that SUCCEEDED may have left a fan-out running.
    cancelFanOut.hidden = task.childrenTotal === 0;
    const entries: [string, string | Node][] = [
      ["Type", task.type],
      ["Priority", priorityName(task.priority)],
      ["Created", formatTime(dateOf(task.createdAt))],
      ...(task.runAt ? ([["Runs at", `${formatTime(dateOf(task.runAt))} (delayed)`]] as [string, string][]) : []),
      ...(limitsOf(task) ? ([["Limits", limitsOf(task)]] as [string, string][]) : []),
      ...(task.parentTaskId
        ? ([["Parent", h("span", {}, ...taskLinks([task.parentTaskId]), " (submitted by its handler)")]] as [
            string,
            Node,
          ][])
        : []),
      ...(task.childrenTotal > 0
        ? ([["Children", listedTasks(task.children, task.childrenTotal, `/tasks?parent=${task.taskId}`)]] as [
            string,
            Node,
          ][])
        : []),
      // How far its fan-out got: its children by state, each count linked to the list of those children.
      ...(Object.keys(task.childrenByState).length > 0
        ? ([["Children's states", childStates(task)]] as [string, Node][])
        : []),
      ...(task.dependsOn.length > 0 ? ([["After", dependencies(task)]] as [string, Node][]) : []),
      ...(task.dependentsTotal > 0
        ? ([["Before", listedTasks(task.dependents, task.dependentsTotal)]] as [string, Node][])
        : []),
      ...(task.concurrencyKey ? ([["Concurrency", concurrency(task)]] as [string, Node][]) : []),
      ...(task.fairnessKey ? ([["Fairness", fairness(task)]] as [string, Node][]) : []),
      ...(ranOn ? ([["Worker", ranOn]] as [string, string][]) : []),
      ["Trace and logs", link],
      [
        "Metadata",
        Object.entries(task.metadata)
          .map(([k, v]) => `${k}=${v}`)
          .join(", ") || "—",
      ],
    ];
    replace(summary, ...entries.flatMap(([term, value]) => [h("dt", {}, term), h("dd", {}, value)]));
    replace(
      result,
      h("h2", {}, "Payload"),
      h("pre", {}, json(task.payload ?? {})),
      h("h2", {}, "Result"),
      task.result
        ? h("pre", { id: "task-result" }, json(task.result))
        : h("p", { class: "muted" }, "No result stored yet."),
    );
    if (task.status) onStatus(task.status);
  }

  async function loadDetails() {
    try {
      const [{ task }, { events }] = await Promise.all([tasks.getTask({ taskId }), admin.getTaskHistory({ taskId })]);
      if (controller.signal.aborted) return;
      for (const event of events) {
        const stage = STAGE_OF_ACTION[event.action];
        const at = dateOf(event.at);
        if (stage !== undefined && at && !reachedAt.has(stage)) reachedAt.set(stage, at);
        const worker = event.detail?.worker;
        if (typeof worker === "string") ranOn = worker;
      }
      if (task) drawTask(task);
      drawStatus();
      replace(
        history,
        h("h2", {}, "History"),
        events.length === 0
          ? h("p", { class: "muted" }, "No audit event yet.")
          : table(
              ["When", "Service", "Action", "Detail"],
              events.map((event) => [
                formatTime(dateOf(event.at)),
                event.service,
                event.action,
                json(event.detail ?? {}),
              ]),
            ),
      );
    } catch (error) {
      if (!controller.signal.aborted)
        replace(history, h("p", { class: "error" }, `Could not load the task: ${errorText(error)}`));
    }
  }

  async function follow() {
    while (!controller.signal.aborted) {
      try {
        for await (const update of tasks.streamTaskStatus({ taskId }, { signal: controller.signal })) {
          if (update.status) onStatus(update.status);
        }
        // The stream ends after a terminal state: show the result and the full history, and read the history once
        // more a little later: the audit service stores events a moment after the statuses (it gathers them), so
        // the last ones (the failure, its dead letter) may not be there yet.
        await loadDetails();
        setTimeout(() => {
          if (!controller.signal.aborted) void loadDetails();
        }, HISTORY_SETTLE_MS);
        return;
      } catch (error) {
        if (controller.signal.aborted || isAbort(error)) return;
        replace(live, h("p", { class: "error" }, `Status stream interrupted (${errorText(error)}); reconnecting…`));
        await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
      }
    }
  }

  void loadDetails();
  void follow();
  logs.follow();
  // Stops the status stream, a GetTaskLogs call in flight and the wait before the next one.
  return () => controller.abort();
};

/**
 * The "Logs" section: what the task's handler logged with ctx.log (GetTaskLogs), oldest first. `follow()` reads every
 * page from the last cursor, then again every LOG_POLL_MS, until an answer says the task had finished and brings no
 * line (a worker stores an attempt's lines before its outcome, so none can come after that); called while it reads,
 * it only makes sure it reads once more before stopping (a task retried as the last read answered "finished").
 */
function taskLogs(taskId: string, signal: AbortSignal): { section: HTMLElement; follow(): void } {
  const note = h("div", { id: "task-logs-note" }, h("p", { class: "muted" }, "Loading…"));
  const rows = h("tbody");
  const lines = h(
    "table",
    { class: "log-lines", hidden: true },
    h(
      "thead",
      {},
      h("tr", {}, ...["When", "Level", "Attempt", "Message", "Fields"].map((t) => h("th", { scope: "col" }, t))),
    ),
    rows,
  );
  // Focusable, so that the keyboard can scroll it.
  const scroller = h("div", { class: "log-scroll", tabindex: 0, role: "region", "aria-label": "Log lines" }, lines);
  const section = h("section", { id: "task-logs", "aria-label": "Logs" }, h("h2", {}, "Logs"), note, scroller);
  let cursor = "";
  let loaded = false;
  /** The oldest lines the workers no longer keep (the last answer's dropped), and those this page removed. */
  let dropped = 0;
  let trimmed = 0;
  let failure = "";
  let following = false;
  let readAgain = false;

  /** Appends lines (the newest LOG_LINES_SHOWN at most), staying at the bottom if the reader was there. */
  function show(batch: readonly TaskLogLine[]) {
    if (batch.length === 0) return;
    const atBottom = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 8;
    const kept = batch.slice(-LOG_LINES_SHOWN);
    trimmed += batch.length - kept.length;
    rows.append(...kept.map(logRow));
    for (let over = rows.childElementCount - LOG_LINES_SHOWN; over > 0; over--) {
      rows.firstElementChild?.remove();
      trimmed++;
    }
    lines.hidden = false;
    if (atBottom) scroller.scrollTop = scroller.scrollHeight;
  }

  function drawNote() {
    const said = (text: string) => h("p", { class: "muted" }, text);
    replace(
      note,
      !loaded && !failure ? said("Loading…") : null,
      loaded && rows.childElementCount === 0 && trimmed === 0
        ? said("No lines logged (a handler's ctx.log lines appear here).")
        : null,
      dropped > 0
        ? said(`${olderLines(dropped)} dropped: the workers keep a task's newest WORKER_TASK_LOG_LINES.`)
        : null,
      trimmed > 0
        ? said(`${olderLines(trimmed)} not shown: this page keeps the newest ${LOG_LINES_SHOWN.toLocaleString("en")}.`)
        : null,
      failure ? h("p", { class: "error" }, failure) : null,
    );
  }

  /** Reads every line after the cursor, a page at a time; true once the log is complete (finished, nothing new). */
  async function readOn(): Promise<boolean> {
    let page: Awaited<ReturnType<typeof tasks.getTaskLogs>>;
    do {
      page = await tasks.getTaskLogs({ taskId, after: cursor, limit: LOG_PAGE }, { signal });
      if (signal.aborted) return true;
      loaded = true;
      show(page.lines);
      cursor = page.nextCursor;
      dropped = page.dropped;
    } while (page.lines.length === LOG_PAGE);
    return page.finished && page.lines.length === 0;
  }

  async function run() {
    try {
      while (!signal.aborted) {
        readAgain = false;
        let complete: boolean;
        try {
          complete = (await readOn()) && !readAgain;
          failure = "";
        } catch (error) {
          if (signal.aborted || isAbort(error)) return;
          // A passing failure (the gateway restarting, a rate limit) is shown and read through on the next round.
          complete = LASTING_LOG_ERRORS.has(ConnectError.from(error).code);
          failure = `Could not load the logs: ${errorText(error)}${complete ? "" : "; trying again"}`;
        }
        drawNote();
        if (complete) return;
        await pause(LOG_POLL_MS, signal);
      }
    } finally {
      following = false;
    }
  }

  return {
    section,
    follow() {
      readAgain = true;
      if (following || signal.aborted) return;
      following = true;
      void run();
    },
  };
}

function logRow(line: TaskLogLine): HTMLElement {
  const level = LOG_LEVELS.has(line.level) ? line.level : "unknown";
  return h(
    "tr",
    { class: `log-line log-${level}` },
    h("td", { class: "log-time" }, formatTime(dateOf(line.time))),
    h("td", {}, h("span", { class: "log-level" }, line.level)),
    h(
      "td",
      {},
      line.attempt > 0 ? `#${line.attempt}` : "—",
      // A retried or requeued task's attempts count from 1 again: its generation tells the runs apart.
      line.generation > 0 ? h("span", { class: "muted" }, ` (gen ${line.generation})`) : null,
    ),
    h("td", { class: "log-message" }, line.message),
    h("td", { class: "log-fields mono" }, line.fields ? JSON.stringify(line.fields) : ""),
  );
}

function olderLines(n: number): string {
  return `${n} older line${n === 1 ? "" : "s"}`;
}

/** Waits `ms`, less if the signal aborts (the view left: its timer cleared with it). */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done);
  });
}

/** The page of the task's concurrency key. With GATEWAY_TASK_ISOLATION=caller the key is its submitter's (its
 *  submitted_by, a child task's being its parent's submitter), which GetConcurrencyKey then requires as `owner`;
 *  without isolation the gateway refuses an owner. Whether it isolates is not known here, so the submitter goes
 *  along as `?owner=` when the task has one, and the key's page drops it if the gateway refuses it
 *  (views/concurrency-key.ts). */
function concurrencyKeyHref(task: Pick<Task, "concurrencyKey" | "metadata">): string {
  const owner = task.metadata.submitted_by;
  return `/concurrency/${encodeURIComponent(task.concurrencyKey)}${owner ? `?owner=${encodeURIComponent(owner)}` : ""}`;
}

/** Unfinished, or FAILED "not queued" by the gateway's requeue sweeper (it never ran): what RequeueTasks may take.
 *  The prefix is the gateway's NOT_QUEUED_PREFIX (services/gateway/src/requeue-sweeper.ts), which this browser
 *  bundle cannot import. */
function requeueable(status: TaskStatus): boolean {
  if (!TERMINAL_STATES.has(status.state)) return true;
  return status.state === TaskState.FAILED && status.error.startsWith("not queued:");
}

function stageRank(state: TaskState): number {
  return TERMINAL_STATES.has(state) ? STAGES.length : STAGES.indexOf(state);
}

/** The task's own execution limits (SubmitTaskRequest.timeout, max_attempts, retry_backoff, expires_after) and
 *  succeeded retention, or "" when it has the defaults; a schedule's task template (ScheduledTask) has the same
 *  fields. */
export function limitsOf(
  task: Pick<
    Task,
    "timeout" | "maxAttempts" | "retryBackoff" | "expiresAfter" | "succeededRetention" | "heartbeatTimeout"
  >,
): string {
  const limits = [
    ...(task.timeout ? [`timeout ${duration(durationMs(task.timeout))} per attempt`] : []),
    ...(task.maxAttempts ? [`at most ${task.maxAttempts} attempt${task.maxAttempts === 1 ? "" : "s"}`] : []),
    ...(task.retryBackoff ? [`retried ${retryBackoffText(task.retryBackoff, duration)}`] : []),
    ...(task.expiresAfter
      ? [`expires if not started ${duration(durationMs(task.expiresAfter))} after it was due`]
      : []),
    ...(task.heartbeatTimeout
      ? [`aborted after ${duration(durationMs(task.heartbeatTimeout))} without a progress report`]
      : []),
    ...(task.succeededRetention ? [`kept ${duration(durationMs(task.succeededRetention))} once it succeeded`] : []),
  ];
  return limits.join("; ");
}
