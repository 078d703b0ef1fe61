import { headers } from "nats";
import { describe, expect, test } from "vitest";
import { type EncodedHeaders, encodeHeaders } from "../src/headers.js";

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

describe("encodeHeaders", () => {
  test("writes the block nats.js's own MsgHdrs writes for the same headers", () => {
    const theirs = headers();
    theirs.set("Nats-Msg-Id", "0b5e2a7e-1111-4222-8333-944455556666:status:3");
    theirs.set("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
    theirs.set("tracestate", "vendor=a,other=b");
    const ours = encodeHeaders([
      ["Nats-Msg-Id", "0b5e2a7e-1111-4222-8333-944455556666:status:3"],
      ["traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"],
      ["tracestate", "vendor=a,other=b"],
    ]);
    // encode() is what nats.js's publish calls on a MsgHdrs (its implementation has it; the interface does not say).
    expect(text(ours.encode())).toBe(text((theirs as unknown as EncodedHeaders).encode()));
  });

  test("a value holding CR or LF is refused: it would end the header early and forge the next one", () => {
    expect(() => encodeHeaders([["traceparent", "00-abc\r\nNats-Expected-Stream: X"]])).toThrow(
      /traceparent.*CR and LF/,
    );
    expect(() => encodeHeaders([["Nats-Msg-Id", "a\nb"]])).toThrow(/Nats-Msg-Id/);
  });

  test("a key that is not a header token is refused", () => {
    expect(() => encodeHeaders([["bad key", "v"]])).toThrow(/invalid header key "bad key"/);
    expect(() => encodeHeaders([["colon:", "v"]])).toThrow(/invalid header key/);
    expect(() => encodeHeaders([["", "v"]])).toThrow(/invalid header key/);
  });
});
