import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { PermanentError, parseTaskRoutes, parseTaskTypes, RateLimitedError, RetryAfterError } from "@tm/flow";
import { ConfigError, createLogger } from "@tm/kit";
import { afterAll, describe, expect, test } from "vitest";
import { recognisedError } from "../src/handler-errors.js";
import { loadHandlerModules } from "../src/handler-modules.js";
import { withIsolation } from "../src/handler-threads.js";
import { handlerRegistry } from "../src/handlers/index.js";
import type { TaskContext } from "../src/handlers/types.js";
import { validatePayload } from "../src/handlers/types.js";
import { typeLimitSettings } from "../src/type-limits-config.js";

/** The example the docs give (docs/examples/handlers.mjs): what a deployment would write. */
const EXAMPLE = fileURLToPath(new URL("../../../docs/examples/handlers.mjs", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "tm-handlers-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Writes a module into the test's directory and returns its path. */
function moduleFile(name: string, source: string): string {
  const path = join(dir, name);
  writeFileSync(path, source);
  return path;
}

function context(attempt = 1): TaskContext & { progress: number[] } {
  const progress: number[] = [];
  return {
    taskId: "t",
    attempt,
    deferrals: 0,
    signal: new AbortController().signal,
    reportProgress: (percent) => progress.push(percent),
    log: createLogger("worker", "silent"),
    dependencies: async () => [],
    submitTask: async () => {
      throw new Error("no gateway in this test");
    },
    submitTasks: async () => {
      throw new Error("no gateway in this test");
    },
    progress,
  };
}

describe("handlers loaded from WORKER_HANDLER_MODULES", () => {
  test("the documented example loads, validates its payloads and runs", async () => {
    const own = await loadHandlerModules([EXAMPLE], parseTaskTypes("slugify,word-count,word-total,word-count-all"));
    expect(own.map((handler) => handler.type)).toEqual(["slugify", "word-count", "word-total", "word-count-all"]);
    const handlerFor = handlerRegistry(own);
    expect(handlerFor("echo")?.type).toBe("echo"); // the built-in ones stay
    const slugify = handlerFor("slugify")!;
    expect(await validatePayload(slugify.payload, { text: 5 })).toEqual({ problems: "text: must be a string" });
    const valid = await validatePayload(slugify.payload, { text: "Crème brûlée, twice!" });
    expect(valid).toEqual({ value: { text: "Crème brûlée, twice!" } });
    expect(await slugify.run((valid as { value: unknown }).value, context())).toEqual({ slug: "creme-brulee-twice" });
    // No schema: any payload reaches the handler, which checks it itself.
    const wordCount = handlerFor("word-count")!;
    expect(await validatePayload(wordCount.payload, { anything: 1 })).toEqual({ value: { anything: 1 } });
    const ctx = context(2);
    expect(await wordCount.run({ text: "one two  three", busyFirst: true }, ctx)).toEqual({ words: 3, attempt: 2 });
    expect(ctx.progress).toEqual([50]);
    // word-total adds up what the tasks it waited for counted (ctx.dependencies()).
    const wordTotal = handlerFor("word-total")!;
    const counted = [
      { taskId: "a", state: "SUCCEEDED" as const, result: { words: 3 } },
      { taskId: "b", state: "SUCCEEDED" as const, result: { words: 4 } },
    ];
    expect(await wordTotal.run({}, { ...context(), dependencies: async () => counted })).toEqual({
      words: 7,
      parts: 2,
    });
    await expect((async () => wordTotal.run({}, context()))()).rejects.toThrow(
      "word-total needs the word-count tasks it adds up (depends_on)",
    );
    // word-count-all fans out a word-count per text and fans in with a word-total waiting for them, in one
    // ctx.submitTasks call.
    const asked: unknown[] = [];
    const submitTasks: TaskContext["submitTasks"] = async (requests) => {
      asked.push(...requests);
      return requests.map((_, i) => ({ taskId: `child-${i + 1}`, deduplicated: false }));
    };
    const wordCountAll = handlerFor("word-count-all")!;
    expect(await wordCountAll.run({ texts: ["a b", "c"] }, { ...context(), submitTasks })).toEqual({
      parts: ["child-1", "child-2"],
      total: "child-3",
      found: 0,
    });
    expect(asked).toEqual([
      { type: "word-count", payload: { text: "a b" } },
      { type: "word-count", payload: { text: "c" } },
      { type: "word-total", dependsOnBatchItems: [0, 1] },
    ]);
    await expect((async () => wordCountAll.run({ texts: [] }, { ...context(), submitTasks }))()).rejects.toThrow(
      "word-count-all needs texts: 1 to 20 strings",
    );
  });

  test("their errors named PermanentError, RetryAfterError and RateLimitedError are the pipeline's own", async () => {
    const own = await loadHandlerModules([EXAMPLE], parseTaskTypes("slugify,word-count,word-total,word-count-all"));
    const failure = async (type: string, payload: Record<string, unknown>) => {
      const handler = own.find((h) => h.type === type)!;
      const outcome = (async () => handler.run(payload, context()))(); // run may throw at once: the example's do
      return recognisedError(await outcome.catch((error: unknown) => error));
    };
    const permanent = await failure("slugify", { text: "!!!" });
    expect(permanent).toBeInstanceOf(PermanentError);
    expect(permanent).toMatchObject({ message: expect.stringMatching(/has no letters or digits/) });
    const busy = await failure("word-count", { text: "a", busyFirst: true });
    expect(busy).toBeInstanceOf(RetryAfterError);
    expect(busy).toMatchObject({ retryAfterMs: 200, message: "the counter is busy" });

    const named = (name: string, fields: Record<string, unknown> = {}) =>
      recognisedError(Object.assign(new Error("downstream says no"), { name }, fields));
    expect(named("RateLimitedError", { retryAfterMs: 1500 })).toBeInstanceOf(RateLimitedError);
    expect(named("RateLimitedError", { retryAfterMs: 1500 })).toMatchObject({ retryAfterMs: 1500 });
    // The stack is the one thrown, pointing into the module; the message is not repeated as a cause.
    const thrown = Object.assign(new Error("gone"), { name: "PermanentError" });
    expect(recognisedError(thrown)).toMatchObject({ message: "gone", stack: thrown.stack });
    expect(recognisedError(thrown)).not.toHaveProperty("cause");
    // Without a usable wait, or by another name: an ordinary failure, as thrown.
    for (const odd of [named("RetryAfterError"), named("RateLimitedError", { retryAfterMs: -1 }), named("TypeError")]) {
      expect(odd).not.toBeInstanceOf(RetryAfterError);
      expect(odd).not.toBeInstanceOf(PermanentError);
    }
    const plain = new Error("x");
    expect(recognisedError(plain)).toBe(plain);
    expect(recognisedError("a string")).toBe("a string");
  });

  test("a default export, one handler or a list, and a handler without a payload schema", async () => {
    const single = moduleFile("single.mjs", 'export default { type: "one", run: () => 1 };');
    const list = moduleFile("list.mjs", 'export default [{ type: "two", run() { return this.type; } }];');
    const own = await loadHandlerModules([single, list], parseTaskTypes("one,two"));
    expect(await Promise.all(own.map((handler) => handler.run({}, context())))).toEqual([1, "two"]);
  });

  test("a handler's own timeoutMs, maxAttempts and retryBackoff are kept, the backoff's unset fields defaulted", async () => {
    const path = moduleFile(
      "timed.mjs",
      'export const handlers = [{ type: "timed", timeoutMs: 2500, heartbeatTimeoutMs: 500, maxAttempts: 2, retryBackoff: { delayMs: 100 }, run() {} }];',
    );
    const [handler] = await loadHandlerModules([path], parseTaskTypes("timed"));
    expect(handler).toMatchObject({
      timeoutMs: 2500,
      heartbeatTimeoutMs: 500,
      maxAttempts: 2,
      retryBackoff: { delayMs: 100, multiplier: 1, maxDelayMs: 3_600_000, jitter: 0 },
    });
    // FLOW_MAX_DELIVER raised: more attempts may be asked for.
    const more = moduleFile("more.mjs", 'export const handlers = [{ type: "more", maxAttempts: 8, run() {} }];');
    const [many] = await loadHandlerModules([more], parseTaskTypes("more"), { maxDeliver: 10 });
    expect(many?.maxAttempts).toBe(8);
  });

  test('isolation "thread" is kept, "none" and none are the event loop; WORKER_TYPE_ISOLATION replaces either', async () => {
    const path = moduleFile(
      "isolated.mjs",
      'export const handlers = [{ type: "busy", isolation: "thread", run() {} }, { type: "plain", isolation: "none", run() {} }, { type: "bare", run() {} }];',
    );
    const loaded = await loadHandlerModules([path], parseTaskTypes("busy,plain,bare"), { cwd: dir });
    const [busy, plain, bare] = loaded;
    expect(busy?.isolation).toBe("thread");
    for (const handler of [plain, bare]) expect(handler?.isolation).toBeUndefined();
    // Every one knows its module: an operator may move any of them into a thread.
    for (const handler of loaded) expect(handler.module).toEqual({ specifier: path, cwd: dir });
    const isolationOf = (overrides: Record<string, "none" | "thread">) =>
      withIsolation(loaded, new Map(Object.entries(overrides))).map((handler) => handler.isolation ?? "none");
    expect(isolationOf({})).toEqual(["thread", "none", "none"]);
    expect(isolationOf({ busy: "none", bare: "thread" })).toEqual(["none", "none", "thread"]);
  });

  test("a type's own limits, each replaced by a WORKER_TYPE_* entry for the type where there is one", async () => {
    const path = moduleFile(
      "limited.mjs",
      'export const handlers = [{ type: "mail", concurrency: 2, globalConcurrency: 5, rate: "100/m:10", run() {} }];',
    );
    const own = await loadHandlerModules([path], parseTaskTypes("mail"));
    expect(own[0]).toMatchObject({ concurrency: 2, globalConcurrency: 5, rate: { perSecond: 100 / 60, burst: 10 } });
    const none = {
      WORKER_TYPE_CONCURRENCY: new Map(),
      WORKER_TYPE_GLOBAL_CONCURRENCY: new Map(),
      WORKER_TYPE_RATES: new Map(),
    };
    expect(typeLimitSettings(own, none)).toEqual({
      concurrency: new Map([["mail", 2]]),
      globalConcurrency: new Map([["mail", 5]]),
      rates: new Map([["mail", { perSecond: 100 / 60, burst: 10 }]]),
    });
    const operator = {
      ...none,
      WORKER_TYPE_CONCURRENCY: new Map([
        ["mail", 1],
        ["echo", 3],
      ]),
      WORKER_TYPE_RATES: new Map([["mail", { perSecond: 1, burst: 1 }]]),
    };
    expect(typeLimitSettings(own, operator)).toEqual({
      concurrency: new Map([
        ["mail", 1],
        ["echo", 3],
      ]),
      globalConcurrency: new Map([["mail", 5]]),
      rates: new Map([["mail", { perSecond: 1, burst: 1 }]]),
    });
  });

  test("a path is taken from the working directory", async () => {
    moduleFile("relative.mjs", 'export const handlers = [{ type: "rel", run: () => "ok" }];');
    const [handler] = await loadHandlerModules(["./relative.mjs"], parseTaskTypes("rel"), { cwd: dir });
    expect(handler?.type).toBe("rel");
  });

  test.each([
    ["missing.mjs", null, "one", /WORKER_HANDLER_MODULES: .*missing\.mjs: cannot be loaded: Cannot find module/],
    ["syntax.mjs", "export const handlers = [", "one", /syntax\.mjs: cannot be loaded: /],
    ["throws.mjs", 'throw new Error("no API key")', "one", /throws\.mjs: cannot be loaded: no API key/],
    ["none.mjs", "export const other = 1;", "one", /none\.mjs: exports no handlers: export `handlers`/],
    ["empty.mjs", "export const handlers = [];", "one", /empty\.mjs: exports an empty list of handlers/],
    ["notobj.mjs", "export const handlers = [42];", "one", /notobj\.mjs: handler 1: is not an object/],
    ["notype.mjs", "export const handlers = [{ run() {} }];", "one", /handler 1: has no `type`/],
    ["norun.mjs", 'export const handlers = [{ type: "one" }];', "one", /handler 1: "one" has no `run` function/],
    [
      "badschema.mjs",
      'export const handlers = [{ type: "one", payload: { parse() {} }, run() {} }];',
      "one",
      /handler 1: "one": `payload` is not a Standard Schema/,
    ],
    [
      "timeout.mjs",
      'export const handlers = [{ type: "one", timeoutMs: "10s", run() {} }];',
      "one",
      /handler 1: "one": `timeoutMs` must be a whole number of milliseconds from 1 to 86400000 \(24 h\)/,
    ],
    [
      "heartbeat.mjs",
      'export const handlers = [{ type: "one", heartbeatTimeoutMs: 0, run() {} }];',
      "one",
      /handler 1: "one": `heartbeatTimeoutMs` must be a whole number of milliseconds from 1 to 86400000 \(24 h\)/,
    ],
    [
      "timeout0.mjs",
      'export const handlers = [{ type: "one", timeoutMs: 0, run() {} }];',
      "one",
      /handler 1: "one": `timeoutMs` must be a whole number/,
    ],
    [
      "attempts.mjs",
      'export const handlers = [{ type: "one", maxAttempts: 6, run() {} }];',
      "one",
      /handler 1: "one": `maxAttempts` must be a whole number from 1 to 5 \(FLOW_MAX_DELIVER: a type may ask for fewer/,
    ],
    [
      "backoff.mjs",
      'export const handlers = [{ type: "one", retryBackoff: { delayMs: 100, multiplier: 0.5 }, run() {} }];',
      "one",
      /handler 1: "one": `retryBackoff` must be \{ delayMs, multiplier\?, maxDelayMs\?, jitter\? \} \(multiplier: /,
    ],
    [
      "backoff-text.mjs",
      'export const handlers = [{ type: "one", retryBackoff: "1s", run() {} }];',
      "one",
      /handler 1: "one": `retryBackoff` must be \{ delayMs/,
    ],
    [
      "concurrency.mjs",
      'export const handlers = [{ type: "one", globalConcurrency: 0, run() {} }];',
      "one",
      /handler 1: "one": `globalConcurrency` must be a whole number from 1 to 10000/,
    ],
    [
      "rate.mjs",
      'export const handlers = [{ type: "one", rate: "fast", run() {} }];',
      "one",
      /handler 1: "one": `rate` must be N\/UNIT\[:BURST\] with UNIT s, m or h/,
    ],
    [
      "rate-high.mjs",
      'export const handlers = [{ type: "one", rate: "1000000/s", run() {} }];',
      "one",
      /handler 1: "one": `rate` "1000000\/s": the rate must be above 0 and at most 100000\/s/,
    ],
    [
      "isolation.mjs",
      'export const handlers = [{ type: "one", isolation: "process", run() {} }];',
      "one",
      /handler 1: "one": `isolation` must be "none" or "thread" \(got "process"\)/,
    ],
    [
      "builtin.mjs",
      'export const handlers = [{ type: "echo", run() {} }];',
      "one",
      /builtin\.mjs: "echo" is a built-in task type: give yours another name/,
    ],
    [
      "unlisted.mjs",
      'export const handlers = [{ type: "resize", run() {} }];',
      "one",
      /unlisted\.mjs: its task type "resize" is not in TASK_TYPES \(one\): add it there, on every service/,
    ],
    [
      "twice.mjs",
      'export const handlers = [{ type: "one", run() {} }, { type: "one", run() {} }];',
      "one",
      /twice\.mjs: "one" has a handler in .*twice\.mjs already/,
    ],
    [
      "partial.mjs",
      'export const handlers = [{ type: "one", run() {} }];',
      "one,two",
      /^TASK_TYPES: no module in WORKER_HANDLER_MODULES \(.*partial\.mjs\) has a handler for "two": the gateway would accept/,
    ],
  ])("%s is refused at start, naming the module and the problem", async (name, source, types, message) => {
    const path = source === null ? join(dir, name) : moduleFile(name, source);
    const loading = loadHandlerModules([path], parseTaskTypes(types));
    await expect(loading).rejects.toBeInstanceOf(ConfigError);
    await expect(loading).rejects.toThrow(message);
  });

  test("a module that never finishes loading is refused after the deadline, naming it", async () => {
    const hanging = moduleFile("hanging.mjs", "await new Promise(() => {});\nexport const handlers = [];");
    await expect(loadHandlerModules([hanging], parseTaskTypes("one"), { loadTimeoutMs: 200 })).rejects.toThrow(
      /hanging\.mjs: cannot be loaded: it did not finish loading within 200 ms \(a top-level await\?\)/,
    );
  });

  test("with worker pools, a worker must run the own types routed to its pool, and only those", async () => {
    const one = moduleFile("pool-one.mjs", 'export const handlers = [{ type: "one", run() {} }];');
    const routes = parseTaskRoutes("two=gpu,three=gpu");
    const types = parseTaskTypes("one,two,three");
    // The default pool's worker needs "one" (unrouted) only; the pool's worker, "two" and "three".
    expect((await loadHandlerModules([one], types, { routes })).map((handler) => handler.type)).toEqual(["one"]);
    await expect(loadHandlerModules([one], types, { routes, pool: "gpu" })).rejects.toThrow(
      /^WORKER_POOL: no module in WORKER_HANDLER_MODULES \(.*pool-one\.mjs\) has a handler for "two", "three", which TASK_ROUTES sends to pool "gpu"$/,
    );
    const gpu = moduleFile(
      "pool-gpu.mjs",
      'export const handlers = [{ type: "two", run() {} }, { type: "three", run() {} }];',
    );
    expect(await loadHandlerModules([gpu], types, { routes, pool: "gpu" })).toHaveLength(2);
    await expect(loadHandlerModules([gpu], types, { routes })).rejects.toThrow(
      "TASK_TYPES: no module in WORKER_HANDLER_MODULES",
    );
  });

  test("TASK_TYPES without any module is refused too", async () => {
    await expect(loadHandlerModules([], parseTaskTypes("slugify"))).rejects.toThrow(
      'TASK_TYPES: no module in WORKER_HANDLER_MODULES (empty) has a handler for "slugify"',
    );
    expect(await loadHandlerModules([], parseTaskTypes(""))).toEqual([]);
  });
});
