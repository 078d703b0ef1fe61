// The directory of the built console (index.html and assets/), for the gateway to serve. `pnpm build` fills it.
import { fileURLToPath } from "node:url";

export function consoleAssetsDir() {
  return fileURLToPath(new URL("./dist/", import.meta.url));
}
