// partnerplan's pages: save each change on this computer as it is made,
// and show partners' changes as they arrive, without disturbing what is
// being typed. The rules of the documents live on the server (the Rust
// model); this file only sends what was typed and shows what comes back.
"use strict";

(function () {
  const csrf = (document.querySelector('meta[name="csrf"]') || {}).content;
  const pending = new Map(); // control id -> in-flight save promise
  const bases = new Map(); // text control id -> { heads, text }

  function docRoot() { return document.getElementById("doc"); }
  function docId() { const d = docRoot(); return d && d.dataset.doc; }
  // An earlier version (as signed, as of a day) never changes: it is not
  // refreshed with the document as it is now.
  function liveDocId() { const d = docRoot(); return d && !d.dataset.version ? d.dataset.doc : null; }
  function pageHeads() { const d = docRoot(); return d ? d.dataset.heads : ""; }

  async function post(path, body) {
    const response = await fetch(path, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body),
    });
    const text = await response.text();
    let answer = {};
    try { answer = JSON.parse(text); } catch (_) { answer = { error: text.length < 300 && !text.includes("<") ? text : "" }; }
    if (!response.ok) {
      throw new Error(answer.error || "The change could not be saved (the app answered " + response.status + "). Reload the page and try again.");
    }
    return answer;
  }

  function showError(control, text) {
    clearError(control);
    const p = document.createElement("p");
    p.className = "field-error";
    p.id = control.id + "-error";
    p.setAttribute("role", "alert");
    p.textContent = text;
    control.insertAdjacentElement("afterend", p);
    control.setAttribute("aria-invalid", "true");
    control.setAttribute("aria-describedby", p.id);
  }

  function clearError(control) {
    const old = document.getElementById(control.id + "-error");
    if (old) old.remove();
    control.removeAttribute("aria-invalid");
    control.removeAttribute("aria-describedby");
  }

  function toast(text, action) {
    let t = document.getElementById("toast");
    if (!t) {
      t = document.createElement("div");
      t.id = "toast";
      t.setAttribute("role", "status");
      document.body.appendChild(t);
    }
    t.replaceChildren(document.createTextNode(text));
    if (action) {
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = action.label;
      b.addEventListener("click", () => { t.replaceChildren(); action.run(); });
      t.appendChild(b);
      b.focus();
    }
    clearTimeout(t._hide);
    t._hide = setTimeout(() => t.replaceChildren(), 10000);
  }

  // ---- Saving -----------------------------------------------------------

  function track(control, promise) {
    control.classList.add("saving");
    const p = promise.finally(() => {
      if (pending.get(control.id) === p) {
        pending.delete(control.id);
        control.classList.remove("saving");
      }
    });
    pending.set(control.id, p);
    return p;
  }

  function saveField(control, value) {
    const id = docId();
    return track(control, post("/doc/" + id + "/field", {
      row: control.dataset.row || null,
      key: control.dataset.key,
      value: value,
      heads: pageHeads(),
    }).then(() => { clearError(control); refreshSoon(); })
      .catch((e) => showError(control, e.message)));
  }

  // Text: each save carries the version it was typed against, so the
  // server applies exactly what was typed there and keeps what partners
  // typed meanwhile.
  function baseOf(control) {
    if (!bases.has(control.id)) bases.set(control.id, { heads: pageHeads(), text: control.defaultValue });
    return bases.get(control.id);
  }

  function saveText(control) {
    const base = baseOf(control);
    const after = control.value;
    if (after === base.text) return Promise.resolve();
    const previous = pending.get(control.id) || Promise.resolve();
    const run = previous.then(() => {
      const now = baseOf(control);
      const typed = control.value;
      if (typed === now.text) return;
      return post("/doc/" + docId() + "/text", {
        row: control.dataset.row || null,
        key: control.dataset.key,
        heads: now.heads,
        after: typed,
      }).then((answer) => {
        bases.set(control.id, { heads: answer.heads || now.heads, text: typed });
        clearError(control);
      }).catch((e) => showError(control, e.message));
    });
    return track(control, run);
  }

  // Every text is readable in full: a text box is as tall as its text.
  // Browsers that size boxes to their content (CSS field-sizing) need no
  // script; for others, every height is read before any is written, so
  // the page is laid out once rather than once per box.
  const sizedByCss = window.CSS && CSS.supports && CSS.supports("field-sizing", "content");
  function fit(t) {
    if (sizedByCss) return;
    t.style.height = "auto";
    t.style.height = t.scrollHeight + 2 + "px";
  }
  function fitAll() {
    if (sizedByCss) return;
    const boxes = [...document.querySelectorAll("#doc textarea")];
    for (const t of boxes) t.style.height = "auto";
    const heights = boxes.map((t) => t.scrollHeight + 2);
    boxes.forEach((t, i) => { t.style.height = heights[i] + "px"; });
  }

  const timers = new Map();
  document.addEventListener("input", (event) => {
    const c = event.target;
    if (c.tagName === "TEXTAREA") fit(c);
    if (c.matches && c.matches("textarea[data-text]")) {
      baseOf(c);
      clearTimeout(timers.get(c.id));
      timers.set(c.id, setTimeout(() => saveText(c), 600));
    }
  });

  document.addEventListener("focusin", (event) => {
    const c = event.target;
    if (c.matches && c.matches("textarea[data-text]")) baseOf(c);
  });

  document.addEventListener("focusout", (event) => {
    const c = event.target;
    if (c.matches && c.matches("textarea[data-text]")) {
      clearTimeout(timers.get(c.id));
      saveText(c).then(() => { bases.delete(c.id); refreshSoon(); });
    }
  });

  document.addEventListener("change", (event) => {
    const c = event.target;
    if (!c.closest) return;
    if (c.matches("[data-field]")) {
      saveField(c, c.value);
      return;
    }
    const links = c.closest("[data-links]");
    if (links) {
      const chosen = [...links.querySelectorAll("input[type=checkbox]:checked")].map((i) => i.value);
      saveField(links, chosen.join(", "));
      return;
    }
    const who = c.closest("[data-responsibility]");
    if (who) {
      const part = (p) => who.querySelector('[data-part="' + p + '"]').value.trim();
      saveField(who, [part("person"), part("role"), part("school")].join("; "));
    }
  });

  // ---- Buttons ------------------------------------------------------------

  document.addEventListener("click", async (event) => {
    const b = event.target.closest && event.target.closest("button");
    if (!b || !docRoot() || !docRoot().contains(b)) return;
    const id = docId();
    try {
      if (b.dataset.add) {
        const answer = await post("/doc/" + id + "/rows", { do: "add", table: b.dataset.add, parent: b.dataset.parent || null });
        await refresh();
        const first = document.querySelector('#row-' + CSS.escape(answer.result) + ' textarea, #row-' + CSS.escape(answer.result) + ' input, #row-' + CSS.escape(answer.result) + ' select');
        if (first) first.focus();
      } else if (b.dataset.move) {
        await post("/doc/" + id + "/rows", { do: "move", row: b.dataset.row, up: b.dataset.move === "up" });
        await refresh();
        const again = document.querySelector('[data-move="' + b.dataset.move + '"][data-row="' + CSS.escape(b.dataset.row) + '"]');
        if (again) again.focus();
      } else if (b.dataset.remove) {
        const row = b.dataset.row;
        await post("/doc/" + id + "/rows", { do: "remove", row: row });
        await refresh();
        toast("The " + b.dataset.remove + " was removed.", {
          label: "Undo",
          run: async () => { await post("/doc/" + id + "/rows", { do: "restore", row: row }); await refresh(); },
        });
      } else if (b.dataset.restore !== undefined) {
        await post("/doc/" + id + "/rows", { do: "restore", row: b.dataset.row });
        await refresh();
      } else if (b.dataset.resolve !== undefined) {
        await post("/doc/" + id + "/resolve", { row: b.dataset.row || null, key: b.dataset.key, choice: b.dataset.choice });
        await refresh();
        toast("Kept “" + b.dataset.choice + "”.");
      }
    } catch (e) {
      toast(e.message);
    }
  });

  // Forms that change a document (record a review, sign, withdraw) post their
  // fields as JSON, like every other change.
  document.addEventListener("submit", async (event) => {
    const form = event.target;
    if (!form.dataset || !form.dataset.post) return;
    event.preventDefault();
    const body = Object.fromEntries(new FormData(form).entries());
    const button = form.querySelector("button[type=submit]");
    if (button) button.disabled = true;
    try {
      await post(form.dataset.post, body);
      for (const e of form.elements) if (e.tagName === "TEXTAREA") e.value = "";
      await refresh();
      toast(form.classList.contains("sign") ? "Signed."
        : form.classList.contains("withdraw") ? "The review is withdrawn."
        : "The review is recorded.");
    } catch (e) {
      const first = form.querySelector("input[type=text], select");
      if (first) showError(first, e.message); else toast(e.message);
    } finally {
      if (button) button.disabled = false;
    }
  });

  document.addEventListener("click", (event) => {
    if (event.target.closest && event.target.closest("[data-print]")) window.print();
  });

  // ---- Live updates -----------------------------------------------------

  // Brings a fresh copy of the page into the one shown, element by
  // element, leaving alone the control being used and any being saved.
  function morph(old, fresh) {
    if (old.nodeType !== 1) {
      if (old.nodeValue !== fresh.nodeValue) old.nodeValue = fresh.nodeValue;
      return;
    }
    // What a person is using, or filling in on a form, is theirs until
    // they leave it: never overwritten by a refresh.
    const busy = old === document.activeElement || pending.has(old.id) || bases.has(old.id)
      || (old.form !== undefined && old.form !== null);
    // A disclosure a person opened (withdrawing a review) stays open.
    const opened = (name) => name === "open" && old.tagName === "DETAILS";
    for (const a of [...old.attributes]) {
      if (!fresh.hasAttribute(a.name) && !(busy && a.name.startsWith("aria-")) && !opened(a.name)) old.removeAttribute(a.name);
    }
    for (const a of fresh.attributes) {
      let value = a.value;
      if (a.name === "class" && old.classList.contains("saving")) value += " saving";
      if (old.getAttribute(a.name) !== value) old.setAttribute(a.name, value);
    }
    if (old.tagName === "TEXTAREA" || old.tagName === "INPUT") {
      const value = fresh.tagName === "TEXTAREA" ? fresh.textContent : fresh.getAttribute("value") || "";
      if (old.type === "checkbox") {
        if (!busy) old.checked = fresh.hasAttribute("checked");
        return;
      }
      if (!busy && old.value !== value) old.value = value;
      old.defaultValue = value;
      return;
    }
    if (old.tagName === "SELECT" && busy) return;
    const olds = [...old.childNodes];
    const byId = new Map(olds.filter((n) => n.nodeType === 1 && n.id).map((n) => [n.id, n]));
    let i = 0;
    for (const f of [...fresh.childNodes]) {
      const here = old.childNodes[i];
      let match = f.nodeType === 1 && f.id ? byId.get(f.id) : null;
      if (!match && !(f.nodeType === 1 && f.id)) {
        // The next unclaimed old node of the same kind: nodes before i are
        // already placed, so anything from i on is free.
        for (let j = i; j < old.childNodes.length; j++) {
          const n = old.childNodes[j];
          if (n.nodeName === f.nodeName && !(n.nodeType === 1 && n.id)) { match = n; break; }
        }
      }
      if (match && match.nodeName !== f.nodeName) {
        // Another kind of element under the same name (a conflict
        // resolved into a control): take the new one whole.
        match.remove();
        old.insertBefore(f, old.childNodes[i] || null);
      } else if (match) {
        if (match !== here) old.insertBefore(match, here || null);
        morph(match, f);
      } else {
        old.insertBefore(f, here || null);
      }
      i++;
    }
    while (old.childNodes.length > i) old.lastChild.remove();
    if (old.tagName === "SELECT") {
      const chosen = fresh.querySelector("option[selected]");
      old.value = chosen ? chosen.value : (fresh.options[0] ? fresh.options[0].value : "");
    }
  }

  let refreshing = null;
  let again = false;
  async function refresh() {
    const root = docRoot();
    if (!root || root.dataset.version) return;
    if (refreshing) { again = true; return refreshing; }
    refreshing = (async () => {
      try {
        const response = await fetch("/doc/" + root.dataset.doc + "/body");
        if (!response.ok) return;
        const holder = document.createElement("div");
        holder.innerHTML = await response.text();
        const fresh = holder.firstElementChild;
        if (fresh) morph(docRoot(), fresh);
        localTimes();
        fitAll();
      } finally {
        refreshing = null;
        if (again) { again = false; refresh(); }
      }
    })();
    return refreshing;
  }

  let soon = null;
  function refreshSoon() {
    clearTimeout(soon);
    soon = setTimeout(refresh, 30);
  }

  function listen() {
    if (!window.EventSource || !csrf) return;
    const events = new EventSource("/events");
    // Whatever changed between the page being made and the live channel
    // opening (or while it was down) is fetched once it opens.
    events.addEventListener("open", refreshAll);
    events.addEventListener("doc", (e) => {
      const id = liveDocId();
      if (id && (e.data === id || e.data === "*")) refreshSoon();
      if (!id && listPage()) homeRefreshSoon();
    });
    events.addEventListener("sync", (e) => {
      const old = document.getElementById("sync");
      const holder = document.createElement("div");
      holder.innerHTML = e.data;
      if (old && holder.firstElementChild) old.replaceWith(holder.firstElementChild);
      localTimes();
    });
  }

  function refreshAll() {
    if (liveDocId()) refreshSoon();
    else if (docId()) return;
    else if (listPage()) homeRefreshSoon();
  }

  // A page that lists documents, or reads across partnerships (the local
  // authority's): refreshed whole when any document changes.
  function listPage() {
    return document.querySelector("table.documents, .no-documents, [data-live-page]");
  }

  let homeTimer = null;
  function homeRefreshSoon() {
    clearTimeout(homeTimer);
    // Pages across many partnerships read many documents: while a
    // partnership's documents arrive, refresh them at most once a second.
    const wait = document.querySelector("[data-live-page]") ? 1000 : 200;
    homeTimer = setTimeout(async () => {
      const response = await fetch(location.pathname + location.search);
      if (!response.ok) return;
      const holder = document.createElement("html");
      holder.innerHTML = await response.text();
      const fresh = holder.querySelector("main");
      const main = document.getElementById("main");
      if (fresh && main && !main.contains(document.activeElement)) {
        morph(main, fresh);
        localTimes();
      }
    }, wait);
  }

  // Times in the reader's own clock.
  function localTimes() {
    for (const t of document.querySelectorAll("time[datetime]")) {
      const d = new Date(t.getAttribute("datetime"));
      if (isNaN(d)) continue;
      t.textContent = t.dataset.style === "time"
        ? d.toLocaleTimeString("en-GB", { hour: "2-digit", minute: "2-digit" })
        : d.toLocaleString("en-GB", { dateStyle: "long", timeStyle: "short" });
    }
  }

  // Leaving the page with typing not yet saved: save it now, and let the
  // browser ask before it goes.
  window.addEventListener("beforeunload", (event) => {
    let unsaved = pending.size > 0;
    const active = document.activeElement;
    if (active && active.matches && active.matches("textarea[data-text]") && active.value !== baseOf(active).text) {
      clearTimeout(timers.get(active.id));
      saveText(active);
      unsaved = true;
    } else if (active && active.matches && active.matches("input[data-field]") && active.value !== active.defaultValue) {
      saveField(active, active.value);
      unsaved = true;
    } else if (active && active.closest && active.closest("[data-responsibility]") && active.value !== active.defaultValue) {
      active.dispatchEvent(new Event("change", { bubbles: true }));
      unsaved = true;
    }
    if (unsaved) {
      event.preventDefault();
      event.returnValue = "";
    }
  });

  window.partnerplan = { refresh: refresh, pending: () => pending.size, morph: morph };
  localTimes();
  fitAll();
  window.addEventListener("resize", fitAll);
  window.addEventListener("beforeprint", fitAll);
  // A printed overview lists every partnership's schools.
  window.addEventListener("beforeprint", () => {
    for (const d of document.querySelectorAll("table.overview details")) d.open = true;
  });
  listen();
})();
