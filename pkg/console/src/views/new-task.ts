/** New task: a one-off task submitted by hand (TaskService.SubmitTask, as `taskctl submit`), to try a type or run
 *  something again: type (the pipeline's types offered), payload, priority, when (now, after a delay, at a time),
 *  metadata, the tasks it waits for, an idempotency key and how it may be reused, a concurrency key and its limit, a
 *  fairness key and its weight, and the task's limits (the fields New schedule offers, shared in task-fields.ts). A
 *  malformed field is refused here, naming it, before anything is sent; the gateway's refusal is shown in the form
 *  (the field it names marked).
 *  Once accepted, the task's page follows it live, saying when the key answered an existing task (deduplicated) or
 *  replaced a waiting one. */
import { durationFromMs, durationMs, timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  CONCURRENCY_KEY_MAX_CHARS,
  CONCURRENCY_LIMIT_MAX,
  concurrencyKeyProblem,
  concurrencyLimitProblem,
  FAIRNESS_WEIGHT_MAX,
  fairnessKeyProblem,
  fairnessWeightProblem,
  IdempotencyKeyReuse,
} from "@tm/proto/web";
import { errorText, tasks } from "../api.js";
import { announce, field, h, input, leaveNotice, replace } from "../dom.js";
import { formatTime } from "../format.js";
import {
  clearInvalid,
  DURATION_HINT,
  durationField,
  type FieldProblem,
  isProblem,
  makePayloadInput,
  makePrioritySelect,
  metadataOf,
  payloadOf,
  priorityOf,
  refuseField,
  taskLimitFields,
  taskTypeField,
  timeField,
} from "./task-fields.js";
import type { View } from "./view.js";

/** IdempotencyKeyReuse's values as options (value: the enum's name). */
const KEY_REUSES: [keyof typeof IdempotencyKeyReuse, string][] = [
  ["UNSPECIFIED", "default: the key always answers its first task"],
  ["AFTER_FINISHED", "after finished: a new task once the key's task finished"],
  ["REPLACE_WAITING", "replace waiting: a delayed task still waiting takes this payload and time"],
];

