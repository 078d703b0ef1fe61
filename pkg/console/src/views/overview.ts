/** Overview: throughput, queue depths per priority and per consumer, failures, dead letters, tasks by state, and the
 *  live workers with the tasks they run (ListWorkers), each with Quiet (after a confirmation) or Resume, as
 *  `taskctl workers quiet|resume <id>`. */
import type { GetQueueStatsResponse, RedisStats, WorkerInfo } from "@tm/proto/web";
import { ownTaskTypesText, TaskState } from "@tm/proto/web";
import { admin, errorText } from "../api.js";
import { announce, h, replace } from "../dom.js";
import { ago, dateOf, duration, formatTime, priorityName, stateName } from "../format.js";
import { STALLED_COUNTED } from "./tasks.js";
import type { View } from "./view.js";

const REFRESH_MS = 2000;
const PRIORITY_SUBJECTS = ["tasks.worker.high", "tasks.worker.medium", "tasks.worker.low"];

export const overviewView: View = (main) => {
  const status = h("p", { class: "muted" }, "Loading…");
  // What the last Quiet / Resume did (or why it failed), kept above the workers across refreshes.
  const outcome = h("p", { role: "status" });
  const body = h("div");
  replace(main, h("h1", {}, "Overview"), status, body);
  let timer: ReturnType<typeof setTimeout> | undefined;
  let stopped = false;
  let generation = 0;

  /** Loads and draws the page, then again every REFRESH_MS; a call in between (after an action) starts afresh. */
  async function refresh() {
    const mine = ++generation;
    clearTimeout(timer);
    try {
      const [stats, { workers }] = await Promise.all([admin.getQueueStats({}), admin.listWorkers({})]);
      if (stopped || mine !== generation) return;
      render(body, stats, workers, { outcome, toggle: (worker) => void toggleQuiet(worker) });
      status.textContent = `Updated ${formatTime(dateOf(stats.sampledAt))}; refreshes every ${REFRESH_MS / 1000} s.`;
    } catch (error) {
      if (stopped || mine !== generation) return;
      status.textContent = `Could not load statistics: ${errorText(error)}`;
    }
    timer = setTimeout(refresh, REFRESH_MS);
  }

  /** Quiet (after a confirmation) or Resume one worker, say what happened, and show the workers again. */
  async function toggleQuiet(worker: WorkerInfo) {
    const quiet = worker.quietRequested === undefined;
    if (quiet && !window.confirm(quietQuestion(worker.id))) return;
    let text: string;
    try {
      text = quiet
        ? quietOutcome(worker.id, (await admin.quietWorker({ workerId: worker.id })).changed)
        : resumeOutcome(worker.id, (await admin.resumeWorker({ workerId: worker.id })).changed);
    } catch (error) {
      text = `${quiet ? "Quiet" : "Resume"} ${worker.id} failed: ${errorText(error)}`;
    }
    if (stopped) return;
    outcome.textContent = text;
    announce(text);
    void refresh();
  }
  void refresh();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
};

/** The workers' part of the page that outlives a refresh: the last action's outcome, and what a row's button does. */
interface WorkerActions {
  outcome: HTMLElement;
  toggle(worker: WorkerInfo): void;
}

function quietQuestion(id: string): string {
  return (
    `Quiet worker ${id}? It takes no new tasks and gives the ones it holds buffered to the other workers; ` +
    "its running tasks finish. Resume undoes it."
  );
}

// The worker applies the mark from its next poll (WORKER_PAUSE_POLL_MS) and shows it in its next report.
function quietOutcome(id: string, changed: boolean): string {
  return changed
    ? `Worker ${id}: quiet (takes no new tasks from its next poll; what it holds buffered goes to the other workers).`
    : `Worker ${id} was quiet already.`;
}

function resumeOutcome(id: string, changed: boolean): string {
  return changed ? `Worker ${id}: resumed (takes tasks again).` : `Worker ${id} was not quiet.`;
}

