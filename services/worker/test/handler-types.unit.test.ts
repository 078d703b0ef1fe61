/**
 * The types handler modules are given (docs/examples/task-handler.d.ts) against the worker's own: what they promise a
 * handler is what the worker passes it, and they name exactly the settings the worker reads. Checked by `pnpm
 * typecheck` (expectTypeOf is a compile-time assertion); the test itself only has to run.
 */
import { describe, expectTypeOf, test } from "vitest";
import type * as Published from "../../../docs/examples/task-handler.js";
import type { TaskContext, TaskHandler } from "../src/handlers/types.js";

describe("the published handler types", () => {
  test("the worker's context gives everything the published one promises", () => {
    expectTypeOf<TaskContext>().toMatchTypeOf<Published.TaskContext>();
  });

  test("a published handler has exactly the worker's fields", () => {
    expectTypeOf<keyof Published.TaskHandler>().toEqualTypeOf<keyof TaskHandler>();
  });

  test("a worker's payload schema (zod's, any Standard Schema) is a published one", () => {
    expectTypeOf<TaskHandler["payload"]>().toMatchTypeOf<NonNullable<Published.TaskHandler["payload"]>>();
  });
});