export const newTaskView: View = (main, { config, navigate }) => {
  let stopped = false;
  const status = h("p", { class: "muted", role: "status" });
  const type = taskTypeField(config.taskTypes, "new-task-types");
  const payloadInput = makePayloadInput("{}");
  const prioritySelect = makePrioritySelect();
  const whenInput = input("when", { placeholder: "now" });
  const metadataInput = h("textarea", {
    name: "metadata",
    rows: 2,
    cols: 40,
    placeholder: '{"team": "billing"}',
  }) as HTMLTextAreaElement;
  const dependsOnInput = input("depends-on", { placeholder: "none: task ids, separated by spaces or commas" });
  const keyInput = input("idempotency-key", { placeholder: "none", maxlength: "256" });
  const reuseSelect = h(
    "select",
    { name: "idempotency-key-reuse" },
    ...KEY_REUSES.map(([value, label]) => h("option", { value }, label)),
  ) as HTMLSelectElement;
  // At most that many tasks of the key in the pipeline at once (one tenant's, one account's); both or neither.
  const concurrencyKeyInput = input("concurrency-key", {
    placeholder: "none",
    maxlength: String(CONCURRENCY_KEY_MAX_CHARS),
  });
  const concurrencyLimitInput = input("concurrency-limit", {
    type: "number",
    min: "1",
    max: String(CONCURRENCY_LIMIT_MAX),
    step: "1",
    placeholder: "with a key",
  });
  // Its tenant in its type's fair share: each place in the type's window goes to the key whose turn it is, keys served
  // in proportion to their weights. The weight is optional (the gateway takes 1) but means nothing without a key.
  const fairnessKeyInput = input("fairness-key", {
    placeholder: "none",
    maxlength: String(CONCURRENCY_KEY_MAX_CHARS),
  });
  const fairnessWeightInput = input("fairness-weight", {
    type: "number",
    min: "1",
    max: String(FAIRNESS_WEIGHT_MAX),
    step: "1",
    placeholder: "1",
  });
  const limits = taskLimitFields();
  const submitButton = h("button", { type: "submit" }, "Submit task") as HTMLButtonElement;
  const form = h(
    "form",
    { class: "filters", "aria-label": "New task", onsubmit: (event: Event) => void submit(event) },
    type.label,
    field("Priority", prioritySelect),
    field("Payload (JSON object)", payloadInput),
    field(`When (empty: now; a delay like 90s, 5m; or an ISO time)`, whenInput),
    field("Metadata (JSON object of strings, optional)", metadataInput),
    field("Waits for (task ids, optional)", dependsOnInput),
    field("Idempotency key (optional)", keyInput),
    field("Key reuse", reuseSelect),
    field("Concurrency key (optional; letters, digits, _ . : @ / = + -)", concurrencyKeyInput),
    field(
      `Limit (at most this many of the key's tasks in the pipeline at once; 1 to ${CONCURRENCY_LIMIT_MAX})`,
      concurrencyLimitInput,
    ),
    field("Fairness key (optional; letters, digits, _ . : @ / = + -)", fairnessKeyInput),
    field(
      `Weight (the key's share of its type's turns against other keys'; 1 to ${FAIRNESS_WEIGHT_MAX}, empty: 1)`,
      fairnessWeightInput,
    ),
    limits.fieldset,
    submitButton,
  ) as HTMLFormElement;
  /** Each control by the proto field a gateway refusal names first (`type: unknown task type …`). */
  const controlOf: Record<string, HTMLElement> = {
    type: type.input,
    payload: payloadInput,
    priority: prioritySelect,
    run_at: whenInput,
    delay: whenInput,
    metadata: metadataInput,
    depends_on: dependsOnInput,
    idempotency_key: keyInput,
    idempotency_key_reuse: reuseSelect,
    concurrency_key: concurrencyKeyInput,
    concurrency_limit: concurrencyLimitInput,
    fairness_key: fairnessKeyInput,
    fairness_weight: fairnessWeightInput,
    ...limits.controls,
  };
  replace(
    main,
    h("h1", {}, "New task"),
    h(
      "p",
      { class: "muted" },
      "One task, submitted as you (as taskctl submit would): to try a type, or to run something again by hand. ",
      h("a", { href: "/tasks" }, "Back to the tasks"),
    ),
    form,
    status,
  );

  async function submit(event: Event) {
    event.preventDefault();
    const refuse = (refusal: FieldProblem) => refuseField(form, status, "Not submitted", refusal);
    const taskType = type.input.value.trim();
    if (!taskType) return refuse({ problem: "the task type is required.", control: type.input });
    const payload = payloadOf(payloadInput);
    if (isProblem(payload)) return refuse(payload);
    const when = whenOf(whenInput.value);
    if (when === null) {
      return refuse({
        problem: `the time to run must be empty (now), a delay like 90s, 5m (${DURATION_HINT}) or an ISO time such as 2027-01-04T00:00:00Z.`,
        control: whenInput,
      });
    }
    const metadata = metadataOf(metadataInput);
    if (isProblem(metadata)) return refuse(metadata);
    // The gateway checks the ids (they must exist, at most 20, none FAILED or CANCELLED) and names depends_on.
    const dependsOn = [...new Set(dependsOnInput.value.split(/[\s,]+/).filter(Boolean))];
    const taskLimits = limits.read();
    if (isProblem(taskLimits)) return refuse(taskLimits);
    const idempotencyKey = keyInput.value.trim();
    const reuse =
      IdempotencyKeyReuse[reuseSelect.value as keyof typeof IdempotencyKeyReuse] ?? IdempotencyKeyReuse.UNSPECIFIED;
    if (reuse !== IdempotencyKeyReuse.UNSPECIFIED && !idempotencyKey) {
      return refuse({ problem: "a key reuse needs an idempotency key.", control: keyInput });
    }
    if (reuse === IdempotencyKeyReuse.REPLACE_WAITING && when.case === undefined) {
      return refuse({
        problem: "replace waiting replaces a task waiting for its time: give a delay or a time in When.",
        control: whenInput,
      });
    }
    const concurrency = concurrencyOf(concurrencyKeyInput, concurrencyLimitInput);
    if (isProblem(concurrency)) return refuse(concurrency);
    const fairness = fairnessOf(fairnessKeyInput, fairnessWeightInput);
    if (isProblem(fairness)) return refuse(fairness);
    clearInvalid(form);
    submitButton.disabled = true;
    status.textContent = "Submitting…";
    try {
      const response = await tasks.submitTask({
        type: taskType,
        payload,
        metadata,
        dependsOn,
        priority: priorityOf(prioritySelect),
        idempotencyKey,
        idempotencyKeyReuse: reuse,
        schedule: when,
        ...concurrency,
        ...fairness,
        ...taskLimits,
      });
      if (stopped) return;
      leaveNotice(outcomeText(response, idempotencyKey, when));
      navigate(`/tasks/${encodeURIComponent(response.taskId)}`);
    } catch (error) {
      if (stopped) return;
      const connectError = ConnectError.from(error);
      const named = controlOf[/^([a-z_]+)\b/.exec(connectError.rawMessage)?.[1] ?? ""];
      if (named) named.setAttribute("aria-invalid", "true");
      status.textContent = `Submit failed: ${errorText(error)}${HINTS[connectError.code] ?? ""}`;
      announce(status.textContent);
      submitButton.disabled = false;
      named?.focus();
    }
  }

  return () => {
    stopped = true;
  };
};