function render(
  body: HTMLElement,
  stats: GetQueueStatsResponse,
  liveWorkers: WorkerInfo[],
  actions: WorkerActions,
): void {
  const count = (state: TaskState) => Number(stats.tasksByState.find((entry) => entry.state === state)?.count ?? 0n);
  const workers = stats.consumers.filter((consumer) => consumer.subject.startsWith("tasks.worker."));
  const throughput = workers.reduce((sum, consumer) => sum + consumer.processedPerSecond, 0);
  const tile = (label: string, value: string, href?: string) =>
    h(
      "div",
      { class: "tile" },
      h("span", { class: "tile-label" }, label),
      href ? h("a", { href }, value) : h("strong", {}, value),
    );
  replace(
    body,
    h(
      "section",
      { class: "tiles", "aria-label": "Summary" },
      tile("Throughput (worker)", `${throughput.toFixed(1)} tasks/s`),
      tile("Running", String(count(TaskState.RUNNING)), "/tasks?state=RUNNING"),
      tile("Failed", String(count(TaskState.FAILED)), "/tasks?state=FAILED"),
      tile("Dead letters", String(stats.deadLetters), "/dead-letters"),
      // Saved by a gateway, not yet acknowledged by the TASKS stream; overdue ones await the requeue sweeper.
      tile(
        "Unqueued submissions",
        stats.unqueuedOverdue > 0n
          ? `${stats.unqueuedSubmissions} (${stats.unqueuedOverdue} overdue)`
          : String(stats.unqueuedSubmissions),
      ),
      // Waiting for their time (submit --delay / --at); overdue ones mean no gateway is releasing them.
      tile(
        "Delayed tasks",
        stats.delayedOverdue > 0n
          ? `${stats.delayedTasks} (${stats.delayedOverdue} overdue)`
          : String(stats.delayedTasks),
      ),
      // Waiting for the tasks they depend on (depends_on): released once those SUCCEEDED.
      tile("Waiting for dependencies", String(stats.waitingTasks)),
      // Waiting for a place under their concurrency key: released as the key's tasks end (taskctl concurrency).
      tile("Waiting for a concurrency key", String(stats.concurrencyWaitingTasks)),
      // Waiting for their fairness key's turn in their type's window: let in as the window's tasks end, the key whose
      // turn it is first (a type's page: /fairness/<type>, linked from its tasks' pages; taskctl fairness).
      tile("Waiting for a fairness turn", String(stats.fairnessWaitingTasks)),
      // Unfinished, unchanged for the gateway's threshold with nothing older queued: their messages are lost, only a
      // requeue moves them (taskctl stats, alert TasksStalled). Linked to the list of exactly those.
      tile(
        "Stalled tasks",
        `${stats.stalledTasks}${stats.stalledTasksExaminedAll ? "" : "+"}`,
        `/tasks?stalled=${STALLED_COUNTED}`,
      ),
      // At maxmemory, under noeviction, Redis refuses every write (taskctl stats, alert RedisMemoryHigh).
      ...(stats.redis ? [tile("Redis memory", redisMemory(stats.redis))] : []),
    ),
    // Each type's fairness window, linked to its page: where the tasks waiting for a fairness turn are.
    ...(stats.fairnessQueues.length > 0
      ? [
          h(
            "p",
            { id: "fairness-queues" },
            "Fairness windows: ",
            ...stats.fairnessQueues.flatMap((queue, i) => [
              i > 0 ? ", " : "",
              h("a", { href: `/fairness/${encodeURIComponent(queue.taskType)}` }, queue.taskType),
              ` ${queue.runningTotal} of ${queue.window} place${queue.window === 1 ? "" : "s"} taken, ` +
                `${queue.keysTotal} key${queue.keysTotal === 1 ? "" : "s"} waiting`,
            ]),
          ),
        ]
      : []),
    // The gateway refuses new submissions (load shedding, alert SubmissionsShed): a backlog near its stream's limits.
    ...(stats.shedding
      ? [h("p", { class: "error", role: "alert", id: "shedding" }, `New submissions are refused: ${stats.shedding}`)]
      : []),
    // A routed pool none of whose workers started (or a stage not deployed): its tasks wait unseen by any consumer's
    // figures (taskctl stats, alert QueueWithoutConsumer).
    ...stats.unconsumedQueues.map((queue) =>
      h(
        "p",
        { class: "error", role: "alert" },
        `${queue.subject} holds ${queue.messages} message${queue.messages === 1n ? "" : "s"}` +
          `${queue.oldestAgeMs > 0n ? ` (oldest ${duration(Number(queue.oldestAgeMs))})` : ""} that no consumer reads: ` +
          "no worker of its pool (or no stage for it) has started. They run once one starts.",
      ),
    ),
    h("h2", {}, "Queue depth per priority"),
    table(
      ["Priority", "Waiting", "In flight", "Redelivered", "Oldest unacked", "Paused"],
      PRIORITY_SUBJECTS.map((subject) => {
        const name = subject.split(".").pop() ?? subject;
        // An operator's pause (taskctl pause): the workers start none of this priority's tasks.
        const pause = stats.pausedQueues.find((queue) => priorityName(queue.priority) === name);
        // The worker pools' queues of the priority too (tasks.worker.<priority>.<pool>, TASK_ROUTES).
        const consumers = stats.consumers.filter(
          (consumer) => consumer.subject === subject || consumer.subject.startsWith(`${subject}.`),
        );
        const sum = (pick: (c: (typeof consumers)[number]) => bigint) => consumers.reduce((s, c) => s + pick(c), 0n);
        // A pool's queue no worker reads yet: its messages wait too.
        const unread = stats.unconsumedQueues.filter((queue) => queue.subject.startsWith(`${subject}.`));
        const oldest = Math.max(
          0,
          ...consumers.map((c) => Number(c.oldestUnackedAgeMs)),
          ...unread.map((queue) => Number(queue.oldestAgeMs)),
        );
        return [
          name,
          String(sum((c) => c.pending) + unread.reduce((s, queue) => s + queue.messages, 0n)),
          String(sum((c) => c.ackPending)),
          String(sum((c) => c.redelivered)),
          oldest > 0 ? duration(oldest) : "—",
          pause ? `paused${pause.pausedBy ? ` by ${pause.pausedBy}` : ""}` : "—",
        ];
      }),
    ),
    h("h2", {}, `Tasks by state (newest ${stats.tasksCounted}${stats.tasksByStateTruncated ? ", more exist" : ""})`),
    table(
      ["State", "Tasks"],
      stats.tasksByState.map((entry) => [
        h("a", { href: `/tasks?state=${stateName(entry.state)}` }, stateName(entry.state)),
        String(entry.count),
      ]),
    ),
    ...workerSections(liveWorkers, actions),
    h("h2", {}, "Consumers"),
    table(
      [
        "Stream",
        "Subject",
        "Consumer",
        "Waiting",
        "In flight",
        "Redelivered",
        "Oldest unacked",
        "Of stream limits",
        "Processed/s",
      ],
      stats.consumers
        .map((consumer) => [
          consumer.stream,
          consumer.subject || "—",
          consumer.name,
          String(consumer.pending),
          String(consumer.ackPending),
          String(consumer.redelivered),
          consumer.oldestUnackedAgeMs > 0n ? duration(Number(consumer.oldestUnackedAgeMs)) : "—",
          // At 100 % the stream discards the backlog's oldest messages (full streams drop their oldest, handled or not).
          `${Math.round(consumer.backlogLimitRatio * 100)} %`,
          consumer.processedPerSecond.toFixed(1),
        ])
        .concat(
          // A queue no consumer reads (a pool none of whose workers started): what waits there, and no consumer.
          stats.unconsumedQueues.map((queue) => [
            queue.stream,
            queue.subject,
            "none reads it",
            String(queue.messages),
            "0",
            "0",
            queue.oldestAgeMs > 0n ? duration(Number(queue.oldestAgeMs)) : "—",
            "—",
            "0.0",
          ]),
        ),
    ),
  );
}

