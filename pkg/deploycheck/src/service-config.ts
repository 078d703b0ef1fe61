/**
 * What each service reads from its environment, taken from its definition (services/<x>/src/service.ts) and the
 * base shape every service shares, so deployment files can be checked against the code rather than a list.
 */
import { baseConfigShape, loadConfig } from "@tm/kit";
import type * as z from "zod";

export interface ServiceShape {
  name: string;
  opsPort: number | "api";
  config?: z.ZodRawShape;
}

export const BASE_VARIABLES: readonly string[] = Object.keys(baseConfigShape);

/** The variables a service reads (base + its own). */
export function variablesOf(definition: ServiceShape): string[] {
  return [...BASE_VARIABLES, ...Object.keys(definition.config ?? {})];
}

/** The service's own variables that have no default and are not optional: deployments must set them. */
export function requiredVariablesOf(definition: ServiceShape): string[] {
  const shape: Record<string, z.ZodType> = { ...baseConfigShape, ...(definition.config ?? {}) };
  return Object.entries(shape)
    .filter(([, schema]) => !schema.safeParse(undefined).success)
    .map(([name]) => name);
}

/** The config error start-up would report for this environment, or undefined when it would start. */
export function configErrorOf(definition: ServiceShape, env: Record<string, string>): string | undefined {
  try {
    loadConfig(definition.config ?? {}, env);
    return undefined;
  } catch (error) {
    return (error as Error).message;
  }
}
