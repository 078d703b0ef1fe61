/**
 * The benchmark's gRPC client for the pipeline: @grpc/grpc-js, with the codecs of the service definition the gateway
 * itself serves (@tm/proto's grpcServiceDefinition, derived from the protobuf-es descriptors).
 *
 * Not @tm/proto's connect-node client (what the CLI and the tests use): the load generator runs on the same two cores
 * as the pipeline, and per task (SubmitTask, then StreamTaskStatus read to its end) connect-node cost it about
 * 0.6 ms more CPU than grpc-js, measured side by side against one pipeline (1.4–2.2 against 0.8–1.2 ms per task):
 * CPU the pipeline would otherwise have. docs/PERFORMANCE.md has the figures.
 */
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { credentials, Client as GrpcClient, type MethodDefinition } from "@grpc/grpc-js";
import {
  grpcServiceDefinition,
  Health,
  HealthCheckRequestSchema,
  StreamTaskStatusRequestSchema,
  type StreamTaskStatusResponse,
  SubmitTaskAndStreamStatusRequestSchema,
  type SubmitTaskAndStreamStatusResponse,
  SubmitTaskRequestSchema,
  type SubmitTaskResponse,
  TaskService,
  type TaskState,
} from "@tm/proto";

const tasks = grpcServiceDefinition(TaskService);
const health = grpcServiceDefinition(Health);

export interface DriverClient {
  /** SubmitTask; resolves with the new task's id. */
  submit(request: MessageInitShape<typeof SubmitTaskRequestSchema>): Promise<string>;
  /** StreamTaskStatus read to its end (the gateway ends it after a terminal state); resolves with the last state. */
  lastState(taskId: string): Promise<TaskState | undefined>;
  /** SubmitTaskAndStreamStatus read to its end: the task's id and its last state, in one call. */
  submitAndFollow(
    request: MessageInitShape<typeof SubmitTaskAndStreamStatusRequestSchema>,
  ): Promise<{ taskId: string; last: TaskState | undefined }>;
  /** grpc.health.v1.Health/Check, for the round-trip probe. */
  check(): Promise<void>;
  close(): void;
}

/** A client of one gateway (`host:port`), over one HTTP/2 connection. */
export function createDriverClient(address: string): DriverClient {
  const client = new GrpcClient(address, credentials.createInsecure());
  const unary = <O>(method: MethodDefinition<unknown, unknown>, request: unknown) =>
    new Promise<O>((resolve, reject) => {
      client.makeUnaryRequest<unknown, unknown>(
        method.path,
        method.requestSerialize,
        method.responseDeserialize,
        request,
        (error, response) => (error ? reject(error) : resolve(response as O)),
      );
    });
  const method = (definition: typeof tasks, name: string) => {
    const found = definition[name];
    if (!found) throw new Error(`the service definition has no method ${name}`);
    return found;
  };
  const submitTask = method(tasks, "submitTask");
  const streamTaskStatus = method(tasks, "streamTaskStatus");
  const submitTaskAndStreamStatus = method(tasks, "submitTaskAndStreamStatus");
  /** A server stream read to its end: breaking out would cancel the call (an RST_STREAM) for every task. */
  async function* readAll<O>(definition: MethodDefinition<unknown, unknown>, request: unknown): AsyncGenerator<O> {
    const call = client.makeServerStreamRequest<unknown, O>(
      definition.path,
      definition.requestSerialize,
      definition.responseDeserialize as (bytes: Buffer) => O,
      request,
    );
    for await (const message of call) yield message as O;
  }
  const healthCheck = method(health, "check");

  return {
    async submit(request) {
      const response = await unary<SubmitTaskResponse>(submitTask, create(SubmitTaskRequestSchema, request));
      return response.taskId;
    },
    async lastState(taskId) {
      const request = create(StreamTaskStatusRequestSchema, { taskId });
      let last: TaskState | undefined;
      for await (const message of readAll<StreamTaskStatusResponse>(streamTaskStatus, request)) {
        last = message.status?.state ?? last;
      }
      return last;
    },
    async submitAndFollow(fields) {
      const request = create(SubmitTaskAndStreamStatusRequestSchema, fields);
      let taskId = "";
      let last: TaskState | undefined;
      for await (const message of readAll<SubmitTaskAndStreamStatusResponse>(submitTaskAndStreamStatus, request)) {
        taskId = message.taskId;
        last = message.status?.state ?? last;
      }
      return { taskId, last };
    },
    async check() {
      await unary(healthCheck, create(HealthCheckRequestSchema, { service: "" }));
    },
    close: () => client.close(),
  };
}
