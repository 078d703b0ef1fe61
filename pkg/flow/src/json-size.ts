/**
 * The size of a value's JSON, for the schemas' byte limits, without writing the JSON when it is plainly small.
 *
 * Every message body is validated on publish and on consume, and each free-form part (payload, output, enrichment,
 * audit detail) has a byte limit: measuring it by JSON.stringify writes a string per part per validation, several per
 * delivered message, almost always for a few hundred bytes against a limit of 16–256 KiB. An upper bound computed by
 * walking the value (no allocation) settles those; only a value whose bound passes the limit is written out and
 * measured exactly, so the limit means exactly what it meant.
 */

/** Walks no deeper than this: a deeper value (or a cycle) is measured exactly, as before. */
const MAX_DEPTH = 32;
/** The longest JSON of a number: -1.7976931348623157e+308. */
const MAX_NUMBER_CHARS = 24;
/** Bytes a UTF-16 code unit can take in JSON's UTF-8: an escape such as \u001f is six. */
const MAX_BYTES_PER_CODE_UNIT = 6;

/** The exact byte length of `value`'s JSON (0 for undefined). */
export function jsonByteLength(value: unknown): number {
  return value === undefined ? 0 : Buffer.byteLength(JSON.stringify(value) ?? "");
}

/** `jsonByteLength(value) <= maxBytes`, writing the JSON only when a cheap upper bound does not settle it. */
export function jsonWithinBytes(value: unknown, maxBytes: number): boolean {
  const bound = upperBound(value, maxBytes, 0);
  if (bound !== undefined && bound <= maxBytes) return true;
  return jsonByteLength(value) <= maxBytes;
}

/**
 * What is wrong with `value` as a part of at most `maxBytes` bytes of JSON, or undefined when nothing is. A value
 * JSON cannot write (a BigInt, a cycle: a handler's result may be anything) is named as such instead of throwing
 * JSON.stringify's TypeError, which would make it an ordinary failure, retried as if it could go better next time.
 */
export function jsonSizeProblem(value: unknown, maxBytes: number): string | undefined {
  const bound = upperBound(value, maxBytes, 0);
  if (bound !== undefined && bound <= maxBytes) return undefined;
  let bytes: number;
  try {
    bytes = jsonByteLength(value);
  } catch (error) {
    return `must be JSON (${(error as Error).message})`;
  }
  return bytes <= maxBytes ? undefined : `must be at most ${maxBytes} bytes of JSON (got ${bytes})`;
}

/**
 * An upper bound of the JSON's byte length, or undefined when it cannot be bounded cheaply (over `budget`, too deep,
 * or anything but plain objects, arrays, strings, finite numbers, booleans and null: toJSON, BigInt, Map...).
 */
function upperBound(value: unknown, budget: number, depth: number): number | undefined {
  switch (typeof value) {
    case "string":
      return 2 + value.length * MAX_BYTES_PER_CODE_UNIT;
    case "number":
      return MAX_NUMBER_CHARS;
    case "boolean":
      return 5;
    case "undefined":
      return 4; // "null" in an array; an object's undefined member is left out, which the bound may overcount
    case "object":
      break;
    default:
      return undefined;
  }
  if (value === null) return 4;
  if (depth >= MAX_DEPTH) return undefined;
  let total = 2;
  if (Array.isArray(value)) {
    for (const element of value) {
      const size = upperBound(element, budget - total, depth + 1);
      if (size === undefined) return undefined;
      total += size + 1;
      if (total > budget) return undefined;
    }
    return total;
  }
  const prototype = Object.getPrototypeOf(value);
  if (prototype !== Object.prototype && prototype !== null) return undefined;
  for (const key in value) {
    if (!Object.hasOwn(value, key)) continue;
    const size = upperBound((value as Record<string, unknown>)[key], budget - total, depth + 1);
    if (size === undefined) return undefined;
    total += 2 + key.length * MAX_BYTES_PER_CODE_UNIT + 1 + size + 1;
    if (total > budget) return undefined;
  }
  return total;
}
