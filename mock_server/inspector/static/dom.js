import { imageUrl } from "./api.js";

// Small helpers to build elements without innerHTML (nothing from the journal is ever parsed as HTML).

export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function json(value) {
  return el("pre", { text: JSON.stringify(value, null, 2) });
}

export function ago(seconds) {
  if (seconds < 1) return "just now";
  if (seconds < 60) return `${Math.round(seconds)} s ago`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
  return `${(seconds / 3600).toFixed(1)} h ago`;
}

// A thumbnail that opens the image full size in a new tab (both from the fetched bytes).
export function thumbnail(src, caption, alt) {
  const image = el("img", { alt, class: "thumb", "data-src": src });
  const link = el("a", { target: "_blank", rel: "noopener", "aria-label": `${alt}, full size` }, image);
  imageUrl(src).then((url) => {
    if (!url) return void image.replaceWith(el("span", { class: "empty", text: "not available" }));
    image.src = url;
    link.href = url;
  });
  return el("figure", {}, link, el("figcaption", { text: caption }));
}

export function say(text, bad = false) {
  const message = document.getElementById("message");
  message.textContent = text;
  message.classList.toggle("bad", bad);
}
