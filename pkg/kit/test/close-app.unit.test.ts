/**
 * closeApp: a Fastify server's close does not wait for ever on a request that is never answered or never finished
 * (plain app.close() does: the mutation check), and a request in flight that finishes within the grace still gets its
 * whole answer.
 */
import { connect, type Socket } from "node:net";
import Fastify, { type FastifyInstance } from "fastify";
import { afterEach, expect, test } from "vitest";
import { closeApp } from "../src/ops-server.js";

const sockets: Socket[] = [];

afterEach(() => {
  for (const socket of sockets.splice(0)) socket.destroy();
});

async function serve(routes: (app: FastifyInstance) => void): Promise<{ app: FastifyInstance; port: number }> {
  const app = Fastify() as unknown as FastifyInstance;
  routes(app);
  await app.listen({ port: 0, host: "127.0.0.1" });
  const address = app.server.address();
  return { app, port: typeof address === "object" && address ? address.port : 0 };
}

/** A raw HTTP/1.1 keep-alive request whose answer is not read (the socket is paused) unless `read`. */
function request(port: number, path: string, read = false): { socket: Socket; received: Promise<string> } {
  const socket = connect(port, "127.0.0.1");
  sockets.push(socket);
  socket.write(`GET ${path} HTTP/1.1\r\nHost: test\r\nConnection: keep-alive\r\n\r\n`);
  let text = "";
  const received = new Promise<string>((resolve) => {
    socket.on("close", () => resolve(text));
    socket.on("error", () => resolve(text));
  });
  if (read) socket.on("data", (chunk) => (text += chunk.toString()));
  else socket.pause();
  return { socket, received };
}

/** Resolves `what`, or fails after `ms`: a close that hangs fails the test instead of timing it out silently. */
function within<T>(what: Promise<T>, ms: number, name: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${name} did not finish within ${ms} ms`)), ms);
  });
  return Promise.race([what, late]).finally(() => clearTimeout(timer));
}

test("a request whose answer never comes cannot hold the close past its grace", async () => {
  let answering!: () => void;
  const started = new Promise<void>((resolve) => (answering = resolve));
  const { app, port } = await serve((app) =>
    app.get("/hangs", async () => {
      answering();
      return new Promise(() => {}); // a handler that never answers
    }),
  );
  const hung = request(port, "/hangs", true);
  await within(started, 5_000, "the request");
  const closing = Date.now();
  await within(closeApp(app, 200), 5_000, "closeApp");
  expect(Date.now() - closing).toBeGreaterThanOrEqual(150); // it did wait out the grace for the request in flight
  await within(hung.received, 5_000, "the connection's end"); // and its connection was closed
});

test("half a request (a client that never finishes sending it) cannot hold the close past its grace", async () => {
  const { app, port } = await serve((app) => app.get("/", async () => "ok"));
  const socket = connect(port, "127.0.0.1");
  sockets.push(socket);
  await within(new Promise((resolve) => socket.once("connect", resolve)), 5_000, "the connection");
  socket.write("GET / HTTP/1.1\r\nHost: te");
  await within(closeApp(app, 200), 5_000, "closeApp");
});

test("a request in flight that finishes within the grace gets its whole answer; idle connections do not hold it", async () => {
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  let answering!: () => void;
  const started = new Promise<void>((resolve) => (answering = resolve));
  const { app, port } = await serve((app) => {
    app.get("/slow", async () => {
      answering();
      await released;
      return { done: true };
    });
    app.get("/quick", async () => ({ quick: true }));
  });
  // An idle keep-alive connection: answered, then left open by its client.
  const idle = request(port, "/quick", true);
  await within(new Promise<void>((resolve) => idle.socket.on("data", () => resolve())), 5_000, "the quick answer");
  const slow = request(port, "/slow", true);
  await within(started, 5_000, "the slow request");
  const closed = closeApp(app, 5_000);
  release();
  await within(closed, 4_000, "closeApp");
  expect(await within(slow.received, 4_000, "the slow answer")).toContain('{"done":true}');
});
