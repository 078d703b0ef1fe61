/**
 * TASK_ROUTES and the worker pools' subjects: parsing with a named problem for each bad entry, the subject each task
 * waits on, and the way a pool's subject is read back (its priority, its pool, the contract subject whose messages it
 * carries, and its place in the TASKS stream).
 */
import { describe, expect, test } from "vitest";
import { validateMessage } from "../src/schemas.js";
import { STREAMS, streamConfig } from "../src/streams.js";
import {
  contractSubjectOf,
  isTaskSubject,
  parseWorkerSubject,
  Subjects,
  TASK_STREAM_SUBJECTS,
  workerSubject,
} from "../src/subjects.js";
import { MAX_POOLS, NO_ROUTES, parseTaskRoutes } from "../src/task-routes.js";
import { parseTaskTypes } from "../src/task-types.js";

describe("TASK_ROUTES", () => {
  test("TYPE=POOL entries route those types; the others stay in the default pool", () => {
    const routes = parseTaskRoutes(" transcode=gpu, render = gpu ,send-email=io,");
    expect(routes.poolOf("transcode")).toBe("gpu");
    expect(routes.poolOf("send-email")).toBe("io");
    expect(routes.poolOf("echo")).toBeUndefined();
    expect(routes.pools).toEqual(["gpu", "io"]);
    expect(routes.subjectFor("render", "low")).toBe("tasks.worker.low.gpu");
    expect(routes.subjectFor("echo", "high")).toBe("tasks.worker.high");
    expect(routes.toString()).toBe("transcode=gpu,render=gpu,send-email=io");
    expect(routes.unknownTypes(parseTaskTypes("transcode"))).toEqual(["render", "send-email"]);
    expect(parseTaskRoutes("").pools).toEqual([]);
    expect(NO_ROUTES.subjectFor("echo", "medium")).toBe("tasks.worker.medium");
  });

  test.each([
    ["transcode", '"transcode" is not TYPE=POOL'],
    ["=gpu", '"=gpu" is not TYPE=POOL'],
    ["a=b=c", '"a=b=c" is not TYPE=POOL'],
    ["transcode=GPU", '"GPU" is not a pool name'],
    ["transcode=gpu.fast", '"gpu.fast" is not a pool name'],
    ["transcode=*", '"*" is not a pool name'],
    [`transcode=${"p".repeat(33)}`, "is not a pool name"],
    ["transcode=default", '"default" names the pool of unrouted types'],
    ["transcode=gpu,transcode=io", '"transcode" is routed twice'],
    [
      Array.from({ length: MAX_POOLS + 1 }, (_, i) => `t${i}=p${i}`).join(","),
      `${MAX_POOLS + 1} pools: at most ${MAX_POOLS}`,
    ],
  ])("%s is refused, naming the problem", (text, problem) => {
    expect(() => parseTaskRoutes(text)).toThrow(problem);
  });
});

describe("the worker pools' subjects", () => {
  test("a pool's subject is read back as its priority and pool; other subjects are not worker subjects", () => {
    expect(workerSubject("high", "gpu")).toBe("tasks.worker.high.gpu");
    expect(parseWorkerSubject("tasks.worker.high.gpu")).toEqual({ priority: "high", pool: "gpu" });
    expect(parseWorkerSubject("tasks.worker.low")).toEqual({ priority: "low", pool: undefined });
    for (const other of ["tasks.worker.urgent", "tasks.worker.high.gpu.x", "tasks.worker.high.*", "tasks.results"]) {
      expect(parseWorkerSubject(other), other).toBeUndefined();
    }
    expect(contractSubjectOf("tasks.worker.medium.gpu")).toBe(Subjects.workerMedium);
    expect(contractSubjectOf(Subjects.results)).toBe(Subjects.results);
    expect(isTaskSubject("tasks.worker.low.io")).toBe(true);
    expect(isTaskSubject(Subjects.schedule)).toBe(true);
    expect(isTaskSubject(Subjects.status)).toBe(false);
  });

  test("the TASKS stream holds every pool's queues beside the contract's subjects", () => {
    expect(TASK_STREAM_SUBJECTS).toContain("tasks.worker.*.*");
    expect(streamConfig(STREAMS.tasks).subjects).toEqual([...TASK_STREAM_SUBJECTS]);
    expect(streamConfig(STREAMS.events).subjects).not.toContain("tasks.worker.*.*");
  });

  test("a pool's subject carries an enriched task, validated as its priority's subject's", () => {
    const problem = (() => {
      try {
        validateMessage("tasks.worker.high.gpu", { taskId: "nope" });
      } catch (error) {
        return (error as Error).message;
      }
    })();
    expect(problem).toMatch(/^invalid tasks\.worker\.high\.gpu message: .*taskId/);
  });
});
