import { describe, expect, test } from "vitest";
import { redisStatement } from "../src/redis-statement.js";

const EVENT = JSON.stringify({ taskId: "t-1", state: "SUCCEEDED", detail: "secret payload" });

describe("the db.statement of a Redis span", () => {
  test("a script call keeps the script's SHA and its keys, and counts the arguments instead of recording them", () => {
    const statement = redisStatement("evalsha", ["4f1c0d", "2", "task_status:t-1", "task_history:t-1", EVENT, "7"]);
    expect(statement).toBe("evalsha 4f1c0d 2 task_status:t-1 task_history:t-1 [2 other arguments]");
    expect(statement).not.toContain("secret");
  });

  test("EVAL names the script <script> rather than copying its Lua source", () => {
    expect(redisStatement("eval", ["return redis.call('GET', KEYS[1])", 1, "task_result:t-1", EVENT])).toBe(
      "eval <script> 1 task_result:t-1 [1 other arguments]",
    );
    expect(redisStatement("EVALSHA_RO", ["abc", "0"])).toBe("EVALSHA_RO abc 0");
    expect(redisStatement("fcall", ["store", "1", "k", EVENT])).toBe("fcall store 1 k [1 other arguments]");
  });

  test("a script call whose key count is not a count records no argument at all", () => {
    expect(redisStatement("evalsha", ["abc", "many", EVENT])).toBe("evalsha [3 arguments]");
    expect(redisStatement("evalsha", [])).toBe("evalsha [0 arguments]");
  });

  test("other commands keep the instrumentation's default: keys, never values", () => {
    expect(redisStatement("set", ["task_result:t-1", EVENT, "NX"])).toBe("set task_result:t-1 [2 other arguments]");
    expect(redisStatement("publish", ["task_status:t-1", EVENT])).toBe("publish task_status:t-1 [1 other arguments]");
    expect(redisStatement("exists", ["cancel:t-1"])).toBe("exists cancel:t-1");
  });
});
