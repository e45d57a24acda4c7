// A few lines of DOM building: elements with attributes and children, text always set as text.

type Child = Node | string | undefined | false;

/** `<tag attrs...>children</tag>`; attributes set to undefined or false are left out. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string | number | boolean | undefined> = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === false) continue;
    element.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === undefined || child === false) continue;
    element.append(child);
  }
  return element;
}

/** A progress bar that screen readers read as one ("progress 40%"). */
export function progressBar(label: string): { element: HTMLElement; set(percent: number, status: string): void } {
  const fill = h("span", { class: "fill" });
  const text = h("span", { class: "pct" });
  const element = h(
    "span",
    { class: "progress", role: "progressbar", "aria-valuemin": 0, "aria-valuemax": 100, "aria-label": label },
    fill,
    text,
  );
  return {
    element,
    set(percent, status) {
      element.setAttribute("aria-valuenow", String(percent));
      element.dataset.status = status;
      fill.style.width = `${percent}%`;
      text.textContent = `${percent}%`;
    },
  };
}
