/**
 * The task client over a real HTTP/2 connection to a server that refuses streams (RST_STREAM REFUSED_STREAM, what a
 * gateway's GOAWAY does to a call that crosses it): the caller sees UNAVAILABLE, the code to retry on, for unary and
 * server-streaming calls alike; a gRPC error the server really sent keeps its code.
 */
import { once } from "node:events";
import { constants, createServer, type Http2Server, type ServerHttp2Stream } from "node:http2";
import type { AddressInfo } from "node:net";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterEach, expect, test } from "vitest";
import { createTaskClient } from "../src/client.js";
import { unprocessedCause } from "../src/refused-stream.js";

let server: Http2Server | undefined;
afterEach(async () => {
  server?.close();
  server = undefined;
});

async function serve(onStream: (stream: ServerHttp2Stream) => void): Promise<string> {
  server = createServer();
  server.on("stream", onStream);
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

const refuse = (stream: ServerHttp2Stream) => {
  stream.on("error", () => undefined); // the server's side of the reset: expected here
  stream.close(constants.NGHTTP2_REFUSED_STREAM);
};

async function failureOf(call: Promise<unknown>): Promise<ConnectError> {
  const error = await call.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ConnectError);
  return error as ConnectError;
}

test("a refused unary call is UNAVAILABLE, with the Node stream error as its cause", async () => {
  const client = createTaskClient({ baseUrl: await serve(refuse) });
  const error = await failureOf(client.submitTask({ type: "echo" }));
  expect(error.code).toBe(Code.Unavailable);
  expect(error.message).toMatch(/did not take the call.*REFUSED_STREAM.*safe to retry/);
  expect(unprocessedCause(error.cause)?.message).toMatch(/REFUSED_STREAM/);
});

test("a refused server-streaming call is UNAVAILABLE", async () => {
  const client = createTaskClient({ baseUrl: await serve(refuse) });
  const consume = async () => {
    for await (const _ of client.streamTaskStatus({ taskId: crypto.randomUUID() })) {
      // nothing arrives
    }
  };
  expect((await failureOf(consume())).code).toBe(Code.Unavailable);
});

test("an INTERNAL the server sent stays INTERNAL (only calls the server never took are remapped)", async () => {
  const baseUrl = await serve((stream) => {
    // A trailers-only gRPC response: the server handled the call and failed it.
    stream.respond(
      { ":status": 200, "content-type": "application/grpc", "grpc-status": "13", "grpc-message": "boom" },
      { endStream: true },
    );
  });
  const error = await failureOf(createTaskClient({ baseUrl }).submitTask({ type: "echo" }));
  expect(error.code).toBe(Code.Internal);
  expect(error.rawMessage).toBe("boom");
});
