/** The refresh loop of the pages that follow one thing live (a concurrency key, a fairness queue). */
import { Code, ConnectError } from "@connectrpc/connect";
import { errorText } from "../api.js";
import { formatTime } from "../format.js";

/** How often such a page asks again. */
export const REFRESH_MS = 2000;
/** Refusals that asking again does not cure (a malformed key, an unknown type, an owner required, an operator's key
 *  needed): said, and the page stops asking (an UNAUTHENTICATED answer would otherwise bring the key prompt back
 *  every 2 s). */
export const LASTING_ERRORS = new Set([Code.InvalidArgument, Code.PermissionDenied, Code.Unauthenticated]);

/**
 * Asks `load` now and every REFRESH_MS, `draw`s each answer and says when in `status`; a failure is said there as
 * "Could not load <what>: …", and one that asking again does not cure ends the asking. Answers the view's stop.
 */
export function refreshEvery<T>(
  status: HTMLElement,
  what: string,
  load: () => Promise<T>,
  draw: (answer: T) => void,
): () => void {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let stopped = false;
  async function refresh() {
    try {
      const answer = await load();
      if (stopped) return;
      draw(answer);
      status.className = "muted";
      status.textContent = `Updated ${formatTime(new Date())}; refreshes every ${REFRESH_MS / 1000} s.`;
    } catch (error) {
      if (stopped) return;
      const lasting = LASTING_ERRORS.has(ConnectError.from(error).code);
      status.className = "error";
      status.textContent = `Could not load ${what}: ${errorText(error)}${lasting ? "" : "; trying again"}`;
      if (lasting) return;
    }
    timer = setTimeout(refresh, REFRESH_MS);
  }
  void refresh();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
