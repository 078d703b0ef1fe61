export * from "./kustomize.js";
export * from "./nats.js";
export * from "./service-config.js";
export * from "./yaml.js";
