/** untilAborted: an attempt ends at its abort even when the handler ignores its signal. */
import { describe, expect, test, vi } from "vitest";
import { untilAborted } from "../src/abortable.js";

function hooks() {
  return { graceMs: 50, onIgnored: vi.fn(), onFinishedLate: vi.fn() };
}
const subject = { taskId: "t" };

describe("untilAborted", () => {
  test("a handler that finishes first gives its value or its error; no hook is called", async () => {
    const h = hooks();
    const controller = new AbortController();
    await expect(untilAborted(42, controller.signal, h, subject)).resolves.toBe(42);
    await expect(untilAborted(Promise.reject(new Error("no")), controller.signal, h, subject)).rejects.toThrow("no");
    controller.abort(new Error("later")); // after the handlers settled: nothing is reported
    await new Promise((resolve) => setTimeout(resolve, 80));
    expect(h.onIgnored).not.toHaveBeenCalled();
  });

  test("a handler that ignores its signal: the attempt ends at the abort with its reason; the handler is reported", async () => {
    vi.useFakeTimers();
    try {
      const h = hooks();
      const controller = new AbortController();
      let finish: (value: string) => void = () => {};
      const attempt = untilAborted(new Promise<string>((resolve) => (finish = resolve)), controller.signal, h, subject);
      controller.abort(new Error("timed out after 10 ms"));
      await expect(attempt).rejects.toThrow("timed out after 10 ms");
      expect(h.onIgnored).not.toHaveBeenCalled();
      await vi.advanceTimersByTimeAsync(50);
      expect(h.onIgnored).toHaveBeenCalledWith(subject, new Error("timed out after 10 ms"));
      finish("too late");
      await vi.advanceTimersByTimeAsync(0);
      expect(h.onFinishedLate).toHaveBeenCalledWith(subject);
    } finally {
      vi.useRealTimers();
    }
  });

  test("a handler that stops within the grace after the abort is not reported", async () => {
    vi.useFakeTimers();
    try {
      const h = hooks();
      const controller = new AbortController();
      const attempt = untilAborted(
        new Promise<void>((_, reject) =>
          controller.signal.addEventListener("abort", () => setTimeout(() => reject(new Error("stopped")), 10)),
        ),
        controller.signal,
        h,
        subject,
      );
      controller.abort(new Error("cancelled"));
      await expect(attempt).rejects.toThrow("cancelled");
      await vi.advanceTimersByTimeAsync(100);
      expect(h.onIgnored).not.toHaveBeenCalled();
      expect(h.onFinishedLate).not.toHaveBeenCalled();
    } finally {
      vi.useRealTimers();
    }
  });
});
