// weft's web view: the topology, the ports' live rates (server-sent events), the tables,
// a port's live trace and capture downloads. Read-only: it only GETs. Text from the daemon
// goes into the page as text nodes, never as HTML.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const HISTORY = 60; // samples per sparkline: one a second
const state = {
  topology: null,
  topologyKey: "",
  ports: new Map(), // name -> latest row from the event stream (with .rates)
  history: new Map(), // name -> [pps, ...]
  rows: new Map(), // name -> the ports table's <tr> and its cells
  topoRates: new Map(), // name -> {text, link} in the topology drawing
  tab: "fdb",
  trace: null, // {port, abort}
};

// ---------------------------------------------------------------- helpers

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("data-")) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) if (c != null) e.append(c);
  return e;
}

function svg(tag, attrs, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text != null) e.textContent = text;
  return e;
}

const $ = (id) => document.getElementById(id);

async function getJSON(path) {
  const r = await fetch(path, { headers: { Accept: "application/json" } });
  if (!r.ok) throw new Error(`${path}: ${r.status} ${await r.text()}`);
  return r.json();
}

function fmtCount(n) {
  return Number(n || 0).toLocaleString("en-US");
}

function fmtPps(v) {
  if (!v) return "0";
  return v < 10 ? v.toFixed(1) : Math.round(v).toLocaleString("en-US");
}

