/** The API key prompt: a modal dialog with a labelled password field; the key is kept in sessionStorage. */
import { storeApiKey } from "./api.js";
import { h } from "./dom.js";

let dialog: HTMLDialogElement | undefined;

export function askForApiKey(reason: string, onSaved: () => void): void {
  dialog?.remove();
  const input = h("input", {
    id: "api-key",
    name: "api-key",
    type: "password",
    autocomplete: "off",
    required: true,
  }) as HTMLInputElement;
  const form = h(
    "form",
    { method: "dialog" },
    h("h2", {}, "API key required"),
    h("p", { role: "alert" }, reason),
    h("label", { for: "api-key" }, "API key"),
    input,
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Use this key")),
  );
  const element = h("dialog", { "aria-labelledby": "api-key-title" }, form) as HTMLDialogElement;
  form.querySelector("h2")?.setAttribute("id", "api-key-title");
  form.addEventListener("submit", () => {
    if (!input.value.trim()) return;
    storeApiKey(input.value.trim());
    element.close();
    element.remove();
    onSaved();
  });
  document.body.append(element);
  dialog = element;
  element.showModal();
  input.focus();
}
