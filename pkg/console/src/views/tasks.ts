/**
 * Tasks: filters by state, type, priority and creation time, unfinished tasks by how long their status has not
 * changed (stalled ones are the candidates for a requeue), a debounced search box, and one page at a time
 * (the server pages with tokens; only the page shown is rendered, so 10,000 tasks cost no more than 50). "Cancel
 * matching" counts the unfinished tasks the filters match (AdminService CancelTasks' dry run), asks, and cancels those
 * (by id, 500 per call), as `taskctl cancel --all --dry-run` then `taskctl cancel --all` would. "Requeue stalled" does
 * the same for the tasks counted as stalled (their messages lost) that the filters match, as `taskctl requeue
 * --all-stalled` would: listed, counted, asked, then requeued by id, each only if still unchanged for the gateway's
 * stall threshold (a task that moved meanwhile is left alone). "New task" opens the New task form (new-task.ts).
 */
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { CancelResult, Priority, RequeueResult, TaskState } from "@tm/proto/web";
import { admin, errorText } from "../api.js";
import { announce, debounce, field, h, replace } from "../dom.js";
import { ago, dateOf, priorityName, stateName } from "../format.js";
import { table } from "./overview.js";
import type { View } from "./view.js";

const PAGE_SIZE = 50;
const SEARCH_DEBOUNCE_MS = 300;
/** CancelTasks and RequeueTasks take at most 500 ids per call, and ListTasks pages of at most 500. */
const CANCEL_BATCH = 500;
const REQUEUE_BATCH = 500;
const LIST_MAX = 500;