/** What more a refusal's code tells the operator. */
const HINTS: Partial<Record<Code, string>> = {
  [Code.Unavailable]:
    " Nothing was queued: the gateway sheds load while the backlog is long, or Redis or NATS did not answer. " +
    "Submit again in a moment (with an idempotency key, a second submission cannot make a second task).",
  [Code.PermissionDenied]: " The API key in use may not submit this task: use another (API key, at the top).",
};

/** The concurrency key and limit as SubmitTaskRequest's fields ({} when both are empty), or what is wrong. */
function concurrencyOf(
  keyInput: HTMLInputElement,
  limitInput: HTMLInputElement,
): { concurrencyKey?: string; concurrencyLimit?: number } | FieldProblem {
  const key = keyInput.value.trim();
  const limitText = limitInput.value.trim();
  if (!key && !limitText) return {};
  if (!limitText) return { problem: "a concurrency key needs a limit.", control: limitInput };
  if (!key) return { problem: "a limit needs a concurrency key.", control: keyInput };
  const keyProblem = concurrencyKeyProblem(key);
  if (keyProblem) return { problem: `the concurrency key ${keyProblem}.`, control: keyInput };
  const limit = Number(limitText);
  if (concurrencyLimitProblem(limit)) {
    return { problem: `the limit must be a whole number from 1 to ${CONCURRENCY_LIMIT_MAX}.`, control: limitInput };
  }
  return { concurrencyKey: key, concurrencyLimit: limit };
}

/** The fairness key and weight as SubmitTaskRequest's fields ({} when both are empty; no weight: the gateway's 1), or
 *  what is wrong. */
function fairnessOf(
  keyInput: HTMLInputElement,
  weightInput: HTMLInputElement,
): { fairnessKey?: string; fairnessWeight?: number } | FieldProblem {
  const key = keyInput.value.trim();
  const weightText = weightInput.value.trim();
  if (!key && !weightText) return {};
  if (!key) return { problem: "a weight needs a fairness key.", control: keyInput };
  const keyProblem = fairnessKeyProblem(key);
  if (keyProblem) return { problem: `the fairness key ${keyProblem}.`, control: keyInput };
  if (!weightText) return { fairnessKey: key };
  const weight = Number(weightText);
  if (fairnessWeightProblem(weight)) {
    return { problem: `the weight must be a whole number from 1 to ${FAIRNESS_WEIGHT_MAX}.`, control: weightInput };
  }
  return { fairnessKey: key, fairnessWeight: weight };
}

type When = { case: undefined; value?: undefined } | ReturnType<typeof delay> | ReturnType<typeof runAt>;

const delay = (ms: number) => ({ case: "delay" as const, value: durationFromMs(ms) });
const runAt = (date: Date) => ({ case: "runAt" as const, value: timestampFromDate(date) });

/** When's text as SubmitTaskRequest's `schedule`: now when empty (or 0), a delay ("90s"), a time; null: malformed. */
function whenOf(text: string): When | null {
  const ms = durationField(text);
  if (ms === undefined || ms === 0) return { case: undefined };
  if (ms !== null) return delay(ms);
  const date = timeField(text);
  return date ? runAt(date) : null;
}

function outcomeText(response: { taskId: string; deduplicated: boolean; replaced: boolean }, key: string, when: When) {
  if (response.replaced) {
    return `Replaced the waiting task of idempotency key "${key}": it takes this payload and time (deduplicated).`;
  }
  if (response.deduplicated) {
    return `Deduplicated: idempotency key "${key}" already names this task, so no new task was made.`;
  }
  // When it is due, either way (a delay counted from now: the gateway's acceptance, to the second).
  const due =
    when.case === "delay"
      ? `; it is due at ${formatTime(new Date(Date.now() + durationMs(when.value)))}`
      : when.case === "runAt"
        ? `; it is due at ${formatTime(timestampDate(when.value))}`
        : "";
  return `Submitted task ${response.taskId}${due}.`;
}
