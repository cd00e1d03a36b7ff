// The ring page: plain script, no build step, no downloads. It reads the
// admin API (/ring, /events, /plan) relative to its own address.

(() => {
  const $ = (selector) => document.querySelector(selector);
  const canvas = $("#ring");
  const ctx = canvas.getContext("2d");
  const tip = $("#tip");
  const escapeHtml = (text) =>
    String(text).replace(
      /[&<>"']/g,
      (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c],
    );

  /** What the page shows; replaced whole on every ring change. */
  let view = null;
  /** Per partition: 1 if the what-if plan would move its primary. */
  let planMask = null;
  /** Cells that moved in the last change, fading from white to their new colour. */
  let flash = null;
  let layout = { cols: 1, rows: 1, cell: 1, gap: 0 };
  const totalsBefore = { at: 0, totals: new Map() };
  const timings = {};
  let resolveReady;
  const ready = new Promise((resolve) => {
    resolveReady = resolve;
  });
  window.ringPage = {
    ready,
    timings,
    colorOf,
    layoutOf: () => layout,
    animating: () => flash !== null,
    /** Draws the ring once more; returns the milliseconds it took (for the page benchmark). */
    redraw: () => {
      const started = performance.now();
      draw();
      return performance.now() - started;
    },
  };

  // ---- colours: each member keeps the colour it was first given (golden-angle hues in order of
  // appearance), so a change recolours only the cells that moved.
  const colorCache = new Map();
  function colorOf(name) {
    let rgb = colorCache.get(name);
    if (rgb === undefined) {
      const i = colorCache.size;
      const hue = ((i * 137.508 + 200) % 360) / 360;
      const light = [0.5, 0.38, 0.62][Math.floor(i / 7) % 3];
      rgb = hslToRgb(hue, 0.62, light);
      colorCache.set(name, rgb);
    }
    return rgb;
  }
  function hslToRgb(h, s, l) {
    const q = l < 0.5 ? l * (1 + s) : l + s - l * s;
    const p = 2 * l - q;
    const channel = (t) => {
      const u = t < 0 ? t + 1 : t > 1 ? t - 1 : t;
      if (u < 1 / 6) return p + (q - p) * 6 * u;
      if (u < 1 / 2) return q;
      if (u < 2 / 3) return p + (q - p) * (2 / 3 - u) * 6;
      return p;
    };
    return [channel(h + 1 / 3), channel(h), channel(h - 1 / 3)].map((v) => Math.round(v * 255));
  }
  const hex = ([r, g, b]) => `#${((1 << 24) | (r << 16) | (g << 8) | b).toString(16).slice(1)}`;
  /** ImageData's Uint32 layout on little-endian machines: ABGR. */
  const pack = ([r, g, b]) => ((255 << 24) | (b << 16) | (g << 8) | r) >>> 0;
  const mix = ([r, g, b], [r2, g2, b2], t) => [r + (r2 - r) * t, g + (g2 - g) * t, b + (b2 - b) * t].map(Math.round);

  // ---- loading the ring
  async function fetchJson(path) {
    const response = await fetch(path, { cache: "no-store" });
    const body = await response.json();
    if (!response.ok) throw Object.assign(new Error(body.message || response.statusText), { body });
    return body;
  }

  let refreshing = null;
  let refreshAgain = false;
  /** Reloads the ring; changes that arrive meanwhile coalesce into one more reload. */
  function refresh() {
    if (refreshing) {
      refreshAgain = true;
      return refreshing;
    }
    refreshing = (async () => {
      try {
        do {
          refreshAgain = false;
          await load();
        } while (refreshAgain);
      } finally {
        refreshing = null;
      }
    })();
    return refreshing;
  }

  async function load() {
    const started = performance.now();
    const ring = await fetchJson("ring?table=compact");
    const fetched = performance.now();
    const previous = view;
    renderRouting(ring);
    if (previous && previous.checksum === ring.checksum) return;
    const P = ring.config.partitions;
    const oc = ring.ownerCount;
    const table = Int32Array.from(ring.table);
    const primaries = new Int32Array(P).fill(-1);
    if (oc > 0) for (let p = 0; p < P; p++) primaries[p] = table[p * oc];
    view = {
      checksum: ring.checksum,
      config: ring.config,
      names: ring.ringMembers,
      ownerCount: oc,
      table,
      primaries,
      colors: Uint32Array.from(ring.ringMembers, (name) => pack(colorOf(name))),
      members: ring.members,
      source: ring.source,
    };
    if (previous && previous.config.partitions === P) {
      const moved = new Uint8Array(P);
      let count = 0;
      for (let p = 0; p < P; p++) {
        const was = previous.primaries[p] < 0 ? null : previous.names[previous.primaries[p]];
        const now = primaries[p] < 0 ? null : view.names[primaries[p]];
        if (was !== now) {
          moved[p] = 1;
          count++;
        }
      }
      flash = count > 0 ? { moved, start: performance.now() } : null;
    }
    planMask = null;
    $("#plan").replaceChildren();
    layout = layoutFor(P);
    const drawStart = performance.now();
    draw();
    const drawn = performance.now();
    renderConfig();
    renderMembers(ring.members);
    renderSource(ring.source);
    const rendered = performance.now();
    renderOwners();
    Object.assign(timings, {
      fetchMs: fetched - started,
      drawMs: drawn - drawStart,
      totalMs: rendered - started,
    });
    document.body.dataset.checksum = view.checksum;
    if (flash) requestAnimationFrame(animate);
  }

  function layoutFor(partitions) {
    const width = Math.max(256, Math.min(900, $("#canvas-wrap").clientWidth || 768));
    const cols = Math.ceil(Math.sqrt(partitions));
    const rows = Math.ceil(partitions / cols);
    const cell = Math.max(1, Math.min(24, Math.floor(width / cols)));
    return { cols, rows, cell, gap: cell >= 5 ? 1 : 0 };
  }

  // ---- drawing: one pixel buffer for every cell, so P = 65,536 is one putImageData
  const white = [255, 255, 255];
  function draw(now = performance.now()) {
    const { cols, rows, cell, gap } = layout;
    const width = cols * cell;
    const height = rows * cell;
    if (canvas.width !== width || canvas.height !== height) {
      canvas.width = width;
      canvas.height = height;
    }
    const image = ctx.createImageData(width, height);
    const pixels = new Uint32Array(image.data.buffer);
    pixels.fill(pack([238, 238, 238]));
    const P = view.config.partitions;
    const size = cell - gap;
    const fade = flash ? Math.min(1, (now - flash.start) / 1200) : 1;
    const empty = pack([200, 200, 200]);
    for (let p = 0; p < P; p++) {
      const owner = view.primaries[p];
      let color = owner < 0 ? empty : view.colors[owner];
      if (planMask && !planMask[p]) color = dim(color);
      else if (flash && fade < 1 && flash.moved[p]) color = pack(mix(white, unpack(color), fade));
      const x0 = (p % cols) * cell;
      const y0 = Math.floor(p / cols) * cell;
      for (let dy = 0; dy < size; dy++) {
        const row = (y0 + dy) * width + x0;
        for (let dx = 0; dx < size; dx++) pixels[row + dx] = color;
      }
    }
    ctx.putImageData(image, 0, 0);
  }
  const unpack = (c) => [c & 255, (c >>> 8) & 255, (c >>> 16) & 255];
  const dim = (c) => pack(mix(unpack(c), [245, 245, 245], 0.8));

  function animate(now) {
    if (!flash) return;
    draw(now);
    if (now - flash.start < 1200) requestAnimationFrame(animate);
    else flash = null;
  }

  // ---- hover: partition and owners in replica order
  canvas.addEventListener("mousemove", (event) => {
    if (!view) return;
    const rect = canvas.getBoundingClientRect();
    const x = Math.floor(((event.clientX - rect.left) * canvas.width) / rect.width / layout.cell);
    const y = Math.floor(((event.clientY - rect.top) * canvas.height) / rect.height / layout.cell);
    const p = y * layout.cols + x;
    if (x >= layout.cols || p >= view.config.partitions || p < 0) {
      tip.hidden = true;
      return;
    }
    const owners = ownersOf(p);
    tip.innerHTML =
      `<strong>partition ${p}</strong><br>` +
      (owners.length === 0
        ? "no owner"
        : owners
            .map(
              (name, rank) =>
                `${rank === 0 ? "primary" : `replica ${rank}`}: <span class="swatch" style="background:${hex(colorOf(name))}"></span> ${escapeHtml(name)}`,
            )
            .join("<br>"));
    tip.hidden = false;
    showExamples(p);
    const left = event.clientX - rect.left + 14;
    tip.style.left = `${Math.min(left, rect.width - tip.offsetWidth - 4)}px`;
    tip.style.top = `${event.clientY - rect.top + 14}px`;
  });
  canvas.addEventListener("mouseleave", () => {
    tip.hidden = true;
  });
  // Example keys of the hovered partition, asked of the server (it hashes as the proxy does), once per partition and ring.
  const examples = new Map();
  function showExamples(p) {
    const key = `${view.checksum}/${p}`;
    const known = examples.get(key);
    const line = (keys) => {
      if (tip.hidden || tip.dataset.partition !== String(p)) return;
      tip.querySelector(".examples")?.remove();
      if (keys.length === 0) return;
      const div = document.createElement("div");
      div.className = "examples";
      div.textContent = `keys here: ${keys.join(", ")}`;
      tip.appendChild(div);
    };
    tip.dataset.partition = String(p);
    if (known) {
      line(known);
      return;
    }
    fetch(`partition?p=${p}`)
      .then((res) => (res.ok ? res.json() : { examples: [] }))
      .then((body) => {
        examples.set(key, body.examples);
        line(body.examples);
      })
      .catch(() => {});
  }
  function ownersOf(p, shown = view) {
    const owners = [];
    for (let r = 0; r < shown.ownerCount; r++) owners.push(shown.names[shown.table[p * shown.ownerCount + r]]);
    return owners;
  }

  // ---- text views
  function renderConfig() {
    const { partitions, replicas, hash, placement, order, ...rest } = view.config;
    const items = { partitions, replicas, hash, placement, order, ...rest, checksum: view.checksum };
    $("#config").innerHTML = Object.entries(items)
      .map(([k, v]) => `<div><dt>${escapeHtml(k)}</dt><dd id="config-${escapeHtml(k)}">${escapeHtml(v)}</dd></div>`)
      .join("");
  }

  /**
   * What the proxy routes by: the routing table's checksum (equal to the
   * ring's once every slot is ready), slots ready / moving / none ready, the
   * version and etcd revision, and why hand-offs cannot start, if so. While
   * slots are in hand-off (no ring event marks their progress) it is read
   * again every second.
   */
  let routingTimer = 0;
  function renderRouting(ring) {
    const routing = ring.routing;
    const el = $("#routing");
    if (!routing) return;
    const settled = routing.checksum === ring.checksum;
    const { ready, moving, none } = routing.slots;
    const where = routing.version === null ? "" : ` · version ${routing.version} · revision ${routing.revision}`;
    el.textContent =
      `routing ${routing.checksum}${settled ? " (= ring)" : ""} · ready ${ready} · moving ${moving} · none ready ${none}${where}` +
      (routing.stalled ? ` — ${routing.stalled}` : "");
    el.dataset.checksum = routing.checksum;
    el.classList.toggle("down", Boolean(routing.stalled) || none > 0);
    clearTimeout(routingTimer);
    if (!settled || routing.stalled) routingTimer = setTimeout(() => refresh(), 1000);
  }

  function renderSource(source) {
    const el = $("#source");
    el.textContent = `source ${source.kind}: ${source.up ? "up" : `down${source.since ? ` since ${source.since}` : ""}${source.error ? ` (${source.error})` : ""}`}`;
    el.classList.toggle("down", !source.up);
  }

  /**
   * The owners list: one item per partition, owners in replica order, for
   * screen readers and tests; inside a closed <details> it costs no layout.
   * Written in slices between frames, so the canvas and the page stay
   * responsive at P = 65,536, and marked with the ring's checksum when whole.
   */
  let ownersGeneration = 0;
  function renderOwners() {
    const generation = ++ownersGeneration;
    const started = performance.now();
    const shown = view;
    const list = $("#owners");
    list.replaceChildren();
    delete list.dataset.checksum;
    const P = shown.config.partitions;
    const slice = 4096;
    const write = (from) => {
      if (generation !== ownersGeneration) return;
      const to = Math.min(P, from + slice);
      const items = [];
      for (let p = from; p < to; p++) {
        const owners = ownersOf(p, shown);
        items.push(
          `<li data-partition="${p}" data-owners="${escapeHtml(JSON.stringify(owners))}">${escapeHtml(owners.join(", "))}</li>`,
        );
      }
      list.insertAdjacentHTML("beforeend", items.join(""));
      if (to < P) {
        setTimeout(() => write(to), 0);
      } else {
        list.dataset.checksum = shown.checksum;
        timings.ownersListMs = performance.now() - started;
      }
    };
    write(0);
  }

  /** Where the proxy's routing differs from the ring for a member: slots it is routed now, and those it keeps as old owner. */
  function routedNote(m) {
    if (!m.routed || m.handoff === 0) return "";
    return ` <small class="routed">routed ${m.routed.ready}${m.routed.moving ? ` + ${m.routed.moving} moving` : ""}</small>`;
  }

  function renderMembers(members) {
    const now = performance.now();
    const seconds = totalsBefore.at === 0 ? 0 : (now - totalsBefore.at) / 1000;
    const rate = (name, field, value) => {
      const before = totalsBefore.totals.get(name);
      if (!seconds || before === undefined) return "–";
      return ((value - before[field]) / seconds).toFixed(1);
    };
    const rows = members.map((m) => {
      const color = m.inRing ? hex(colorOf(m.name)) : "transparent";
      return `<tr data-member="${escapeHtml(m.name)}" data-color="${color}" data-status="${m.status}">
<td><span class="swatch" style="background:${color}"></span></td>
<td>${escapeHtml(m.name)}</td><td class="url">${escapeHtml(m.url)}</td>
<td><span class="state ${m.status}">${m.status}</span></td>
<td class="num" data-partitions="${escapeHtml(JSON.stringify(m.partitions))}" data-routed="${escapeHtml(JSON.stringify(m.routed ?? null))}">${m.partitions.join(" / ") || "–"}${routedNote(m)}</td>
<td class="num">${rate(m.name, "requests", m.requests)}</td><td class="num">${rate(m.name, "errors", m.errors)}</td></tr>`;
    });
    $("#members tbody").innerHTML = rows.join("");
    totalsBefore.at = now;
    totalsBefore.totals = new Map(members.map((m) => [m.name, { requests: m.requests, errors: m.errors }]));
  }

  // Rates come from the proxy's own counters, read every two seconds.
  async function poll() {
    try {
      const ring = await fetchJson("ring?table=false");
      if (view && ring.checksum === view.checksum) {
        renderMembers(ring.members);
        renderSource(ring.source);
        renderRouting(ring);
      } else {
        await refresh();
      }
    } catch {
      // The next poll tries again.
    }
    setTimeout(poll, 2000);
  }

  // ---- live changes
  function logChange(summary) {
    const who = [...summary.added.map((m) => `+${m}`), ...summary.removed.map((m) => `−${m}`)].join(" ");
    const moved = summary.moved
      ? `${summary.moved.primaries} partitions moved${summary.timesOptimum === null ? "" : ` (${summary.timesOptimum.toFixed(2)}× optimum)`}`
      : "config changed";
    const li = document.createElement("li");
    li.innerHTML = `<time>${new Date().toLocaleTimeString()}</time> ${escapeHtml(who || "members changed")}: ${escapeHtml(moved)}, ${summary.size} members`;
    li.dataset.checksum = summary.checksum;
    li.dataset.moved = summary.moved ? summary.moved.primaries : "";
    const log = $("#log");
    log.prepend(li);
    while (log.children.length > 200) log.lastChild.remove();
  }

  function follow() {
    const events = new EventSource("events");
    events.addEventListener("ring", (event) => {
      logChange(JSON.parse(event.data));
      refresh();
    });
    events.addEventListener("reset", () => refresh());
    events.addEventListener("source", (event) => {
      const data = JSON.parse(event.data);
      renderSource({ kind: view?.source.kind ?? "source", up: data.up, since: data.since, error: data.error });
    });
  }

  // ---- what if
  $("#whatif").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = new FormData(event.target);
    const query = new URLSearchParams({ add: form.get("add").trim(), remove: form.get("remove").trim() });
    const out = $("#plan");
    try {
      const plan = await fetchJson(`plan?${query}`);
      planMask = new Uint8Array(plan.partitions);
      for (const p of plan.movedPartitions) planMask[p] = 1;
      const ratio = plan.optimal_primaries === 0 ? "–" : (plan.moved_primaries / plan.optimal_primaries).toFixed(2);
      const changed = Object.entries(plan.members).filter(([, m]) => m.before !== m.after);
      out.innerHTML = `<dl>
<dt>moved primaries</dt><dd id="plan-moved">${plan.moved_primaries}</dd>
<dt>optimal primaries</dt><dd id="plan-optimal">${plan.optimal_primaries}</dd>
<dt>× optimum</dt><dd id="plan-ratio">${ratio}</dd>
<dt>moved replica slots</dt><dd id="plan-slots">${plan.moved_replica_slots}</dd>
</dl>
<table id="plan-members"><thead><tr><th>member</th><th class="num">before</th><th class="num">after</th></tr></thead><tbody>
${changed
  .slice(0, 50)
  .map(
    ([name, m]) =>
      `<tr data-member="${escapeHtml(name)}"><td>${escapeHtml(name)}</td><td class="num">${m.before}</td><td class="num">${m.after}</td></tr>`,
  )
  .join("")}</tbody></table>`;
      out.dataset.plan = JSON.stringify(plan, (key, value) => (key === "movedPartitions" ? undefined : value));
    } catch (error) {
      planMask = null;
      out.innerHTML = `<p class="error">${escapeHtml(error.message)}</p>`;
    }
    if (view) draw();
  });
  $("#whatif-clear").addEventListener("click", () => {
    planMask = null;
    $("#plan").replaceChildren();
    $("#whatif").reset();
    if (view) draw();
  });

  // ---- start
  follow();
  refresh().then(
    () => {
      timings.firstRenderMs = performance.now();
      resolveReady();
      setTimeout(poll, 2000);
    },
    (error) => {
      $("#source").textContent = `cannot load the ring: ${error.message}`;
      setTimeout(poll, 2000);
    },
  );
})();
