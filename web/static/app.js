// The aivis web view: every number comes from the read API (api/v1/…) and
// is shown as the API gives it; money is an exact decimal string, rounded
// to cents only for display (the exact value stays in data-usd).
"use strict";

const palette = ["#3366cc", "#dc3912", "#ff9900", "#109618", "#990099", "#0099c6", "#dd4477", "#66aa00", "#b82e2e", "#316395", "#994499"];

function rangeQuery(extra) {
  const p = new URLSearchParams(location.search);
  const q = new URLSearchParams();
  for (const k of ["from", "until", "since"]) if (p.get(k)) q.set(k, p.get(k));
  if (!q.get("from") && !q.get("since")) q.set("since", document.getElementById("since").value);
  for (const [k, v] of Object.entries(extra || {})) q.set(k, v);
  return q.toString();
}

async function api(path, extra) {
  const res = await fetch("api/v1/" + path + "?" + rangeQuery(extra));
  const body = await res.json();
  if (!res.ok) throw new Error(path + ": " + (body.error || res.status));
  return body;
}

// usd rounds an exact decimal string to cents without going through a
// float: "12.345678" → "$12.35".
function usd(s) {
  const neg = s.startsWith("-");
  let [whole, frac = ""] = (neg ? s.slice(1) : s).split(".");
  frac = (frac + "000").slice(0, 3);
  let cents = BigInt(whole) * 100n + BigInt(frac.slice(0, 2));
  if (Number(frac[2]) >= 5) cents += 1n;
  const w = (cents / 100n).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  return (neg ? "-$" : "$") + w + "." + (cents % 100n).toString().padStart(2, "0");
}

// label names a row for display: GPU time has no provider or model.
const label = k => (k === "/" ? "GPU time (no model)" : k);
const int = n => Number(n).toLocaleString("en-US");
const num = s => Number(s); // for chart geometry only

function cell(tr, text, cls, attrs) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  for (const [k, v] of Object.entries(attrs || {})) td.setAttribute(k, v);
  tr.appendChild(td);
}

function table(id, head, rows, fill) {
  const t = document.getElementById(id);
  t.replaceChildren();
  const hr = document.createElement("tr");
  for (const [h, n] of head) {
    const th = document.createElement("th");
    th.textContent = h;
    if (n) th.className = "num";
    hr.appendChild(th);
  }
  t.appendChild(hr);
  if (rows.length === 0) {
    const tr = document.createElement("tr");
    cell(tr, "none in this range", "empty", { colspan: head.length });
    t.appendChild(tr);
    return;
  }
  for (const r of rows) {
    const tr = document.createElement("tr");
    fill(tr, r);
    t.appendChild(tr);
  }
}

const charts = {};
function draw(id, config) {
  if (charts[id]) charts[id].destroy();
  config.options = Object.assign({ responsive: true, maintainAspectRatio: false, animation: false }, config.options);
  charts[id] = new Chart(document.getElementById(id), config);
}

function bars(id, labels, values, label) {
  draw(id, {
    type: "bar",
    data: { labels, datasets: [{ label, data: values, backgroundColor: palette[0] }] },
    options: { indexAxis: "y", plugins: { legend: { display: false } } },
  });
}

function spendSection(by, title) {
  return api("spend", { by, limit: 8 }).then(body => {
    bars("chart-" + by + "s", body.rows.map(r => label(r.key)), body.rows.map(r => num(r.cost_usd)), "cost (USD)");
    table("table-" + by + "s", [[title], ["requests", 1], ["cost", 1]], body.rows, (tr, r) => {
      cell(tr, label(r.key), "key");
      cell(tr, int(r.requests), "num");
      cell(tr, usd(r.cost_usd), "num cost", { "data-usd": r.cost_usd, "data-key": r.key });
    });
  });
}

