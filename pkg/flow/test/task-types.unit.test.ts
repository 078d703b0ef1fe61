import { describe, expect, test } from "vitest";
import { BUILT_IN_ONLY, BUILT_IN_TASK_TYPES, MAX_OWN_TASK_TYPES, parseTaskTypes } from "../src/task-types.js";

describe("task types", () => {
  test("without TASK_TYPES the built-in ones alone", () => {
    expect(parseTaskTypes("").names).toEqual(BUILT_IN_TASK_TYPES);
    expect(parseTaskTypes(" , ").own).toEqual([]);
    expect(BUILT_IN_ONLY.has("echo")).toBe(true);
    expect(BUILT_IN_ONLY.has("slugify")).toBe(false);
    expect(String(BUILT_IN_ONLY)).toBe("echo, sleep, checksum, flaky, fail");
  });

  test("TASK_TYPES adds the deployment's own, after the built-in ones, in order", () => {
    const types = parseTaskTypes(" slugify, send-email ,v2.resize_image");
    expect(types.own).toEqual(["slugify", "send-email", "v2.resize_image"]);
    expect(types.names).toEqual([...BUILT_IN_TASK_TYPES, "slugify", "send-email", "v2.resize_image"]);
    expect(types.has("send-email") && types.has("echo")).toBe(true);
    expect(types.has("Send-Email")).toBe(false);
  });

  test.each([
    ["a=b", /"a=b" is not a task type name/],
    ["has space", /"has space" is not a task type name/],
    ["-leading", /"-leading" is not a task type name/],
    ["x".repeat(65), /is not a task type name: 1 to 64/],
    ["rate:limit", /"rate:limit" is not a task type name/],
    ["echo", /"echo" is a built-in task type: list only your own/],
    ["a,b,a", /"a" is listed twice/],
  ])("%j is refused, naming the entry", (text, message) => {
    expect(() => parseTaskTypes(text)).toThrow(message);
  });

  test(`at most ${MAX_OWN_TASK_TYPES} of the deployment's own`, () => {
    const names = (n: number) => Array.from({ length: n }, (_, i) => `t${i}`).join(",");
    expect(parseTaskTypes(names(MAX_OWN_TASK_TYPES)).own).toHaveLength(MAX_OWN_TASK_TYPES);
    expect(() => parseTaskTypes(names(MAX_OWN_TASK_TYPES + 1))).toThrow(/101 types: at most 100/);
  });
});
