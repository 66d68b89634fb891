// rem-viz gallery: renders the cards held in #report-data with filter, sort, pages and a viewer.
// Every string from the data reaches the page through textContent or a DOM property, never
// through HTML parsing, so names such as "<script>" show as text.
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("report-data").textContent);
  const cards = data.cards.map(function (card, index) { card.index = index; return card; });
  const colorOf = {};
  data.categories.forEach(function (c) { colorOf[c.name] = c.color; });
  const PAGE_SIZES = [12, 24, 48, 96];
  const state = { cat: "", sort: data.sorts.length ? data.sorts[0].key : "", page: 0, size: data.page_size };
  let visible = [];
  let viewerAt = -1;

  function $(id) { return document.getElementById(id); }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function option(value, label) {
    const o = document.createElement("option");
    o.value = String(value);
    o.textContent = label;
    return o;
  }

  function readHash() {
    const params = new URLSearchParams(location.hash.slice(1));
    const cat = params.get("category");
    if (cat !== null && (cat === "" || Object.prototype.hasOwnProperty.call(colorOf, cat))) state.cat = cat;
    const sort = params.get("sort");
    if (sort !== null && data.sorts.some(function (s) { return s.key === sort; })) state.sort = sort;
    const size = parseInt(params.get("size"), 10);
    if (PAGE_SIZES.indexOf(size) >= 0) state.size = size;
    const page = parseInt(params.get("page"), 10);
    state.page = Number.isFinite(page) && page > 0 ? page - 1 : 0;
  }

  function writeHash() {
    const params = new URLSearchParams();
    if (state.cat) params.set("category", state.cat);
    params.set("sort", state.sort);
    params.set("size", String(state.size));
    params.set("page", String(state.page + 1));
    history.replaceState(null, "", "#" + params.toString());
  }

  function sortValue(card, def) {
    if (def.per_category && state.cat && card.category_sort &&
        Object.prototype.hasOwnProperty.call(card.category_sort, state.cat)) {
      return card.category_sort[state.cat];
    }
    const v = card.sort ? card.sort[def.key] : undefined;
    return typeof v === "number" ? v : null;
  }

  function compute() {
    const def = data.sorts.find(function (s) { return s.key === state.sort; });
    visible = cards.filter(function (c) { return !state.cat || c.categories.indexOf(state.cat) >= 0; });
    if (def) {
      visible.sort(function (a, b) {
        const va = sortValue(a, def), vb = sortValue(b, def);
        if (va === null && vb === null) return a.index - b.index;
        if (va === null) return 1;  // cards without a value go last whatever the direction
        if (vb === null) return -1;
        const d = def.descending ? vb - va : va - vb;
        return d !== 0 ? d : a.index - b.index;
      });
    }
    const pages = Math.max(1, Math.ceil(visible.length / state.size));
    state.page = Math.min(state.page, pages - 1);
  }

  function chips(names) {
    const ul = el("ul", "chips");
    names.forEach(function (name) {
      const li = el("li", "", name);
      if (colorOf[name]) li.style.setProperty("--chip", colorOf[name]);
      ul.appendChild(li);
    });
    return ul;
  }

  function cardNode(card, position) {
    const fig = el("figure", "card");
    fig.dataset.key = card.key;
    const button = el("button", "thumb");
    button.type = "button";
    button.title = "enlarge";
    const img = document.createElement("img");
    img.loading = "lazy";
    img.src = card.thumb;
    img.alt = card.title;
    button.appendChild(img);
    button.addEventListener("click", function () { openViewer(position); });
    fig.appendChild(button);
    const cap = el("figcaption");
    if (card.badge) cap.appendChild(el("span", "badge", card.badge));
    cap.appendChild(el("div", "title", card.title));
    if (card.subtitle) cap.appendChild(el("div", "subtitle", card.subtitle));
    cap.appendChild(chips(card.categories));
    fig.appendChild(cap);
    return fig;
  }

  function pager(node) {
    node.replaceChildren();
    const pages = Math.max(1, Math.ceil(visible.length / state.size));
    const prev = el("button", "prev", "\u2039 Prev");
    prev.type = "button";
    prev.disabled = state.page === 0;
    prev.addEventListener("click", function () { state.page -= 1; render(); });
    const next = el("button", "next", "Next \u203a");
    next.type = "button";
    next.disabled = state.page >= pages - 1;
    next.addEventListener("click", function () { state.page += 1; render(); });
    node.append(prev, el("span", "page", "Page " + (state.page + 1) + " of " + pages), next);
  }

  function render() {
    compute();
    writeHash();
    $("category-filter").value = state.cat;
    $("sort-by").value = state.sort;
    $("page-size").value = String(state.size);
    const start = state.page * state.size;
    const shown = visible.slice(start, start + state.size);
    const box = $("cards");
    box.replaceChildren();
    shown.forEach(function (card, i) { box.appendChild(cardNode(card, start + i)); });
    $("count").textContent = visible.length
      ? "Showing " + (start + 1) + "\u2013" + (start + shown.length) + " of " + visible.length + " " + data.item_name
      : "No " + data.item_name + " match";
    pager($("pager-top"));
    pager($("pager-bottom"));
    document.querySelectorAll("#summary-table tbody tr").forEach(function (tr) {
      tr.classList.toggle("active", tr.dataset.category === state.cat && state.cat !== "");
    });
  }

  function fillTable(table, columns, rows) {
    table.replaceChildren();
    const head = el("thead");
    const tr = el("tr");
    columns.forEach(function (c) { tr.appendChild(el("th", "", c)); });
    head.appendChild(tr);
    const body = el("tbody");
    rows.forEach(function (row) {
      const r = el("tr");
      row.forEach(function (cell) { r.appendChild(el("td", "", cell)); });
      body.appendChild(r);
    });
    table.append(head, body);
    return body;
  }

  function openViewer(position) {
    if (position < 0 || position >= visible.length) return;
    viewerAt = position;
    const card = visible[position];
    $("viewer-title").textContent = card.title;
    $("viewer-subtitle").textContent = card.subtitle || "";
    const img = $("viewer-image");
    img.src = card.full;
    img.alt = card.title;
    fillTable($("viewer-table"), data.columns, card.rows || []);
    $("viewer").hidden = false;
    $("viewer-prev").disabled = position === 0;
    $("viewer-next").disabled = position === visible.length - 1;
  }

  function openImage(title, src) {
    viewerAt = -1;
    $("viewer-title").textContent = title;
    $("viewer-subtitle").textContent = "";
    $("viewer-image").src = src;
    $("viewer-table").replaceChildren();
    $("viewer-prev").disabled = true;
    $("viewer-next").disabled = true;
    $("viewer").hidden = false;
  }

  function closeViewer() { $("viewer").hidden = true; viewerAt = -1; }

  function setup() {
    document.title = data.title;
    $("subtitle").textContent = data.subtitle || "";
    $("gallery-title").textContent = data.item_name.charAt(0).toUpperCase() + data.item_name.slice(1);
    if (data.notes && data.notes.length) {
      const notes = $("notes");
      data.notes.forEach(function (n) { notes.appendChild(el("p", "", n)); });
      notes.hidden = false;
    }
    if (data.summary) {
      const body = fillTable($("summary-table"), data.summary.columns, data.summary.rows);
      Array.prototype.forEach.call(body.rows, function (tr, i) {
        const name = data.summary.rows[i][data.summary.category_column];
        tr.dataset.category = name;
        tr.addEventListener("click", function () {
          state.cat = state.cat === name ? "" : name;
          state.page = 0;
          render();
          $("gallery-title").scrollIntoView();
        });
      });
      $("summary").hidden = false;
    }
    if (data.figures && data.figures.length) {
      const list = $("figure-list");
      data.figures.forEach(function (f) {
        const fig = el("figure");
        const img = document.createElement("img");
        img.src = f.src;
        img.alt = f.title;
        img.addEventListener("click", function () { openImage(f.title, f.src); });
        fig.append(img, el("figcaption", "", f.title));
        list.appendChild(fig);
      });
      $("figures").hidden = false;
    }
    const filter = $("category-filter");
    filter.appendChild(option("", "All categories (" + cards.length + ")"));
    data.categories.forEach(function (c) { filter.appendChild(option(c.name, c.name + " (" + c.count + ")")); });
    filter.addEventListener("change", function () { state.cat = filter.value; state.page = 0; render(); });
    const sort = $("sort-by");
    data.sorts.forEach(function (s) { sort.appendChild(option(s.key, s.label)); });
    sort.addEventListener("change", function () { state.sort = sort.value; state.page = 0; render(); });
    const size = $("page-size");
    if (PAGE_SIZES.indexOf(state.size) < 0) PAGE_SIZES.push(state.size);
    PAGE_SIZES.sort(function (a, b) { return a - b; }).forEach(function (n) { size.appendChild(option(n, String(n))); });
    size.addEventListener("change", function () { state.size = parseInt(size.value, 10); state.page = 0; render(); });
    $("viewer-close").addEventListener("click", closeViewer);
    $("viewer-prev").addEventListener("click", function () { openViewer(viewerAt - 1); });
    $("viewer-next").addEventListener("click", function () { openViewer(viewerAt + 1); });
    $("viewer").addEventListener("click", function (e) { if (e.target === $("viewer")) closeViewer(); });
    document.addEventListener("keydown", function (e) {
      if ($("viewer").hidden) return;
      if (e.key === "Escape") closeViewer();
      else if (e.key === "ArrowLeft" && viewerAt > 0) openViewer(viewerAt - 1);
      else if (e.key === "ArrowRight" && viewerAt >= 0) openViewer(viewerAt + 1);
    });
    window.addEventListener("hashchange", function () { readHash(); render(); });
    readHash();
    render();
  }

  setup();
}());
