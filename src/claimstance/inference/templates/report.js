(() => {
  const data = JSON.parse(document.getElementById("report-data").textContent);
  const labels = data.labels;
  const $ = (id) => document.getElementById(id);
  const docsEl = $("docs"), filter = $("filter"), prev = $("prev"), next = $("next");
  let page = 0;

  const el = (tag, cls, text) => {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  };
  const cls = (label) => (label < 0 ? "abst" : "c" + label);
  const chosen = () => (filter.value === "" ? null : Number(filter.value));
  const shown = () => {
    const f = chosen();
    if (f === null) return data.docs;
    return data.docs.filter((d) => (f < 0 ? d.abstained : d.counts[f]) > 0);
  };

  function renderDoc(doc, f) {
    const art = el("article", "doc");
    art.append(el("h2", "", doc.name));
    const counts = el("p", "counts");
    counts.append(el("span", "n", doc.sentences.length + (doc.sentences.length === 1 ? " sentence" : " sentences")));
    doc.counts.forEach((n, i) => n && counts.append(el("span", "chip " + cls(i), labels[i] + " " + n)));
    if (doc.abstained) counts.append(el("span", "chip abst", "abstained " + doc.abstained));
    art.append(counts);
    if (!doc.sentences.length) art.append(el("p", "empty", "no sentences"));
    let block = null, para = null;
    for (const [text, label, paragraph, heading, tip] of doc.sentences) {
      const span = el("span", "s " + cls(label), text);
      span.dataset.label = label < 0 ? "" : labels[label];
      if (label < 0) span.dataset.abstained = "true";
      span.title = tip;
      if (f !== null && f !== label) span.classList.add("dim");
      if (heading) {
        const h = el("h3");
        h.append(span);
        art.append(h);
        block = null;
        continue;
      }
      if (block === null || paragraph !== para) {
        block = el("p");
        art.append(block);
        para = paragraph;
      } else {
        block.append(" ");
      }
      block.append(span);
    }
    return art;
  }

  function render() {
    const docs = shown(), f = chosen();
    const pages = Math.max(1, Math.ceil(docs.length / data.pageSize));
    page = Math.min(Math.max(page, 0), pages - 1);
    const start = page * data.pageSize;
    docsEl.replaceChildren(...docs.slice(start, start + data.pageSize).map((d) => renderDoc(d, f)));
    $("status").textContent = "page " + (page + 1) + " of " + pages;
    const noun = docs.length === 1 ? " document" : " documents";
    $("shown").textContent = docs.length + noun + (f === null ? "" : " with " + (f < 0 ? "abstentions" : labels[f]));
    prev.disabled = page === 0;
    next.disabled = page === pages - 1;
    const state = new URLSearchParams();
    if (f !== null) state.set("label", f < 0 ? "abstained" : labels[f]);
    if (page) state.set("page", page + 1);
    history.replaceState(null, "", state.toString() ? "#" + state : location.pathname + location.search);
  }

  // The URL hash (#label=caution&page=2) keeps the view across reloads and makes it linkable.
  const state = new URLSearchParams(location.hash.slice(1));
  const wanted = state.get("label");
  if (wanted === "abstained") filter.value = "-1";
  else if (labels.includes(wanted)) filter.value = String(labels.indexOf(wanted));
  page = (parseInt(state.get("page"), 10) || 1) - 1;

  filter.addEventListener("change", () => { page = 0; render(); });
  prev.addEventListener("click", () => { page -= 1; render(); scrollTo(0, 0); });
  next.addEventListener("click", () => { page += 1; render(); scrollTo(0, 0); });
  render();
})();
