/**
 * nats.js retries a first connection silently: while it does, the service warns every interval that NATS is not
 * reached yet (and names what to check), and stops once the connection is made.
 */
import { expect, test, vi } from "vitest";
import { createLogger } from "../src/logger.js";
import { warnWhilePending } from "../src/nats.js";

test("warns while the first connection is pending, with the URL, and stops once it is made", async () => {
  vi.useFakeTimers();
  try {
    const lines: string[] = [];
    const log = createLogger("first-connect", "info", { write: (line: string) => void lines.push(line) });
    let connected!: (value: string) => void;
    const pending = warnWhilePending(
      new Promise<string>((resolve) => (connected = resolve)),
      log,
      { url: "tls://nats:4222", tls: true },
      20,
    );
    vi.advanceTimersByTime(45);
    expect(lines).toHaveLength(2);
    expect(JSON.parse(lines[0]!)).toMatchObject({
      level: "warn",
      url: "tls://nats:4222",
      tls: true,
      msg: expect.stringContaining("not connected to NATS yet"),
    });
    connected("nc");
    expect(await pending).toBe("nc");
    vi.advanceTimersByTime(100);
    expect(lines).toHaveLength(2);
  } finally {
    vi.useRealTimers();
  }
});