async function load() {
  const status = document.getElementById("status");
  status.dataset.state = "loading";
  status.textContent = "loading…";
  try {
    const summary = await api("summary");
    const t = summary.totals;
    const total = document.getElementById("total-cost");
    total.textContent = usd(t.cost_usd);
    total.dataset.usd = t.cost_usd;
    document.getElementById("total-requests").textContent = int(t.requests);
    document.getElementById("total-tokens").textContent = int(t.input_tokens) + " / " + int(t.output_tokens);
    document.getElementById("latest-window").textContent = summary.latest_window ? summary.latest_window.replace("T", " ").replace(":00Z", " UTC") : "no data";

    const series = await api("spend/series", { by: "team", limit: 6 });
    const times = [...new Set(series.series.flatMap(s => s.points.map(p => p.time)))].sort();
    draw("chart-series", {
      type: "line",
      data: {
        // Times of day; with the date when the range spans days.
        labels: times.map(x => (Date.parse(series.until) - Date.parse(series.from) > 864e5 ? x.slice(5, 16).replace("T", " ") : x.slice(11, 16))),
        datasets: series.series.map((s, i) => {
          const at = new Map(s.points.map(p => [p.time, num(p.cost_usd)]));
          return { label: s.key, data: times.map(x => at.get(x) || 0), borderColor: palette[i % palette.length],
            backgroundColor: palette[i % palette.length] + "55", fill: true, pointRadius: 0, tension: .2 };
        }),
      },
      options: { scales: { y: { stacked: true, title: { display: true, text: "USD per " + series.step_seconds / 60 + " min" } } } },
    });

    await Promise.all([spendSection("team", "team"), spendSection("project", "team/project"), spendSection("model", "model")]);

    const budgets = await api("budgets");
    // Burn as a share of each budget's amount, so budgets of any size
    // compare; the table has the dollars.
    const pct = (v, b) => (num(b.amount_usd) > 0 ? (100 * v) / num(b.amount_usd) : 0);
    draw("chart-budgets", {
      type: "bar",
      data: {
        labels: budgets.budgets.map(b => b.budget),
        datasets: [
          { label: "spent % of amount", data: budgets.budgets.map(b => pct(num(b.spent_usd), b)), backgroundColor: palette[0] },
          { label: "forecast % of amount", data: budgets.budgets.map(b => pct(num(b.forecast_usd), b)), backgroundColor: palette[2] },
        ],
      },
      options: { indexAxis: "y", scales: { x: { suggestedMax: 100, title: { display: true, text: "% of the period's amount" } } } },
    });
    table("table-budgets", [["budget"], ["period"], ["state"], ["spent", 1], ["amount", 1]], budgets.budgets, (tr, b) => {
      cell(tr, b.budget, "key");
      cell(tr, b.period);
      cell(tr, b.state);
      cell(tr, usd(b.spent_usd), "num cost", { "data-usd": b.spent_usd, "data-key": b.budget });
      cell(tr, usd(b.amount_usd), "num");
    });

    const gpu = await api("gpu", { limit: 8 });
    bars("chart-gpu", gpu.teams.map(g => g.team), gpu.teams.map(g => num(g.cost_usd)), "GPU cost (USD)");
    table("table-gpu", [["team"], ["GPU-hours", 1], ["busy", 1], ["cost", 1]], gpu.teams, (tr, g) => {
      cell(tr, g.team, "key");
      cell(tr, (g.allocated_gpu_seconds / 3600).toFixed(1), "num");
      cell(tr, Math.round(g.efficiency * 100) + "%", "num");
      cell(tr, usd(g.cost_usd), "num cost", { "data-usd": g.cost_usd, "data-key": g.team });
    });

    const an = await api("anomalies", { limit: 10 });
    table("table-anomalies", [["window"], ["team"], ["model"], ["cost", 1], ["baseline", 1], ["z", 1]], an.anomalies, (tr, a) => {
      cell(tr, a.window_start.replace("T", " ").replace(":00Z", ""));
      cell(tr, a.team, "key");
      cell(tr, a.model || "GPU time");
      cell(tr, usd(a.cost_usd), "num cost", { "data-usd": a.cost_usd, "data-key": a.team + "/" + a.model });
      cell(tr, usd(a.baseline_usd), "num");
      cell(tr, a.z_score.toFixed(1), "num");
    });
    status.dataset.state = "ready";
    status.textContent = "updated " + new Date().toISOString().slice(11, 19) + " UTC";
  } catch (e) {
    status.dataset.state = "error";
    status.textContent = String(e.message || e);
  }
}

document.getElementById("since").addEventListener("change", load);
const initial = new URLSearchParams(location.search).get("since");
if (initial) document.getElementById("since").value = initial;
load();
