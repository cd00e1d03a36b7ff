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
  /** Cells that moved in the last change: bright while the rest are dimmed, for `highlightMs`. */
  let flash = null;
  /** How long moved cells stay highlighted after a change (`?highlight=MS` sets it). */
  const highlightMs = Number(new URLSearchParams(location.search).get("highlight")) || 4000;
  /** The member whose partitions are highlighted (chosen in the table or on the map), or null. */
  let selected = null;
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
    /** Partitions highlighted as moved by the last change, while they are. */
    highlighted: () => (flash ? [...flash.moved.keys()].filter((p) => flash.moved[p]) : []),
    selected: () => selected,
    /** How (partition, rank) is routed as shown: "ready", "moving" or "none" (under hand-offs), with its member or null. */
    slot: (p, r = 0) => {
      const i = p * view.ownerCount + r;
      const state = view.states ? slotStates[view.states[i]] : "ready";
      return { member: view.table[i] < 0 ? null : view.names[view.table[i]], state };
    },
    /** Draws the ring once more; returns the milliseconds it took (for the page benchmark). */
    redraw: () => {
      const started = performance.now();
      draw();
      return performance.now() - started;
    },
  };

  // ---- colours: a pure function of the member's name (FNV-1a over its UTF-8 bytes picks one of
  // 72 colours: 24 hues 15° apart in three lightnesses, so two members never get colours closer
  // than that), so a member has the same colour after a reload, a change, in another browser and
  // on another proxy; a change recolours only the cells that moved.
  const colorCache = new Map();
  const utf8 = new TextEncoder();
  function nameHash(name) {
    let h = 0x811c9dc5;
    for (const byte of utf8.encode(name)) h = Math.imul(h ^ byte, 0x01000193) >>> 0;
    // A final mix, so names that differ in their last byte land far apart.
    h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
    return Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
  }
  function colorOf(name) {
    let rgb = colorCache.get(name);
    if (rgb === undefined) {
      const slot = nameHash(name) % 72;
      const hue = ((slot % 24) * 15 + 5) / 360;
      const light = [0.5, 0.36, 0.64][Math.floor(slot / 24)];
      rgb = hslToRgb(hue, 0.65, light);
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
    // Under coordinated hand-offs the map shows what is routed (`routed`), which may trail the ring.
    const routed = ring.routed;
    const checksum = routed ? routed.checksum : ring.checksum;
    if (previous && previous.checksum === checksum) return;
    const P = ring.config.partitions;
    const oc = ring.ownerCount;
    const names = routed ? routed.members : ring.ringMembers;
    const table = Int32Array.from(routed ? routed.table : ring.table);
    const primaries = new Int32Array(P).fill(-1);
    if (oc > 0) for (let p = 0; p < P; p++) primaries[p] = table[p * oc];
    view = {
      checksum,
      /** The target ring's checksum, for the header; `checksum` is the routing table's under hand-offs. */
      ringChecksum: ring.checksum,
      config: ring.config,
      names,
      ownerCount: oc,
      table,
      /** Per slot: 0 ready, 1 moving, 2 none ready; null while every slot is ready (no hand-offs). */
      states: routed ? Uint8Array.from(routed.states) : null,
      primaries,
      colors: Uint32Array.from(names, (name) => pack(colorOf(name))),
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
    if (selected !== null && !view.names.includes(selected)) selected = null;
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

  /**
   * Applies a change from a `cells` event to the ring shown, when it is the
   * ring the change started from: members re-indexed by name, the moved
   * slots written, only the moved cells flashed. Anything else reloads.
   */
  function applyCells(change) {
    const previous = view;
    if (!previous || previous.checksum === change.checksum) return;
    if (
      change.slots === null ||
      previous.checksum !== change.previousChecksum ||
      previous.config.partitions !== change.partitions ||
      previous.ownerCount !== change.ownerCount ||
      refreshing
    ) {
      refresh();
      return;
    }
    const started = performance.now();
    const P = change.partitions;
    const oc = change.ownerCount;
    const names = change.ringMembers;
    const indexOf = new Map(names.map((name, i) => [name, i]));
    const remap = Int32Array.from(previous.names, (name) => indexOf.get(name) ?? -1);
    const table = new Int32Array(P * oc);
    for (let i = 0; i < table.length; i++) table[i] = previous.table[i] < 0 ? -1 : remap[previous.table[i]];
    // Routing changes carry each slot's state; a ring change leaves every slot ready.
    let states = null;
    if (change.states) states = previous.states ? previous.states.slice() : new Uint8Array(P * oc);
    const moved = new Uint8Array(P);
    const slots = change.slots;
    for (let i = 0; i < slots.length; i += 3) {
      const at = slots[i] * oc + slots[i + 1];
      table[at] = slots[i + 2];
      if (states) states[at] = change.states[i / 3];
      if (slots[i + 1] !== 0) continue;
      // A slot whose state changed under the same member (ready → moving) did not move.
      const was = previous.table[at] < 0 ? null : previous.names[previous.table[at]];
      const now = slots[i + 2] < 0 ? null : names[slots[i + 2]];
      if (was !== now) moved[slots[i]] = 1;
    }
    const primaries = new Int32Array(P);
    for (let p = 0; p < P; p++) primaries[p] = table[p * oc];
    view = {
      ...previous,
      checksum: change.checksum,
      names,
      table,
      states,
      primaries,
      colors: Uint32Array.from(names, (name) => pack(colorOf(name))),
      ringChecksum: change.coordinated ? previous.ringChecksum : change.checksum,
    };
    if (selected !== null && !indexOf.has(selected)) selected = null;
    flash = moved.some((m) => m === 1) ? { moved, start: performance.now() } : null;
    planMask = null;
    $("#plan").replaceChildren();
    draw();
    timings.applyMs = performance.now() - started;
    document.body.dataset.checksum = view.checksum;
    const shownChecksum = $("#config-checksum");
    if (shownChecksum) shownChecksum.textContent = view.ringChecksum;
    if (flash) requestAnimationFrame(animate);
    // The members table (loads, states) and the text list follow; the map is already right.
    fetchJson("ring?table=false")
      .then((ring) => {
        if ((ring.routing?.checksum ?? ring.checksum) !== view.checksum) return;
        view.ringChecksum = ring.checksum;
        view.config = ring.config;
        view.members = ring.members;
        renderConfig();
        renderMembers(ring.members);
        renderSource(ring.source);
        renderRouting(ring);
      })
      .catch(() => {});
    patchOwners(previous.checksum, slots);
  }

  /**
   * After a delta, rewrites only the moved partitions' items of a whole owners
   * list (rebuilding 65,536 items would hold the page up); a list that was
   * not whole yet is written again.
   */
  function patchOwners(previousChecksum, slots) {
    const list = $("#owners");
    if (list.dataset.checksum !== previousChecksum) {
      renderOwners();
      return;
    }
    const items = list.children;
    let last = -1;
    for (let i = 0; i < slots.length; i += 3) {
      const p = slots[i];
      if (p === last) continue;
      last = p;
      const owners = ownersOf(p, view);
      items[p].dataset.owners = JSON.stringify(owners);
      items[p].textContent = owners.join(", ");
    }
    list.dataset.checksum = view.checksum;
  }

  function layoutFor(partitions) {
    const width = Math.max(256, Math.min(900, $("#canvas-wrap").clientWidth || 768));
    const cols = Math.ceil(Math.sqrt(partitions));
    const rows = Math.ceil(partitions / cols);
    const cell = Math.max(1, Math.min(24, Math.floor(width / cols)));
    return { cols, rows, cell, gap: cell >= 5 ? 1 : 0 };
  }

  // ---- drawing: one pixel buffer for every cell, so P = 65,536 is one putImageData
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
    // Moved cells stay bright and the rest dimmed for highlightMs, then the dimming fades out.
    const since = flash ? now - flash.start : 0;
    const fading = flash ? Math.max(0, Math.min(1, (since - highlightMs) / fadeMs)) : 1;
    const empty = pack([200, 200, 200]);
    const chosen = selected === null ? -1 : view.names.indexOf(selected);
    const oc = view.ownerCount;
    const states = view.states;
    // Slots in hand-off: none ready hatched dark (requests wait), moving (still at the old owner) striped light.
    const hatch = size >= 4;
    for (let p = 0; p < P; p++) {
      const owner = view.primaries[p];
      const state = states && oc > 0 ? states[p * oc] : 0;
      let color = owner < 0 ? (state === 2 ? waiting : empty) : view.colors[owner];
      if (planMask) {
        if (!planMask[p]) color = dim(color);
      } else if (flash) {
        if (!flash.moved[p]) color = fading === 0 ? dim(color) : pack(mix(unpack(dim(color)), unpack(color), fading));
      } else if (chosen >= 0 && owner !== chosen) {
        let replica = false;
        for (let r = 1; r < oc; r++) if (view.table[p * oc + r] === chosen) replica = true;
        color = replica ? pack(mix(unpack(view.colors[chosen]), [245, 245, 245], 0.55)) : dim(color);
      }
      const x0 = (p % cols) * cell;
      const y0 = Math.floor(p / cols) * cell;
      if (state === 0 || !hatch) {
        for (let dy = 0; dy < size; dy++) {
          const row = (y0 + dy) * width + x0;
          for (let dx = 0; dx < size; dx++) pixels[row + dx] = color;
        }
        continue;
      }
      const stripe = state === 2 ? pack([250, 250, 250]) : pack(mix(unpack(color), [255, 255, 255], 0.6));
      const every = state === 2 ? 4 : 6;
      for (let dy = 0; dy < size; dy++) {
        const row = (y0 + dy) * width + x0;
        for (let dx = 0; dx < size; dx++) pixels[row + dx] = (dx + dy) % every < 2 ? stripe : color;
      }
    }
    ctx.putImageData(image, 0, 0);
  }
  const slotStates = ["ready", "moving", "none"];
  const waiting = pack([96, 96, 96]);
  const unpack = (c) => [c & 255, (c >>> 8) & 255, (c >>> 16) & 255];
  const dim = (c) => pack(mix(unpack(c), [245, 245, 245], 0.8));

  const fadeMs = 600;
  function animate(now) {
    if (!flash) return;
    const since = now - flash.start;
    if (since >= highlightMs + fadeMs) {
      flash = null;
      draw(now);
      return;
    }
    // Nothing changes while the highlight holds: redraw only when the fade begins.
    if (since >= highlightMs) draw(now);
    requestAnimationFrame(animate);
  }

  // ---- selecting a member: its partitions bright (replicas lighter), the rest dimmed
  function select(name) {
    selected = name === selected ? null : name;
    if (selected === null) delete document.body.dataset.selected;
    else document.body.dataset.selected = selected;
    for (const row of document.querySelectorAll("#members tbody tr")) {
      row.classList.toggle("selected", row.dataset.member === selected);
    }
    if (view) draw();
  }
  $("#members tbody").addEventListener("click", (event) => {
    const row = event.target.closest("tr");
    if (row?.dataset.color && row.dataset.color !== "transparent") select(row.dataset.member);
  });
  canvas.addEventListener("click", (event) => {
    const p = partitionAt(event);
    if (p === undefined) return;
    const owner = view.primaries[p];
    if (owner >= 0) select(view.names[owner]);
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && selected !== null) select(selected);
  });
  function partitionAt(event) {
    if (!view) return undefined;
    const rect = canvas.getBoundingClientRect();
    const x = Math.floor(((event.clientX - rect.left) * canvas.width) / rect.width / layout.cell);
    const y = Math.floor(((event.clientY - rect.top) * canvas.height) / rect.height / layout.cell);
    const p = y * layout.cols + x;
    return x >= layout.cols || p >= view.config.partitions || p < 0 ? undefined : p;
  }

  // ---- hover: partition and owners in replica order
  canvas.addEventListener("mousemove", (event) => {
    if (!view) return;
    const rect = canvas.getBoundingClientRect();
    const p = partitionAt(event);
    if (p === undefined) {
      tip.hidden = true;
      return;
    }
    const owners = ownersOf(p);
    const stateNote = (rank) => {
      const state = view.states ? view.states[p * view.ownerCount + rank] : 0;
      return state === 1 ? " (moving: still the old owner)" : "";
    };
    tip.innerHTML =
      `<strong>partition ${p}</strong><br>` +
      (owners.length === 0
        ? "no owner"
        : owners
            .map((name, rank) => {
              const label = rank === 0 ? "primary" : `replica ${rank}`;
              if (name === noneReady) return `${label}: none ready (requests wait)`;
              return `${label}: <span class="swatch" style="background:${hex(colorOf(name))}"></span> ${escapeHtml(name)}${stateNote(rank)}`;
            })
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
  /** Shown for a slot no member holds ready (coordinated hand-offs). */
  const noneReady = "none ready";
  function ownersOf(p, shown = view) {
    const owners = [];
    for (let r = 0; r < shown.ownerCount; r++) {
      const index = shown.table[p * shown.ownerCount + r];
      owners.push(index < 0 ? noneReady : shown.names[index]);
    }
    return owners;
  }

  // ---- text views
  /** The settings the ring's placement reads: the others change nothing, so the header leaves them out. */
  function knobs(config) {
    const { partitions, replicas, hash, placement, order, balanceFactor, vnodes, compat } = config;
    const items = { partitions, replicas, hash, placement };
    // balanced and vnodes place by name, whatever the order; jump and modulo index the sorted list.
    if (placement !== "balanced" && placement !== "vnodes") items.order = order;
    if (placement === "balanced") items.balanceFactor = balanceFactor;
    if (placement === "vnodes") items.vnodes = vnodes;
    if (compat && compat !== "none") items.compat = compat;
    return items;
  }
  function renderConfig() {
    const items = { ...knobs(view.config), checksum: view.ringChecksum };
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
    // Only the summary (`table=false`): the map's changes come as cells over /events.
    if (!settled || routing.stalled) routingTimer = setTimeout(() => check(), 1000);
  }

  function renderSource(source) {
    const el = $("#source");
    el.textContent = `source ${source.kind}: ${source.up ? "up" : `down${source.since ? ` since ${source.since}` : ""}${source.error ? ` (${source.error})` : ""}`}`;
    el.classList.toggle("down", !source.up);
  }

  /**
   * The owners list: one item per partition, owners in replica order, for
   * screen readers and tests, written while its <details> is open and
   * emptied when it closes. Written in slices between frames, so the canvas
   * and the page stay responsive at P = 65,536, marked with the ring's
   * checksum when whole, and patched item by item on a change.
   */
  let ownersGeneration = 0;
  function renderOwners() {
    const generation = ++ownersGeneration;
    const started = performance.now();
    const shown = view;
    const list = $("#owners");
    if (list.firstChild) list.replaceChildren();
    delete list.dataset.checksum;
    // Only while its section is open: 65,536 items kept in the page make every later change slow.
    if (!$("#owners-details").open || !shown) return;
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

  $("#owners-details").addEventListener("toggle", () => renderOwners());

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
      const chosen = m.name === selected ? ' class="selected"' : "";
      return `<tr data-member="${escapeHtml(m.name)}" data-color="${color}" data-status="${m.status}"${chosen}>
<td><span class="swatch" style="background:${color}"></span></td>
<td>${escapeHtml(m.name)}</td><td class="url">${escapeHtml(m.url)}</td><td class="protocol">${escapeHtml(m.protocol ?? "h1")}</td>
<td><span class="state ${m.status}">${m.status}</span></td>
<td class="num" data-partitions="${escapeHtml(JSON.stringify(m.partitions))}" data-routed="${escapeHtml(JSON.stringify(m.routed ?? null))}">${m.partitions.join(" / ") || "–"}${routedNote(m)}</td>
<td class="num">${rate(m.name, "requests", m.requests)}</td><td class="num">${rate(m.name, "errors", m.errors)}</td></tr>`;
    });
    $("#members tbody").innerHTML = rows.join("");
    totalsBefore.at = now;
    totalsBefore.totals = new Map(members.map((m) => [m.name, { requests: m.requests, errors: m.errors }]));
  }

  // Rates come from the proxy's own counters, read every two seconds. A ring the page does not
  // show yet is normally on its way as a cells event; only when two polls in a row see it does the
  // page re-read the table (a stream that broke without a reset).
  let unseen = null;
  async function check() {
    try {
      const ring = await fetchJson("ring?table=false");
      // The map shows what is routed: the ring's checksum without hand-offs, the routing table's under them.
      const shown = ring.routing?.checksum ?? ring.checksum;
      if (view && shown === view.checksum) {
        unseen = null;
        // Under hand-offs the target ring may change before what is routed does: the header follows it.
        if (ring.checksum !== view.ringChecksum) {
          view.ringChecksum = ring.checksum;
          view.config = ring.config;
          renderConfig();
        }
        renderMembers(ring.members);
        renderSource(ring.source);
        renderRouting(ring);
      } else if (!view || unseen === shown) {
        unseen = null;
        await refresh();
      } else {
        unseen = shown;
      }
    } catch {
      // The next poll tries again.
    }
  }
  async function poll() {
    await check();
    setTimeout(poll, 2000);
  }

  // ---- live changes
  /** Changes already in the log, by their number: the history and the live stream may both bring one. */
  const logged = new Set();
  const moveText = (counts) => {
    const shown = counts.members.map((m) => `${m.name} (${m.partitions})`);
    if (counts.others > 0) shown.push(`others (${counts.others})`);
    if (counts.none > 0) shown.push(`${noneReady} (${counts.none})`);
    return shown.join(", ");
  };
  /** A routing change (coordinated hand-offs): what moved of what is routed, and the slots still waiting. */
  function routingText(change) {
    const version = change.version === null ? "" : ` v${change.version}`;
    const moved = change.moved
      ? `${change.moved.primaries} partitions moved (${change.moved.slots} slots)`
      : "routing replaced";
    const waiting = change.states.none > 0 ? `, ${change.states.none} slots none ready` : "";
    const moving = change.states.moving > 0 ? `, ${change.states.moving} moving` : "";
    return `routing${version}: ${moved}${waiting}${moving}`;
  }
  function logChange(change) {
    if (change.seq !== undefined) {
      if (logged.has(change.seq)) return;
      logged.add(change.seq);
    }
    const li = document.createElement("li");
    const at = change.at ? new Date(change.at) : new Date();
    let text = `<time datetime="${escapeHtml(at.toISOString())}">${at.toLocaleTimeString()}</time> `;
    if (change.kind === "routing") {
      text += escapeHtml(routingText(change));
    } else {
      const who = [...change.added.map((m) => `+${m}`), ...change.removed.map((m) => `−${m}`)].join(" ");
      // Under hand-offs the ring is the target: its partitions move as the routing entries say.
      const verb = change.coordinated ? "to move" : "moved";
      const moved = change.moved
        ? `${change.moved.primaries} partitions ${verb}${change.timesOptimum === null ? "" : ` (${change.timesOptimum.toFixed(2)}× optimum)`}`
        : "config changed";
      text += `${change.coordinated ? "target ring " : ""}${escapeHtml(who || "members changed")}: ${escapeHtml(moved)}, ${change.size} members`;
    }
    if (change.moved && change.moved.primaries > 0 && change.from && change.to) {
      const some = (counts) => counts.members.length > 0 || counts.none > 0;
      const sides = [
        some(change.from) ? `from ${escapeHtml(moveText(change.from))}` : "",
        some(change.to) ? `to ${escapeHtml(moveText(change.to))}` : "",
      ].filter((side) => side !== "");
      text += `<div class="moves">${sides.join("<br>")}</div>`;
    }
    li.innerHTML = text;
    li.dataset.checksum = change.checksum;
    li.dataset.moved = change.moved ? change.moved.primaries : "";
    li.dataset.kind = change.kind ?? "ring";
    if (change.seq !== undefined) li.dataset.seq = change.seq;
    const log = $("#log");
    // Newest first, by number, so a history entry arriving after a live one still sorts right.
    const seq = change.seq ?? Number.POSITIVE_INFINITY;
    const older = [...log.children].find((item) => Number(item.dataset.seq ?? Number.POSITIVE_INFINITY) < seq);
    log.insertBefore(li, older ?? null);
    while (log.children.length > 200) log.lastChild.remove();
  }

  /** The server's last changes, so the log survives a page load. */
  async function history() {
    try {
      const { changes } = await fetchJson("changes");
      for (const change of changes) logChange(change);
      $("#log").dataset.loaded = String(changes.length);
    } catch {
      // The live stream still fills the log.
    }
  }

  function follow() {
    const events = new EventSource("events?types=memberUp,memberDown,ring,routing,source,cells");
    events.addEventListener("ring", (event) => logChange(JSON.parse(event.data)));
    events.addEventListener("routing", (event) => logChange(JSON.parse(event.data)));
    events.addEventListener("cells", (event) => applyCells(JSON.parse(event.data)));
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
  history();
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
