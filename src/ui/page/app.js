// The dashboard page: polls the JSON API for VMs, denials, rates and the policy, and tails the trace over
// the WebSocket stream. Plain browser JavaScript, no build step; uPlot draws the rates. Everything the
// server sends is shown as text (textContent), never as HTML: function names and rules are data.
"use strict";
(() => {
  const token = new URLSearchParams(location.search).get("token");
  const headers = token ? { authorization: `Bearer ${token}` } : {};
  const $ = (id) => document.getElementById(id);
  const el = (tag, props = {}, ...children) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(props)) {
      if (k === "class") e.className = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v);
    }
    for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return e;
  };
  const api = async (path, init = {}) => {
    const r = await fetch(path, { ...init, headers: { ...headers, ...(init.headers || {}) } });
    const body = await r.json().catch(() => ({}));
    return { ok: r.ok, status: r.status, body };
  };
  const post = (path, body) => api(path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });

  // --- VMs and vCPUs
  let lastVms = "";
  function renderVms(vms) {
    // Rebuilt only when something changed: the page's own work must not slow the guests (bench/ui.bench.ts).
    const key = JSON.stringify(vms);
    if (key === lastVms) return;
    lastVms = key;
    const box = $("vms");
    box.replaceChildren(
      ...vms.map((v) =>
        el(
          "div",
          { class: "vm", "data-vm": v.name },
          el("h3", {}, el("span", {}, v.name, " ", el("small", {}, v.conduit || "")), el("span", { class: `state ${v.state}` }, v.state)),
          el("div", { class: "cpus" }, ...(v.vcpus || []).map((s, i) => el("span", { class: `cpu ${s}`, title: `vCPU ${i}: ${s}` }, `${i} ${s}`))),
          el(
            "div",
            { class: "counts" },
            `calls ${v.counters.calls}  denied `,
            el("span", { class: "deny" }, v.counters.denied),
            `  errors ${v.counters.errors}`,
            el("br"),
            `in flight ${v.inFlight.vcpus + v.inFlight.tee}`,
            v.tee ? `  TEE sessions ${v.tee.sessions ?? 0}  shared buffers ${v.tee.registrations ?? 0} (${v.tee.pages ?? 0} pages)` : "",
            v.boots > 1 ? `  boot ${v.boots}` : "",
          ),
          el("div", {}, ...["reset", "power-off", "destroy"].map((a) => el("button", { onclick: () => act(v.name, a), disabled: v.state !== "running" ? "" : null }, a))),
        ),
      ),
    );
    for (const b of box.querySelectorAll("button[disabled='null']")) b.removeAttribute("disabled");
  }
  async function act(vm, action) {
    if (action !== "reset" && !confirm(`${action} ${vm}?`)) return;
    const r = await post(`/api/vms/${encodeURIComponent(vm)}/${action}`, {});
    $("status").textContent = r.ok ? `${vm}: ${r.body.detail}` : `${vm}: ${r.body.errors?.[0]?.message ?? r.status}`;
  }

  // --- rates (uPlot)
  let plot = null;
  let plotVms = "";
  const COLORS = ["#1a73e8", "#e8710a", "#188038", "#a142f4", "#d93025", "#12b5cb"];
  function renderRates(rates) {
    const names = rates.map((r) => r.vm).join(",");
    const xs = rates[0]?.samples.map((s) => s[0]) ?? [];
    const data = [xs, ...rates.map((r) => r.samples.map((s) => s[1]))];
    if (!plot || names !== plotVms) {
      plot?.destroy();
      plotVms = names;
      const width = $("rates").clientWidth || 500;
      plot = new uPlot(
        { width, height: 180, series: [{}, ...rates.map((r, i) => ({ label: r.vm, stroke: COLORS[i % COLORS.length], width: 1.5 }))], axes: [{}, { size: 50 }], scales: { x: { time: true } } },
        data,
        $("rates"),
      );
    } else plot.setData(data);
    $("rates").dataset.total = String(rates.reduce((n, r) => n + r.samples.reduce((m, s) => m + s[1], 0), 0));
  }

  // --- denials and the trace tail
  const explainRow = (e) => () => explainSeq(e.seq);
  let lastDenial = -1;
  function renderDenials(list) {
    const newest = list.length > 0 ? list[list.length - 1].seq : -1;
    if (newest === lastDenial) return;
    lastDenial = newest;
    $("denials").tBodies[0].replaceChildren(
      ...list.slice(-50).reverse().map((e) => el("tr", { onclick: explainRow(e), "data-seq": e.seq }, el("td", {}, e.vm), el("td", {}, e.function), el("td", { class: "deny" }, e.rule))),
    );
  }
  const TAIL = 100;
  const tail = [];
  let skipped = 0;
  let tailChanged = false;
  function addEvents(items) {
    tailChanged = tailChanged || items.length > 0;
    for (const e of items) tail.push(e);
    if (tail.length > TAIL) tail.splice(0, tail.length - TAIL);
  }
  function renderTail() {
    if (!tailChanged) return;
    tailChanged = false;
    $("trace").tBodies[0].replaceChildren(
      ...tail
        .slice()
        .reverse()
        .map((e) =>
          e.type === "call"
            ? el("tr", { onclick: explainRow(e), "data-seq": e.seq }, el("td", {}, e.seq), el("td", {}, e.vm), el("td", {}, e.vcpu), el("td", {}, e.function), el("td", { class: e.action === "deny" ? "deny" : "" }, e.action), el("td", {}, e.rule), el("td", {}, e.x0))
            : el("tr", { class: "policy-change" }, el("td", {}, "—"), el("td", { colspan: "6" }, `policy changed: ${e.vms.join(", ") || "no grants differ"} (${e.at})`)),
        ),
    );
  }
  async function explainSeq(seq) {
    const r = await api(`/api/explain?seq=${seq}`);
    if (!r.ok) return ($("explain").textContent = r.body.errors?.[0]?.message ?? `error ${r.status}`);
    const { event: e, explanation: x } = r.body;
    $("explain").textContent = [
      `#${e.seq} ${e.vm} vCPU ${e.vcpu} ${e.conduit}: ${e.fid} ${e.function}`,
      `  traced    ${e.action} by rule ${e.rule}, x0 = ${e.x0}`,
      `  now       ${x.decision.action}${x.decision.service ? ` by service ${x.decision.service}` : ""}`,
      `  rule      ${x.decision.rule}`,
      `  because   ${x.decision.reason}`,
      ...x.considered.map((c) => `  checked   ${c.rule}: ${c.result === "decided" ? "matched" : c.detail}`),
    ].join("\n");
  }

  // --- the stream
  let ws = null;
  function connect() {
    const q = new URLSearchParams();
    if ($("filter-vm").value) q.set("vm", $("filter-vm").value);
    if ($("filter-fn").value) q.set("fn", $("filter-fn").value);
    if (token) q.set("token", token);
    ws?.close();
    tail.length = 0;
    tailChanged = true;
    const sock = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/api/stream?${q}`);
    ws = sock;
    sock.onmessage = (m) => {
      const msg = JSON.parse(m.data);
      skipped = msg.skipped;
      addEvents(msg.items);
      if (msg.items.some((i) => i.type === "policy-change")) {
        renderTail();
        refreshPolicy();
      }
    };
    sock.onclose = (c) => {
      if (ws !== sock) return;
      $("status").textContent = `trace stream closed (${c.reason || c.code}); reconnecting`;
      setTimeout(connect, 2000);
    };
  }
  $("filter-vm").addEventListener("change", connect);
  $("filter-fn").addEventListener("change", connect);

  // --- policy
  let editorFilled = false;
  async function refreshPolicy() {
    const r = await api("/api/policy");
    if (!r.ok) return;
    $("policy").textContent = r.body.lines.join("\n");
    if (!editorFilled) {
      $("policy-text").value = r.body.text;
      editorFilled = true;
    }
    const last = r.body.changes[r.body.changes.length - 1];
    if (last) {
      $("policy-diff").replaceChildren(
        el("div", {}, `${last.at}: ${last.vms.join(", ") || "no VM's grants differ"}`),
        ...last.diff.split("\n").filter((l) => l.startsWith("+") || l.startsWith("-") || true).map((l) => el("div", { class: l.startsWith("+") ? "add" : l.startsWith("-") ? "del" : "" }, l)),
      );
    }
  }
  $("policy-apply").addEventListener("click", async () => {
    const r = await post("/api/policy", { text: $("policy-text").value, format: "yaml" });
    const out = $("policy-result");
    if (r.ok) {
      out.className = "ok";
      out.textContent = `applied: ${r.body.changed.join(", ") || "no VM's grants differ"}`;
    } else {
      out.className = "error";
      out.textContent = (r.body.errors || []).map((e) => `${e.path}: ${e.message}`).join("\n") || `error ${r.status}`;
    }
    refreshPolicy();
  });

  // --- the loop
  async function refresh() {
    try {
      const [vms, denials, rates] = await Promise.all([api("/api/vms"), api("/api/denials"), api("/api/rates")]);
      if (vms.ok) renderVms(vms.body.vms);
      if (denials.ok) renderDenials(denials.body.denials);
      if (rates.ok && typeof uPlot !== "undefined") renderRates(rates.body.rates);
      renderTail();
      $("status").textContent = `${new Date().toLocaleTimeString()}${skipped ? ` — ${skipped} trace events skipped (too many to show)` : ""}`;
    } catch (e) {
      $("status").textContent = `server unreachable (${e.message})`;
    }
  }
  connect();
  refreshPolicy();
  refresh();
  // Every 2 s, and not at all while the tab is hidden: the browser shares the host's CPUs with the guests
  // (bench/ui.bench.ts measures what it takes).
  setInterval(() => {
    if (!document.hidden) refresh();
  }, 2000);
})();
