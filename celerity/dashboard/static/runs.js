// The runs list page: flow runs with filters, workers and queue depths, polled.
"use strict";

(() => {
  const {getJSON, el, badge, time, seconds, fillTable, syncOptions, every} = Celerity;
  const stateFilter = document.getElementById("state-filter");
  const flowFilter = document.getElementById("flow-filter");

  // Filters live in the address (?state=&flow=) so a filtered list can be shared.
  const params = new URLSearchParams(location.search);
  for (const [select, name] of [[stateFilter, "state"], [flowFilter, "flow"]]) {
    if (params.get(name)) {
      select.append(el("option", {value: params.get(name)}, params.get(name)));
      select.value = params.get(name);
    }
    select.addEventListener("change", () => {
      const next = new URLSearchParams();
      if (stateFilter.value) next.set("state", stateFilter.value);
      if (flowFilter.value) next.set("flow", flowFilter.value);
      history.replaceState(null, "", next.toString() ? "?" + next : location.pathname);
      refreshRuns();
    });
  }

  function runRow(run) {
    return el("tr", {"data-run-id": run.id},
      el("td", {}, el("a", {href: "/runs/" + run.id}, run.name)),
      el("td", {}, run.flow_name),
      el("td", {class: "run-state"}, badge(run.state)),
      el("td", {}, time(run.start_time)),
      el("td", {}, seconds(run.duration)),
      el("td", {class: "mono muted"}, run.id.slice(0, 8)));
  }

  async function refreshRuns() {
    const query = new URLSearchParams({limit: "100"});
    if (stateFilter.value) query.set("state", stateFilter.value);
    if (flowFilter.value) query.set("flow", flowFilter.value);
    try {
      const data = await getJSON("/api/runs?" + query);
      syncOptions(stateFilter, data.states);
      syncOptions(flowFilter, data.flows);
      fillTable(document.getElementById("runs"), data.runs.map(runRow));
      document.getElementById("runs-count").textContent =
        `${data.runs.length} shown of the ${data.window} most recent`;
      document.getElementById("runs-error").textContent = "";
    } catch (error) {
      document.getElementById("runs-error").textContent = "Cannot read runs: " + error.message;
    }
  }

  async function refreshWorkers() {
    const data = await getJSON("/api/workers");
    const number = (value) => (value === null || value === undefined ? "-" : String(value));
    fillTable(document.getElementById("workers"), data.workers.map((worker) =>
      el("tr", {"data-worker": worker.name, "data-kind": worker.kind},
        el("td", {class: "mono"}, worker.name),
        el("td", {}, worker.kind),
        el("td", {}, worker.status),
        el("td", {}, number(worker.active)),
        el("td", {}, number(worker.processed)),
        el("td", {}, number(worker.concurrency)),
        el("td", {}, seconds(worker.uptime_seconds)))));
    document.getElementById("workers-note").textContent = data.error
      ? "Cannot ask the workers: " + data.error
      : data.workers.length ? "" :
        "No worker answered: start workers with CELERITY_REMOTE_CONTROL=true (Celery's " +
        "inspect) or -E (heartbeats) to see them here.";
    const seen = Object.entries(data.seen_in_runs).sort(([, a], [, b]) => b.localeCompare(a));
    fillTable(document.getElementById("seen"), seen.map(([name, at]) =>
      el("tr", {}, el("td", {class: "mono"}, name), el("td", {}, time(at)))));
  }

  async function refreshQueues() {
    const data = await getJSON("/api/queues");
    fillTable(document.getElementById("queues"), data.queues.map((q) =>
      el("tr", {"data-queue": q.name}, el("td", {class: "mono"}, q.name),
        el("td", {}, String(q.waiting)), el("td", {}, String(q.reserved)))));
  }

  getJSON("/api/info").then((info) => {
    document.getElementById("store").textContent = `${info.store} · v${info.version}`;
  });
  every(2000, refreshRuns);
  every(5000, () => refreshWorkers().catch(() => {}));
  every(2000, () => refreshQueues().catch(() => {}));
})();