/** The live workers (each with its state and Quiet or Resume), then every task running (longest first) with a link
 *  to it. */
function workerSections(workers: WorkerInfo[], actions: WorkerActions): HTMLElement[] {
  const now = Date.now();
  const running = workers
    .flatMap((worker) => worker.running.map((task) => ({ worker: worker.id, task })))
    .sort((a, b) => (dateOf(a.task.startedAt)?.getTime() ?? 0) - (dateOf(b.task.startedAt)?.getTime() ?? 0));
  const ownTypes = workers.some((worker) => worker.ownTaskTypes.length > 0);
  const pools = workers.some((worker) => worker.pool !== "");
  return [
    h("h2", {}, `Workers (${workers.length})`),
    actions.outcome,
    workers.length === 0
      ? h("p", { class: "muted" }, "No live worker: none reported in the last three report intervals.")
      : table(
          [
            "Worker",
            "Started",
            "Last report",
            "Running",
            "Buffered",
            "Paused",
            "State",
            // Where any worker serves a pool (WORKER_POOL): which tasks each takes.
            ...(pools ? ["Pool"] : []),
            // The deployment's own task types each runs, where any does: during a rollout, which have a new one yet.
            ...(ownTypes ? ["Own types"] : []),
            "Action",
          ],
          workers.map((worker) => [
            worker.id,
            ago(dateOf(worker.startedAt), now),
            ago(dateOf(worker.seenAt), now),
            `${worker.runningCount} of ${worker.concurrency}` +
              (worker.abandoned ? `, and ${worker.abandoned} abandoned (ignoring their signal)` : ""),
            String(worker.queued),
            worker.pausedQueues.map(priorityName).join(", ") || "—",
            // As the worker applies it, and on the way once asked (`taskctl workers`' STATE).
            workerState(worker),
            ...(pools ? [worker.pool || "default"] : []),
            // Those whose attempts run in worker threads (isolation "thread") marked so.
            ...(ownTypes ? [ownTaskTypesText(worker, ", ") || "—"] : []),
            quietButton(worker, actions),
          ]),
        ),
    h("h2", {}, `Running tasks (${workers.reduce((sum, worker) => sum + worker.runningCount, 0)})`),
    running.length === 0
      ? h("p", { class: "muted" }, "No task running.")
      : table(
          ["Task", "Type", "Priority", "Attempt", "Running for", "Worker"],
          running.map(({ worker, task }) => [
            h("a", { href: `/tasks/${task.taskId}`, class: "mono" }, task.taskId),
            task.type,
            priorityName(task.priority),
            String(task.attempt),
            duration(now - (dateOf(task.startedAt)?.getTime() ?? now)),
            worker,
          ]),
        ),
    ...abandonedSection(workers, now),
  ];
}

