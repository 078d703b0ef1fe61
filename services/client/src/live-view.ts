/**
 * Shows a set of tasks while they progress. On a terminal every task keeps one line, redrawn in place with ANSI
 * cursor moves; otherwise (pipes, CI logs) each change is one plain line; with --json each change is one JSON
 * object per line.
 */
import { toJson } from "@bufbuild/protobuf";
import { type TaskStatus, TaskStatusSchema } from "@tm/proto";
import type { Output } from "./io.js";
import { isTerminal, renderTaskLine, type TaskView } from "./render.js";

export type ViewMode = "tty" | "lines" | "json";

/** In-place redraw needs every task line on screen at once; more tasks than rows fall back to plain lines. */
export function viewModeFor(output: Output, json: boolean, taskCount = 1): ViewMode {
  if (json) return "json";
  if (!output.isTTY) return "lines";
  return output.rows !== undefined && taskCount > output.rows - 2 ? "lines" : "tty";
}

export class LiveView {
  readonly #views = new Map<string, TaskView>();
  #drawnLines = 0;

  constructor(
    private readonly output: Output,
    private readonly mode: ViewMode,
    tasks: { taskId: string; label: string; startedAt?: number }[],
  ) {
    const now = Date.now();
    for (const { taskId, label, startedAt } of tasks) {
      this.#views.set(taskId, {
        taskId,
        label,
        state: 0,
        progress: 0,
        attempt: 0,
        error: "",
        message: "",
        startedAt: startedAt ?? now,
      });
    }
    if (mode === "tty") this.#redraw();
  }

  get views(): TaskView[] {
    return [...this.#views.values()];
  }

  update(taskId: string, status: TaskStatus): void {
    const view = this.#views.get(taskId);
    if (!view) return;
    view.state = status.state;
    view.progress = status.progress;
    view.attempt = status.attempt;
    view.error = status.error;
    view.message = status.progressMessage;
    if (isTerminal(status.state) && view.endedAt === undefined) view.endedAt = Date.now();
    if (this.mode === "json") {
      this.output.write(`${JSON.stringify({ taskId, status: toJson(TaskStatusSchema, status) })}\n`);
    } else if (this.mode === "lines") {
      this.output.write(`${renderTaskLine(view)}\n`);
    } else {
      this.#redraw();
    }
  }

  #redraw(): void {
    const width = (this.output.columns ?? 100) - 1;
    const lines = this.views.map((view) => `\x1b[2K${renderTaskLine(view, { colour: true, maxWidth: width })}`);
    const up = this.#drawnLines > 0 ? `\x1b[${this.#drawnLines}F` : "";
    this.output.write(`${up}${lines.join("\n")}\n`);
    this.#drawnLines = lines.length;
  }
}
