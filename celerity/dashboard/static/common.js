// Helpers both pages share: fetching the API, building elements, formatting.
"use strict";

const Celerity = (() => {
  async function getJSON(url, options) {
    const response = await fetch(url, options);
    const text = await response.text();
    const body = text ? JSON.parse(text) : null;
    if (!response.ok) {
      const detail = body && body.detail ? body.detail : response.statusText;
      throw new Error(`${response.status}: ${detail}`);
    }
    return body;
  }

  // el("td", {class: "x"}, "text", childNode...) builds an element; text is never parsed as HTML.
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value !== null && value !== undefined) node.setAttribute(name, value);
    }
    for (const child of children) {
      node.append(child instanceof Node ? child : document.createTextNode(child ?? ""));
    }
    return node;
  }

  const SVG_NS = "http://www.w3.org/2000/svg";
  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value !== null && value !== undefined) node.setAttribute(name, value);
    }
    for (const child of children) {
      node.append(child instanceof Node ? child : document.createTextNode(child ?? ""));
    }
    return node;
  }

  function stateClass(state) {
    return "state-" + (state ? state.type.toLowerCase() : "none");
  }

  function badge(state) {
    return el("span", {class: "badge " + stateClass(state)}, state ? state.name : "-");
  }

  function time(iso) {
    return iso ? new Date(iso).toLocaleString() : "-";
  }

  function seconds(value) {
    if (value === null || value === undefined) return "-";
    if (value < 60) return value.toFixed(2) + "s";
    if (value < 3600) return `${Math.floor(value / 60)}m ${Math.floor(value % 60)}s`;
    return `${Math.floor(value / 3600)}h ${Math.floor((value % 3600) / 60)}m`;
  }

  function fillTable(table, rows) {
    const body = table.tBodies[0];
    body.replaceChildren(...rows);
  }

  // Keep a select's options in step with the values seen, keeping the choice.
  function syncOptions(select, values) {
    const chosen = select.value;
    const wanted = ["", ...values];
    if (chosen && !wanted.includes(chosen)) wanted.push(chosen);
    const current = Array.from(select.options).map((o) => o.value);
    if (current.join("\n") === wanted.join("\n")) return;
    select.replaceChildren(...wanted.map((v) => el("option", {value: v}, v || "any")));
    select.value = chosen;
  }

  // Call fn now and every `ms` after it settles (never two at once).
  function every(ms, fn) {
    let timer = null;
    async function tick() {
      try { await fn(); } finally { timer = setTimeout(tick, ms); }
    }
    tick();
    return () => clearTimeout(timer);
  }

  return {getJSON, el, svg, stateClass, badge, time, seconds, fillTable, syncOptions, every};
})();