/** `text` cut to `max` characters, with an ellipsis when cut. */
function truncate(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

export const tasksView: View = (main, { query }) => {
  const stateSelect = select("state", ["", ...enumNames(TaskState)], query.get("state") ?? "");
  const prioritySelect = select("priority", ["", "HIGH", "MEDIUM", "LOW"], query.get("priority") ?? "");
  const stalledSelect = select(
    "stalled",
    STALLED_OPTIONS.map(([value]) => value),
    query.get("stalled") ?? "",
    Object.fromEntries(STALLED_OPTIONS),
  );
  const typeInput = h("input", {
    name: "type",
    value: query.get("type") ?? "",
    autocomplete: "off",
  }) as HTMLInputElement;
  const afterInput = h("input", {
    name: "after",
    type: "datetime-local",
    value: query.get("after") ?? "",
  }) as HTMLInputElement;
  const beforeInput = h("input", {
    name: "before",
    type: "datetime-local",
    value: query.get("before") ?? "",
  }) as HTMLInputElement;
  const searchInput = h("input", {
    name: "q",
    type: "search",
    value: query.get("q") ?? "",
    placeholder: "task id prefix or metadata",
    autocomplete: "off",
  }) as HTMLInputElement;
  // A parent's children, all of them (the task page lists the first 100 and links here).
  const parentInput = h("input", {
    name: "parent",
    value: query.get("parent") ?? "",
    placeholder: "its child tasks",
    autocomplete: "off",
  }) as HTMLInputElement;
  const status = h("p", { class: "muted", role: "status" });
  const results = h("div", { id: "task-list" });
  const previous = h("button", { type: "button", class: "secondary" }, "Previous page") as HTMLButtonElement;
  const next = h("button", { type: "button", class: "secondary" }, "Next page") as HTMLButtonElement;
  const cancelMatching = h(
    "button",
    { type: "button", class: "danger", title: "Cancel every unfinished task these filters match" },
    "Cancel matching",
  ) as HTMLButtonElement;
  const requeueStalled = h("button", { type: "button", class: "secondary" }, "Requeue stalled") as HTMLButtonElement;
  // A one-off task by hand: the New task form, which then opens the task's page.
  const newTask = h("a", { href: "/tasks/new", class: "button" }, "New task");

  replace(
    main,
    h("h1", {}, "Tasks"),
    h(
      "form",
      { class: "filters", role: "search", onsubmit: (event: Event) => event.preventDefault() },
      field("Search", searchInput),
      field("State", stateSelect),
      field("Type", typeInput),
      field("Priority", prioritySelect),
      field("Unfinished", stalledSelect),
      field("Created after", afterInput),
      field("Created before", beforeInput),
      field("Parent task", parentInput),
    ),
    h("div", { class: "actions" }, newTask, cancelMatching, requeueStalled),
    status,
    results,
    h("div", { class: "pager" }, previous, next),
  );

  // Tokens of the pages before the current one, for "Previous".
  let tokens: string[] = [];
  let current = "";
  let nextToken = "";
  let generation = 0;

  /** The filters shown, as ListTasks and CancelTasks take them. */
  function taskFilter() {
    return {
      state: TaskState[stateSelect.value as keyof typeof TaskState] ?? TaskState.UNSPECIFIED,
      priority: Priority[prioritySelect.value as keyof typeof Priority] ?? Priority.UNSPECIFIED,
      type: typeInput.value.trim(),
      query: searchInput.value.trim(),
      createdAfter: afterInput.value ? timestampFromDate(new Date(afterInput.value)) : undefined,
      createdBefore: beforeInput.value ? timestampFromDate(new Date(beforeInput.value)) : undefined,
      parentTaskId: parentInput.value.trim(),
    };
  }

  /** The filter CancelTasks takes, or why the current filters cannot be cancelled in bulk. */
  function cancelFilter() {
    const filter = taskFilter();
    if ([TaskState.SUCCEEDED, TaskState.FAILED, TaskState.CANCELLED].includes(filter.state)) {
      return { why: "finished tasks cannot be cancelled" };
    }
    if (stalledSelect.value !== "" && stalledSelect.value !== "0") {
      return { why: "choose Unfinished: any or all unfinished (a stall is not a cancel filter)" };
    }
    const any =
      filter.state !== TaskState.UNSPECIFIED ||
      filter.priority !== Priority.UNSPECIFIED ||
      filter.type !== "" ||
      filter.query !== "" ||
      filter.createdAfter !== undefined ||
      filter.createdBefore !== undefined ||
      filter.parentTaskId !== "";
    return any ? { filter } : { why: "set a filter first (every task: Created before now)" };
  }

  function drawCancelMatching() {
    const { why } = cancelFilter();
    cancelMatching.disabled = why !== undefined;
    cancelMatching.title = why ?? "Cancel every unfinished task these filters match";
    // Only the tasks counted as stalled can be requeued in bulk: a backlog's are still on their way.
    const stalledOnly = stalledSelect.value === STALLED_COUNTED;
    requeueStalled.disabled = !stalledOnly;
    requeueStalled.title = stalledOnly
      ? "Requeue every stalled task these filters match: each goes through the pipeline again as a new generation"
      : 'choose Unfinished: "stalled: messages lost" first';
  }

  /** The tasks counted as stalled that the filters match now (ListTasks `stalled`, page by page). */
  async function stalledMatching(): Promise<string[]> {
    const taskIds: string[] = [];
    let pageToken = "";
    do {
      const response = await admin.listTasks({ ...taskFilter(), stalled: true, pageSize: LIST_MAX, pageToken });
      taskIds.push(...response.tasks.map((task) => task.taskId));
      pageToken = response.nextPageToken;
    } while (pageToken);
    return taskIds;
  }

  requeueStalled.addEventListener("click", async () => {
    requeueStalled.disabled = true;
    let requeued = 0;
    let notRequeued = 0;
    let outcome = "";
    try {
      const taskIds = await stalledMatching();
      if (taskIds.length === 0) {
        outcome = "No stalled task matches these filters.";
        return;
      }
      const count = `${taskIds.length} stalled task${taskIds.length === 1 ? "" : "s"}`;
      if (!window.confirm(`Requeue ${count} these filters match? Each goes through the pipeline again.`)) return;
      // The gateway's own threshold: a task that changed since it was counted is not requeued.
      const { stalledAfterSeconds } = await admin.getQueueStats({});
      for (let start = 0; start < taskIds.length; start += REQUEUE_BATCH) {
        const response = await admin.requeueTasks({
          taskIds: taskIds.slice(start, start + REQUEUE_BATCH),
          stalledForSeconds: stalledAfterSeconds,
        });
        for (const each of response.outcomes) {
          if (each.result === RequeueResult.REQUEUED) requeued++;
          else if (each.result === RequeueResult.UNAVAILABLE)
            throw new Error(each.reason || "Redis or NATS did not answer");
          else notRequeued++;
        }
      }
      outcome =
        `Requeued ${requeued} task${requeued === 1 ? "" : "s"}` +
        `${notRequeued > 0 ? ` (${notRequeued} not: moved, finished or cancelled meanwhile)` : ""}.`;
    } catch (error) {
      outcome = `Requeued ${requeued}, then stopped: ${errorText(error)}`;
    } finally {
      drawCancelMatching();
      if (outcome) void load("", outcome);
    }
  });

  /** The unfinished tasks the filter matches now: CancelTasks' dry run, page by page. */
  async function matching(filter: NonNullable<ReturnType<typeof cancelFilter>["filter"]>): Promise<string[]> {
    const taskIds: string[] = [];
    let pageToken = "";
    do {
      const response = await admin.cancelTasks({ all: true, ...filter, pageToken, dryRun: true });
      for (const outcome of response.outcomes) {
        if (outcome.result === CancelResult.WOULD_CANCEL) taskIds.push(outcome.taskId);
      }
      pageToken = response.nextPageToken;
    } while (pageToken);
    return taskIds;
  }

  cancelMatching.addEventListener("click", async () => {
    const { filter } = cancelFilter();
    if (!filter) return;
    cancelMatching.disabled = true;
    let cancelled = 0;
    let finished = 0;
    let outcome = "";
    try {
      // The count first, and then exactly the tasks counted, by id: a task submitted while the operator reads the
      // question is not cancelled with the ones they agreed to.
      const taskIds = await matching(filter);
      if (taskIds.length === 0) {
        outcome = "No unfinished task matches these filters.";
        return;
      }
      const count = `${taskIds.length} unfinished task${taskIds.length === 1 ? "" : "s"}`;
      if (!window.confirm(`Cancel ${count} these filters match? Running handlers are aborted.`)) return;
      for (let start = 0; start < taskIds.length; start += CANCEL_BATCH) {
        const response = await admin.cancelTasks({
          taskIds: taskIds.slice(start, start + CANCEL_BATCH),
          reason: "cancelled from the web console",
        });
        for (const outcome of response.outcomes) {
          if (outcome.result === CancelResult.CANCELLED) cancelled++;
          else if (outcome.result === CancelResult.ALREADY_FINISHED || outcome.result === CancelResult.NOT_FOUND)
            finished++;
        }
      }
      outcome = `Cancelled ${cancelled} task${cancelled === 1 ? "" : "s"}${finished > 0 ? ` (${finished} had finished meanwhile)` : ""}.`;
    } catch (error) {
      outcome = `Cancelled ${cancelled}, then stopped: ${errorText(error)}`;
    } finally {
      drawCancelMatching();
      // The list again, its announcement led by what was done (one announcement: a second would replace the first).
      if (outcome) void load("", outcome);
    }
  });

  async function load(pageToken: string, note = "") {
    const mine = ++generation;
    status.textContent = "Loading…";
    try {
      const response = await admin.listTasks({
        ...taskFilter(),
        // "counted": the tasks the overview's "Stalled tasks" tile counts (ListTasks `stalled`), else a threshold.
        stalled: stalledSelect.value === STALLED_COUNTED,
        stalledForSeconds:
          stalledSelect.value === "" || stalledSelect.value === STALLED_COUNTED
            ? undefined
            : Number(stalledSelect.value),
        pageSize: PAGE_SIZE,
        pageToken,
      });
      if (mine !== generation) return;
      current = pageToken;
      nextToken = response.nextPageToken;
      previous.disabled = tokens.length === 0;
      next.disabled = !nextToken;
      const now = Date.now();
      replace(
        results,
        response.tasks.length === 0
          ? h("p", {}, "No task matches.")
          : table(
              ["Task", "Type", "Priority", "State", "Progress", "Created"],
              response.tasks.map((task) => [
                h("a", { href: `/tasks/${task.taskId}`, class: "mono" }, task.taskId),
                task.type,
                priorityName(task.priority),
                h("span", { class: `state state-${stateName(task.status?.state)}` }, stateName(task.status?.state)),
                // A running task's last progress message beside its percent (cut short; in full on its page).
                task.status?.progressMessage && task.status.state === TaskState.RUNNING
                  ? `${task.status.progress}% · ${truncate(task.status.progressMessage, 60)}`
                  : `${task.status?.progress ?? 0}%`,
                ago(dateOf(task.createdAt), now),
              ]),
            ),
      );
      const text = `${response.tasks.length} task${response.tasks.length === 1 ? "" : "s"} on page ${tokens.length + 1}${nextToken ? "; more on the next page" : ""}.`;
      status.textContent = text;
      announce(note ? `${note} ${text}` : text);
    } catch (error) {
      if (mine !== generation) return;
      status.textContent = `Could not list tasks: ${errorText(error)}`;
      if (note) announce(note);
    }
  }

  function restart() {
    tokens = [];
    const params = new URLSearchParams();
    for (const [name, input] of [
      ["state", stateSelect],
      ["priority", prioritySelect],
      ["stalled", stalledSelect],
      ["type", typeInput],
      ["after", afterInput],
      ["before", beforeInput],
      ["q", searchInput],
      ["parent", parentInput],
    ] as const) {
      if (input.value) params.set(name, input.value);
    }
    history.replaceState(null, "", `/tasks${params.size > 0 ? `?${params}` : ""}`);
    drawCancelMatching();
    void load("");
  }

  const searchLater = debounce(restart, SEARCH_DEBOUNCE_MS);
  searchInput.addEventListener("input", searchLater);
  typeInput.addEventListener("input", searchLater);
  parentInput.addEventListener("input", searchLater);
  for (const control of [stateSelect, prioritySelect, stalledSelect, afterInput, beforeInput])
    control.addEventListener("change", restart);
  next.addEventListener("click", () => {
    tokens.push(current);
    void load(nextToken);
  });
  previous.addEventListener("click", () => void load(tokens.pop() ?? ""));
  drawCancelMatching();
  void load("");
  return () => {
    generation++;
  };
};

function enumNames(enumObject: Record<string, string | number>): string[] {
  return Object.keys(enumObject).filter((key) => Number.isNaN(Number(key)) && key !== "UNSPECIFIED");
}

/** The "Unfinished" option for the tasks counted as stalled (their messages lost): the overview's tile links to it. */
export const STALLED_COUNTED = "counted";

/** ListTasks' stalled_for_seconds as option values, in order: every unfinished task, or those unchanged a while; and
 *  `stalled`, the tasks the gateway counts as stalled (unchanged with nothing older queued: not a backlog). */
const STALLED_OPTIONS: [string, string][] = [
  ["", "any"],
  ["0", "all unfinished"],
  ["600", "unchanged 10 min"],
  ["3600", "unchanged 1 h"],
  ["86400", "unchanged 1 day"],
  [STALLED_COUNTED, "stalled: messages lost"],
];

function select(
  name: string,
  options: string[],
  value: string,
  labels: Record<string, string> = {},
): HTMLSelectElement {
  const element = h(
    "select",
    { name },
    ...options.map((option) => h("option", { value: option }, labels[option] ?? (option || "any"))),
  );
  (element as HTMLSelectElement).value = value;
  return element as HTMLSelectElement;
}
