import { runServices } from "@tm/kit";
import { DEFINITIONS } from "./registry.js";
import { parseServiceList, SelectionError, serviceEnv } from "./selection.js";

try {
  const selection = parseServiceList(process.env.TM_SERVICES);
  runServices(
    "combined",
    selection.map((name) => ({ definition: DEFINITIONS[name], env: serviceEnv(name, selection, process.env) })),
  );
} catch (error) {
  if (!(error instanceof SelectionError)) throw error;
  process.stderr.write(`combined: ${error.message}\n`);
  process.exit(78); // EX_CONFIG, as a service with a bad variable
}