function fmtBits(bytesPerSecond) {
  let v = (bytesPerSecond || 0) * 8;
  if (v === 0) return "0";
  const units = ["bit/s", "kbit/s", "Mbit/s", "Gbit/s"];
  let i = 0;
  while (v >= 1000 && i < units.length - 1) { v /= 1000; i++; }
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[i]}`;
}

function fmtSeconds(s) {
  if (s == null) return "never";
  if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

/** "delay 20ms±5ms · loss 10% · …" for a port's impairment, or "". */
function impairText(imp) {
  if (!imp) return "";
  const parts = [];
  if (imp.delay) parts.push(`delay ${imp.delay}${imp.jitter ? "±" + imp.jitter : ""}`);
  else if (imp.jitter) parts.push(`jitter ${imp.jitter}`);
  for (const k of ["loss", "duplicate", "reorder", "corrupt", "rate"]) {
    if (imp[k]) parts.push(`${k} ${imp[k]}`);
  }
  return parts.join(" · ");
}

function dropTotal(p) {
  return Object.values(p.drops || {}).reduce((a, b) => a + b, 0);
}

// ---------------------------------------------------------------- live counters

function connectEvents() {
  const es = new EventSource("api/events");
  const live = $("live");
  const text = $("live-text");
  let last = 0;
  es.addEventListener("ports", (ev) => {
    const data = JSON.parse(ev.data);
    last = Date.now();
    live.className = "dot live";
    text.textContent = "live · " + new Date(data.at_ms).toLocaleTimeString();
    onPorts(data.ports);
  });
  es.onerror = () => {
    live.className = "dot down";
    text.textContent = "reconnecting…";
  };
  setInterval(() => {
    if (last && Date.now() - last > 4000) {
      live.className = "dot down";
      text.textContent = "no counters for " + Math.round((Date.now() - last) / 1000) + " s";
    }
  }, 1000);
}

function onPorts(ports) {
  const seen = new Set();
  for (const p of ports) {
    seen.add(p.name);
    state.ports.set(p.name, p);
    const h = state.history.get(p.name) || [];
    h.push(p.rates.rx_pps + p.rates.tx_pps);
    if (h.length > HISTORY) h.shift();
    state.history.set(p.name, h);
  }
  for (const name of [...state.ports.keys()]) {
    if (!seen.has(name)) {
      state.ports.delete(name);
      state.history.delete(name);
    }
  }
  renderPorts();
  renderDrops();
  updateTopologyRates();
  if (state.tab === "drops") renderTable();
}

// ---------------------------------------------------------------- ports table

function portRow(name) {
  const cells = {};
  const td = (key, cls) => (cells[key] = el("td", { class: cls || "" }));
  const trace = el("button", { type: "button", class: "trace", text: "Trace", "data-port": name });
  trace.addEventListener("click", () => toggleTrace(name));
  const pcap = el("a", { class: "btn pcap", text: "pcap", "data-port": name, title: "download a capture of this port as a pcap file" });
  pcap.setAttribute("download", "");
  const tr = el("tr", { "data-port": name },
    td("name"), td("network"),
    td("rx_pps", "num rx-pps"), td("tx_pps", "num tx-pps"),
    td("rx_bps", "num"), td("tx_bps", "num"),
    td("spark"),
    td("rx_packets", "num rx-packets"), td("tx_packets", "num tx-packets"),
    td("drops", "num drops"), td("link", "link"),
    el("td", { class: "actions" }, trace, pcap));
  return { tr, cells, trace, pcap };
}

function sparkline(values) {
  const w = 120, h = 22;
  const s = svg("svg", { class: "spark", width: w, height: h, viewBox: `0 0 ${w} ${h}` });
  s.append(svg("line", { x1: 0, y1: h - 0.5, x2: w, y2: h - 0.5 }));
  const max = Math.max(1, ...values);
  const step = w / (HISTORY - 1);
  const off = HISTORY - values.length;
  const pts = values.map((v, i) => `${((off + i) * step).toFixed(1)},${(h - 1 - (v / max) * (h - 3)).toFixed(1)}`);
  if (pts.length > 1) s.append(svg("polyline", { points: pts.join(" ") }));
  s.append(svg("title", {}, `peak ${fmtPps(max)} packets/s over the last minute`));
  return s;
}

function setNum(td, value, text) {
  td.textContent = text;
  td.setAttribute("data-value", String(value));
  td.classList.toggle("zero", !value);
}

function linkCell(td, p) {
  td.replaceChildren();
  if (p.detached) td.append(el("span", { class: "badge bad", text: "detached", title: p.detached }));
  else if (p.link_down) td.append(el("span", { class: "badge bad", text: "down" }));
  else td.append(el("span", { class: "badge ok", text: "up" }));
  const imp = impairText(p.impair);
  if (imp) td.append(el("span", { class: "badge warn", text: imp }));
}

function renderPorts() {
  const body = document.querySelector("#ports tbody");
  const names = [...state.ports.keys()].sort((a, b) => {
    const pa = state.ports.get(a), pb = state.ports.get(b);
    return (pa.network + "\0" + a).localeCompare(pb.network + "\0" + b);
  });
  $("ports-empty").hidden = names.length > 0;
  for (const [name, row] of state.rows) {
    if (!state.ports.has(name)) { row.tr.remove(); state.rows.delete(name); }
  }
  const count = Math.max(1, Math.min(10000, Number($("cap-count").value) || 100));
  const seconds = Math.max(1, Math.min(300, Number($("cap-seconds").value) || 10));
  names.forEach((name, i) => {
    const p = state.ports.get(name);
    let row = state.rows.get(name);
    if (!row) {
      row = portRow(name);
      state.rows.set(name, row);
    }
    if (body.children[i] !== row.tr) body.insertBefore(row.tr, body.children[i] || null);
    const c = row.cells;
    c.name.replaceChildren(el("span", { class: "mono", text: name }), el("span", { class: "badge", text: p.kind }));
    c.network.textContent = p.network;
    const r = p.rates;
    setNum(c.rx_pps, r.rx_pps, fmtPps(r.rx_pps));
    setNum(c.tx_pps, r.tx_pps, fmtPps(r.tx_pps));
    c.rx_pps.classList.toggle("hot", r.rx_pps > 0);
    c.tx_pps.classList.toggle("hot", r.tx_pps > 0);
    setNum(c.rx_bps, r.rx_bps, fmtBits(r.rx_bps));
    setNum(c.tx_bps, r.tx_bps, fmtBits(r.tx_bps));
    c.spark.replaceChildren(sparkline(state.history.get(name) || []));
    setNum(c.rx_packets, p.rx_packets, fmtCount(p.rx_packets));
    setNum(c.tx_packets, p.tx_packets, fmtCount(p.tx_packets));
    const d = dropTotal(p);
    setNum(c.drops, d, fmtCount(d));
    c.drops.title = Object.entries(p.drops || {}).map(([k, v]) => `${k}: ${v}`).join("\n") || "no drops";
    linkCell(c.link, p);
    const tracing = state.trace && state.trace.port === name;
    row.trace.textContent = tracing ? "Stop" : "Trace";
    row.trace.classList.toggle("running", tracing);
    const base = `api/ports/${encodeURIComponent(name)}/capture`;
    row.pcap.href = `${base}?count=${count}&seconds=${seconds}`;
    row.pcap.title = `download up to ${count} frames of ${name} (at most ${seconds} s) as a pcap file`;
  });
}

// ---------------------------------------------------------------- drops by reason

function renderDrops() {
  const by = new Map();
  for (const p of state.ports.values()) {
    for (const [reason, n] of Object.entries(p.drops || {})) {
      const e = by.get(reason) || { n: 0, ports: [] };
      e.n += n;
      e.ports.push(`${p.name}: ${n}`);
      by.set(reason, e);
    }
  }
  const box = $("drops");
  if (by.size === 0) {
    box.replaceChildren(el("p", { class: "empty", text: "no drops" }));
    return;
  }
  const rows = [...by.entries()].sort((a, b) => b[1].n - a[1].n);
  const max = rows[0][1].n;
  box.replaceChildren(...rows.map(([reason, e]) => {
    const fg = el("div", { class: "bar-fg" });
    fg.style.width = `${Math.max(2, (100 * e.n) / max)}%`;
    return el("div", { class: "drop-row", title: e.ports.join("\n"), "data-reason": reason },
      el("span", { class: "mono", text: reason }),
      el("span", { class: "n", text: fmtCount(e.n) }),
      el("div", { class: "bar-bg" }, fg));
  }));
}

// ---------------------------------------------------------------- topology

async function refreshTopology() {
  let t;
  try {
    t = await getJSON("api/topology");
  } catch (e) {
    $("topology").replaceChildren(el("p", { class: "empty", text: String(e) }));
    return;
  }
  state.topology = t;
  renderCluster(t);
  const node = t.node ? `${t.node.node} · ` : "";
  $("node").textContent = `${node}v${t.version}`;
  // Redraw only when what is drawn changed (not for counters).
  const key = JSON.stringify([
    t.networks.map((n) => [n.name, n.subnet, n.gateway, n.driver, n.vni, n.icc, n.internal,
      n.endpoints.map((e) => [e.name, e.ip, e.kind, e.detached || ""])]),
    t.peers.map((p) => [p.name, p.vtep, p.state, p.network]),
    t.ports.filter((p) => p.kind === "vxlan").map((p) => [p.name, p.network]),
  ]);
  if (key !== state.topologyKey) {
    state.topologyKey = key;
    drawTopology(t);
  }
  updateTopologyRates();
}

function renderCluster(t) {
  const box = $("cluster");
  if (!t.node) {
    const statics = t.peers.filter((p) => p.state === "static");
    box.replaceChildren(el("p", { class: "empty", text: statics.length
      ? `not in a cluster; ${statics.length} static peer(s)` : "not in a cluster" }));
    return;
  }
  const n = t.node;
  const dl = el("dl", { class: "kv" });
  for (const [k, v] of [["node", n.node], ["gossip", n.gossip], ["vtep", n.vtep],
    ["alive", String(n.nodes_alive)], ["leases", (n.leases || []).join(", ") || "-"]]) {
    dl.append(el("dt", { text: k }), el("dd", { text: v }));
  }
  const nodes = t.peers.filter((p) => p.state !== "static").map((p) =>
    el("div", { class: "node-row" }, el("span", { class: `dot ${p.state}` }),
      el("span", { class: "mono", text: p.name }),
      el("span", { class: "muted", text: `${p.state} · heard ${fmtSeconds(p.last_heard_seconds)} ago` })));
  box.replaceChildren(dl, ...nodes);
}

/** Where a tunnel port leads: the peer whose VTEP address its name ends with. */
function peerOfTunnel(port, peers) {
  const addr = port.name.replace(/^vx\d+-/, "");
  return peers.find((p) => p.vtep.split(":")[0] === addr || p.vtep === addr);
}

function drawTopology(t) {
  const box = $("topology");
  state.topoRates.clear();
  const nets = t.networks;
  const peers = t.peers;
  const tunnels = t.ports.filter((p) => p.kind === "vxlan" && p.network !== "-");
  $("topo-summary").textContent =
    `${nets.length} network(s) · ${nets.reduce((a, n) => a + n.endpoints.length, 0)} endpoint(s)` +
    (peers.length ? ` · ${peers.length} peer(s)` : "");
  if (nets.length === 0) {
    box.replaceChildren(el("p", { class: "empty", text: "no networks yet: weft network create NAME --subnet 10.1.0.0/24" }));
    return;
  }
  const W = Math.max(640, (box.clientWidth || 900) - 2);
  const NET_W = 226, CHIP_W = 172, CHIP_H = 46, GAP = 14, NODE_W = peers.length ? 190 : 0;
  const laneW = W - NET_W - NODE_W - 40;
  const perRow = Math.max(1, Math.floor((laneW + GAP) / (CHIP_W + GAP)));
  const s = svg("svg", { width: W, role: "img", "aria-label": "topology" });
  const wires = svg("g"); // drawn first: below the chips
  s.append(wires);
  const tunnelAt = new Map(); // tunnel port name -> its chip's right edge centre
  let y = 12;
  for (const n of nets) {
    const members = n.endpoints.map((e) => ({ kind: "ep", e }))
      .concat(tunnels.filter((p) => p.network === n.name).map((p) => ({ kind: "tun", p })));
    const rows = Math.max(1, Math.ceil(members.length / perRow));
    const h = rows * (CHIP_H + 30) + 14;
    const g = svg("g", { "data-network": n.name });
    // The network: a box on the left and a bus along its chips.
    const busY = y + h - 10;
    g.append(svg("rect", { class: "netbox", x: 8, y: y + 4, width: NET_W - 24, height: Math.min(h - 8, 74), rx: 8 }));
    g.append(svg("text", { class: "netname", x: 20, y: y + 24 }, n.name));
    g.append(svg("text", { class: "sub", x: 20, y: y + 41 }, `${n.subnet} · gw ${n.gateway}`));
    const flags = [n.driver === "overlay" ? `overlay vni ${n.vni}` : "bridge"];
    if (!n.icc) flags.push("icc off");
    if (n.internal) flags.push("internal");
    else if (n.nat === "none") flags.push("no nat");
    g.append(svg("text", { class: "sub", x: 20, y: y + 57 }, flags.join(" · ")));
    g.append(svg("line", { class: "bus", x1: NET_W - 16, y1: busY, x2: NET_W + Math.min(members.length, perRow) * (CHIP_W + GAP), y2: busY }));
    members.forEach((m, i) => {
      const cx = NET_W + (i % perRow) * (CHIP_W + GAP);
      const cy = y + 6 + Math.floor(i / perRow) * (CHIP_H + 30);
      const name = m.kind === "ep" ? m.e.name : m.p.name;
      const link = svg("path", { class: "link", d: `M${cx + CHIP_W / 2},${cy + CHIP_H} V${busY}` });
      g.append(link);
      const chip = svg("g", { "data-port": name, class: "port" });
      chip.append(svg("rect", { class: m.kind === "ep" ? "chip" : "chip tunnel", x: cx, y: cy, width: CHIP_W, height: CHIP_H, rx: 7 }));
      chip.append(svg("text", { x: cx + 10, y: cy + 17 }, name.length > 20 ? name.slice(0, 19) + "…" : name));
      const sub = m.kind === "ep" ? `${m.e.ip} · ${m.e.kind}` : "tunnel";
      chip.append(svg("text", { class: m.kind === "ep" && m.e.detached ? "sub bad" : "sub", x: cx + 10, y: cy + 31 }, m.kind === "ep" && m.e.detached ? "detached" : sub));
      const rate = svg("text", { class: "rate", x: cx + 10, y: cy + 42 }, "");
      chip.append(rate);
      chip.append(svg("title", {}, m.kind === "ep"
        ? `${m.e.name}\n${m.e.ip}/${m.e.prefix_len} ${m.e.mac}\nnamespace ${m.e.netns}, ${m.e.ifname} (${m.e.kind})`
        : `tunnel port ${name}`));
      g.append(chip);
      state.topoRates.set(name, { text: rate, link });
      if (m.kind === "tun") tunnelAt.set(name, { x: cx + CHIP_W, y: cy + CHIP_H / 2 });
    });
    s.append(g);
    y += h + 12;
  }
  // The other nodes and static peers, in a column on the right, wired to their tunnels.
  const nodeX = W - NODE_W - 8;
  peers.forEach((p, i) => {
    const ny = 12 + i * (CHIP_H + 14);
    const g = svg("g", { "data-peer": p.name });
    g.append(svg("rect", { class: "chip node", x: nodeX, y: ny, width: NODE_W, height: CHIP_H, rx: 7 }));
    g.append(svg("circle", { class: `state-${p.state}`, cx: nodeX + 14, cy: ny + 14, r: 5 }));
    g.append(svg("text", { x: nodeX + 26, y: ny + 18 }, p.name.length > 22 ? p.name.slice(0, 21) + "…" : p.name));
    g.append(svg("text", { class: "sub", x: nodeX + 12, y: ny + 36 }, `${p.state} · ${p.vtep}`));
    g.append(svg("title", {}, `${p.name}\nVTEP ${p.vtep}\n${p.state}, heard ${fmtSeconds(p.last_heard_seconds)} ago`));
    s.append(g);
    for (const tp of tunnels) {
      const at = tunnelAt.get(tp.name);
      if (!at || peerOfTunnel(tp, peers) !== p) continue;
      const mid = (at.x + nodeX) / 2;
      wires.append(svg("path", { class: "wire", d: `M${at.x},${at.y} C${mid},${at.y} ${mid},${ny + CHIP_H / 2} ${nodeX},${ny + CHIP_H / 2}` }));
    }
  });
  s.setAttribute("height", Math.max(y, 12 + peers.length * (CHIP_H + 14)) + 4);
  box.replaceChildren(s);
}

function updateTopologyRates() {
  for (const [name, t] of state.topoRates) {
    const p = state.ports.get(name);
    if (!p) continue;
    const pps = p.rates.rx_pps + p.rates.tx_pps;
    const imp = impairText(p.impair);
    t.text.textContent = p.link_down ? "link down" : imp ? imp : pps > 0 ? `${fmtPps(pps)} pkt/s · ${fmtBits(p.rates.rx_bps + p.rates.tx_bps).replace("bit/s", "b/s")}` : "idle";
    t.text.classList.toggle("hot", pps > 0);
    t.link.classList.toggle("hot", pps > 0);
    t.link.classList.toggle("impaired", !!imp);
    t.link.classList.toggle("down", !!p.link_down);
  }
}

// ---------------------------------------------------------------- trace

async function toggleTrace(port) {
  const running = state.trace;
  if (running) {
    running.abort.abort();
    state.trace = null;
    if (running.port === port) { renderPorts(); return; }
  }
  const abort = new AbortController();
  state.trace = { port, abort };
  // Still the trace on show (not replaced by another port's, nor stopped)?
  const mine = () => !state.trace || state.trace.abort === abort;
  renderPorts();
  const out = $("trace-out");
  $("trace-card").hidden = false;
  $("trace-port").textContent = port;
  $("trace-state").textContent = "starting…";
  $("trace-stop").disabled = false;
  out.replaceChildren();
  try {
    const r = await fetch(`api/ports/${encodeURIComponent(port)}/trace`, { signal: abort.signal });
    if (!r.ok) throw new Error(await r.text());
    $("trace-state").textContent = "streaming: frames entering the port appear here";
    const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
    let rest = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      const lines = (rest + value).split("\n");
      rest = lines.pop();
      appendTrace(out, lines);
    }
    if (mine()) $("trace-state").textContent = "ended";
  } catch (e) {
    if (mine()) $("trace-state").textContent = e.name === "AbortError" ? "stopped" : `failed: ${e.message}`;
  }
  if (mine()) $("trace-stop").disabled = true;
  if (state.trace && state.trace.abort === abort) {
    state.trace = null;
    renderPorts();
  }
}

/** A frame's header line with its Unix time ("1796311358.372077 web: …") in local time. */
function localTime(line) {
  const m = /^(\d{9,})\.(\d{6}) /.exec(line);
  if (!m) return line;
  const t = new Date(Number(m[1]) * 1000).toLocaleTimeString("en-GB", { hour12: false });
  return `${t}.${m[2]} ${line.slice(m[0].length)}`;
}

function appendTrace(out, lines) {
  const stick = out.scrollTop + out.clientHeight >= out.scrollHeight - 8;
  for (const line of lines) {
    const head = line && !line.startsWith(" ");
    const cls = head ? "head" : /dropped|refused/.test(line) ? "dropped" : "";
    out.append(el("span", { class: cls, text: (head ? localTime(line) : line) + "\n" }));
  }
  while (out.childNodes.length > 4000) out.firstChild.remove();
  if (stick) out.scrollTop = out.scrollHeight;
}

// ---------------------------------------------------------------- tables

const TABLES = {
  fdb: { path: "api/fdb", cols: [["network"], ["mac", "mono"], ["port"], ["origin"], ["age_seconds", "num", fmtSeconds]] },
  arp: { path: "api/arp", cols: [["network"], ["ip", "mono"], ["mac", "mono"], ["owner"], ["origin"]] },
  nat: { path: "api/nat", cols: [["protocol"], ["direction"], ["network"], ["container", "mono"], ["outside", "mono"], ["host_socket", "mono"],
    ["bytes_out", "num", fmtCount], ["bytes_in", "num", fmtCount], ["age_seconds", "num", fmtSeconds], ["idle_seconds", "num", fmtSeconds]] },
  networks: { path: "api/stats", cols: [["network"], ["fdb_entries", "num"], ["learned", "num"], ["mac_moves", "num"], ["learn_refused_table_full", "num"],
    ["aged_out", "num"], ["arp_suppressed", "num"], ["gateway_arp_replies", "num"], ["gateway_echo_replies", "num"]] },
  peers: { path: null, cols: [["name", "mono"], ["vtep", "mono"], ["vni", "num"], ["network"], ["state"], ["last_heard_seconds", "num", fmtSeconds],
    ["endpoints", "num"], ["rx_packets", "num", fmtCount], ["tx_packets", "num", fmtCount]] },
  drops: { path: null, cols: [["port", "mono"], ["network"], ["reason", "mono"], ["count", "num", fmtCount]] },
};

async function tableRows(tab) {
  if (tab === "peers") return state.topology ? state.topology.peers : [];
  if (tab === "drops") {
    const rows = [];
    for (const p of state.ports.values()) {
      for (const [reason, count] of Object.entries(p.drops || {})) rows.push({ port: p.name, network: p.network, reason, count });
    }
    return rows.sort((a, b) => b.count - a.count);
  }
  return getJSON(TABLES[tab].path);
}

async function renderTable() {
  const tab = state.tab;
  const spec = TABLES[tab];
  let rows;
  try {
    rows = await tableRows(tab);
  } catch (e) {
    rows = [];
    $("table-empty").textContent = String(e);
  }
  if (tab !== state.tab) return;
  const filter = $("filter").value.trim().toLowerCase();
  if (filter) rows = rows.filter((r) => JSON.stringify(r).toLowerCase().includes(filter));
  const table = $("table");
  table.setAttribute("data-table", tab);
  const head = el("tr", {}, ...spec.cols.map(([k, cls]) => el("th", { class: cls === "num" ? "num" : "", text: k.replace(/_/g, " ") })));
  table.tHead.replaceChildren(head);
  table.tBodies[0].replaceChildren(...rows.map((r) => el("tr", {}, ...spec.cols.map(([k, cls, f]) => {
    const v = r[k];
    return el("td", { class: cls || "", text: v == null ? "-" : f ? f(v) : String(v) });
  }))));
  $("table-empty").hidden = rows.length > 0;
  if (rows.length === 0 && !$("table-empty").textContent.includes(":")) $("table-empty").textContent = "nothing here yet";
}

function setupTabs() {
  for (const b of document.querySelectorAll(".tabs button")) {
    b.addEventListener("click", () => {
      state.tab = b.dataset.tab;
      for (const o of document.querySelectorAll(".tabs button")) o.classList.toggle("on", o === b);
      $("table-empty").textContent = "nothing here yet";
      renderTable();
    });
  }
  $("filter").addEventListener("input", () => renderTable());
}

// ---------------------------------------------------------------- start

function start() {
  setupTabs();
  $("trace-stop").addEventListener("click", () => {
    if (state.trace) toggleTrace(state.trace.port);
  });
  $("trace-clear").addEventListener("click", () => $("trace-out").replaceChildren());
  for (const id of ["cap-count", "cap-seconds"]) $(id).addEventListener("change", renderPorts);
  connectEvents();
  refreshTopology();
  renderTable();
  setInterval(refreshTopology, 3000);
  setInterval(() => { if (state.tab !== "drops") renderTable(); }, 2000);
  // Redraw when the drawing's box changes width (the window, a scrollbar coming).
  let width = 0, resize = 0;
  new ResizeObserver(([entry]) => {
    const w = Math.round(entry.contentRect.width);
    if (Math.abs(w - width) < 2) return;
    width = w;
    clearTimeout(resize);
    resize = setTimeout(() => { state.topologyKey = ""; refreshTopology(); }, 150);
  }).observe($("topology"));
}

start();
