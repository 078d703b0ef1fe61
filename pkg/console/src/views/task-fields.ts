/** The fields that describe a task in the console's forms, New task and New schedule: its type (the pipeline's types
 *  offered), priority, payload and limits (attempt timeout, heartbeat timeout, max attempts, retry delay and
 *  multiplier, expiry, time kept once succeeded), and how their text is read: durations ("30s", "15m"), ISO times,
 *  a JSON object. Only the format is checked here; the gateway checks the values and names the field it refuses. */
import type { JsonObject } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { Priority } from "@tm/proto/web";
import { announce, field, h, input } from "../dom.js";

export const DURATION_HINT = "30s, 15m, 2h";
const DURATION_UNIT_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** What a form refuses before sending: the problem, and the control to fix. */
export interface FieldProblem {
  problem: string;
  control: HTMLElement;
}

/** The task type: free text (the gateway names an unknown one), with the types the pipeline runs offered. */
export function taskTypeField(
  taskTypes: readonly string[],
  listId: string,
): { input: HTMLInputElement; label: HTMLElement } {
  const typeInput = input("type", { required: true, placeholder: "echo", list: listId });
  const options = h("datalist", { id: listId }, ...taskTypes.map((type) => h("option", { value: type })));
  return { input: typeInput, label: field("Task type", typeInput, options) };
}

/** Priority, medium first (the default). */
export function makePrioritySelect(): HTMLSelectElement {
  return h(
    "select",
    { name: "priority" },
    ...["MEDIUM", "HIGH", "LOW"].map((p) => h("option", { value: p }, p.toLowerCase())),
  ) as HTMLSelectElement;
}

export function priorityOf(select: HTMLSelectElement): Priority {
  return Priority[select.value as keyof typeof Priority] ?? Priority.MEDIUM;
}

export function makePayloadInput(value = ""): HTMLTextAreaElement {
  return h("textarea", { name: "payload", rows: 3, cols: 40, placeholder: "{}" }, value) as HTMLTextAreaElement;
}

/** The payload textarea's JSON object ({} when empty), or the problem. */
export function payloadOf(textarea: HTMLTextAreaElement): JsonObject | FieldProblem {
  return jsonObjectIn(textarea, 'the payload must be a JSON object, e.g. {"n": 1}.');
}

/** The metadata textarea's object of strings ({} when empty), or the problem. */
export function metadataOf(textarea: HTMLTextAreaElement): Record<string, string> | FieldProblem {
  const problem = 'the metadata must be a JSON object of strings, e.g. {"team": "billing"}.';
  const metadata = jsonObjectIn(textarea, problem);
  if (isProblem(metadata) || Object.values(metadata).every((value) => typeof value === "string")) {
    return metadata as Record<string, string> | FieldProblem;
  }
  return { problem, control: textarea };
}

/** A textarea's JSON object ({} when empty), or `problem` for anything else. */
function jsonObjectIn(textarea: HTMLTextAreaElement, problem: string): JsonObject | FieldProblem {
  const text = textarea.value.trim();
  if (!text) return {};
  try {
    const parsed: unknown = JSON.parse(text);
    if (typeof parsed === "object" && parsed !== null && !Array.isArray(parsed)) return parsed as JsonObject;
  } catch {
    // Refused below, as a non-object is.
  }
  return { problem, control: textarea };
}

export function isProblem(value: unknown): value is FieldProblem {
  return typeof value === "object" && value !== null && "problem" in value && "control" in value;
}

/**
 * The task's own limits, as `taskctl submit` and `taskctl schedule add` take them: a fieldset of optional fields
 * (empty: the pipeline's default), `read()` giving the fields SubmitTaskRequest and ScheduledTask share (timeout,
 * heartbeat_timeout, max_attempts, retry_backoff, expires_after, succeeded_retention), or what is malformed;
 * `controls`: each one's control by its proto field name, for a refusal naming it.
 */
