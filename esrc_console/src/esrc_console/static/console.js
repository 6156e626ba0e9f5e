// esrc console: keeps the relays page live. Every data-refresh seconds it reads
// /api/relays, rewrites the relays table and redraws both charts (inline SVG).
// The page works without this file; it only saves reloading.
"use strict";

(function () {
  const view = document.getElementById("relays-view");
  if (!view) {
    return;
  }
  const refresh = Math.max(Number(view.dataset.refresh) || 5, 0.1) * 1000;
  const colors = ["#2f6fde", "#d9480f", "#2b8a3e", "#862e9c", "#e67700", "#0b7285", "#c2255c"];
  const svgNs = "http://www.w3.org/2000/svg";
  const dash = "\u2014";

  function cell(row, name, text) {
    const td = document.createElement("td");
    td.className = name;
    td.textContent = text;
    row.appendChild(td);
  }

  function drawTable(relays) {
    const body = document.querySelector("table#relays tbody");
    if (!body) {
      return;
    }
    const rows = relays.map(function (relay) {
      const tr = document.createElement("tr");
      tr.className = "relay";
      cell(tr, "name", relay.name);
      cell(tr, "position", relay.position.toLocaleString("en-US"));
      cell(tr, "pending", relay.pending.toLocaleString("en-US"));
      cell(tr, "oldest-pending-age", relay.oldest_pending_age);
      cell(tr, "lock-holder", relay.lock_holder || dash);
      return tr;
    });
    body.replaceChildren.apply(body, rows);
  }

  function element(name, attributes) {
    const node = document.createElementNS(svgNs, name);
    Object.keys(attributes).forEach(function (key) {
      node.setAttribute(key, String(attributes[key]));
    });
    return node;
  }

  // series: {name: [[time (ms), value], ...]}
  function drawChart(id, series, samples, unit) {
    const svg = document.getElementById(id);
    if (!svg) {
      return;
    }
    const width = 900, height = 220, pad = 36;
    const all = Object.values(series).flat();
    const xs = all.map(function (p) { return p[0]; });
    const ys = all.map(function (p) { return p[1]; });
    const x0 = xs.length ? Math.min.apply(null, xs) : 0;
    const x1 = xs.length ? Math.max.apply(null, xs) : 1;
    const top = (ys.length ? Math.max.apply(null, ys) : 0) || 1;
    const span = (x1 - x0) || 1;
    svg.replaceChildren();
    svg.appendChild(element("line", {x1: pad, y1: height - pad, x2: width - pad, y2: height - pad, stroke: "#99a"}));
    const scale = element("text", {x: 4, y: 14, "font-size": 12});
    scale.textContent = Math.round(top).toLocaleString("en-US") + " " + unit;
    svg.appendChild(scale);
    const legend = element("text", {x: pad, y: height - 8, "font-size": 12});
    const lines = element("g", {"class": "lines"});
    Object.keys(series).forEach(function (name, n) {
      const color = colors[n % colors.length];
      const points = series[name].map(function (p) {
        const x = pad + (p[0] - x0) / span * (width - 2 * pad);
        const y = height - pad - p[1] / top * (height - 2 * pad);
        return x.toFixed(1) + "," + y.toFixed(1);
      }).join(" ");
      lines.appendChild(element("polyline", {fill: "none", stroke: color, "stroke-width": 2, points: points}));
      const key = element("tspan", {fill: color});
      key.textContent = "\u25a0 " + name + " ";
      legend.appendChild(key);
    });
    svg.appendChild(legend);
    svg.appendChild(lines);
    svg.setAttribute("data-samples", String(samples));
  }

  function draw(document_) {
    drawTable(document_.relays);
    const lag = {};
    document_.samples.forEach(function (sample) {
      const at = Date.parse(sample.at);
      Object.keys(sample.relays).forEach(function (name) {
        (lag[name] = lag[name] || []).push([at, sample.relays[name].pending]);
      });
    });
    const rates = {events: document_.rates.map(function (r) { return [Date.parse(r.at), r.per_minute]; })};
    drawChart("lag-chart", lag, document_.seq, "pending");
    drawChart("rate-chart", rates, document_.seq, "events/min");
  }

  function poll() {
    fetch("/api/relays", {credentials: "same-origin", headers: {Accept: "application/json"}})
      .then(function (response) {
        if (!response.ok) {
          throw new Error("GET /api/relays: " + response.status);
        }
        return response.json();
      })
      .then(draw)
      .catch(function (error) {
        console.warn(error);
      })
      .finally(function () {
        window.setTimeout(poll, refresh);
      });
  }

  window.setTimeout(poll, refresh);
})();