/** Handlers running on after their attempt ended (they ignore their abort signal), longest first; nothing when none. */
function abandonedSection(workers: WorkerInfo[], now: number): HTMLElement[] {
  const handlers = workers
    .flatMap((worker) => worker.abandonedHandlers.map((handler) => ({ worker: worker.id, handler })))
    .sort((a, b) => (dateOf(a.handler.since)?.getTime() ?? 0) - (dateOf(b.handler.since)?.getTime() ?? 0));
  if (handlers.length === 0) return [];
  return [
    h("h2", {}, `Abandoned handlers (${workers.reduce((sum, worker) => sum + worker.abandoned, 0)})`),
    h(
      "p",
      { class: "muted" },
      "Still running after their attempt ended: they ignore their abort signal. Their tasks moved on; a worker " +
        "restart frees them (WORKER_MAX_ABANDONED_HANDLERS makes it restart itself).",
    ),
    table(
      ["Task", "Type", "Abandoned for", "Worker"],
      handlers.map(({ worker, handler }) => [
        h("a", { href: `/tasks/${handler.taskId}`, class: "mono" }, handler.taskId),
        handler.type,
        duration(now - (dateOf(handler.since)?.getTime() ?? now)),
        worker,
      ]),
    ),
  ];
}

/** "taking tasks", "quiet" (by whom), or on the way: "quieting" (asked, not applied yet) / "resuming". */
function workerState(worker: WorkerInfo): string | HTMLElement {
  const by = worker.quietRequested?.by ? ` by ${worker.quietRequested.by}` : "";
  if (worker.quietRequested) {
    return worker.quiet ? h("strong", { class: "worker-quiet" }, `quiet${by}`) : `quieting${by}`;
  }
  return worker.quiet ? "resuming" : "taking tasks";
}

function quietButton(worker: WorkerInfo, actions: WorkerActions): HTMLElement {
  // By the request, not by what the worker applied yet: a second Quiet while it is quieting would change nothing.
  const asked = worker.quietRequested !== undefined;
  const [label, text] = asked ? [`Resume ${worker.id}`, "Resume"] : [`Quiet ${worker.id}`, "Quiet"];
  return h(
    "button",
    { type: "button", class: "secondary", "aria-label": label, onclick: () => actions.toggle(worker) },
    text,
  );
}

export function table(headers: string[], rows: (string | Node)[][]): HTMLElement {
  return h(
    "table",
    {},
    h("thead", {}, h("tr", {}, ...headers.map((header) => h("th", { scope: "col" }, header)))),
    h("tbody", {}, ...rows.map((row) => h("tr", {}, ...row.map((cell) => h("td", {}, cell))))),
  );
}

/** "412 MB of 700 MB (59 %)", or "412 MB, no maxmemory". */
function redisMemory(redis: RedisStats): string {
  const mb = (bytes: bigint) => `${Math.round(Number(bytes) / 1_048_576)} MB`;
  if (redis.maxMemoryBytes === 0n) return `${mb(redis.usedMemoryBytes)}, no maxmemory`;
  const share = Math.round((Number(redis.usedMemoryBytes) / Number(redis.maxMemoryBytes)) * 100);
  return `${mb(redis.usedMemoryBytes)} of ${mb(redis.maxMemoryBytes)} (${share} %)`;
}
