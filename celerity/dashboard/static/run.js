// One flow run's page: fields, graph, timeline, task runs, history and logs, polled live.
"use strict";

(() => {
  const {getJSON, el, badge, time, seconds, fillTable} = Celerity;
  const runId = decodeURIComponent(location.pathname.split("/").filter(Boolean).pop());
  const POLL_LIVE_MS = 1000, POLL_FINAL_MS = 5000;
  let logOffset = 0;
  let lastFinal = false;
  const taskRunNames = new Map();  // task run id -> name, for the logs' "run" column

  function fieldRows(run) {
    const rows = [
      ["id", el("span", {class: "mono"}, run.id)],
      ["flow", run.flow_name],
      ["state", badge(run.state)],
      ["message", run.state && run.state.message
        ? el("div", {}, el("pre", {}, run.state.message), tracebackOf(run)) : "-"],
      ["start", time(run.start_time)],
      ["end", time(run.end_time)],
      ["duration", seconds(run.duration)],
      ["attempts", String(run.run_count)],
      ["tags", run.tags.join(", ") || "-"],
    ];
    if (run.parent_flow_run_id) {
      rows.push(["parent", el("a", {href: "/runs/" + run.parent_flow_run_id}, run.parent_flow_run_id)]);
    }
    return rows.map(([name, value]) => el("tr", {}, el("td", {}, name), el("td", {}, value)));
  }

  function taskRow(run) {
    const name = run.child_flow_run_id
      ? el("a", {href: "/runs/" + run.child_flow_run_id}, run.name + " (subflow)")
      : run.name;
    const message = el("div", {},
      run.state && run.state.message ? el("pre", {}, run.state.message) : "",
      tracebackOf(run));
    return el("tr", {"data-task-run-id": run.id},
      el("td", {}, name), el("td", {}, badge(run.state)), el("td", {class: "mono"}, run.worker || "-"),
      el("td", {}, time(run.start_time)), el("td", {}, seconds(run.duration)),
      el("td", {}, String(run.run_count)), el("td", {}, message));
  }

  // A failed run's traceback, folded under its message.
  function tracebackOf(run) {
    if (!run.traceback) return "";
    return el("details", {class: "traceback"}, el("summary", {}, "traceback"), el("pre", {}, run.traceback));
  }

  function historyRow(state) {
    return el("tr", {}, el("td", {}, time(state.timestamp)), el("td", {}, badge(state)),
      el("td", {}, state.message ? el("pre", {}, state.message) : ""));
  }

  function render(data) {
    const run = data.flow_run;
    document.title = `Celerity — ${run.name}`;
    document.getElementById("run-name").textContent = `${run.name} · ${run.flow_name}`;
    document.getElementById("run-state").replaceChildren(badge(run.state));
    fillTable(document.getElementById("fields"), fieldRows(run));
    document.getElementById("parameters").textContent = JSON.stringify(run.parameters, null, 2);
    const result = document.getElementById("result");
    result.textContent = data.result ? data.result.summary : "not final yet";
    result.className = data.result && data.result.available ? "" : "muted";
    const drawn = CelerityGraph.drawGraph(document.getElementById("graph"), data.task_runs);
    const counts = Object.entries(data.task_run_states).map(([name, n]) => `${n} ${name}`).join(", ");
    document.getElementById("graph-note").textContent = `${data.task_run_count} task runs` +
      (counts ? ` (${counts})` : "") +
      (drawn.shown < data.task_run_count ? `, the first ${drawn.shown} drawn` : "");
    CelerityGraph.drawTimeline(document.getElementById("timeline"), data.task_runs, data.now);
    for (const task of data.task_runs) taskRunNames.set(task.id, task.name);
    fillTable(document.getElementById("task-runs"), data.task_runs.map(taskRow));
    fillTable(document.getElementById("history"), data.history.map(historyRow));
    updateButtons(run);
  }

  async function refreshLogs() {
    const data = await getJSON(`/api/runs/${runId}/logs?offset=${logOffset}`);
    const body = document.getElementById("logs").tBodies[0];
    for (const log of data.logs) {
      body.append(el("tr", {class: "log-level-" + log.level},
        el("td", {class: "mono"}, time(log.timestamp)),
        el("td", {}, levelName(log.level)),
        el("td", {}, writer(log)),
        el("td", {class: "mono"}, log.name),
        el("td", {}, el("pre", {}, log.message))));
    }
    logOffset = data.next_offset;
  }

  // Which run wrote a line: a task run by name, a subflow's run, or the flow run itself.
  function writer(log) {
    if (log.task_run_name) return log.task_run_name;
    if (log.task_run_id) return taskRunNames.get(log.task_run_id) || log.task_run_id.slice(0, 8);
    if (log.flow_run_id && log.flow_run_id !== runId) return "subflow " + log.flow_run_id.slice(0, 8);
    return "flow";
  }

  function levelName(level) {
    return {10: "DEBUG", 20: "INFO", 30: "WARNING", 40: "ERROR", 50: "CRITICAL"}[level] || String(level);
  }

  async function refresh() {
    try {
      const data = await getJSON("/api/runs/" + runId);
      render(data);
      await refreshLogs();
      document.getElementById("run-error").textContent = "";
      lastFinal = data.flow_run.final;
    } catch (error) {
      document.getElementById("run-error").textContent = "Cannot read this run: " + error.message;
    }
  }

  // Poll every second while the run may change, every few seconds once it is final
  // (a retry or a resume can still move it).
  async function loop() {
    await refresh();
    setTimeout(loop, lastFinal ? POLL_FINAL_MS : POLL_LIVE_MS);
  }

  // --- actions (only when the dashboard was started with a token) ---------------------------
  let actionsEnabled = false;
  const tokenInput = document.getElementById("token");
  tokenInput.value = localStorage.getItem("celerity-dashboard-token") || "";
  tokenInput.addEventListener("change", () => localStorage.setItem("celerity-dashboard-token", tokenInput.value));

  function updateButtons(run) {
    if (!actionsEnabled) return;
    const type = run.state ? run.state.type : "";
    document.getElementById("retry-button").disabled = !["FAILED", "CRASHED", "CANCELLED"].includes(type);
    const paused = type === "PAUSED";
    document.getElementById("resume-button").disabled = !paused;
    document.getElementById("resume-input-label").hidden = !paused;
  }

  async function act(action, body) {
    const message = document.getElementById("action-message");
    try {
      const data = await getJSON(`/api/runs/${runId}/${action}`, {
        method: "POST",
        headers: {"Authorization": "Bearer " + tokenInput.value, "Content-Type": "application/json"},
        body: JSON.stringify(body || {}),
      });
      message.className = "";
      message.textContent = data.message;
      refresh();
    } catch (error) {
      message.className = "error";
      message.textContent = error.message;
    }
  }

  document.getElementById("retry-button").addEventListener("click", () => act("retry"));
  document.getElementById("resume-button").addEventListener("click", () => {
    const text = document.getElementById("resume-input").value.trim();
    let input;
    try {
      input = text ? JSON.parse(text) : undefined;
    } catch (error) {
      document.getElementById("action-message").textContent = "The input is not JSON: " + error.message;
      return;
    }
    act("resume", input === undefined ? {} : {input});
  });

  getJSON("/api/info").then((info) => {
    actionsEnabled = info.actions_enabled;
    document.getElementById("actions").hidden = !actionsEnabled;
  });
  loop();
})();
