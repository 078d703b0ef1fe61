/**
 * The clients over TLS (TaskClientOptions.tls) against a grpc-js server with a throwaway CA that asks for a client
 * certificate, as a proxy terminating TLS in front of Envoy may: trusted and presented, the call is answered; without
 * the CA, or without a certificate, it fails at once (not retried as an outage), naming the TLS problem.
 */
import { readFileSync } from "node:fs";
import type * as grpc from "@grpc/grpc-js";
import { createTlsFiles, startGrpcServer, type TlsFiles } from "@tm/testkit";
import { afterAll, beforeAll, expect, test } from "vitest";
import { createTaskClient } from "../src/client.js";
import { TaskService } from "../src/gen/taskmanager/v1/taskmanager_pb.js";
import { addService } from "../src/grpc-adapter.js";
import { TaskManagerClient } from "../src/task-manager-client.js";

let files: TlsFiles;
let server: grpc.Server;
let baseUrl: string;
let pem: { ca: Buffer; cert: Buffer; key: Buffer };

beforeAll(async () => {
  files = createTlsFiles();
  pem = { ca: readFileSync(files.caFile), cert: readFileSync(files.certFile), key: readFileSync(files.keyFile) };
  const handlers: Record<string, (request: never) => Promise<unknown>> = Object.fromEntries(
    TaskService.methods.map((method) => [method.localName, async () => ({})]),
  );
  handlers.getTask = async ({ taskId }: { taskId: string }) => ({ task: { taskId, type: "echo" } });
  ({ server, url: baseUrl } = await startGrpcServer((s) => addService(s, TaskService, handlers as never), {
    tls: pem,
    requireClientCert: true,
  }));
});
afterAll(() => {
  server?.forceShutdown();
  files?.dispose();
});

test("trusting the private CA and presenting a certificate, the call is answered", async () => {
  const tm = new TaskManagerClient({ baseUrl, tls: pem, retries: 0 });
  expect((await tm.getTask("t-1")).taskId).toBe("t-1");
  const client = createTaskClient({ baseUrl, tls: { ca: pem.ca.toString(), cert: pem.cert, key: pem.key } });
  expect((await client.getTask({ taskId: "t-2" })).task?.type).toBe("echo");
});

test("without the CA, or without a client certificate, the call fails at once naming the TLS problem", async () => {
  const untrusted = new TaskManagerClient({ baseUrl, tls: { cert: pem.cert, key: pem.key } });
  const startedAt = performance.now();
  await expect(untrusted.getTask("t-1")).rejects.toThrow(/certificate/i);
  // Not taken for an outage: the default four retries would have waited 3.75 s.
  expect(performance.now() - startedAt).toBeLessThan(3_000);

  const anonymous = new TaskManagerClient({ baseUrl, tls: { ca: pem.ca }, retries: 0 });
  await expect(anonymous.getTask("t-1")).rejects.toThrow();
});

test("tls options that would not apply are refused, naming why", () => {
  expect(() => createTaskClient({ baseUrl: "http://127.0.0.1:1", tls: { ca: pem.ca } })).toThrow(
    'tls options need an https:// baseUrl (got "http://127.0.0.1:1")',
  );
  expect(() => createTaskClient({ baseUrl, tls: { cert: pem.cert } })).toThrow(
    "tls: give a client certificate and its key together (cert and key), or neither",
  );
});
