// The task graph and the timeline, drawn as SVG with a small layered layout of our own.
//
// Why no graph library: the page must work with no internet (no CDN), and a layout
// library worth vendoring (dagre, elk) is tens to hundreds of kB for what a task graph
// needs: task runs in columns by dependency depth, edges as curves.
"use strict";

const CelerityGraph = (() => {
  const {svg, stateClass} = Celerity;
  const NODE_W = 190, NODE_H = 42, COL_GAP = 70, ROW_GAP = 12, MAX_ROWS = 14, PAD = 10;
  const MAX_NODES = 1000;

  // Depth of each run: 0 without upstreams, else one more than its deepest upstream.
  function layers(runs) {
    const byId = new Map(runs.map((r) => [r.id, r]));
    const depth = new Map();
    function visit(run, path) {
      if (depth.has(run.id)) return depth.get(run.id);
      if (path.has(run.id)) return 0; // a cycle cannot happen; never loop on bad data
      path.add(run.id);
      let d = 0;
      for (const up of run.upstreams) {
        if (byId.has(up)) d = Math.max(d, visit(byId.get(up), path) + 1);
      }
      depth.set(run.id, d);
      return d;
    }
    runs.forEach((run) => visit(run, new Set()));
    return depth;
  }

  // Place runs: a column per depth (wrapped every MAX_ROWS), ordered within a column by
  // the mean row of their upstreams (fewer crossings), then by creation.
  function layout(runs) {
    const depth = layers(runs);
    const columns = [];
    runs.forEach((run, index) => {
      const d = depth.get(run.id);
      (columns[d] = columns[d] || []).push({run, index});
    });
    const pos = new Map();
    let x = PAD;
    for (const column of columns.filter(Boolean)) {
      for (const item of column) {
        const rows = item.run.upstreams.map((u) => pos.get(u)).filter(Boolean).map((p) => p.y);
        item.key = rows.length ? rows.reduce((a, b) => a + b, 0) / rows.length : -1;
      }
      column.sort((a, b) => a.key - b.key || a.index - b.index);
      column.forEach((item, i) => {
        const wrap = Math.floor(i / MAX_ROWS);
        pos.set(item.run.id, {x: x + wrap * (NODE_W + COL_GAP / 2),
                              y: PAD + (i % MAX_ROWS) * (NODE_H + ROW_GAP)});
      });
      x += Math.ceil(column.length / MAX_ROWS) * (NODE_W + COL_GAP / 2) + COL_GAP / 2;
    }
    return pos;
  }

  function clip(text, chars) {
    return text.length > chars ? text.slice(0, chars - 1) + "…" : text;
  }

  function node(run, p) {
    const state = run.state;
    const group = svg("g", {
      class: "node", transform: `translate(${p.x},${p.y})`,
      "data-task-run-id": run.id, "data-task-run-name": run.name,
      "data-state": state ? state.name : "", "data-state-type": state ? state.type : "",
    });
    group.append(
      svg("title", {}, `${run.name}\n${state ? state.name : "-"}` +
        (state && state.message ? `\n${state.message}` : "")),
      svg("rect", {width: NODE_W, height: NODE_H, rx: 6, class: stateClass(state)}),
      svg("text", {x: 9, y: 17}, clip(run.name, 26)),
      svg("text", {x: 9, y: 33, class: "node-state"}, state ? state.name : "-"));
    if (run.child_flow_run_id) {
      group.style.cursor = "pointer";
      group.addEventListener("click", () => { location.href = "/runs/" + run.child_flow_run_id; });
    }
    return group;
  }

  function edge(from, to) {
    const x1 = from.x + NODE_W, y1 = from.y + NODE_H / 2, x2 = to.x, y2 = to.y + NODE_H / 2;
    const bend = Math.max(20, (x2 - x1) / 2);
    return svg("path", {class: "edge", "marker-end": "url(#arrow)",
      d: `M${x1},${y1} C${x1 + bend},${y1} ${x2 - bend},${y2} ${x2},${y2}`});
  }

  function drawGraph(target, allRuns) {
    const runs = allRuns.slice(0, MAX_NODES);
    const pos = layout(runs);
    const defs = svg("defs", {}, svg("marker", {id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5,
      markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse"},
      svg("path", {d: "M0,0 L10,5 L0,10 z", fill: "#8a93a6"})));
    const edges = [];
    for (const run of runs) {
      for (const up of run.upstreams) {
        if (pos.has(up)) edges.push(edge(pos.get(up), pos.get(run.id)));
      }
    }
    const nodes = runs.map((run) => node(run, pos.get(run.id)));
    let width = 0, height = 0;
    for (const p of pos.values()) {
      width = Math.max(width, p.x + NODE_W + PAD);
      height = Math.max(height, p.y + NODE_H + PAD);
    }
    target.setAttribute("width", Math.max(width, 10));
    target.setAttribute("height", Math.max(height, 10));
    target.replaceChildren(defs, ...edges, ...nodes);
    return {shown: runs.length, edges: edges.length};
  }

  // One bar per task run from its start to its end (or now while it runs).
  function drawTimeline(target, runs, nowIso) {
    const LABEL_W = 200, BAR_H = 14, ROW = 20, WIDTH = 900, MAX_ROWS_SHOWN = 300;
    const now = Date.parse(nowIso);
    const started = runs.filter((r) => r.start_time).slice(0, MAX_ROWS_SHOWN);
    if (!started.length) {
      target.setAttribute("width", 300);
      target.setAttribute("height", 24);
      target.replaceChildren(svg("text", {x: 0, y: 16, class: "timeline-tick"}, "No task run has started yet."));
      return;
    }
    const begin = Math.min(...started.map((r) => Date.parse(r.start_time)));
    const end = Math.max(...started.map((r) => (r.end_time ? Date.parse(r.end_time) : now)), begin + 1);
    const scale = (t) => LABEL_W + ((t - begin) / (end - begin)) * (WIDTH - LABEL_W - 10);
    const children = [svg("line", {x1: LABEL_W, y1: 0, x2: LABEL_W, y2: started.length * ROW + 4, class: "timeline-axis"})];
    started.forEach((run, i) => {
      const x1 = scale(Date.parse(run.start_time));
      const x2 = scale(run.end_time ? Date.parse(run.end_time) : now);
      const y = i * ROW + 3;
      children.push(
        svg("text", {x: 0, y: y + 11, class: "timeline-label"}, clip(run.name, 28)),
        svg("rect", {x: x1, y, width: Math.max(x2 - x1, 2), height: BAR_H, rx: 3,
          class: "timeline-bar " + stateClass(run.state), "data-task-run-id": run.id},
          svg("title", {}, `${run.name}: ${run.state ? run.state.name : "-"}`)));
    });
    const total = (end - begin) / 1000;
    children.push(svg("text", {x: WIDTH - 10, y: started.length * ROW + 16, "text-anchor": "end",
      class: "timeline-tick"}, `${total.toFixed(2)}s`));
    children.push(svg("text", {x: LABEL_W, y: started.length * ROW + 16, class: "timeline-tick"}, "0s"));
    target.setAttribute("width", WIDTH);
    target.setAttribute("height", started.length * ROW + 22);
    target.replaceChildren(...children);
  }

  return {drawGraph, drawTimeline, layout};
})();