export function taskLimitFields() {
  const timeoutInput = input("timeout", { placeholder: "30s" });
  const heartbeatInput = input("heartbeat-timeout", { placeholder: "5m" });
  const maxAttemptsInput = input("max-attempts", { type: "number", min: "1", step: "1", placeholder: "all" });
  const retryDelayInput = input("retry-delay", { placeholder: "10s" });
  const retryMultiplierInput = input("retry-multiplier", { type: "number", step: "any", placeholder: "1" });
  const expiresInput = input("expires-after", { placeholder: "1h" });
  // How long the task is kept once it succeeded (`--succeeded-retention`); empty: the deployment's.
  const succeededRetentionInput = input("succeeded-retention", { placeholder: "1h" });
  const fieldset = h(
    "fieldset",
    { class: "filters" },
    h("legend", {}, "Task limits (optional; empty: the pipeline's defaults)"),
    field(`Attempt timeout (${DURATION_HINT})`, timeoutInput),
    field(`Heartbeat timeout (${DURATION_HINT}: no progress report that long aborts an attempt)`, heartbeatInput),
    field("Max attempts", maxAttemptsInput),
    field(`Retry delay (${DURATION_HINT})`, retryDelayInput),
    field("Retry multiplier (with a delay)", retryMultiplierInput),
    field(`Expires after (${DURATION_HINT}, 1d)`, expiresInput),
    field(`Kept once succeeded (${DURATION_HINT}, 1d; at least 60s)`, succeededRetentionInput),
  );
  const controls: Record<string, HTMLElement> = {
    timeout: timeoutInput,
    heartbeat_timeout: heartbeatInput,
    max_attempts: maxAttemptsInput,
    retry_backoff: retryDelayInput,
    expires_after: expiresInput,
    succeeded_retention: succeededRetentionInput,
  };

  function read() {
    const malformed = (control: HTMLElement, problem: string): FieldProblem => ({ problem, control });
    const timeoutMs = durationField(timeoutInput.value);
    const heartbeatMs = durationField(heartbeatInput.value);
    const retryDelayMs = durationField(retryDelayInput.value);
    const expiresMs = durationField(expiresInput.value);
    const succeededRetentionMs = durationField(succeededRetentionInput.value);
    const multiplier = retryMultiplierInput.value === "" ? undefined : retryMultiplierInput.valueAsNumber;
    if (timeoutMs === null)
      return malformed(timeoutInput, `the attempt timeout must be a duration like ${DURATION_HINT}.`);
    if (heartbeatMs === null)
      return malformed(heartbeatInput, `the heartbeat timeout must be a duration like ${DURATION_HINT}.`);
    if (retryDelayMs === null)
      return malformed(retryDelayInput, `the retry delay must be a duration like ${DURATION_HINT}.`);
    if (expiresMs === null) return malformed(expiresInput, `the expiry must be a duration like ${DURATION_HINT}, 1d.`);
    if (succeededRetentionMs === null)
      return malformed(
        succeededRetentionInput,
        `the time kept once succeeded must be a duration like ${DURATION_HINT}, 1d.`,
      );
    if (multiplier !== undefined && retryDelayMs === undefined) {
      return malformed(
        retryDelayInput,
        "a retry multiplier needs a retry delay (the wait after the first failed attempt).",
      );
    }
    return {
      ...(timeoutMs === undefined ? {} : { timeout: durationFromMs(timeoutMs) }),
      ...(heartbeatMs === undefined ? {} : { heartbeatTimeout: durationFromMs(heartbeatMs) }),
      ...(maxAttemptsInput.value === "" ? {} : { maxAttempts: maxAttemptsInput.valueAsNumber }),
      ...(retryDelayMs === undefined
        ? {}
        : { retryBackoff: { delay: durationFromMs(retryDelayMs), multiplier: multiplier ?? 0 } }),
      ...(expiresMs === undefined ? {} : { expiresAfter: durationFromMs(expiresMs) }),
      ...(succeededRetentionMs === undefined ? {} : { succeededRetention: durationFromMs(succeededRetentionMs) }),
    };
  }

  return { fieldset, read, controls };
}

/** Shows what a form refused in its status line (`prefix`: "Not created", "Not submitted"), marks the control
 *  invalid and puts the focus there. Every control of `form` marked before is cleared first. */
export function refuseField(form: HTMLFormElement, status: HTMLElement, prefix: string, refusal: FieldProblem): void {
  clearInvalid(form);
  refusal.control.setAttribute("aria-invalid", "true");
  status.textContent = `${prefix}: ${refusal.problem}`;
  announce(status.textContent);
  refusal.control.focus();
}

export function clearInvalid(form: HTMLFormElement): void {
  for (const marked of form.querySelectorAll("[aria-invalid]")) marked.removeAttribute("aria-invalid");
}

/** A time field's text (an ISO time, "2027-01-31T00:00:00Z") as a Date: undefined when empty, null when malformed. */
export function timeField(text: string): Date | undefined | null {
  const trimmed = text.trim();
  if (!trimmed) return undefined;
  const ms = Date.parse(trimmed);
  return /^\d{4}-\d{2}-\d{2}T/.test(trimmed) && !Number.isNaN(ms) ? new Date(ms) : null;
}

/** A duration field's text ("30s", "15m", "2h", "1d", "500ms"; a bare number is seconds) in ms: undefined when
 *  empty, null when malformed. */
export function durationField(text: string): number | undefined | null {
  const trimmed = text.trim();
  if (!trimmed) return undefined;
  const match = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?$/.exec(trimmed);
  return match ? Math.round(Number(match[1]) * (DURATION_UNIT_MS[match[2] ?? "s"] ?? 1_000)) : null;
}
