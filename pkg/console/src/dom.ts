/** A tiny element builder: enough for small views without a framework. */
type Child = Node | string | number | false | null | undefined;
type Attributes = Record<string, string | number | boolean | undefined | ((event: Event) => void)>;

export function h(tag: string, attributes: Attributes = {}, ...children: Child[]): HTMLElement {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === false) continue;
    if (typeof value === "function") element.addEventListener(name.replace(/^on/, ""), value);
    else if (value === true) element.setAttribute(name, "");
    else element.setAttribute(name, String(value));
  }
  append(element, ...children);
  return element;
}

export function append(parent: Node, ...children: Child[]): void {
  for (const child of children) {
    if (child === false || child === null || child === undefined) continue;
    parent.appendChild(typeof child === "object" ? child : document.createTextNode(String(child)));
  }
}

/** Replaces an element's content. */
export function replace(parent: Element, ...children: Child[]): void {
  parent.replaceChildren();
  append(parent, ...children);
}

/** Announces a change to screen readers through the page's aria-live region. */
export function announce(text: string): void {
  const region = document.getElementById("announcer");
  if (region) region.textContent = text;
}

/** Calls `run` once `delayMs` passed without another call (search boxes). */
export function debounce<A extends unknown[]>(run: (...args: A) => void, delayMs: number): (...args: A) => void {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => run(...args), delayMs);
  };
}

/** A form's text input (no autofill: these are ids, durations, keys). */
export function input(name: string, attributes: Record<string, string | boolean> = {}): HTMLInputElement {
  return h("input", { name, autocomplete: "off", ...attributes }) as HTMLInputElement;
}

/** A labelled control (the label's text is the control's accessible name); `extra`: a datalist, say. */
export function field(label: string, control: HTMLElement, ...extra: HTMLElement[]): HTMLElement {
  return h("label", {}, h("span", {}, label), control, ...extra);
}

let notice: string | undefined;

/** A message for the view drawn next: what a form did before it navigated there (the New task form's outcome on the
 *  task's page). Shown once: a reload does not repeat it. */
export function leaveNotice(text: string): void {
  notice = text;
}

export function takeNotice(): string | undefined {
  const text = notice;
  notice = undefined;
  return text;
}
